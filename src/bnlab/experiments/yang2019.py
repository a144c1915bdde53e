"""Yang et al. 2019: gradient explosion and trainability of deep BN MLPs (PAPERS.md §4).

Two recipes:

* ``yang2019.explosion`` (claims 24–25): at Kaiming initialization, the ratio λ of squared
  gradient norms w.r.t. the outputs of consecutive norm sites (the probe
  :func:`bnlab.probes.gradient_explosion_rate`, averaged over the middle half of the
  layers), for BN MLPs of width ``width`` and depth ``depth`` on standard Gaussian inputs
  with random labels, against the batch size and the activation; an unnormalized ReLU
  net is the control (λ ≈ 1 with Kaiming weights). Each run draws ``draws`` batches and
  stores the mean λ, its spread and the depth profile of the squared gradient norm.
* ``yang2019.trainability`` (claims 26–27): BN-ReLU MLPs of width 256 trained with plain
  SGD on MNIST at depths {10, 20, 50, 100} and LRs {1e-3, 1e-2, 1e-1}, with residual
  connections (``create_model("mlp", skip=True)``) at the deep end; the final test
  accuracy, and at steps 0 and 1 every hidden layer's weight-gradient norm
  (:class:`bnlab.probes.GradientStatsProbe`) for the dynamic range before and after one
  update.

Commands: ``bnlab run yang2019.explosion --scale quick`` (no dataset) and
``bnlab run yang2019.trainability --scale quick --data paper`` (real MNIST).

Scales, measured on a 2-core CPU (3 seeds; ``--executor process --workers 2``):

* explosion, ``smoke``: width 32, depth 6, 2 draws: seconds. ``quick``: width 512, depth
  20, 8 draws; 3 activations × 4 batch sizes with BN plus 4 unnormalized ReLU controls (48
  runs): 85 s wall at a load average of 9 on the 2 cores, 24 s of CPU; the same on
  ``--data mnist1d`` (no dataset). ``paper``: width 4096, depth 50, batch sizes up to 1024 (the
  limit needs B and width large; PAPERS.md §8 claim 24's GPU test): minutes on one GPU.
* trainability, ``smoke``: width 16, depths 2 and 4, 4 steps: seconds. ``quick``: 150
  steps of batch 64 (a sixth of an epoch), test accuracy on 2,000 test images, residual
  nets at depth 100 only (45 runs): on real MNIST 23 min wall at a load average of 15–21
  on the 2 cores, 4 min 56 s of CPU (about 2.5–3 minutes on a quiet machine); on MNIST-1D
  width 64 and 60 steps (``mnist1d_width``, ``mnist1d_steps``): 1 min 37 s wall at a load
  average of 20.
  ``paper``: 2 epochs (937 steps of batch 128), residual nets at every depth (72 runs):
  about 10 minutes on one GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from bnlab.data import Loader
from bnlab.experiments.harness import LogFn, Measure, RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model
from bnlab.probes import GradientStatsProbe, Schedule, gradient_explosion_rate
from bnlab.recipes.yang2019 import (
    EXPLOSION,
    PROFILE,
    RATE,
    RATE_SPREAD,
    TEST_ACC,
    TEST_N,
    TRAINABILITY,
)
from bnlab.sweep.config import NonNegInt, PosFloat, PosInt
from bnlab.train import SGD, build_optimizer

__all__ = [
    "EXPLOSION_PRESETS",
    "EXPLOSION_RECIPE",
    "TRAIN_PRESETS",
    "TRAIN_RECIPE",
    "ExplosionConfig",
    "TrainabilityConfig",
    "build_explosion",
    "build_trainability",
    "log10_profile",
]


# -- yang2019.explosion ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExplosionConfig(RecipeConfig):
    """One network (activation, norm) measured at one batch size."""

    activation: Literal["relu", "tanh", "linear"] = "relu"  # paper: ReLU; PAPERS.md §8 c25
    batch_size: PosInt = 256  # PAPERS.md §8 c24: B ∈ {8, 16, 64, 256} (GPU: ≥ 1024)
    norm: Literal["bn", "none"] = "bn"  # paper: BN at every layer; none: the control
    width: PosInt = 4_096  # paper: mean field (width → ∞); PAPERS.md §8 c24 GPU 2048–8192
    depth: PosInt = 50  # PAPERS.md §8 c24: depth 20 on a CPU, 50 on a GPU
    in_dim: PosInt = 512  # Gaussian input dimension; not stated
    num_classes: PosInt = 10  # random labels for a cross-entropy loss; not stated
    init: Literal["kaiming", "glorot"] = "kaiming"  # paper: Kaiming (PAPERS.md §4)
    draws: PosInt = 8  # random batches per network; λ is averaged over them


EXPLOSION_PAPER = ExplosionConfig()
_BATCHES = (8, 16, 64, 256)
_EXPLOSION_GRID = [
    {"activation": ("relu", "tanh", "linear"), "batch_size": _BATCHES, "norm": ("bn",)},
    {"activation": ("relu",), "batch_size": _BATCHES, "norm": ("none",)},
]
EXPLOSION_PRESETS = {
    "paper": Preset(EXPLOSION_PAPER, [{**part, "batch_size": (*_BATCHES, 1024)}
                                      for part in _EXPLOSION_GRID]),
    "quick": Preset(replace(EXPLOSION_PAPER, width=512, depth=20), _EXPLOSION_GRID),
    "smoke": Preset(replace(EXPLOSION_PAPER, width=32, depth=6, in_dim=16, draws=2),
                    [{**part, "batch_size": (8, 64)} for part in _EXPLOSION_GRID]),
}


def log10_profile(ratios: list[float]) -> np.ndarray:
    """log10(‖∂L/∂h_l‖² / ‖∂L/∂h_L‖²) for l = 1 … L from the L − 1 consecutive ratios.

    ``ratios[i] = ‖g_{i+1}‖² / ‖g_{i+2}‖²`` (1-based layers), so layer l's value is the
    sum of log10 ratios from l on, and the last layer's is 0.
    """
    logs = np.log10(np.asarray(ratios, dtype=np.float64))  # (L-1,)
    return np.append(np.cumsum(logs[::-1])[::-1], 0.0)  # (L,)


def build_explosion(cfg: ExplosionConfig, env: RunEnv) -> Measure:
    """The MLP at initialization and ``draws`` Gaussian batches through the probe."""
    model = env.place(create_model(
        "mlp", norm=cfg.norm, in_shape=(cfg.in_dim,), num_classes=cfg.num_classes,
        depth=cfg.depth, width=cfg.width, activation=cfg.activation, init=cfg.init))

    def run(log: LogFn) -> None:
        rates, profiles = [], []
        for draw in range(cfg.draws):
            # The same inputs for every network of a seed (tag per draw, not per condition).
            gen = env.generator(100 + draw)
            x = torch.randn(cfg.batch_size, cfg.in_dim, generator=gen).to(env.device)
            y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=gen)
            out = gradient_explosion_rate(model, nn.functional.cross_entropy,
                                          (x, y.to(env.device)))
            rates.append(float(out["mean"]))
            profiles.append(log10_profile(out["ratios"]))
        log(0, RATE.name, float(np.mean(rates)))
        log(0, RATE_SPREAD.name, float(np.std(rates, ddof=1)) if len(rates) > 1 else 0.0)
        log(0, PROFILE.name, np.mean(profiles, axis=0))

    return Measure(run)


EXPLOSION_RECIPE = register_recipe(Recipe(EXPLOSION, EXPLOSION_PRESETS, build_explosion))


# -- yang2019.trainability -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainabilityConfig(RecipeConfig):
    """One BN-ReLU MLP (depth, skip) trained at one learning rate."""

    depth: PosInt = 100  # PAPERS.md §8 c26: depths {10, 20, 50, 100}
    skip: bool = False  # paper: no skip connections; True: residual sums (c26's last part)
    lr: PosFloat = 0.01  # PAPERS.md §8 c26: {1e-3, 1e-2, 1e-1}
    width: PosInt = 256  # PAPERS.md §8 c26: width 256
    batch_size: PosInt = 128  # not stated
    steps: PosInt = 937  # PAPERS.md §8 c26: SGD for 2 epochs (2 × 60,000 / 128)
    init: Literal["kaiming", "glorot"] = "kaiming"  # paper: Kaiming ("common init schemes")
    test_subset: PosInt = 10_000  # test images behind test_acc (the whole split at paper)
    grad_bins: PosInt = 10  # histogram bins of the gradient probe (a detail)
    mnist1d_width: NonNegInt = 0  # width on --data mnist1d (0: width); make reproduce budget
    mnist1d_steps: NonNegInt = 0  # steps on --data mnist1d (0: steps)
    log_every: PosInt = 50
    checkpoint_every: NonNegInt = 0


TRAIN_PAPER = TrainabilityConfig()
_DEPTHS, _LRS = (10, 20, 50, 100), (1e-3, 1e-2, 1e-1)
TRAIN_PRESETS = {
    "paper": Preset(TRAIN_PAPER, {"depth": _DEPTHS, "lr": _LRS, "skip": (False, True)}),
    "quick": Preset(replace(TRAIN_PAPER, batch_size=64, steps=150, test_subset=2_000,
                            mnist1d_width=64, mnist1d_steps=60),
                    [{"depth": _DEPTHS, "lr": _LRS, "skip": (False,)},
                     {"depth": (100,), "lr": _LRS, "skip": (True,)}]),
    "smoke": Preset(replace(TRAIN_PAPER, width=16, batch_size=16, steps=4, test_subset=64,
                            log_every=2),
                    [{"depth": (2, 4), "lr": (0.1,), "skip": (False,)},
                     {"depth": (4,), "lr": (0.1,), "skip": (True,)}]),
}


def _sizes(cfg: TrainabilityConfig, env: RunEnv) -> tuple[int, int]:
    """(width, steps) of this run: the MNIST-1D reductions apply on ``--data mnist1d``."""
    if env.data == "mnist1d":
        return cfg.mnist1d_width or cfg.width, cfg.mnist1d_steps or cfg.steps
    return cfg.width, cfg.steps


def build_trainability(cfg: TrainabilityConfig, env: RunEnv) -> Training:
    """The MLP, plain SGD, final test accuracy and the gradient probe at steps 0 and 1."""
    x, y = env.load("train")
    xt, yt = env.load("test")
    xt, yt = xt[: cfg.test_subset], yt[: cfg.test_subset]
    width, steps = _sizes(cfg, env)
    model = env.place(create_model(
        "mlp", norm="bn", in_shape=tuple(x.shape[1:]), num_classes=10, depth=cfg.depth,
        width=width, activation="relu", init=cfg.init, skip=cfg.skip))

    def evaluate(m: nn.Module) -> dict[str, float]:
        correct = (m(xt).argmax(1) == yt).double().mean()
        return {TEST_ACC.name: correct.item(), TEST_N.name: float(len(yt))}

    # Every hidden layer's weight gradient before the first and the second update (c27).
    probe = GradientStatsProbe(list(range(1, cfg.depth + 1)), schedule=Schedule(steps=(0, 1)),
                               bins=cfg.grad_bins)
    return Training(
        model, Loader(x, y, cfg.batch_size, seed=env.seed), nn.functional.cross_entropy,
        build_optimizer(SGD(lr=cfg.lr), model.parameters()), steps=steps, evaluate=evaluate,
        probes=[probe], log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every)


TRAIN_RECIPE = register_recipe(Recipe(TRAINABILITY, TRAIN_PRESETS, build_trainability))
