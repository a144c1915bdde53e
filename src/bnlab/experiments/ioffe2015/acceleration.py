"""Ioffe & Szegedy 2015 §4.2.1, Figs. 2–3: BN's larger learning rates (PAPERS.md §1.3).

The paper's study trains Inception on ImageNet without BN at its learning rate η0 =
0.0015 and with BN at η0 (BN-Baseline), 5·η0 (BN-x5) and 30·η0 (BN-x30); the accelerated
BN nets also drop dropout, divide the weight decay by 5 and decay the learning rate 6×
faster (§4.2.1; LRN removal, shuffling and lighter distortions have no counterpart here).
Inception at 5·η0 "reached machine infinity". Fig. 3's table gives the steps each network
needed to reach Inception's best accuracy, 72.2%, and the best accuracy each reached.

Weeks of ImageNet are out of reach, so this recipe is PAPERS.md §8 claim 3's CPU proxy
with the same design: VGG-11 at ``width`` (1/8: 8 … 64 channels; a registry model with a
norm before every ReLU) on a class-balanced CIFAR-10 subset, SGD with momentum, batch 32
(the paper's), no augmentation. The unnormalized baseline ("Inception") uses η0 =
``base_lr``, the unnormalized net's best rate in a pilot sweep at quick scale on real
CIFAR-10 (one seed; final held-out accuracy: 0.005 → 30.9%, 0.01 → 30.8% and ahead at
most evaluations before, 0.02 → 25.8%, 0.05 → 10.4%, stalled at chance without
diverging; a paper-scale run needs its own pilot), with dropout
``dropout`` after each hidden FC layer (the paper's Inception had 40%),
weight decay ``weight_decay`` and an exponential LR decay with half-life
``decay_half_life`` of the run. The variants (the grid axis ``variant``):

=================  ======  ==========  ==========================================
variant            BN      LR          dropout / weight decay / decay half-life
=================  ======  ==========  ==========================================
``inception``      no      η0          baseline
``inception_x5``   no      5·η0        baseline (the paper's divergent run)
``bn_baseline``    yes     η0          baseline
``bn_x5``          yes     5·η0        none / weight_decay/5 / half-life/6
``bn_x30``         yes     30·η0       none / weight_decay/5 / half-life/6
=================  ======  ==========  ==========================================

Held-out accuracy (the paper's single-crop validation accuracy) is measured on
``val_subset`` images of the CIFAR-10 test split every ``steps // evals`` steps. A run
whose loss becomes non-finite or exceeds 10× its initial loss diverges (PAPERS.md §8
claim 3's definition).

Command: ``bnlab run ioffe2015.acceleration --scale quick --data paper`` (CIFAR-10).

Scales (3 seeds, 5 variants = 15 runs), measured on a 2-core CPU with ``--executor process
--workers 2``:

* ``smoke``: 6 steps on 320 images: seconds.
* ``quick``: 1,000 steps on 10,000 training images (3.2 epochs), 2,000 held-out images,
  10 evaluations: on real CIFAR-10 44 min 50 s wall at a load average of 20–26 on the 2
  cores, 5 min 9 s of CPU (about 3 minutes on a quiet machine); on MNIST-1D (1-D
  convolutions) 200 steps (``mnist1d_steps``): 3 min 27 s wall at a load average of 24
  (a single run: 7 s of CPU).
* ``paper``: VGG-11 at full width on all 50,000 images, 60,000 steps (38 epochs), the
  whole test split every 2,000 steps: about 1–1.5 hours on one GPU (estimated; run the
  unnormalized network's pilot sweep for η0 first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from bnlab.data import Loader, balanced_subset, channel_stats, standardize
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model
from bnlab.recipes.ioffe2015 import ACCELERATION, VAL_ACC, VAL_N
from bnlab.sweep.config import NonNegInt, PosFloat, PosInt, Probability
from bnlab.train import SGD, Exponential, build_optimizer

__all__ = ["PAPER", "PRESETS", "RECIPE", "VARIANTS", "AccelerationConfig", "Variant", "build"]

Variant = Literal["inception", "inception_x5", "bn_baseline", "bn_x5", "bn_x30"]
#: variant → (norm, LR multiple of η0, the paper's accelerating changes applied)
VARIANTS: dict[str, tuple[str, float, bool]] = {
    "inception": ("none", 1.0, False),
    "inception_x5": ("none", 5.0, False),
    "bn_baseline": ("bn", 1.0, False),
    "bn_x5": ("bn", 5.0, True),
    "bn_x30": ("bn", 30.0, True),
}


@dataclass(frozen=True)
class AccelerationConfig(RecipeConfig):
    """One variant of Fig. 3's table (the grid sweeps ``variant``)."""

    variant: Variant = "bn_x5"  # paper: Inception, BN-Baseline, BN-x5, BN-x30 (+ Inception ×5)
    base_lr: PosFloat = 0.01  # η0: the unnormalized net's best LR (pilot; paper: 0.0015)
    steps: PosInt = 60_000  # paper: millions of steps on ImageNet; a proxy budget
    batch_size: PosInt = 32  # paper: 32 (§4.2)
    momentum: Probability = 0.9  # paper: SGD with momentum; value not stated
    weight_decay: PosFloat = 5e-4  # baseline L2; not stated (the BN-x nets use it / 5)
    dropout: Probability = 0.4  # paper: Inception used 40% dropout (§4.2.3); BN-x: none
    decay_half_life: PosFloat = 0.5  # baseline LR half-life, fraction of the run; not stated
    decay_speedup: PosFloat = 6.0  # paper: the BN-x nets decay the LR 6× faster
    wd_reduction: PosFloat = 5.0  # paper: the BN-x nets' L2 weight reduced 5×
    width: PosFloat = 1.0  # VGG-11 width multiplier
    train_subset: NonNegInt = 0  # training images per class, at most (0: all)
    val_subset: PosInt = 10_000  # held-out test images behind val_acc
    evals: PosInt = 30  # evaluations per run (steps-to-target resolution)
    mnist1d_steps: NonNegInt = 0  # steps on --data mnist1d (0: steps); make reproduce
    divergence_factor: PosFloat = 10.0  # PAPERS.md §8 claim 3: loss > 10× initial diverges
    log_every: PosInt = 50
    checkpoint_every: NonNegInt = 0


PAPER = AccelerationConfig()
GRID = {"variant": tuple(VARIANTS)}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(replace(PAPER, steps=1_000, width=0.125, train_subset=1_000,
                            val_subset=2_000, evals=10, mnist1d_steps=200), GRID),
    "smoke": Preset(replace(PAPER, steps=6, width=0.125, train_subset=32, val_subset=64,
                            evals=2, log_every=2), GRID),
}


def _data(cfg: AccelerationConfig, env: RunEnv) -> tuple[torch.Tensor, ...]:
    """Training subset and held-out images, standardized with the training statistics."""
    x, y = env.load("train")
    if cfg.train_subset:  # CIFAR-10 is stored sorted by class: pick per class
        smallest = int(torch.bincount(y.cpu()).min())  # MNIST-1D has fewer per class
        x, y = balanced_subset(x, y, min(cfg.train_subset, smallest), seed=env.seed)
    xv, yv = env.load("test")
    pick = torch.randperm(len(xv), generator=env.generator(3))[: cfg.val_subset]
    xv, yv = xv[pick.to(xv.device)], yv[pick.to(yv.device)]
    mean, std = channel_stats(x)
    return standardize(x, mean, std), y, standardize(xv, mean, std), yv


def _settings(cfg: AccelerationConfig, steps: int) -> tuple[str, float, float, float, float]:
    """(norm, lr, dropout, weight decay, per-step LR decay γ) of the run's variant."""
    norm, multiple, accelerated = VARIANTS[cfg.variant]
    half_life = cfg.decay_half_life * steps / (cfg.decay_speedup if accelerated else 1.0)
    gamma = 0.5 ** (1.0 / max(half_life, 1.0))
    if accelerated:  # §4.2.1: no dropout, L2 weight / 5, decay 6× faster
        return norm, multiple * cfg.base_lr, 0.0, cfg.weight_decay / cfg.wd_reduction, gamma
    return norm, multiple * cfg.base_lr, cfg.dropout, cfg.weight_decay, gamma


def build(cfg: AccelerationConfig, env: RunEnv) -> Training:
    """The VGG of the variant, SGD with momentum and exponential decay, held-out accuracy."""
    x, y, xv, yv = _data(cfg, env)
    steps = cfg.mnist1d_steps if env.data == "mnist1d" and cfg.mnist1d_steps else cfg.steps
    norm, lr, dropout, weight_decay, gamma = _settings(cfg, steps)
    model = env.place(create_model("vgg11", norm=norm, in_shape=tuple(x.shape[1:]),
                                   num_classes=10, width=cfg.width, init="kaiming",
                                   dropout=dropout))

    def evaluate(m: nn.Module) -> dict[str, float]:
        correct = torch.cat([m(xb).argmax(1) == yb for xb, yb in
                             zip(xv.split(500), yv.split(500), strict=True)])
        return {VAL_ACC.name: correct.double().mean().item(), VAL_N.name: float(len(yv))}

    optimizer = build_optimizer(SGD(lr=lr, momentum=cfg.momentum, weight_decay=weight_decay),
                                model.parameters())
    return Training(
        model, Loader(x, y, cfg.batch_size, seed=env.seed), nn.functional.cross_entropy,
        optimizer, steps=steps, evaluate=evaluate, eval_every=max(steps // cfg.evals, 1),
        schedule=Exponential(gamma), log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every, divergence_factor=cfg.divergence_factor)


RECIPE = register_recipe(Recipe(ACCELERATION, PRESETS, build))
