"""Cards of Bjorck, Gomes, Selman & Weinberger 2018, "Understanding Batch Normalization".

PAPERS.md §3. The full text of the paper was not available to the specification: the
figures were read from screenshots and two quoted sentences; everything else about the
setup is tagged there [RECALLED] (from memory, unverified), [INFERRED] or NOT STATED, and
each recipe's config turns those details into named options with defaults.

Six recipes: ``lr`` (Fig. 1), ``gradients`` (Figs. 2 and 6), ``divergence`` (Figs. 3 and
4), ``depth`` (Fig. 5), ``rmt`` (§4, Fig. 7) and ``noise_scale`` (the §3 bound).
"""

from __future__ import annotations

import math

from bnlab.recipes.card import Card, array, metric, register_card

__all__ = [
    "CONV_ALIGN_AGG",
    "CONV_ALIGN_MEDIAN",
    "DEPTH",
    "DEPTH_LAYER",
    "DEPTH_LOG_MEAN",
    "DEPTH_LOG_MEAN_SD",
    "DEPTH_LOG_STD",
    "DEPTH_LOG_STD_SD",
    "DEPTH_R2",
    "DEPTH_SLOPE",
    "DIVERGENCE",
    "DLOGITS",
    "GRADIENTS",
    "GRAD_EDGES",
    "GRAD_HIST",
    "GRAD_KURTOSIS",
    "GRAD_STD",
    "INTERP_LAYERS",
    "INTERP_LOSS",
    "INTERP_MEAN",
    "INTERP_VAR",
    "LOGIT_ALIGN",
    "LR",
    "MODE_FRACTION",
    "NOISE_BOUND",
    "NOISE_C",
    "NOISE_ESTIMATE",
    "NOISE_SCALE",
    "NOISE_SE",
    "PAPER",
    "REL_LOSS",
    "RMT",
    "SAMPLINGS",
    "SV",
    "SV_CONDITION",
    "SV_EDGE",
    "SV_FRAC_SMALL",
    "SV_MAX",
    "TEST_ACC",
    "TEST_N",
    "TRAIN_ACC",
    "eta_grid",
    "product_edge",
]

PAPER = "Bjorck et al. 2018"
_RESNET110 = "He et al.'s CIFAR ResNet-110 (3 stages × 18 basic blocks, 16/32/64 channels)"
_MNIST1D_110 = ("the same ResNet-110 with 1-D convolutions on the 40-sample MNIST-1D signals "
                "(one channel in; the same 16/32/64 channels, so the same layer numbers)")


def eta_grid(lo: float, hi: float, points: int) -> list[float]:
    """``points`` step sizes log-spaced from ``lo`` to ``hi`` (Fig. 3's axis).

    Example:
        >>> [f"{e:.0e}" for e in eta_grid(1e-5, 1e-1, 5)]
        ['1e-05', '1e-04', '1e-03', '1e-02', '1e-01']
    """
    if points < 2:
        return [float(lo)]
    a, b = math.log10(lo), math.log10(hi)
    return [10 ** (a + i * (b - a) / (points - 1)) for i in range(points)]


def product_edge(m: int) -> float:
    """The largest singular value of a product of ``m`` N×N Gaussian matrices as N → ∞.

    With entries N(0, 1/N) the squared singular values of the product follow the
    Fuss–Catalan law of order ``m``, supported on [0, (m+1)^(m+1) / m^m]; the edge of the
    singular values is its square root, (m+1)^((m+1)/2) / m^(m/2) (PAPERS.md §8 claim 22).

    Example:
        >>> round(product_edge(1), 6), round(product_edge(3), 4)
        (2.0, 3.0792)
    """
    return (m + 1) ** ((m + 1) / 2) / m ** (m / 2)


# -- bjorck2018.lr (Fig. 1) ---------------------------------------------------------------

TRAIN_ACC = metric("train_acc", "accuracy on a fixed subset of the training split (no "
                   "augmentation, eval mode), as a fraction", when="every eval_every steps "
                   "and at the end")
TEST_ACC = metric("test_acc", "accuracy on the test split (or its fixed subset), as a fraction",
                  when="every eval_every steps and at the end")
TEST_N = metric("test_n", "the number of test examples behind test_acc",
                when="with every test_acc")

LR = register_card(Card(
    name="bjorck2018.lr",
    paper=PAPER,
    figure="Fig. 1",
    summary=("CIFAR ResNet with BN at LR 0.1, 0.003 and 1e-4 and without BN at 1e-4 (and at "
             "the larger LRs, where it diverges): train and test accuracy against % of "
             "training"),
    dataset="cifar10",
    data_paper=("CIFAR-10, per-pixel mean subtracted, 4-px pad + random crop + flip; paper "
                f"scale: {_RESNET110}, the whole 50k/10k split. Quick scale: ResNet-20 at "
                "half width on a class-balanced 2,000-image training subset, 12 epochs, "
                "accuracy on fixed 1,000-image train and test subsets"),
    data_mnist1d=("a ResNet-20 with 1-D convolutions at half width on MNIST-1D (quick: a "
                  "class-balanced 2,000-signal training subset, the whole 1,000-signal test "
                  "split), no augmentation"),
    stored=(TRAIN_ACC, TEST_ACC, TEST_N),
    figures=("bjorck_fig1",),
    runtime={"smoke": "seconds",
             "quick": "6 min 56 s on 2 quiet cores (measured; CIFAR-10); MNIST-1D ≈ 30 s",
             "paper": "GPU: ResNet-110, 164 epochs a run at LR ≥ 0.003, 2,400 at LR 1e-4 "
                      "[RECALLED]; ≈ 0.5 h and ≈ 7 h a run on one H200 (estimated)"},
))

# -- bjorck2018.gradients (Figs. 2, 6) ----------------------------------------------------

GRAD_STD = metric("kernel_grad/std", "standard deviation of the entries of ∂L/∂W of the "
                  "conv kernel feeding norm site grad_layer (Fig. 2: layer 55)",
                  when="once, at initialization (step 0)")
GRAD_KURTOSIS = metric("kernel_grad/kurtosis", "excess kurtosis m4/m2² − 3 of the same "
                       "entries (0 for a Gaussian)", when="once, at initialization")
GRAD_HIST = array("kernel_grad/hist", ("hist_bins",), "histogram counts of the same entries "
                  "over [min, max]", when="once, at initialization")
GRAD_EDGES = array("kernel_grad/edges", ("hist_bins+1",), "the histogram's bin edges",
                   when="once, at initialization")
DLOGITS = array("dlogits", ("batch_size", 10), "∂L/∂logits for each image of the batch and "
                "each class (Fig. 6's heat map; L is the batch-mean cross-entropy)",
                when="once, at initialization")
LOGIT_ALIGN = array("logit_alignment", (10,), "A_c = |Σ_b δ_bc| / Σ_b |δ_bc| for each class "
                    "c (1: every image pushes logit c the same way)",
                    when="once, at initialization")
MODE_FRACTION = metric("mode_fraction", "fraction of the batch predicted as the batch's most "
                       "common class", when="once, at initialization")
CONV_ALIGN_MEDIAN = metric("conv_alignment/median", "median over the kernel entries j of "
                           "A_j = |Σ_s g_sj| / Σ_s |g_sj|, s over images × positions, for "
                           "the conv kernel of grad_layer", when="once, at initialization")
CONV_ALIGN_AGG = metric("conv_alignment/aggregate", "Σ_j |Σ_s g_sj| / Σ_j Σ_s |g_sj| for the "
                        "same kernel", when="once, at initialization")

GRADIENTS = register_card(Card(
    name="bjorck2018.gradients",
    paper=PAPER,
    figure="Figs. 2, 6",
    summary=("ResNet-110 at initialization, with and without BN, one batch of 128: the "
             "gradient histogram of layer 55's kernel (std, excess kurtosis) and the output "
             "gradients (argmax mode fraction, alignment A per logit and per kernel entry)"),
    dataset="cifar10",
    data_paper=f"one class-balanced random batch of CIFAR-10 training images; {_RESNET110}",
    data_mnist1d=_MNIST1D_110,
    stored=(GRAD_STD, GRAD_KURTOSIS, GRAD_HIST, GRAD_EDGES, DLOGITS, LOGIT_ALIGN,
            MODE_FRACTION, CONV_ALIGN_MEDIAN, CONV_ALIGN_AGG),
    figures=("bjorck_fig2", "bjorck_fig6"),
    runtime={"smoke": "seconds",
             "quick": "≈ 1 min on 2 quiet cores (CIFAR-10); MNIST-1D ≈ 10 s",
             "paper": "the same as quick (forward/backward passes only); seconds on a GPU"},
))

# -- bjorck2018.divergence (Figs. 3, 4) ---------------------------------------------------

#: Fig. 4's layers of ResNet-110 and their channel counts (PAPERS.md §3.7).
INTERP_LAYERS: dict[int, int] = {8: 16, 44: 32, 80: 64}

REL_LOSS = array("relative_loss", ("eta_points",), "L_B(w − ηg_B) / L_B(w) on the training "
                 "batch B of this step, for the eta_points log-spaced η of eta_range",
                 when="on mini-batches 1, 4 and 7 of training (steps 0, 3, 6)")
INTERP_LOSS = array("interp/loss", ("interp_points",), "L_B(w + s·Δw) at s = 0 … 1, "
                    "Δw = −diverge_eta·g_B on the first batch at initialization",
                    when="once, at step 0")
INTERP_MEAN = {layer: array(f"interp/layer{layer}/mean", ("interp_points", c),
                            f"per-channel mean of layer {layer}'s conv output at w + s·Δw "
                            "(rows: s = 0 … 1)", when="once, at step 0")
               for layer, c in INTERP_LAYERS.items()}
INTERP_VAR = {layer: array(f"interp/layer{layer}/var", ("interp_points", c),
                           f"per-channel variance of layer {layer}'s conv output at w + s·Δw",
                           when="once, at step 0")
              for layer, c in INTERP_LAYERS.items()}

DIVERGENCE = register_card(Card(
    name="bjorck2018.divergence",
    paper=PAPER,
    figure="Figs. 3, 4",
    summary=("ResNet-110 trained for 7 mini-batches (LR 0.1 with BN, 1e-4 without): relative "
             "loss along the gradient on batches 1, 4, 7 for 17 η in [1e-5, 1e-1]; one "
             "diverging update interpolated in 21 points with channel means and variances "
             "of layers 8, 44, 80"),
    dataset="cifar10",
    data_paper=f"CIFAR-10 training batches of 128 (augmented as in training); {_RESNET110}",
    data_mnist1d=_MNIST1D_110,
    stored=(REL_LOSS, INTERP_LOSS, *INTERP_MEAN.values(), *INTERP_VAR.values()),
    figures=("bjorck_fig3", "bjorck_fig4"),
    runtime={"smoke": "seconds",
             "quick": "≈ 5 min on 2 quiet cores (estimated from CPU time; CIFAR-10); "
                      "MNIST-1D ≈ 25 s",
             "paper": "the same as quick (7 steps and extra passes); a minute on a GPU"},
))

# -- bjorck2018.depth (Fig. 5) ------------------------------------------------------------

DEPTH_LAYER = array("depth/layer", ("depth_sites+1",), "the layer numbers measured: the "
                    "depth_sites conv layers, then the read-out (layer 110)",
                    when="once, at initialization")
DEPTH_LOG_STD = array("depth/log10_std", ("depth_sites+1",), "mean over channels of log10 of "
                      "each channel's std over batch × positions, per layer",
                      when="once, at initialization")
DEPTH_LOG_STD_SD = array("depth/log10_std_sd", ("depth_sites+1",), "the std over channels "
                         "of the same log10 values (Fig. 5's error bars)",
                         when="once, at initialization")
DEPTH_LOG_MEAN = array("depth/log10_abs_mean", ("depth_sites+1",), "mean over channels of "
                       "log10 |channel mean|, per layer", when="once, at initialization")
DEPTH_LOG_MEAN_SD = array("depth/log10_abs_mean_sd", ("depth_sites+1",), "the std over "
                          "channels of the same values", when="once, at initialization")
DEPTH_SLOPE = metric("depth/slope", "least-squares slope of log10 std against the layer "
                     "number over the depth_sites conv layers (decades per layer)",
                     when="once, at initialization")
DEPTH_R2 = metric("depth/r2", "R² of that line fit", when="once, at initialization")

DEPTH = register_card(Card(
    name="bjorck2018.depth",
    paper=PAPER,
    figure="Fig. 5",
    summary=("ResNet-110 at initialization, with and without BN: log10 magnitude of channel "
             "means and stds at layers 6, 18, …, 102 and 110, with the slope of log10 std "
             "against depth and its R²"),
    dataset="cifar10",
    data_paper=f"one class-balanced random batch of 128 CIFAR-10 training images; {_RESNET110}",
    data_mnist1d=_MNIST1D_110,
    stored=(DEPTH_LAYER, DEPTH_LOG_STD, DEPTH_LOG_STD_SD, DEPTH_LOG_MEAN, DEPTH_LOG_MEAN_SD,
            DEPTH_SLOPE, DEPTH_R2),
    figures=("bjorck_fig5",),
    runtime={"smoke": "seconds",
             "quick": "under a minute on 2 quiet cores (CIFAR-10); MNIST-1D ≈ 10 s",
             "paper": "the same as quick (one forward pass per run); seconds on a GPU"},
))

# -- bjorck2018.rmt (§4, Fig. 7) ----------------------------------------------------------

_M = {"m": (1, 3, 5)}
SV = array("rmt/{m}/singular_values", ("matrix_size",), "singular values of the product of m "
           "random matrix_size × matrix_size matrices with N(0, 1/N) entries, descending",
           when="once (step 0)", keys=_M)
SV_MAX = metric("rmt/{m}/max", "the largest singular value", when="once", keys=_M)
SV_EDGE = metric("rmt/{m}/edge", "the N → ∞ edge (m+1)^((m+1)/2) / m^(m/2)", when="once",
                 keys=_M)
SV_FRAC_SMALL = metric("rmt/{m}/frac_small", "fraction of singular values below small_sv "
                       "(default 0.1)", when="once", keys=_M)
SV_CONDITION = metric("rmt/{m}/log10_condition", "log10 of the condition number "
                      "σ_max / σ_min", when="once", keys=_M)

RMT = register_card(Card(
    name="bjorck2018.rmt",
    paper=PAPER,
    figure="§4, Fig. 7",
    summary=("singular values of products of 1, 3 and 5 random N×N Gaussian matrices: the "
             "spread grows with the number of factors; max singular value against the "
             "known edge"),
    dataset=None,
    data_paper="no dataset: random Gaussian matrices",
    data_mnist1d="no dataset: random Gaussian matrices",
    stored=(SV, SV_MAX, SV_EDGE, SV_FRAC_SMALL, SV_CONDITION),
    figures=("bjorck_fig7",),
    runtime={"smoke": "seconds", "quick": "seconds (N = 1,000, float64 SVDs)",
             "paper": "the same as quick"},
))

# -- bjorck2018.noise_scale (§3 bound) ----------------------------------------------------

#: The two ways of drawing a mini-batch, in the order of the arrays' first axis.
SAMPLINGS = ("with_replacement", "without_replacement")

NOISE_ESTIMATE = array("noise/estimate", (2, "batch_sizes", "alphas"), "Monte Carlo estimate "
                       "of E‖α∇ℓ − α∇_SGD‖² over noise_draws mini-batches; axes: sampling "
                       "(with, without replacement), |B|, α", when="once, at the fixed w")
NOISE_SE = array("noise/estimate_se", (2, "batch_sizes", "alphas"), "the standard error of "
                 "each estimate (std of the draws / √noise_draws)", when="once")
NOISE_BOUND = array("noise/bound", (2, "batch_sizes", "alphas"), "Bjorck's bound α²C/|B| "
                    "(the same for both samplings)", when="once")
NOISE_C = metric("noise/C", "C = (1/N) Σ_i ‖∇ℓ_i − ∇ℓ‖², the per-example gradient variance "
                 "over the N examples", when="once")

NOISE_SCALE = register_card(Card(
    name="bjorck2018.noise_scale",
    paper=PAPER,
    figure="§3 (the SGD noise bound)",
    summary=("E‖α∇ℓ − α∇_SGD‖² against α²C/|B| for |B| ∈ {8, 32, 128}, α ∈ {0.01, 0.1}, "
             "mini-batches drawn with and without replacement, at a fixed w of a small MLP"),
    dataset="mnist",
    data_paper=("a class-balanced subset of N = 1,000 MNIST training images; a 784-32-10 "
                "ReLU MLP at its initialization"),
    data_mnist1d="the same on 1,000 MNIST-1D training signals (a 40-32-10 MLP)",
    stored=(NOISE_ESTIMATE, NOISE_SE, NOISE_BOUND, NOISE_C),
    figures=("bjorck_noise",),
    runtime={"smoke": "seconds", "quick": "≈ 20 s on 2 quiet cores (38 s of CPU)",
             "paper": "the same as quick"},
))
