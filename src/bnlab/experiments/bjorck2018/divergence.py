"""Bjorck et al. 2018, Figs. 3 and 4: why large steps diverge without BN.

PAPERS.md §3.6–3.7. ResNet-110 is trained from initialization with its normal learning
rate ("0.1 with BN, 0.0001 without" [SEEN S3e]; SGD with momentum 0.9 and weight decay
1e-4, batches of 128 with standard augmentation, He et al.'s values [RECALLED]) for the
first mini-batches, and on mini-batches 1, 4 and 7 (steps 0, 3 and 6, before each update)
the probe :class:`bnlab.probes.RelativeLossProbe` records the relative loss

    L_B(w − η g_B) / L_B(w),  g_B = ∇L_B(w),

on that step's batch B, for 17 step sizes η log-spaced in [1e-5, 1e-1] (Fig. 3's axis,
read off; the grid density is NOT STATED: PAPERS.md §8 claim 17's 17 points).

Fig. 4 interpolates "one diverging gradient update" of the network without BN: here
Δw = −η·g_B on the first batch at initialization with η = ``diverge_eta`` = 0.01 (the step
length is NOT STATED; PAPERS.md §8 claim 20 takes 0.01, inside the range where claim 17
expects divergence), evaluated at w + s·Δw for 21 values s ∈ [0, 1]
(:func:`bnlab.probes.interpolated_step_stats`), storing per-channel means and variances of
the conv outputs of layers 8, 44 and 80 (16, 32, 64 channels) and the loss. Only the
network without BN is interpolated, as in the paper (``interp_bn=True`` adds the BN
network for comparison).

The networks and the no-BN initialization (NOT STATED; Glorot by default) are those of
:mod:`bnlab.experiments.bjorck2018.common`.

Command: ``bnlab run bjorck2018.divergence --scale quick --data paper``.

Scales (2 networks × 3 seeds = 6 runs of 7 SGD steps, 3 relative-loss probes of 1 + 17
passes each, and 21 interpolation passes for the network without BN):

* ``smoke``: 16 images a batch, 5 step sizes, 5 interpolation points, 1 seed: seconds.
* ``quick`` = ``paper``: measured on a 2-core machine shared with other jobs (load average
  11 to 23): 38 min wall on CIFAR-10 with ``--executor process --workers 2``. By CPU time
  (ResNet-110 on 128 images: ≈ 3 s of one core a forward+backward, ≈ 1.1 s a forward;
  a run is 10 of the first and 51–72 of the second, ≈ 100 s) the grid takes ≈ 5 minutes on
  2 quiet cores. MNIST-1D: 49 s of CPU in all (2 min 49 s wall at a load of 17).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from torch import nn

from bnlab.data import Loader, RandomCropFlip
from bnlab.experiments.bjorck2018.common import Init, Norm, centered_data, resnet
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.probes import (
    Probe,
    ProbeContext,
    RelativeLossProbe,
    Schedule,
    interpolated_step_stats,
)
from bnlab.recipes.bjorck2018 import (
    DIVERGENCE,
    INTERP_LAYERS,
    INTERP_LOSS,
    INTERP_MEAN,
    INTERP_VAR,
    eta_grid,
)
from bnlab.sweep.config import PosFloat, PosInt, Probability
from bnlab.train import SGD, build_optimizer

__all__ = ["PAPER", "PRESETS", "RECIPE", "DivergenceConfig", "DivergingStepProbe", "build"]


@dataclass(frozen=True)
class DivergenceConfig(RecipeConfig):
    """One network's first mini-batches (the grid pairs each ``norm`` with its ``lr``)."""

    norm: Norm = "bn"  # paper: with BN (top row of Fig. 3) and without (bottom row)
    lr: PosFloat = 0.1  # paper: "0.1 with BN, 0.0001 without" [SEEN S3e]
    batches: tuple[PosInt, ...] = (1, 4, 7)  # Fig. 3's panels: mini-batches 1, 4, 7 [SEEN]
    batch_size: PosInt = 128  # He et al. [17] [RECALLED]
    momentum: Probability = 0.9  # He et al. [17] [RECALLED]
    weight_decay: Probability = 1e-4  # He et al. [17] [RECALLED]
    augment: bool = True  # "standard data augmentation" [SEEN S3c]: 4-px crop + flip [INFERRED]
    eta_range: tuple[PosFloat, PosFloat] = (1e-5, 1e-1)  # Fig. 3's axis (read off)
    eta_points: PosInt = 17  # NOT STATED; PAPERS.md §8 claim 17
    diverge_eta: PosFloat = 0.01  # Fig. 4's step length NOT STATED; PAPERS.md §8 claim 20
    interp_points: PosInt = 21  # NOT STATED; PAPERS.md §8 claim 20
    # Fig. 4's means take both signs, so it shows conv outputs, before any ReLU [INFERRED]:
    interp_where: Literal["pre_norm", "block_output"] = "pre_norm"
    interp_bn: bool = False  # Fig. 4 shows the network without BN only
    init: Init = "kaiming"  # BN network: He init as in He et al. [17] [INFERRED]
    init_none: Init = "glorot"  # no-BN network: NOT STATED (see common.py)


PAPER = DivergenceConfig()
GRID = ({"norm": ("bn",), "lr": (0.1,)}, {"norm": ("none",), "lr": (1e-4,)})
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(PAPER, GRID),
    "smoke": Preset(replace(PAPER, batch_size=16, eta_points=5, interp_points=5), GRID),
}


class DivergingStepProbe(Probe):
    """At its step, interpolate the plain gradient step Δw = −η·g over s ∈ [0, 1].

    g is the step's own gradient (the loop calls probes after ``backward``), so Δw is the
    update plain SGD with learning rate η would make on this batch. Logs the card's
    ``interp/loss`` and ``interp/layer{8,44,80}/{mean,var}`` arrays. Cost: ``points``
    forward passes.

    Args:
        eta: the step length η.
        points: the number of values of s (0 and 1 included).
        where: ``"pre_norm"`` (conv outputs) or ``"block_output"``.
        step: the training step to interpolate at.
    """

    name = "interp"

    def __init__(self, eta: float, points: int, where: str, step: int = 0) -> None:
        super().__init__(Schedule(steps={step}))
        self.eta, self.points, self.where = eta, points, where

    def on_step(self, ctx: ProbeContext) -> None:
        """Interpolate this step's plain gradient update and log the channel statistics."""
        update = {n: -self.eta * p.grad.detach() for n, p in ctx.model.named_parameters()
                  if p.grad is not None}
        res = interpolated_step_stats(ctx.model, ctx.loss_fn, ctx.batch, update,
                                      steps=self.points, sites=list(INTERP_LAYERS),
                                      where=self.where)
        ctx.log(INTERP_LOSS.name, res["loss"])
        for layer in INTERP_LAYERS:
            ctx.log(INTERP_MEAN[layer].name, res["mean"][str(layer)])  # (points, C)
            ctx.log(INTERP_VAR[layer].name, res["var"][str(layer)])


def build(cfg: DivergenceConfig, env: RunEnv) -> Training:
    """ResNet-110, SGD at the network's normal LR, and the two probes."""
    x, y = centered_data(env)
    model = env.place(resnet("resnet110", cfg.norm, tuple(x.shape[1:]), init=cfg.init,
                             init_none=cfg.init_none))
    # MNIST-1D signals are not images: no crop/flip there.
    augment = RandomCropFlip(padding=4) if cfg.augment and x.dim() == 4 else None
    loader = Loader(x, y, cfg.batch_size, seed=env.seed, augment=augment)
    etas = eta_grid(*cfg.eta_range, cfg.eta_points)
    batches = Schedule(steps={b - 1 for b in cfg.batches})  # mini-batch b is step b − 1
    probes: list[Probe] = [RelativeLossProbe(etas, schedule=batches)]
    if cfg.norm == "none" or cfg.interp_bn:
        probes.append(DivergingStepProbe(cfg.diverge_eta, cfg.interp_points, cfg.interp_where))
    optimizer = build_optimizer(SGD(lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay), model.parameters())
    return Training(model, loader, nn.functional.cross_entropy, optimizer,
                    steps=max(cfg.batches), probes=probes, log_every=1)


RECIPE = register_recipe(Recipe(DIVERGENCE, PRESETS, build))
