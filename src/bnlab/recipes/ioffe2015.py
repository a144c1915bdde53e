"""Cards of Ioffe & Szegedy 2015 (PAPERS.md §1).

"Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate
Shift".
"""

from __future__ import annotations

from bnlab.recipes.card import Card, activation_quantities, metric, register_card

__all__ = ["MNIST", "PAPER", "PCT", "PCT_EVAL", "PERCENTILES", "TEST_ACC", "TEST_N"]

PAPER = "Ioffe & Szegedy 2015"
#: The percentiles Fig. 1b,c plots.
PERCENTILES = (15, 50, 85)

TEST_ACC = metric("test_acc", "accuracy on the whole test split, as a fraction",
                  when="every eval_every steps and at the end")
TEST_N = metric("test_n", "the number of test examples behind test_acc (for its binomial "
                "standard error)", when="with every test_acc", constant=10_000)
_SITE = {"layer": (3,)}  # the last hidden layer's norm site with the default widths
_PCT_TRAIN = activation_quantities(
    "sigmoid_input", units="pct_units", levels=len(PERCENTILES), bins="hist_bins", keys=_SITE,
    when="every pct_every steps from step 0",
    what=("the sigmoid input of the last hidden layer over the fixed probe set, BN using "
          "the probe set's own batch statistics (what the sigmoid receives in training)"))
_PCT_EVAL = activation_quantities(
    "sigmoid_input_eval", units="pct_units", levels=len(PERCENTILES), bins="hist_bins", keys=_SITE,
    when="every pct_every steps from step 0",
    what=("the same units over the same probe set with BN's running statistics (eval "
          "mode; a lagging moving average: stored as a detail)"))
PCT = _PCT_TRAIN[2]
PCT_EVAL = _PCT_EVAL[2]

MNIST = register_card(Card(
    name="ioffe2015.mnist",
    paper=PAPER,
    figure="Fig. 1",
    summary=("MNIST 784-100-100-100-10 sigmoid MLP with and without BN: test accuracy and "
             "the sigmoid-input percentiles of the last hidden layer over training"),
    dataset="mnist",
    data_paper="MNIST 28×28 grey levels (binarize is an option: the paper says 'binary' "
               "without a threshold); the whole 60k/10k split",
    data_mnist1d="the same MLP on the 40-sample MNIST-1D signals (40-100-100-100-10)",
    stored=(TEST_ACC, TEST_N, *_PCT_TRAIN, *_PCT_EVAL),
    figures=("ioffe_fig1a", "ioffe_fig1bc"),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "about a minute per run on a CPU"},
))
