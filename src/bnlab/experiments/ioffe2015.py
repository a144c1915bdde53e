"""Ioffe & Szegedy 2015, Figure 1: BN on the sigmoid MNIST MLP (PAPERS.md §1.2).

A 784-100-100-100-10 sigmoid MLP, batch 60, plain SGD, trained with BN before each sigmoid
and without, over a grid of learning rates (the paper does not state its LR; PAPERS.md §8
claim 1 sweeps {0.01, 0.1, 0.5, 1}) and seeds. Stored per run (docs/internals.md):

* ``test_acc`` every ``eval_every`` steps and at the end; ``train_loss`` every ``log_every``;
* ``sigmoid_input_pct`` every ``pct_every`` steps from step 0: (20, 3), the 15/50/85th
  percentiles of the sigmoid inputs of 20 fixed units of the last hidden layer over a fixed
  batch of 1,000 test inputs, in eval mode (Fig. 1b, c).

Data: ``--data paper`` uses MNIST (28×28, optionally binarized: the paper calls its inputs
"binary" without a threshold, so ``binarize`` is an option, off by default);
``--data mnist1d`` feeds the 40-sample MNIST-1D signals to the same MLP (40-100-100-100-10).

Scales (3 seeds by default, 4 LRs × 2 nets = 24 runs), measured on a 2-core CPU:

* ``smoke``: 1 LR, 1 seed, 60 steps: seconds; for tests and CI.
* ``quick``: 20,000 steps per run (evaluation every 1,000, percentiles every 500); the
  whole grid takes 2 min 46 s with ``--executor process --workers 2`` on MNIST-1D
  (``make reproduce``), 5 min 32 s for 8,000-step runs on real MNIST under load.
* ``paper``: 50,000 steps per run on MNIST, as in the paper; about a minute per run on a CPU.

Command: ``bnlab run ioffe2015.mnist --scale quick`` (``--data paper`` for real MNIST).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bnlab.data import Loader, load
from bnlab.experiments.registry import Recipe, register_recipe
from bnlab.models import create_model, norm_sites
from bnlab.probes.activations import activation_stats
from bnlab.probes.base import Probe, ProbeContext, Schedule
from bnlab.sweep import RunSpec
from bnlab.sweep.config import config_to_dict
from bnlab.train import SGD, build_optimizer, seed_everything, train

__all__ = ["IoffeMnistConfig", "run"]

NAME = "ioffe2015.mnist"
PERCENTILES = (15, 50, 85)  # Ioffe Fig. 1b, c


@dataclass(frozen=True)
class IoffeMnistConfig:
    """The grid and the per-run settings of ``ioffe2015.mnist``.

    ``lrs`` × ``norms`` × seeds is the grid; every other field is shared by all its runs.
    """

    lrs: tuple[float, ...] = (0.01, 0.1, 0.5, 1.0)  # plain SGD step sizes; not stated in the paper
    norms: tuple[str, ...] = ("bn", "none")
    steps: int = 50_000  # paper: 50k steps
    batch_size: int = 60  # paper: 60
    widths: tuple[int, ...] = (100, 100, 100)
    init_std: float = 0.1  # "small random Gaussian values"; std not stated
    binarize: float = 0.0  # threshold in (0, 1) to binarize inputs; 0 keeps grey levels
    eval_every: int = 1_000  # paper plots test accuracy every 1k steps
    pct_every: int = 500
    pct_units: int = 20  # units of the last hidden layer tracked (PAPERS.md §8 claim 2)
    pct_batch: int = 1_000  # fixed test inputs the percentiles are taken over
    log_every: int = 100
    checkpoint_every: int = 5_000
    threads: int = 1  # torch threads per run (part of the run key)
    data: Literal["mnist1d", "paper"] = "mnist1d"
    scale: Literal["smoke", "quick", "paper"] = "paper"


PRESETS = {
    "paper": IoffeMnistConfig(),
    "quick": IoffeMnistConfig(steps=20_000, eval_every=1_000, pct_every=500,
                              checkpoint_every=5_000, scale="quick"),
    "smoke": IoffeMnistConfig(lrs=(0.5,), steps=60, eval_every=20, pct_every=20,
                              log_every=10, checkpoint_every=20, pct_batch=200,
                              scale="smoke"),
}


def expand(cfg: IoffeMnistConfig, seeds: Sequence[int]) -> list[RunSpec]:
    """One run per (learning rate, norm, seed)."""
    for norm in cfg.norms:
        if norm not in ("bn", "none"):
            raise ValueError(f"bad norms entry {norm!r} for {NAME}: expected 'bn' or 'none'")
    shared = {k: v for k, v in config_to_dict(cfg).items() if k not in ("lrs", "norms")}
    return [
        RunSpec(NAME, {**shared, "lr": float(lr), "norm": norm, "seed": seed}, seed)
        for lr in cfg.lrs for norm in cfg.norms for seed in seeds
    ]


class SigmoidInputPercentiles(Probe):
    """Log the (units, 3) percentiles of the last hidden layer's sigmoid inputs."""

    name = "sigmoid_input_pct"

    def __init__(self, site: int, units: torch.Tensor, inputs: torch.Tensor,
                 schedule: Schedule | int) -> None:
        super().__init__(schedule)
        self.site, self.units, self.inputs = site, units.tolist(), inputs

    def on_step(self, ctx: ProbeContext) -> None:
        """One eval-mode forward on the fixed inputs; the norm's output feeds the sigmoid."""
        stats = activation_stats(ctx.model, self.inputs, [self.site], percentiles=PERCENTILES,
                                 where="post", bn_mode="eval", units=self.units, bins=2)
        ctx.log(self.name, stats[str(self.site)].percentiles.astype(np.float32))


def _data(c: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    name = "mnist" if c["data"] == "paper" else "mnist1d"
    x, y = load(name, "train")
    xt, yt = load(name, "test")
    if c["binarize"] > 0:
        x, xt = (x > c["binarize"]).float(), (xt > c["binarize"]).float()
    return x, y, xt, yt


def run(spec: RunSpec, ctx: Any) -> Any:
    """Train one network of the grid and log what Fig. 1 needs."""
    c = spec.config
    seed_everything(spec.seed, threads=c["threads"])
    x, y, xt, yt = _data(c)
    model = create_model("mlp", norm=c["norm"], in_shape=tuple(x.shape[1:]), num_classes=10,
                         widths=tuple(c["widths"]), activation="sigmoid", init="normal",
                         init_std=c["init_std"])
    # The same 20 units and the same 1,000 test inputs for BN and no-BN nets of one seed.
    pick = torch.Generator().manual_seed(1_000 + spec.seed)
    units = torch.randperm(c["widths"][-1], generator=pick)[: c["pct_units"]]
    fixed = xt[torch.randperm(len(xt), generator=pick)[: c["pct_batch"]]]
    last_site = len(norm_sites(model))
    ctx.add_provenance(device="cpu", threads=torch.get_num_threads())

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"test_acc": (m(xt).argmax(1) == yt).double().mean().item()}

    return train(
        model, Loader(x, y, c["batch_size"], seed=spec.seed), nn.functional.cross_entropy,
        build_optimizer(SGD(lr=c["lr"]), model.parameters()), steps=c["steps"],
        evaluate=evaluate, eval_every=c["eval_every"], log_every=c["log_every"],
        probes=[SigmoidInputPercentiles(last_site, units, fixed, c["pct_every"])],
        sink=ctx, checkpoint_dir=ctx.checkpoint_dir, checkpoint_every=c["checkpoint_every"],
        progress=ctx.progress, desc=f"{c['norm']} lr={c['lr']} seed={spec.seed}",
    )


RECIPE = register_recipe(Recipe(
    name=NAME,
    paper="Ioffe & Szegedy 2015",
    figure="Fig. 1",
    summary="sigmoid MLP with and without BN: test accuracy and sigmoid-input percentiles",
    presets=PRESETS,
    expand=expand,
    run=run,
    quick_runtime="2 min 46 s on 2 CPU cores with 2 workers (24 runs of 20,000 steps, MNIST-1D)",
    data="--data paper: MNIST 28x28; --data mnist1d: the same MLP on 40-sample signals",
))

__all__ += ["PRESETS", "RECIPE", "expand"]
