"""Bjorck et al. 2018, Figs. 2 and 6: gradients of ResNet-110 at initialization.

PAPERS.md §3.5 and §3.9. On one batch of training images, at initialization, with and
without BN (train mode: batch statistics, as in training):

* Fig. 2: the entries of ∂L/∂W for the conv kernel of layer 55 (the midpoint of the 110
  layers; "第55层卷积核" [SEEN S3e]): their histogram, standard deviation and excess kurtosis
  (:func:`bnlab.probes.gradient_stats`; the paper only shows histograms, the two numbers
  are PAPERS.md's suggested quantification [INFERRED]).
* Fig. 6: ∂L/∂logits for each image × class (the heat map), the fraction of images whose
  predicted class is the batch's most common one, and the alignment
  A = |Σ_b g_b| / Σ_b |g_b| per logit and per entry of layer 55's kernel (summed over images
  and positions) (:func:`bnlab.probes.output_gradient_alignment`). The per-kernel-entry
  comparison follows a table of the paper that the specification only recalls [RECALLED,
  no numbers].

Which batch Fig. 2 uses is NOT SEEN; Fig. 6 shows 128 images, He et al.'s mini-batch, used
for both. The loss is the batch-mean cross-entropy. See
:mod:`bnlab.experiments.bjorck2018.common` for the networks (the no-BN initialization is
NOT STATED: Glorot by default, He with ``--set init_none=kaiming``).

Command: ``bnlab run bjorck2018.gradients --scale quick --data paper``.

Scales (2 networks × 3 seeds = 6 runs, forward/backward passes only, so every scale runs
the full ResNet-110 on 128 images):

* ``smoke``: 16 images, 1 seed: seconds.
* ``quick`` = ``paper``: measured on a 2-core machine shared with other jobs, so wall
  times are inflated: 2 min 43 s on CIFAR-10 with ``--executor process --workers 2`` at
  a load average of 9–11 (one ResNet-110 forward+backward on 128 images costs ≈ 3 s of
  one core, so ≈ 1 minute on 2 quiet cores); MNIST-1D: 13 s of CPU in all (45 s wall at a
  load average of 17).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from bnlab.experiments.bjorck2018.common import Init, Norm, centered_data, random_batch, resnet
from bnlab.experiments.harness import LogFn, Measure, RunEnv
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.probes import gradient_stats, output_gradient_alignment
from bnlab.recipes.bjorck2018 import (
    CONV_ALIGN_AGG,
    CONV_ALIGN_MEDIAN,
    DLOGITS,
    GRAD_EDGES,
    GRAD_HIST,
    GRAD_KURTOSIS,
    GRAD_STD,
    GRADIENTS,
    LOGIT_ALIGN,
    MODE_FRACTION,
)
from bnlab.sweep.config import PosInt

__all__ = ["PAPER", "PRESETS", "RECIPE", "GradientsConfig", "build"]


@dataclass(frozen=True)
class GradientsConfig(RecipeConfig):
    """One network at initialization (the grid sweeps ``norm``)."""

    norm: Norm = "bn"  # paper: with and without BN (Figs. 2, 6)
    batch_size: PosInt = 128  # Fig. 6: 128 images [SEEN]; Fig. 2's batch NOT SEEN: the same
    grad_layer: PosInt = 55  # Fig. 2: the midpoint conv layer, 55 [SEEN S3e]
    hist_bins: PosInt = 60  # histogram bins (drawing only)
    init: Init = "kaiming"  # BN network: He init as in He et al. [17] [INFERRED]
    init_none: Init = "glorot"  # no-BN network: NOT STATED (see common.py)


PAPER = GradientsConfig()
GRID = {"norm": ("bn", "none")}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(PAPER, GRID),
    "smoke": Preset(replace(PAPER, batch_size=16, hist_bins=10), GRID),
}


def _measure(cfg: GradientsConfig, env: RunEnv, log: LogFn) -> None:
    x, y = centered_data(env)
    batch = random_batch(x, y, cfg.batch_size, env.generator(0))  # same images for both nets
    model = env.place(resnet("resnet110", cfg.norm, tuple(x.shape[1:]), init=cfg.init,
                             init_none=cfg.init_none))
    loss = nn.functional.cross_entropy
    stats = gradient_stats(model, loss, batch, [cfg.grad_layer], bins=cfg.hist_bins)
    kernel = stats[str(cfg.grad_layer)]
    log(0, GRAD_STD.name, kernel["std"])
    log(0, GRAD_KURTOSIS.name, kernel["kurtosis"])
    log(0, GRAD_HIST.name, kernel["hist"].astype(float))
    log(0, GRAD_EDGES.name, kernel["bin_edges"])
    align = output_gradient_alignment(model, loss, batch, param=cfg.grad_layer)
    log(0, DLOGITS.name, align["dlogits"])  # (batch, 10)
    log(0, LOGIT_ALIGN.name, align["logit_alignment"])  # (10,)
    log(0, MODE_FRACTION.name, align["mode_fraction"])
    log(0, CONV_ALIGN_MEDIAN.name, align["param_alignment"]["median"])
    log(0, CONV_ALIGN_AGG.name, align["param_alignment"]["aggregate"])


def build(cfg: GradientsConfig, env: RunEnv) -> Measure:
    """A measure-only run: the network is built and measured inside ``run``."""
    return Measure(lambda log: _measure(cfg, env, log))


RECIPE = register_recipe(Recipe(GRADIENTS, PRESETS, build))
