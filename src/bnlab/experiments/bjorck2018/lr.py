"""Bjorck et al. 2018, Fig. 1: the learning rate, not BN itself, sets generalization.

PAPERS.md §3.2–3.3. A CIFAR ResNet is trained with BN at LR 0.1, 0.003 and 0.0001 and
without BN at 0.0001 (Fig. 1 [SEEN]); without BN the larger LRs diverge and are not plotted
in the paper [RECALLED]: here they are run too, and end as ``diverged`` (loss non-finite or
100× its first value), an expected outcome the report shows. Stored: accuracy on a fixed
subset of the training images (eval mode, no augmentation) and on the test split, every
1/``evals`` of training, so curves read against "% of training" like Fig. 1.

The setup is He et al.'s ("experimental setup similar to the original Resnet paper"
[SEEN S3c]): SGD with momentum 0.9 and weight decay 1e-4, batch 128 [RECALLED from [17]],
4-px pad + random crop + horizontal flip, per-pixel mean subtraction [INFERRED], the LR
divided by 10 halfway (Fig. 1 shows one step at 50% of training [SEEN]; "decrease when
learning slows" per a summary) and a warm-up for ResNet-110 (He et al. warm up at 0.01 for
≈ 400 iterations [SEEN S6]; here a linear ramp from 0.1× over 400 steps, the library's
:class:`bnlab.train.Warmup`). The no-BN initialization is NOT STATED: Glorot by default
(see :mod:`bnlab.experiments.bjorck2018.common`).

Training length: 164 epochs (He et al.'s 64k iterations of 128) at LR ≥ 0.003 [RECALLED:
165]; the paper reportedly trains the no-BN network at LR 1e-4 for ≈ 2,400 epochs
[RECALLED, unverified], and Fig. 1's x-axis is "% of training", so runs may differ in
length. The paper preset gives both LR-1e-4 runs 2,400 epochs (BN at 1e-4 too: Fig. 1 shows
it at ≈ 100% training accuracy, and claim c16 compares the two at equal length); expected
GPU time on one H200 ≈ 0.5 h per 164-epoch run and ≈ 7 h per 2,400-epoch run (estimated
from a launch-bound ResNet-110 step of ≈ 25 ms, not measured), 15 runs a seed.

Command: ``bnlab run bjorck2018.lr --scale quick --data paper --executor process --workers 2``.

Scales (6 conditions × 3 seeds):

* ``smoke``: ResNet-20 at quarter width, 50 images, 3 steps: seconds.
* ``quick``: ResNet-20 at half width (8/16/32 channels; He et al. do not warm ResNet-20
  up) on a class-balanced 2,000-image subset, 12 epochs of 15 steps (≈ 0.25 s of one core
  a step), accuracy on fixed 1,000-image train and test subsets every 2 epochs. Far below
  the scale where anything fits its training set, so claim c16 is ``inconclusive`` there
  by design. Measured on a 2-core machine shared with other jobs (load average ≈ 20):
  54 min wall on CIFAR-10 with ``--executor process --workers 2``, but 923 s of CPU, i.e.
  ≈ 8 minutes on 2 quiet cores; re-measured on a quiet 2-core machine: 6 min 56 s wall
  (774 s user + 41 s system CPU). MNIST-1D (no augmentation): 75 s of CPU in all.
* ``paper``: ResNet-110 on all 50k/10k images, as above.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from bnlab.data import Loader, RandomCropFlip, balanced_subset
from bnlab.experiments.bjorck2018.common import Init, Norm, centered_data, resnet
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.recipes.bjorck2018 import LR, TEST_ACC, TEST_N, TRAIN_ACC
from bnlab.sweep.config import NonNegInt, PosFloat, PosInt, Probability
from bnlab.train import SGD, Constant, Step, Warmup, build_optimizer
from bnlab.train.schedules import Schedule

__all__ = ["PAPER", "PRESETS", "RECIPE", "LrConfig", "build"]


@dataclass(frozen=True)
class LrConfig(RecipeConfig):
    """One network at one learning rate (the grid sweeps ``norm``, ``lr``, ``epochs``)."""

    norm: Norm = "bn"  # paper: with and without BN (Fig. 1)
    lr: PosFloat = 0.1  # paper: 0.1, 0.003, 0.0001 (Fig. 1 [SEEN])
    model: Literal["resnet110", "resnet56", "resnet20"] = "resnet110"  # paper [SEEN S3c]
    width: PosFloat = 1.0  # paper: 16/32/64 channels
    epochs: PosInt = 164  # He et al.: 64k iterations of 128 [SEEN S6]; [RECALLED] 165
    per_class: NonNegInt = 0  # training images per class; 0: all (paper: 50k)
    batch_size: PosInt = 128  # He et al. [17] [RECALLED]
    momentum: Probability = 0.9  # He et al. [17] [RECALLED]
    weight_decay: Probability = 1e-4  # He et al. [17] [RECALLED]
    augment: bool = True  # "standard data augmentation" [SEEN S3c]; crop+flip [INFERRED]
    lr_drop_every: Probability = 0.5  # Fig. 1: one drop at 50% of training [SEEN]
    lr_drop: Probability = 0.1  # He et al.: ÷10 [SEEN S6]
    warmup_steps: NonNegInt = 400  # He et al.'s ResNet-110 warm-up, ≈ 400 iterations [SEEN S6]
    evals: PosInt = 50  # evaluations over training (Fig. 1's curves; NOT STATED)
    train_eval: PosInt = 10_000  # training images behind train_acc (NOT STATED)
    test_eval: NonNegInt = 0  # test images behind test_acc; 0: the whole test split
    init: Init = "kaiming"  # BN network: He init as in He et al. [17] [INFERRED]
    init_none: Init = "glorot"  # no-BN network: NOT STATED (see common.py)
    log_every: PosInt = 20  # train_loss and the divergence check
    checkpoint_every: NonNegInt = 5_000


PAPER = LrConfig()
# Fig. 1's four runs, plus the no-BN runs at the larger LRs (expected to diverge).
PAPER_GRID = (
    {"norm": ("bn",), "lr": (0.1, 0.003)},
    {"norm": ("bn", "none"), "lr": (1e-4,), "epochs": (2_400,)},  # [RECALLED] ≈ 2,400 epochs
    {"norm": ("none",), "lr": (0.003, 0.1)},
)
GRID = {"norm": ("bn",), "lr": (0.1, 0.003, 1e-4)}, {"norm": ("none",), "lr": (1e-4, 0.003, 0.1)}
QUICK = replace(PAPER, model="resnet20", width=0.5, epochs=12, per_class=200, evals=6,
                train_eval=1_000, test_eval=1_000, warmup_steps=0, checkpoint_every=0)
PRESETS = {
    "paper": Preset(PAPER, PAPER_GRID),
    "quick": Preset(QUICK, GRID),
    "smoke": Preset(replace(QUICK, width=0.25, per_class=5, batch_size=16, epochs=1, evals=1,
                            train_eval=50, test_eval=50, log_every=1), GRID),
}


def _schedule(cfg: LrConfig, steps: int) -> Schedule:
    """÷ ``lr_drop`` every ``lr_drop_every`` of training, after an optional warm-up."""
    every = max(1, round(cfg.lr_drop_every * steps))
    drops = Step(every=every, gamma=cfg.lr_drop) if every < steps else Constant()
    return Warmup(cfg.warmup_steps, then=drops, start_factor=0.1) if cfg.warmup_steps else drops


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> float:
    correct = sum(int((model(xs).argmax(1) == ys).sum()) for xs, ys in
                  zip(x.split(chunk), y.split(chunk), strict=True))
    return correct / len(y)


def _subsets(cfg: LrConfig, env: RunEnv) -> tuple[torch.Tensor, ...]:
    """Training set (all or ``per_class``), its eval subset, and the test (sub)set.

    The subsets are random (seeded per seed, the same for every condition of a seed); CIFAR-10
    in ``BNLAB_DATA`` is sorted by class, so never a prefix.
    """
    x, y, xt, yt = centered_data(env, test=True)
    if cfg.per_class:
        x, y = balanced_subset(x, y, cfg.per_class, seed=env.seed)
    pick = env.generator(2)
    train_idx = torch.randperm(len(y), generator=pick)[: cfg.train_eval].to(y.device)
    if cfg.test_eval:  # a random subset (MNIST-1D's test classes are not balanced)
        test_idx = torch.randperm(len(yt), generator=pick)[: cfg.test_eval].to(yt.device)
        xt, yt = xt[test_idx], yt[test_idx]
    return x, y, x[train_idx], y[train_idx], xt, yt


def build(cfg: LrConfig, env: RunEnv) -> Training:
    """The ResNet, SGD with the step schedule, and train/test accuracy every 1/evals."""
    x, y, x_fit, y_fit, xt, yt = _subsets(cfg, env)
    model = env.place(resnet(cfg.model, cfg.norm, tuple(x.shape[1:]), init=cfg.init,
                             init_none=cfg.init_none, width=cfg.width))
    augment = RandomCropFlip(padding=4) if cfg.augment and x.dim() == 4 else None
    loader = Loader(x, y, cfg.batch_size, seed=env.seed, augment=augment)
    steps = cfg.epochs * len(loader)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {TRAIN_ACC.name: _accuracy(m, x_fit, y_fit),
                TEST_ACC.name: _accuracy(m, xt, yt), TEST_N.name: float(len(yt))}

    optimizer = build_optimizer(SGD(lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay), model.parameters())
    return Training(model, loader, nn.functional.cross_entropy, optimizer, steps=steps,
                    schedule=_schedule(cfg, steps), evaluate=evaluate,
                    eval_every=max(1, steps // cfg.evals), log_every=cfg.log_every,
                    checkpoint_every=cfg.checkpoint_every)


RECIPE = register_recipe(Recipe(LR, PRESETS, build))
