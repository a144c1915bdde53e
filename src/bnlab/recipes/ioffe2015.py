"""Cards of Ioffe & Szegedy 2015 (PAPERS.md §1).

"Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate
Shift". Recipes: ``ioffe2015.mnist`` (Fig. 1), ``ioffe2015.acceleration`` (§4.2, Figs.
2–3, a CIFAR-10 proxy), ``ioffe2015.sigmoid`` (BN-x5-Sigmoid), ``ioffe2015.properties``
(Alg. 2 and §3.3).
"""

from __future__ import annotations

from bnlab.recipes.card import Card, activation_quantities, metric, register_card

__all__ = [
    "ACCELERATION",
    "ACC_POP",
    "AGREEMENT",
    "BIASED_GAP",
    "FOLD_ERR",
    "LOGIT_GAP",
    "MEAN_GAP",
    "MNIST",
    "PAPER",
    "PAPER_TABLE",
    "PCT",
    "PCT_EVAL",
    "PERCENTILES",
    "PROPERTIES",
    "SCALE_IN_GRAD",
    "SCALE_IN_GRAD_EPS",
    "SCALE_OUT",
    "SCALE_OUT_EPS",
    "SCALE_W_GRAD",
    "SCALE_W_GRAD_EPS",
    "SIGMOID",
    "TEST_ACC",
    "TEST_N",
    "VAL_ACC",
    "VAL_N",
    "VAR_GAP",
]

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


# -- ioffe2015.acceleration (§4.2, Figs. 2–3) ------------------------------------------------

#: The paper's ImageNet table (PAPERS.md §1.3): model → (initial LR multiple of η0, steps to
#: 72.2%, max validation accuracy). Shown beside the measured table.
PAPER_TABLE = {
    "Inception": (1, 31.0e6, 0.722),
    "BN-Baseline": (1, 13.3e6, 0.727),
    "BN-x5": (5, 2.1e6, 0.730),
    "BN-x30": (30, 2.7e6, 0.748),
}
VAL_ACC = metric("val_acc", "single-crop accuracy on the held-out subset, as a fraction",
                 when="every eval_every steps and at the end")
VAL_N = metric("val_n", "the number of held-out images behind val_acc",
               when="with every val_acc")

ACCELERATION = register_card(Card(
    name="ioffe2015.acceleration",
    paper=PAPER,
    figure="§4.2.1, Figs. 2–3 (CIFAR-10 proxy of the ImageNet Inception study)",
    summary=("a small CIFAR-10 VGG without BN at its learning rate η0, and with BN at η0 "
             "(BN-Baseline), 5·η0 and 30·η0 (BN-x5, BN-x30, with the paper's accompanying "
             "changes: no dropout, weight decay /5, LR decay 6× faster), plus the "
             "unnormalized net at 5·η0: steps to the baseline's best accuracy and the best "
             "accuracy reached"),
    dataset="cifar10",
    data_paper="CIFAR-10 32×32 colour images standardized per channel: a class-balanced "
               "training subset (train_subset) and held-out images from the test split "
               "(val_subset)",
    data_mnist1d="the same VGG with 1-D convolutions on the 40-sample MNIST-1D signals, "
                 "fewer steps (mnist1d_steps) to fit make reproduce",
    stored=(VAL_ACC, VAL_N),
    figures=("ioffe_fig2",),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "about an hour on one GPU (whole CIFAR-10, 60k steps a run)"},
))


# -- ioffe2015.sigmoid (§4.2.1, BN-x5-Sigmoid) --------------------------------------------------

SIGMOID = register_card(Card(
    name="ioffe2015.sigmoid",
    paper=PAPER,
    figure="§4.2.1 (BN-x5-Sigmoid vs Inception with sigmoid), Fig. 3",
    summary=("a 10-hidden-layer sigmoid MLP on MNIST with and without BN, three learning "
             "rates: test accuracy per epoch"),
    dataset="mnist",
    data_paper="MNIST 28×28 grey levels, the whole 60k/10k split",
    data_mnist1d="the same MLP on the 40-sample MNIST-1D signals",
    stored=(TEST_ACC, TEST_N),
    figures=("ioffe_sigmoid",),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "minutes on a CPU (the ImageNet Inception setting is out of reach)"},
))


# -- ioffe2015.properties (§3.1 Alg. 2, §3.3) --------------------------------------------------

_FINAL = "every eval_every steps and at the end"
ACC_POP = metric("acc_population", "test accuracy of the network with every BN folded into "
                 "an affine map from population statistics (Alg. 2: E[μ_B] and "
                 "m/(m−1)·E[σ²_B] over pop_batches training batches, weights frozen)",
                 when=_FINAL)
AGREEMENT = metric("pred_agreement", "fraction of test inputs on which the folded "
                   "population-statistics network and the eval-mode network (momentum "
                   "running statistics) predict the same class", when=_FINAL)
LOGIT_GAP = metric("logit_rel_diff", "‖z_pop − z_run‖ / ‖z_run‖ over the test logits of the "
                   "two inference networks", when=_FINAL)
BIASED_GAP = metric("logit_rel_diff_biased", "the same with the biased E[σ²_B] (no m/(m−1)): "
                    "what Alg. 2's correction changes", when=_FINAL)
FOLD_ERR = metric("fold_identity_err", "max |folded(running stats) − eval output| / max "
                  "|eval output|: folding is algebra (an identity check)", when=_FINAL)
MEAN_GAP = metric("stat_gap_mean", "mean over BN units of |E_pop[x] − running mean| / "
                  "√Var_pop[x]", when=_FINAL)
VAR_GAP = metric("stat_gap_var", "mean over BN units of |running var / Var_pop[x] − 1|",
                 when=_FINAL)
_SCALE = ("max over norm sites and a ∈ {0.1, 10} of the relative change ", ", in float64 with "
          "ε → 0 (1e-300; Ioffe §3.3's identity)")
_SCALE_EPS = ("the same in float32 with the trained ε (the ε effect)")
SCALE_OUT = metric("scale_out_err", _SCALE[0] + "of the output when W_k → a·W_k" + _SCALE[1],
                   when=_FINAL)
SCALE_IN_GRAD = metric("scale_input_grad_err", _SCALE[0] + "of ∂L/∂x (x: the input)"
                       + _SCALE[1], when=_FINAL)
SCALE_W_GRAD = metric("scale_weight_grad_err", _SCALE[0] + "of a·∂L/∂(aW_k) against ∂L/∂W_k"
                      + _SCALE[1], when=_FINAL)
SCALE_OUT_EPS = metric("scale_out_err_eps", "scale_out_err: " + _SCALE_EPS, when=_FINAL)
SCALE_IN_GRAD_EPS = metric("scale_input_grad_err_eps", "scale_input_grad_err: " + _SCALE_EPS,
                           when=_FINAL)
SCALE_W_GRAD_EPS = metric("scale_weight_grad_err_eps", "scale_weight_grad_err: " + _SCALE_EPS,
                          when=_FINAL)

PROPERTIES = register_card(Card(
    name="ioffe2015.properties",
    paper=PAPER,
    figure="§3.1 (Alg. 2, inference), §3.3 (scale invariance)",
    summary=("the MNIST BN MLP of Fig. 1 trained with SGD; along training, inference with "
             "population statistics recomputed over many batches against the momentum "
             "running statistics, and BN's invariance to the scale of the weights"),
    dataset="mnist",
    data_paper="MNIST 28×28 grey levels, the whole 60k/10k split",
    data_mnist1d="the same MLP on the 40-sample MNIST-1D signals",
    stored=(TEST_ACC, TEST_N, ACC_POP, AGREEMENT, LOGIT_GAP, BIASED_GAP, FOLD_ERR, MEAN_GAP,
            VAR_GAP, SCALE_OUT, SCALE_IN_GRAD, SCALE_W_GRAD, SCALE_OUT_EPS,
            SCALE_IN_GRAD_EPS, SCALE_W_GRAD_EPS),
    figures=("ioffe_population_stats",),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "about a minute per run on a CPU"},
))
