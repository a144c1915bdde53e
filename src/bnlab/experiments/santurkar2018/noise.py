"""Santurkar et al. 2018, Figures 2 and 8: "noisy" BatchNorm (PAPERS.md §2.3, App. A.2.1).

The three-VGG comparison: Standard (no norm), +BN, and +"noisy" BN, where every BN layer's
output gets time-varying, non-Gaussian noise (Algorithm 1: per channel and step
μ_t ~ U(−0.5, 0.5), σ_t ~ U(1, 1.25); per element m ~ U(μ_t ± 0.1), s ~ N(σ_t, 0.1); output
s·a + m; the ``noisy_bn`` layer), plus Standard + the same noise (``noise``), which the
paper says "prevents it from training entirely". Same VGG-16, plain SGD, LR 0.1 (the
default; PAPERS.md §2.3), batch 128, Glorot, no augmentation, as Fig. 1.

Stored (card :data:`bnlab.recipes.santurkar2018.vgg.NOISE`): training and test accuracy;
histograms over time of ``hist_units`` sampled units at layers #2, #9, #13 (Fig. 2); and
every ``drift_every`` steps (1: every step, the paper's "successive steps") the mean,
variance and their change since the previous measurement, |μ_{t+1} − μ_t| and
|σ²_{t+1} − σ²_t|, of ``drift_units`` sampled units at the same layers (Fig. 8). All at
the norm site's output (what feeds the ReLU, the noise included) on the training batch in
training mode; conv units pool batch × H × W. Claims c07, c29, c30 read them.

Command: ``bnlab run santurkar2018.noise --scale quick --data paper``.

Scales (4 networks × 3 seeds = 12 runs):

* ``smoke``: 6 steps at width 1/8: seconds.
* ``quick``: vgg16 at width 1/8, 10,000 class-balanced CIFAR-10 images, 500 steps (the
  paper: 15,000), accuracies every 50 steps on 1,024 training and 1,000 test images,
  histograms every 25 steps, moments every 5 steps (paper: every step); MNIST-1D runs 150
  steps. Measured with ``--executor process --workers 2``: see :data:`QUICK_RUNTIME`.
* ``paper``: the paper's settings; 80 s (BN) to 130 s (noisy BN) a run on one H200.
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
    sampled_units,
    site_probe,
    vgg_training,
)
from bnlab.probes import Schedule
from bnlab.recipes.santurkar2018.vgg import FIG2_LAYERS, NOISE
from bnlab.sweep.config import PosInt

__all__ = ["PAPER", "PRESETS", "QUICK", "QUICK_RUNTIME", "RECIPE", "SMOKE", "NoiseConfig",
           "build"]

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 10 min 4 s wall on 2 cores shared with a test run (891 s user + 49 s "
    "system CPU for the 12 runs), so about 8 min on a quiet 2-core machine; --data "
    "mnist1d: see the README (part of make reproduce)")


@dataclass(frozen=True)
class NoiseConfig(VggConfig):
    """One run of Figs. 2/8 (the grid sweeps ``norm``: none, bn, noisy_bn, noise)."""

    hist_layers: tuple[PosInt, ...] = FIG2_LAYERS  # paper: Fig. 2, layers #2, #9, #13
    hist_units: PosInt = 4  # paper: "randomly sampled activations"; 4 per layer
    hist_bins: PosInt = 40  # not stated
    hist_every: PosInt = 500  # not stated; 30 snapshots over 15k steps
    drift_units: PosInt = 8  # paper: "sampled activations" (Fig. 8), count not stated
    drift_every: PosInt = 1  # paper: between successive steps (Fig. 8a)


PAPER = NoiseConfig()
GRID = {"norm": ("none", "bn", "noisy_bn", "noise")}  # Standard, +BN, +noisy BN, + noise
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=500, steps_mnist1d=150,
                eval_every=50, acc_examples=1_024, test_examples=1_000, hist_every=25,
                drift_every=5)
SMOKE = replace(QUICK, steps=6, steps_mnist1d=0, eval_every=3, hist_every=3, log_every=3,
                drift_every=1,
                acc_examples=128, test_examples=200, train_per_class=20)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


def build(cfg: NoiseConfig, env: RunEnv) -> Training:
    """VGG with the run's norm, plain SGD, accuracies, histograms and the moment track."""
    run = build_model(cfg, env, load_data(cfg, env))
    layers = cfg.hist_layers
    hist = histogram_probe(cfg, run.model, env)
    moments = site_probe(layers, sampled_units(run.model, layers, cfg.drift_units, env, tag=1),
                         bins=1, schedule=Schedule(every=cfg.drift_every), prefix="moments",
                         percentiles=(50,))
    return vgg_training(cfg, env, run, [hist, moments])


RECIPE = register_recipe(Recipe(NOISE, PRESETS, build))
