"""Ioffe & Szegedy 2015, Figure 1: BN on the sigmoid MNIST MLP (PAPERS.md §1.2).

A 784-100-100-100-10 sigmoid MLP, batch 60, plain SGD, trained with BN before each sigmoid
and without, over learning rates (the paper states none; PAPERS.md §8 claim 1 sweeps
{0.01, 0.1, 0.5, 1}) and seeds. What it stores is declared on its card
(:data:`bnlab.recipes.ioffe2015.MNIST`): test accuracy; and every ``pct_every`` steps the
15/50/85th percentiles of the sigmoid inputs of 20 fixed units of the last hidden layer over
a fixed probe set of 1,000 test inputs, once with BN using the probe set's own batch
statistics (what a sigmoid receives in training) and once with BN's running statistics
(eval mode, a detail).

Command: ``bnlab run ioffe2015.mnist --scale quick`` (``--data paper`` for real MNIST).

Scales (3 seeds, 4 LRs × 2 nets = 24 runs), measured on a 2-core CPU:

* ``smoke``: 1 LR, 1 seed, 60 steps: seconds; for tests and CI.
* ``quick``: 20,000 steps a run (evaluation every 1,000, percentiles every 500): the grid
  takes 2 min 46 s with ``--executor process --workers 2`` on MNIST-1D
  (``make reproduce``), about 4 min 20 s on real MNIST.
* ``paper``: 50,000 steps a run on MNIST, as in the paper; about 75 s a run on a CPU
  (24 runs: 15 min with 2 workers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Literal

import torch
from torch import nn

from bnlab.data import Loader
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model, norm_sites
from bnlab.probes import ActivationStatsProbe, Schedule
from bnlab.recipes.ioffe2015 import MNIST, PERCENTILES, TEST_ACC, TEST_N
from bnlab.sweep.config import MinItems, NonNegInt, PosFloat, PosInt, Probability, Range
from bnlab.train import SGD, build_optimizer

__all__ = ["PAPER", "PRESETS", "RECIPE", "IoffeMnistConfig", "build"]

@dataclass(frozen=True)
class IoffeMnistConfig(RecipeConfig):
    """One run of Ioffe & Szegedy Fig. 1 (the grid sweeps ``norm`` and ``lr``)."""

    norm: Literal["bn", "none"] = "bn"  # paper: with and without BN before each sigmoid
    lr: PosFloat = 0.5  # plain SGD step; not stated in the paper (PAPERS.md §8 claim 1)
    steps: PosInt = 50_000  # paper: 50k steps (§4.1)
    batch_size: PosInt = 60  # paper: 60 (§4.1)
    widths: Annotated[tuple[PosInt, ...], MinItems(1)] = (100, 100, 100)  # paper: 3 of 100
    init_std: PosFloat = 0.1  # paper: "small random Gaussian values"; std not stated
    binarize: Probability = 0.0  # paper: "binary" inputs, threshold not stated; 0 keeps grey
    eval_every: PosInt = 1_000  # paper: test accuracy plotted every 1k steps (Fig. 1a)
    pct_every: PosInt = 500  # PAPERS.md §8 claim 2: percentiles every 500 steps
    pct_units: PosInt = 20  # PAPERS.md §8 claim 2: averaged over 20 random units
    # PAPERS.md §8 claim 2: a fixed batch of 1,000 test images; BN's batch statistics
    # need at least 2
    pct_batch: Annotated[int, Range(2)] = 1_000
    hist_bins: PosInt = 30  # histogram of the same units (not in the paper; for figures)
    log_every: PosInt = 100
    checkpoint_every: NonNegInt = 5_000


PAPER = IoffeMnistConfig()
GRID = {"norm": ("bn", "none"), "lr": (0.01, 0.1, 0.5, 1.0)}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(replace(PAPER, steps=20_000), GRID),
    "smoke": Preset(replace(PAPER, steps=60, eval_every=20, pct_every=20, log_every=10,
                            checkpoint_every=20, pct_batch=200), {**GRID, "lr": (0.5,)}),
}


def _data(cfg: IoffeMnistConfig, env: RunEnv) -> tuple[torch.Tensor, ...]:
    x, y = env.load("train")
    xt, yt = env.load("test")
    if cfg.binarize > 0:
        x, xt = (x > cfg.binarize).float(), (xt > cfg.binarize).float()
    return x, y, xt, yt


def _percentile_probes(cfg: IoffeMnistConfig, env: RunEnv, model: nn.Module,
                       xt: torch.Tensor) -> list[ActivationStatsProbe]:
    """The sigmoid inputs (the last norm's output) of fixed units over a fixed probe set.

    The same units and inputs for the BN and the unnormalized net of one seed.
    """
    pick = env.generator(1)
    units = torch.randperm(cfg.widths[-1], generator=pick)[: cfg.pct_units].tolist()
    probe_set = xt[torch.randperm(len(xt), generator=pick)[: cfg.pct_batch].to(xt.device)]
    last = len(norm_sites(model))
    common = dict(units=units, batch=probe_set, percentiles=PERCENTILES, where="post",
                  bins=cfg.hist_bins, schedule=Schedule(every=cfg.pct_every))
    return [ActivationStatsProbe([last], bn_mode="train", prefix="sigmoid_input", **common),
            ActivationStatsProbe([last], bn_mode="eval", prefix="sigmoid_input_eval", **common)]


def build(cfg: IoffeMnistConfig, env: RunEnv) -> Training:
    """The MLP, its data, plain SGD, test accuracy and the percentile probes."""
    x, y, xt, yt = _data(cfg, env)
    model = env.place(create_model(
        "mlp", norm=cfg.norm, in_shape=tuple(x.shape[1:]), num_classes=10, widths=cfg.widths,
        activation="sigmoid", init="normal", init_std=cfg.init_std))

    def evaluate(m: nn.Module) -> dict[str, float]:
        correct = (m(xt).argmax(1) == yt).double().mean()
        return {TEST_ACC.name: correct.item(), TEST_N.name: float(len(yt))}

    return Training(
        model, Loader(x, y, cfg.batch_size, seed=env.seed), nn.functional.cross_entropy,
        build_optimizer(SGD(lr=cfg.lr), model.parameters()), steps=cfg.steps,
        evaluate=evaluate, eval_every=cfg.eval_every, log_every=cfg.log_every,
        probes=_percentile_probes(cfg, env, model, xt), checkpoint_every=cfg.checkpoint_every)


RECIPE = register_recipe(Recipe(MNIST, PRESETS, build))
