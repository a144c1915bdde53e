"""Cards of Yang et al. 2019, "A Mean Field Theory of Batch Normalization" (PAPERS.md §4).

Seen [S4a, S4b]: in wide BN networks without skip connections, gradients explode
exponentially with depth at initialization; for ReLU after BN with Kaiming weights the
squared gradient norm grows by π/(π−1) ≈ 1.467 per layer in the large-batch limit;
near-linear activations explode less; vanilla BN networks are not trainable at large
depth; after one optimization step the gradients' dynamic range collapses. Yang's own
trainability experiments were not retrieved (PAPERS.md §4, [RECALLED]).
"""

from __future__ import annotations

from bnlab.recipes.card import Card, array, metric, register_card

__all__ = [
    "EXPLOSION",
    "GRAD",
    "GRAD_HIST",
    "GRAD_KURTOSIS",
    "GRAD_STD",
    "PAPER",
    "PROFILE",
    "RATE",
    "RATE_SPREAD",
    "TEST_ACC",
    "TEST_N",
    "TRAINABILITY",
]

PAPER = "Yang et al. 2019"

RATE = metric("explosion_rate", "λ: the ratio of squared gradient norms w.r.t. consecutive "
              "norm-site outputs (earlier over later), averaged over the middle half of "
              "the layers and over the random batches drawn", when="once (step 0)")
RATE_SPREAD = metric("explosion_rate_std", "the standard deviation of λ over the random "
                     "batches drawn (its batch-to-batch spread)", when="once (step 0)")
PROFILE = array("log10_grad_sq", ("depth",), "log10 of ‖∂L/∂h_l‖² / ‖∂L/∂h_L‖² at each "
                "norm site l = 1 … L, averaged over the batches drawn (the depth profile)",
                when="once (step 0)")

EXPLOSION = register_card(Card(
    name="yang2019.explosion",
    paper=PAPER,
    figure="§3–4 (gradient explosion rate; π/(π−1) for ReLU at large batch)",
    summary=("the per-layer growth of squared gradient norms in BN MLPs at Kaiming "
             "initialization (width ≥ 512, depth 20) against batch size {8, 16, 64, "
             "256} and nonlinearity (ReLU, tanh, linear), with an unnormalized ReLU "
             "control"),
    dataset=None,
    data_paper="no dataset: standard Gaussian inputs and uniform random labels (the rate "
               "at initialization does not depend on the data in mean-field theory)",
    data_mnist1d="no dataset (the same Gaussian inputs)",
    stored=(RATE, RATE_SPREAD, PROFILE),
    figures=("yang_rate_vs_batch", "yang_depth_profile"),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "minutes on one GPU (widths 4096, depth 50, batch up to 1024)"},
))

TEST_ACC = metric("test_acc", "accuracy on the test subset, as a fraction",
                  when="every eval_every steps and at the end")
TEST_N = metric("test_n", "the number of test examples behind test_acc",
                when="with every test_acc")
# Norm sites 1 … depth (the feeding layer's weight gradient); c27 reads the first and the
# last, so the examples hold every depth the presets run.
_SITES = {"layer": (1, 2, 4, 10, 20, 50, 100)}
_GRAD_WHEN = "at steps 0 and 1 (before the first and the second update)"
GRAD = metric("grad/{layer}/norm", "‖∂L/∂W‖ of the weight feeding norm site {layer}, on "
              "that step's training batch", when=_GRAD_WHEN, keys=_SITES)
GRAD_STD = metric("grad/{layer}/std", "standard deviation of that gradient's entries",
                  when=_GRAD_WHEN, keys=_SITES)
GRAD_KURTOSIS = metric("grad/{layer}/kurtosis", "excess kurtosis of that gradient's entries",
                       when=_GRAD_WHEN, keys=_SITES)
GRAD_HIST = array("grad/{layer}/hist", (2, "grad_bins+1"), "histogram of that gradient's "
                  "entries: counts (NaN-padded) then bin edges", when=_GRAD_WHEN, keys=_SITES)

TRAINABILITY = register_card(Card(
    name="yang2019.trainability",
    paper=PAPER,
    figure="§5 (trainability against depth) [experiments RECALLED]; abstract [SEEN]",
    summary=("BN-ReLU MLPs of width 256 and depth {10, 20, 50, 100} on MNIST, SGD at "
             "LR {1e-3, 1e-2, 1e-1}, with residual connections at the deep end: test "
             "accuracy, and every layer's weight-gradient norm at init and after one step"),
    dataset="mnist",
    data_paper="MNIST 28×28 grey levels, the whole training split; test accuracy on a fixed "
               "subset of the test split (test_subset images)",
    data_mnist1d="the same MLPs on the 40-sample MNIST-1D signals, narrower and shorter "
                 "(mnist1d_width, mnist1d_steps) to fit make reproduce",
    stored=(TEST_ACC, TEST_N, GRAD, GRAD_STD, GRAD_KURTOSIS, GRAD_HIST),
    figures=("yang_trainability", "yang_grad_range"),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "about 10 minutes on one GPU (72 runs of 937 steps)"},
))
