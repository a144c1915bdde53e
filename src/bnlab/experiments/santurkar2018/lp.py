"""Santurkar et al. 2018, Figures 5a and 6: ℓp normalization on VGG (PAPERS.md §2.6).

Schemes that "fix the first order moment of the activations, as BatchNorm does, and then
normalize them by the average of their ℓp-norm (before shifting the mean), for p = 1, 2,
∞". The formula is not printed, so both readings run: I1 (the default of the ``l1``,
``l2``, ``linf`` layers: the scale ((1/m) Σ|x|^p)^{1/p} of the *uncentred* input, "before
shifting the mean") and I2 (``centered=True``: the scale of x − μ; for p = 2 that is BN,
which conflicts with the paper showing ℓ2 as its own curve). Same VGG-16, plain SGD, LR 0.1,
batch 128, Glorot, no augmentation, as Fig. 1; Standard and +BN for reference.

Stored (card :data:`bnlab.recipes.santurkar2018.vgg.LP`): training and test accuracy
(Fig. 5a) and histograms over time of ``hist_units`` sampled units at layer #11 (Fig. 6),
at the norm site's output on the training batch in training mode. Claim c12 (VGG part:
each I1 curve within 5 points of BN; I2 as a detail) reads them.

Command: ``bnlab run santurkar2018.lp --scale quick --data paper``.

Scales (Standard, BN, 3 × I1, 3 × I2 = 8 networks × 3 seeds = 24 runs):

* ``smoke``: 6 steps at width 1/8: seconds.
* ``quick``: vgg16 at width 1/8, 10,000 class-balanced CIFAR-10 images, 300 steps (the
  paper: 15,000), accuracies every 50 steps on 1,024 training and 1,000 test images,
  histograms every 25 steps; MNIST-1D runs 100 steps. Measured with
  ``--executor process --workers 2``: see :data:`QUICK_RUNTIME`.
* ``paper``: the paper's settings; about 80–100 s a run on one H200 (35 min).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.common import (
    LP_NORMS,
    VggConfig,
    build_model,
    histogram_probe,
    load_data,
    vgg_training,
)
from bnlab.recipes.santurkar2018.vgg import FIG6_LAYERS, LP
from bnlab.sweep.config import PosInt

__all__ = ["GRID", "PAPER", "PRESETS", "QUICK", "QUICK_RUNTIME", "RECIPE", "SMOKE",
           "LpConfig", "build"]

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 16 min 28 s wall on 2 cores shared with make reproduce (888 s user + "
    "64 s system CPU for the 24 runs), so about 8 min on a quiet 2-core machine; --data "
    "mnist1d: see the README (part of make reproduce)")


@dataclass(frozen=True)
class LpConfig(VggConfig):
    """One run of Figs. 5a/6 (the grid sweeps ``norm`` and, for ℓp, ``centered``)."""

    hist_layers: tuple[PosInt, ...] = FIG6_LAYERS  # paper: Fig. 6, layer #11
    hist_units: PosInt = 4  # paper: "randomly sampled activations"; 4 per layer
    hist_bins: PosInt = 40  # not stated
    hist_every: PosInt = 500  # not stated; 30 snapshots over 15k steps


PAPER = LpConfig()
# Paper: Standard, +BN, +L1, +L2, +L∞ (Fig. 5a); I1 is the ℓp layers' default, I2 is
# ``centered=True`` (PAPERS.md §2.6), run for the ℓp norms only.
GRID = ({"norm": ("none", "bn", *LP_NORMS)}, {"norm": LP_NORMS, "centered": (True,)})
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=300, steps_mnist1d=100,
                eval_every=50, acc_examples=1_024, test_examples=1_000, hist_every=25)
SMOKE = replace(QUICK, steps=6, steps_mnist1d=0, eval_every=3, hist_every=3, log_every=3,
                acc_examples=128, test_examples=200, train_per_class=20)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


def build(cfg: LpConfig, env: RunEnv) -> Training:
    """VGG with the run's norm (ℓp in I1 or I2), plain SGD, accuracies, Fig. 6 histograms."""
    run = build_model(cfg, env, load_data(cfg, env))
    return vgg_training(cfg, env, run, [histogram_probe(cfg, run.model, env)])


RECIPE = register_recipe(Recipe(LP, PRESETS, build))
