"""A tiny recipe and process entry points for the DDP tests (imported by spawned ranks).

The recipe ``ddptest.mlp`` trains a 2-hidden-layer MLP on seeded Gaussian blobs (no data
files) with a norm chosen by config, evaluates a continuous test loss, measures the
training batch's activations and gradients with the library's probes, and checkpoints.
It is registered only inside the spawned processes, so the suite's registry-wide tests
never see it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from bnlab.data import Loader
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model
from bnlab.probes import ActivationStatsProbe, GradientStatsProbe, Probe, Schedule
from bnlab.recipes.card import Card
from bnlab.sweep.config import PosInt

ENV_INTERRUPT = "BNLAB_TEST_INTERRUPT_AT"


@dataclass(frozen=True)
class Cfg(RecipeConfig):
    norm: Literal["bn", "ghost_bn", "batch_renorm", "noisy_bn", "ln", "none"] = "bn"
    virtual_batch_size: PosInt = 8
    batch_size: PosInt = 16
    steps: PosInt = 12


def _register():

    class Interrupt(Probe):
        """Raises KeyboardInterrupt at the step $BNLAB_TEST_INTERRUPT_AT, like a Ctrl-C.

        Present in every run (a checkpoint counts the probes), due only when asked.
        """

        def __init__(self):
            at = os.environ.get(ENV_INTERRUPT)
            super().__init__(Schedule(steps=set() if at is None else {int(at)}))

        def on_step(self, ctx):
            raise KeyboardInterrupt

    def blobs(n, gen):
        centres = torch.randn(3, 10, generator=gen) * 1.5
        y = torch.randint(0, 3, (n,), generator=gen)
        return centres[y] + torch.randn(n, 10, generator=gen), y

    def build(cfg, env: RunEnv):
        x, y = blobs(160, env.generator(1))
        xt, yt = blobs(64, env.generator(2))
        kw = {"virtual_batch_size": cfg.virtual_batch_size} if cfg.norm == "ghost_bn" else {}
        model = env.place(create_model("mlp", norm=cfg.norm, norm_kwargs=kw, in_shape=(10,),
                                       num_classes=3, widths=(16, 16), activation="relu"))

        def evaluate(m):
            out = m(xt)
            return {"test_loss": nn.functional.cross_entropy(out, yt).item(),
                    "test_acc": (out.argmax(1) == yt).double().mean().item()}

        probes = [ActivationStatsProbe([1, 2], schedule=3, bins=8, prefix="act"),
                  GradientStatsProbe([1, 2], schedule=4, bins=8)]
        probes.append(Interrupt())
        return Training(model, Loader(x, y, cfg.batch_size, seed=env.seed),
                        nn.functional.cross_entropy,
                        torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
                        steps=cfg.steps, evaluate=evaluate, eval_every=4, probes=probes,
                        log_every=2, checkpoint_every=5)

    card = Card(name="ddptest.mlp", paper="test", figure="-", summary="DDP test recipe",
                dataset=None, data_paper="-", data_mnist1d="-", stored=(), figures=())
    base = Cfg()
    presets = {s: Preset(base, {}) for s in ("smoke", "quick")}
    presets["paper"] = Preset(replace(base, steps=24), {})
    register_recipe(Recipe(card, presets, build))


def rank_main(rank, world, port, argv, env=None):
    """One rank of a DDP run of ``bnlab`` (what torchrun would start)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **(env or {}))
    torch.set_num_threads(1)
    _register()
    from bnlab.cli import main

    rc = main(argv)
    if rc:
        raise SystemExit(rc)


def plain_main(index, argv):
    """A single-process ``bnlab run`` of the test recipe (no DDP)."""
    torch.set_num_threads(1)
    _register()
    from bnlab.cli import main

    rc = main(argv)
    if rc:
        raise SystemExit(rc)
