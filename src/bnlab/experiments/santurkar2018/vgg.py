"""Santurkar et al. 2018, Figure 1: Standard vs +BN VGG on CIFAR-10 (PAPERS.md §2.2).

VGG-16 (13 conv + 2 FC norm sites; the paper's layer #k is conv k) trained with plain SGD,
batch 128, constant LR 0.1 and 0.5, Glorot init, no augmentation, with BN before every
ReLU ("+BN") and without ("Standard"). Stored (card
:data:`bnlab.recipes.santurkar2018.vgg.VGG`): training accuracy (a fixed training sample,
in training mode; eval mode as a detail) and test accuracy, and histograms over time of
``hist_units`` sampled units at layers #3 and #11 (Fig. 1c), taken at the norm site's
output on the training batch in training mode. Claim c15 (test accuracy, paper scale only)
reads it.

Command: ``bnlab run santurkar2018.vgg --scale quick --data paper`` (CIFAR-10 from
``BNLAB_DATA``); ``--data mnist1d`` runs the 1-D adaptation.

Scales (2 norms × 2 LRs × 3 seeds = 12 runs):

* ``smoke``: 6 steps at width 1/8: seconds; for tests and CI.
* ``quick``: reductions, all stated on the card: vgg16 at width 1/8 (8 … 64 channels, FC
  64), a class-balanced subset of 1,000 CIFAR-10 images per class (10,000), 700 steps
  (the paper: 15,000), accuracy on 1,024 training and 1,000 test images every 70 steps,
  histograms every 35 steps; MNIST-1D runs 150 steps. Measured with
  ``--executor process --workers 2``: see :data:`QUICK_RUNTIME`. Final training (test)
  accuracy, mean of 3 seeds, on CIFAR-10: LR 0.1 BN 73.2% (49.2%), Standard 20.4%
  (20.1%; one seed still at chance); LR 0.5 BN 64.3% (48.6%), Standard 10.1% (chance, not
  diverged). On MNIST-1D: LR 0.1 BN 85.8%, Standard 17.5%; LR 0.5 BN 72.5%, Standard
  10.2%.
* ``paper``: the paper's settings (full width, 50,000 images, 15,000 steps, test accuracy
  on all 10,000): bnlab's loop takes about 80 s a run on one H200; with 30 evaluations on
  the full test set, about 20 min for the grid expected (not measured).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.common import (
    VggConfig,
    build_model,
    histogram_probe,
    load_data,
    vgg_training,
)
from bnlab.recipes.santurkar2018.vgg import FIG1_LAYERS, VGG
from bnlab.sweep.config import PosInt

__all__ = ["PAPER", "PRESETS", "QUICK", "QUICK_RUNTIME", "RECIPE", "SMOKE", "Fig1Config",
           "build"]

#: Measured quick-scale time of the whole grid, 2 workers on the shared 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 1 h 56 min wall under a load of 16–26 on 2 cores (845 s user + 49 s "
    "system CPU for the 12 runs), so about 7.5 min on a quiet 2-core machine; "
    "--data mnist1d: 9 min 21 s wall under a load of ~20 (42 s user + 2 s system), about "
    "25 s quiet")


@dataclass(frozen=True)
class Fig1Config(VggConfig):
    """One run of Fig. 1 (the grid sweeps ``norm`` over none/bn and ``lr``)."""

    hist_layers: tuple[PosInt, ...] = FIG1_LAYERS  # paper: Fig. 1c, layers #3 and #11
    hist_units: PosInt = 4  # paper: "a randomly sampled activation"; we keep 4 per layer
    hist_bins: PosInt = 40  # not stated (a TensorBoard-like histogram)
    hist_every: PosInt = 500  # not stated; 30 snapshots over 15k steps


PAPER = Fig1Config()
GRID = {"norm": ("none", "bn"), "lr": (0.1, 0.5)}  # paper: Fig. 1, LR 0.1 and 0.5
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=700, steps_mnist1d=150,
                eval_every=70, acc_examples=1_024, test_examples=1_000, hist_every=35)
SMOKE = replace(QUICK, steps=6, steps_mnist1d=0, eval_every=3, hist_every=3, log_every=3,
                acc_examples=128, test_examples=200, train_per_class=20)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


def build(cfg: Fig1Config, env: RunEnv) -> Training:
    """VGG with or without BN, plain SGD, accuracies and the Fig. 1c histograms."""
    run = build_model(cfg, env, load_data(cfg, env))
    return vgg_training(cfg, env, run, [histogram_probe(cfg, run.model, env)])


RECIPE = register_recipe(Recipe(VGG, PRESETS, build))
