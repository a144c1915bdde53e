"""Ioffe & Szegedy 2015 §4.2.1: a deep sigmoid network trains with BN only (PAPERS.md §1.3).

BN-x5-Sigmoid (Inception with sigmoid instead of ReLU, with BN) reached 69.8% on ImageNet;
without BN the sigmoid Inception "never achieves better than 1/1000 accuracy" (chance).
The ImageNet setting is out of reach, so this recipe runs PAPERS.md §8 claim 4's CPU test:
an MLP of 10 hidden sigmoid layers of 100 units on MNIST, with BN before every sigmoid and
without, trained with plain SGD for 5 epochs at three learning rates, test accuracy after
every epoch. Weights start as Ioffe's MNIST net's "small random Gaussian values" (std 0.1,
the ``ioffe2015.mnist`` default; for 100-wide layers also Glorot's std).

Command: ``bnlab run ioffe2015.sigmoid --scale quick --data paper`` (real MNIST).

Scales (3 seeds; 3 LRs × 2 nets = 18 runs), measured on a 2-core CPU with
``--executor process --workers 2``:

* ``smoke``: 1 epoch on a subset: seconds.
* ``quick``: 5 epochs (5,000 steps of batch 60 on MNIST; 330 on MNIST-1D's 4,000
  signals): on real MNIST 39 min wall at a load average of 20–24 on the 2 cores, 4 min
  25 s of CPU (about 2.5 minutes on a quiet machine); on MNIST-1D 2 min 16 s wall at a
  load average of 22.
* ``paper``: 20 epochs: about 4× the quick time, on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from torch import nn

from bnlab.data import Loader
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model
from bnlab.recipes.ioffe2015 import SIGMOID, TEST_ACC, TEST_N
from bnlab.sweep.config import NonNegInt, PosFloat, PosInt
from bnlab.train import SGD, build_optimizer

__all__ = ["PAPER", "PRESETS", "RECIPE", "SigmoidConfig", "build"]


@dataclass(frozen=True)
class SigmoidConfig(RecipeConfig):
    """One deep sigmoid MLP (with or without BN) at one learning rate."""

    norm: Literal["bn", "none"] = "bn"  # paper: BN-x5-Sigmoid vs sigmoid Inception
    lr: PosFloat = 0.5  # paper: BN-x5's 5·η0; the MLP's LR is swept (not stated)
    depth: PosInt = 10  # PAPERS.md §8 claim 4: a 10-layer sigmoid MLP
    width: PosInt = 100  # not stated; Ioffe's MNIST width (§4.1)
    epochs: PosInt = 20  # PAPERS.md §8 claim 4: 5 epochs on a CPU (quick)
    batch_size: PosInt = 60  # Ioffe's MNIST batch (§4.1)
    init_std: PosFloat = 0.1  # Ioffe: "small random Gaussian values" (std not stated)
    train_subset: NonNegInt = 0  # training images used (0: all)
    log_every: PosInt = 100
    checkpoint_every: NonNegInt = 0


PAPER = SigmoidConfig()
GRID = {"norm": ("bn", "none"), "lr": (0.1, 0.5, 2.5)}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(replace(PAPER, epochs=5), GRID),
    "smoke": Preset(replace(PAPER, epochs=1, train_subset=600, log_every=5),
                    {"norm": ("bn", "none"), "lr": (0.5,)}),
}


def build(cfg: SigmoidConfig, env: RunEnv) -> Training:
    """The MLP, plain SGD for ``epochs`` epochs, test accuracy after every epoch."""
    x, y = env.load("train")
    if cfg.train_subset:
        x, y = x[: cfg.train_subset], y[: cfg.train_subset]
    xt, yt = env.load("test")
    model = env.place(create_model(
        "mlp", norm=cfg.norm, in_shape=tuple(x.shape[1:]), num_classes=10, depth=cfg.depth,
        width=cfg.width, activation="sigmoid", init="normal", init_std=cfg.init_std))
    loader = Loader(x, y, cfg.batch_size, seed=env.seed)

    def evaluate(m: nn.Module) -> dict[str, float]:
        correct = (m(xt).argmax(1) == yt).double().mean()
        return {TEST_ACC.name: correct.item(), TEST_N.name: float(len(yt))}

    return Training(
        model, loader, nn.functional.cross_entropy,
        build_optimizer(SGD(lr=cfg.lr), model.parameters()), steps=cfg.epochs * len(loader),
        evaluate=evaluate, eval_every=len(loader), log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every)


RECIPE = register_recipe(Recipe(SIGMOID, PRESETS, build))
