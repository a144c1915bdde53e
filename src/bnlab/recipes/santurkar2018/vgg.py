"""Cards of Santurkar et al. 2018's VGG training experiments (PAPERS.md §2.2, §2.3, §2.6).

* ``santurkar2018.vgg`` (Fig. 1): Standard and +BN VGG at LR 0.1 and 0.5.
* ``santurkar2018.noise`` (Figs. 2 and 8): Standard, +BN, +noisy BN and Standard + the same
  noise.
* ``santurkar2018.lp`` (Figs. 5a and 6): Standard, +BN, +ℓ1, +ℓ2, +ℓ∞ in both readings of
  the paper's ℓp formula (I1, the default, and I2, ``centered=True``).

Every activation quantity is per sampled unit (a channel of a conv layer, pooled over
batch × H × W; a unit of an FC layer, over the batch) at the norm site's *output*, the
value that feeds the ReLU, on the training batch with the network in training mode (batch
statistics, noise drawn): the distributions the paper plots (§2.1, "treating the height and
width dimensions as part of the batch").
"""

from __future__ import annotations

from bnlab.recipes.card import Card, Quantity, activation_quantities, register_card
from bnlab.recipes.santurkar2018.common import (
    PAPER,
    SITE_MAP_TEXT,
    TEST_ACC,
    TEST_N,
    TRAIN_ACC,
    TRAIN_ACC_EVAL,
    VGG_DATA_MNIST1D,
)

__all__ = [
    "FIG1_LAYERS",
    "FIG2_LAYERS",
    "FIG6_LAYERS",
    "HIST",
    "LP",
    "MOMENTS",
    "NOISE",
    "PERCENTILES",
    "VGG",
    "hist_quantities",
    "moment_quantities",
]

#: The paper's layer numbers of each figure's histograms (= norm-site indices, SITE_MAP).
FIG1_LAYERS = (3, 11)
FIG2_LAYERS = (2, 9, 13)
FIG6_LAYERS = (11,)
#: Percentile levels stored with every histogram (a distribution-over-time view).
PERCENTILES = (5, 25, 50, 75, 95)

_ACC = (TRAIN_ACC, TRAIN_ACC_EVAL, TEST_ACC, TEST_N)
_WHERE = ("the norm site's output (what feeds the ReLU) on the training batch in training "
          "mode; a conv unit pools batch × H × W")
_CIFAR = ("CIFAR-10 (32×32 RGB, standardized per channel with the training statistics, no "
          "augmentation). ")


def _quick(steps: int, extra: str = "") -> str:
    """The quick-scale reductions in words (tests check them against the presets)."""
    return (f"Quick-scale reductions: vgg16 at width 1/8 (8 … 64 channels, FC 64), a "
            f"class-balanced subset of 1,000 images per class (10,000), {steps:,} steps "
            f"(paper: 15,000), accuracy on 1,024 training and 1,000 test images{extra}.")


def hist_quantities(layers: tuple[int, ...]) -> tuple[Quantity, ...]:
    """The sparse histogram snapshots (prefix ``act``) at the paper's ``layers``."""
    return activation_quantities(
        "act", units="hist_units", levels=len(PERCENTILES), bins="hist_bins",
        keys={"layer": layers}, when="every hist_every steps from step 0",
        what=f"hist_units sampled units at {_WHERE}; bin edges span each snapshot's range")


def moment_quantities(layers: tuple[int, ...]) -> tuple[Quantity, ...]:
    """The dense moment track (prefix ``moments``) behind Fig. 8's drift."""
    return activation_quantities(
        "moments", units="drift_units", levels=1, bins=1, keys={"layer": layers},
        when="every drift_every steps from step 0",
        what=(f"drift_units sampled units at {_WHERE} (the median and a one-bin histogram "
              "are by-products; mean, std and the drifts are what Fig. 8 uses)"))


HIST = hist_quantities(FIG1_LAYERS + FIG2_LAYERS)  # every layer any VGG card declares
MOMENTS = moment_quantities(FIG2_LAYERS)

VGG = register_card(Card(
    name="santurkar2018.vgg",
    paper=PAPER,
    figure="Fig. 1",
    summary=("Standard vs +BN VGG-16 on CIFAR-10 at LR 0.1 and 0.5: training and test "
             "accuracy, and histograms over time of sampled activations at layers #3 and "
             "#11. " + SITE_MAP_TEXT),
    dataset="cifar10",
    data_paper=_CIFAR + _quick(700),
    data_mnist1d=VGG_DATA_MNIST1D + " (quick: 150 steps).",
    stored=(*_ACC, *hist_quantities(FIG1_LAYERS)),
    figures=("santurkar_fig1_acc", "santurkar_fig1_hist"),
    runtime={"smoke": "seconds",
             "quick": "measured in the recipe docstring (bnlab.experiments.santurkar2018.vgg)",
             "paper": ("12 runs of 15,000 steps on a GPU: bnlab's loop takes about 80 s a "
                       "run on an H200 (5.5 ms a step with BN), plus 30 evaluations on the "
                       "full test set; expected about 20 min for the grid (not measured)")},
))

NOISE = register_card(Card(
    name="santurkar2018.noise",
    paper=PAPER,
    figure="Figs. 2 and 8",
    summary=("Standard, +BN, +noisy BN (BN followed by the paper's time-varying noise, "
             "0.5/1.25/0.1/0.1) and Standard + the same noise: training accuracy, "
             "histograms over time at layers #2, #9, #13, and Fig. 8's moment drift "
             "|μ_{t+1} − μ_t|, |σ²_{t+1} − σ²_t| of sampled units between successive "
             "measurements. " + SITE_MAP_TEXT),
    dataset="cifar10",
    data_paper=_CIFAR + _quick(500, "; moments every 5 steps (paper: every step)"),
    data_mnist1d=VGG_DATA_MNIST1D + " (quick: 150 steps).",
    stored=(*_ACC, *hist_quantities(FIG2_LAYERS), *MOMENTS),
    figures=("santurkar_fig2_acc", "santurkar_fig2_hist", "santurkar_fig8"),
    runtime={"smoke": "seconds",
             "quick": "measured in the recipe docstring (bnlab.experiments.santurkar2018.noise)",
             "paper": ("12 runs of 15,000 steps on a GPU: the loop takes 80 s (BN) to 130 s "
                       "(noisy BN) a run on an H200; the every-step moment probe adds a host "
                       "copy of 21 small arrays a step and ~3.8 M stored array rows (~1 GB) "
                       "for the grid: expected 30–45 min (not measured)")},
))

LP = register_card(Card(
    name="santurkar2018.lp",
    paper=PAPER,
    figure="Figs. 5a and 6",
    summary=("Standard, +BN, +ℓ1, +ℓ2, +ℓ∞ normalization on VGG-16 (ℓp as implementation I1, "
             "scale from the uncentred input, and I2, centred, since the paper's formula is "
             "ambiguous): training accuracy and layer #11 histograms over time. "
             + SITE_MAP_TEXT),
    dataset="cifar10",
    data_paper=_CIFAR + _quick(300),
    data_mnist1d=VGG_DATA_MNIST1D + " (quick: 100 steps).",
    stored=(*_ACC, *hist_quantities(FIG6_LAYERS)),
    figures=("santurkar_fig5a", "santurkar_fig6"),
    runtime={"smoke": "seconds",
             "quick": "measured in the recipe docstring (bnlab.experiments.santurkar2018.lp)",
             "paper": ("24 runs of 15,000 steps on a GPU: about 80 s (BN) to ~100 s (ℓp, a "
                       "custom autograd) a run on an H200: expected about 40 min for the "
                       "grid (not measured)")},
))
