"""Cards of Santurkar et al. 2018's measurement recipes (PAPERS.md §2.4–2.7).

* ``santurkar2018.ics`` (Fig. 3): gradient-based internal covariate shift (Definition 2.1)
  of VGG layers #5, #10 and DLN layers #9, #17.
* ``santurkar2018.landscape`` (Figs. 4, 10, 11): the loss and its gradient along −g.
* ``santurkar2018.lp_landscape`` (Figs. 5b, 12, 13): the same for the ℓp normalizations,
  and the DLN's training loss.
* ``santurkar2018.theory`` (§4): the theorems as numbers.

Two setups (PAPERS.md §2.1) run side by side in the first three, chosen per run by the
config field ``net``: the shared VGG on CIFAR-10 (MNIST-1D: 1-D convolutions) and the
25-layer deep linear network on 1,000 Gaussian samples, which needs no dataset and runs at
the paper's size at every scale.
"""

from __future__ import annotations

from bnlab.recipes.card import Card, array, metric, register_card
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
    "DLN_LOSS",
    "DLN_MULTIPLIERS",
    "ICS",
    "ICS_COS",
    "ICS_L2",
    "ICS_LAYERS_DLN",
    "ICS_LAYERS_VGG",
    "LANDSCAPE",
    "LEMMA45",
    "LP_LANDSCAPE",
    "LS_BETA",
    "LS_GC",
    "LS_GC_MAX",
    "LS_GC_MIN",
    "LS_LOSS",
    "LS_LOSS_MAX",
    "LS_LOSS_MIN",
    "OBS43",
    "PAPER",
    "THEORY",
    "THM41_M",
    "THM41_PRINTED_FAIL",
    "THM41_REL_ERR",
    "THM42_CASES",
    "THM42_COLUMNS",
    "VGG_MULTIPLIERS",
]

_ACC = (TRAIN_ACC, TRAIN_ACC_EVAL, TEST_ACC, TEST_N)
_DLN = ("the 25-layer 10×10 deep linear network fits A x (A 10×10, N(0, 1) entries) on "
        "1,000 N(0, I) inputs with full-batch gradient descent, the summed squared error, "
        "a norm after every layer; A and x drawn per seed")
_DATA_PAPER = ("VGG runs: CIFAR-10, standardized per channel, no augmentation (quick: a "
               "class-balanced subset and vgg16 at width 1/8); " + SITE_MAP_TEXT + " DLN "
               "runs: " + _DLN + " (no dataset; every --data).")
_DATA_MNIST1D = "VGG runs: " + VGG_DATA_MNIST1D + ". DLN runs: unchanged, fewer steps."
_H200 = ("bnlab's loop takes about 5.5 ms a VGG step with BN on an H200 (santurkar2018.vgg's "
         "card); the DLN is launch-bound, a few ms a step")


def _quick(vgg: int, every: int, what: str, dln: int, dln_every: int) -> str:
    """The quick-scale reductions in words (tests check them against the presets)."""
    return (f" Quick-scale reductions: VGG as santurkar2018.vgg's quick setup (vgg16 at width "
            f"1/8, 1,000 CIFAR-10 images per class) for {vgg:,} steps (paper: 15,000) with "
            f"{what} every {every} steps; the DLN for {dln:,} steps (paper: 10,000) with "
            f"{what} every {dln_every}.")

#: The DLN's training curve (Figs. 3b, 5b): the objective at the current weights.
DLN_LOSS = metric(
    "dln_loss", "DLN runs: the training objective L(w_s) on the whole set (the summed "
    "squared error by default), norms with the full batch's statistics",
    when="DLN runs: every dln_eval_every steps and at the end")

# -- santurkar2018.ics -----------------------------------------------------------------------

#: The layers of Fig. 3 (norm-site indices): VGG #5, #10 and DLN #9, #17.
ICS_LAYERS_VGG = (5, 10)
ICS_LAYERS_DLN = (9, 17)
_ICS_KEYS = {"layer": (*ICS_LAYERS_VGG, *ICS_LAYERS_DLN)}
_ICS_WHEN = "every ics_every steps (VGG) or ics_dln_every steps (DLN) from step 0"
ICS_L2 = metric(
    "ics/{layer}/l2",
    "Def. 2.1: ‖G − G′‖₂ for the weight feeding norm site {layer}, G′ with layers 1…i−1 "
    "already updated by this step's SGD update, same batch", when=_ICS_WHEN, keys=_ICS_KEYS)
ICS_COS = metric("ics/{layer}/cos", "Def. 2.1: cos∠(G, G′) of the same gradients",
                 when=_ICS_WHEN, keys=_ICS_KEYS)

ICS = register_card(Card(
    name="santurkar2018.ics",
    paper=PAPER,
    figure="Fig. 3",
    summary=("gradient-based internal covariate shift (Def. 2.1: ℓ2 difference and cosine of "
             "G and G′) with and without BN: VGG layers #5, #10 at LR 0.1 and 0.01, DLN "
             "layers #9, #17 at LR 1e-6 and 1e-7, with training accuracy and loss"),
    dataset="cifar10",
    data_paper=_DATA_PAPER + _quick(300, 25, "ICS", 2_000, 100),
    data_mnist1d=_DATA_MNIST1D + " Quick: VGG 100 steps, the DLN 500 steps.",
    stored=(ICS_L2, ICS_COS, DLN_LOSS, *_ACC),
    figures=("santurkar_fig3",),
    runtime={"smoke": "seconds",
             "quick": "measured in the recipe docstring (bnlab.experiments.santurkar2018.ics)",
             "paper": ("12 VGG runs of 15,000 steps with ICS every 10 (about 2.2 training "
                       "steps each: +22%) and 12 DLN runs of 10,000 steps on a GPU; " + _H200
                       + ": expected about 30 min for the grid (not measured)")},
))

# -- santurkar2018.landscape and .lp_landscape ----------------------------------------------

#: η / LR of the VGG runs: the paper's range [1/2, 4] (App. A.2.2) on a geometric grid (the
#: grid is not stated; PAPERS.md §2.5 reads Fig. 11's kinks as {0.05, 0.1, 0.2, 0.4} at 0.1).
VGG_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
#: η / LR of the DLN runs: the paper's range [1/100, 30] on a half-decade grid (ours).
DLN_MULTIPLIERS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
_LS_WHEN = "every landscape_every steps (VGG) or landscape_dln_every steps (DLN) from step 0"
_ALONG = "over η = multiplier × LR along −g on the training batch (batch statistics)"
LS_LOSS_MIN = metric("landscape/loss_min", f"min of L(w − ηg) {_ALONG}", when=_LS_WHEN)
LS_LOSS_MAX = metric("landscape/loss_max", f"max of L(w − ηg) {_ALONG}", when=_LS_WHEN)
LS_GC_MIN = metric("landscape/grad_change_min", f"min of ‖g − ∇L(w − ηg)‖₂ {_ALONG}",
                   when=_LS_WHEN)
LS_GC_MAX = metric("landscape/grad_change_max", f"max of ‖g − ∇L(w − ηg)‖₂ {_ALONG}",
                   when=_LS_WHEN)
LS_BETA = metric("landscape/beta", f"effective β: max of ‖g − ∇L(w − ηg)‖₂ / ‖ηg‖₂ {_ALONG}",
                 when=_LS_WHEN)
LS_LOSS = array("landscape/loss", ("multipliers",), f"L(w − ηg) for each η {_ALONG}",
                when=_LS_WHEN)
LS_GC = array("landscape/grad_change", ("multipliers",),
              f"‖g − ∇L(w − ηg)‖₂ for each η {_ALONG} (Fig. 11)", when=_LS_WHEN)
_LANDSCAPE = (LS_LOSS_MIN, LS_LOSS_MAX, LS_GC_MIN, LS_GC_MAX, LS_BETA, LS_LOSS, LS_GC,
              DLN_LOSS, *_ACC)

LANDSCAPE = register_card(Card(
    name="santurkar2018.landscape",
    paper=PAPER,
    figure="Figs. 4, 10, 11",
    summary=("the loss landscape along the gradient with and without BN: the loss band, "
             "gradient predictiveness and effective β-smoothness at every probed step, for "
             "VGG at LR 0.1 (η ∈ [0.5, 4] × LR) and the DLN at LR 1e-6 (η ∈ [0.01, 30] × LR)"),
    dataset="cifar10",
    data_paper=_DATA_PAPER + _quick(700, 25, "the landscape probe", 2_000, 100),
    data_mnist1d=_DATA_MNIST1D + " Quick: VGG 150 steps, the DLN 300 steps.",
    stored=_LANDSCAPE,
    figures=("santurkar_fig4", "santurkar_fig10", "santurkar_fig11"),
    runtime={"smoke": "seconds",
             "quick": ("measured in the recipe docstring "
                       "(bnlab.experiments.santurkar2018.landscape)"),
             "paper": ("6 VGG runs of 15,000 steps with the probe every 10 (k + 1 = 5 passes: "
                       "+50%) and 6 DLN runs of 10,000 steps with the probe every 10 (9 passes: "
                       "+90%) on a GPU; " + _H200 + ": expected about 15 min (not measured)")},
))

LP_LANDSCAPE = register_card(Card(
    name="santurkar2018.lp_landscape",
    paper=PAPER,
    figure="Figs. 5b, 12, 13",
    summary=("Standard, +BN, +ℓ1, +ℓ2, +ℓ∞ (implementation I1): the DLN's training loss "
             "(Fig. 5b) and the landscape metrics of Figs. 4 and 10 on VGG and the DLN"),
    dataset="cifar10",
    data_paper=_DATA_PAPER + _quick(300, 50, "the landscape probe", 2_000, 100),
    data_mnist1d=_DATA_MNIST1D + " Quick: VGG 150 steps, the DLN 300 steps.",
    stored=_LANDSCAPE,
    figures=("santurkar_fig5b", "santurkar_fig12", "santurkar_fig13"),
    runtime={"smoke": "seconds",
             "quick": ("measured in the recipe docstring "
                       "(bnlab.experiments.santurkar2018.lp_landscape)"),
             "paper": ("as santurkar2018.landscape for 5 norms (18 new runs after it; ℓp "
                       "steps cost about 1.3× BN's): expected about 40 min (not measured)")},
))

# -- santurkar2018.theory ------------------------------------------------------------------

_CHECKS = "at step 0 (untrained) and at step steps − 1 (trained)"
_SITES = {"site": (1, 2, 3)}
THM41_REL_ERR = metric(
    "thm41/{site}/rel_err",
    "Thm 4.1 with the corrected 1/m: max over channels of |lhs − rhs| / max(|lhs|, |rhs|) "
    "(float64, the network's own ε)", when=_CHECKS, keys=_SITES)
THM41_PRINTED_FAIL = metric(
    "thm41/{site}/printed_fail",
    "fraction of channels where ‖∂L̂/∂y‖² exceeds the printed 1/√m bound (beyond 1e-9 "
    "relative)", when=_CHECKS, keys=_SITES)
THM41_M = metric("thm41/{site}/m", "m: the values each channel is normalized over "
                 "(batch × spatial size)", when=_CHECKS, keys=_SITES)
OBS43 = metric("obs43/max_rel_diff",
               "Obs. 4.3: max |out_BN − out_plain| / max |out_plain| with γ = σ̃, β = μ + b "
               "(float64)", when=_CHECKS)
#: The columns of :data:`THM42_CASES`.
THM42_COLUMNS = ("lhs", "t1", "t2", "alt", "g_dot_yhat", "gamma")
THM42_CASES = array(
    "thm42/{site}/cases", ("thm42_batches", "thm42_units", len(THM42_COLUMNS)),
    "Thm 4.2 per random batch and unit: " + ", ".join(THM42_COLUMNS) + " (lhs ≤ t1 − t2 is "
    "the theorem; H ⪰ 0 on v means t1 ≥ 0); float64 with ε → 0",
    when=f"MLP runs, {_CHECKS}", keys={"site": (2,)})
LEMMA45 = array(
    "lemma45/{site}", (4,),
    "Lemma 4.5 for the site's weight: cos(W0, W*), ‖W0 − kW*‖², the bound, and "
    "|L(kW*) − L(W*)| / |L(W*)| (scale invariance)", when="at step steps − 1", keys=_SITES)

THEORY = register_card(Card(
    name="santurkar2018.theory",
    paper=PAPER,
    figure="§4: Thms 4.1, 4.2, Obs. 4.3, Lemma 4.5",
    summary=("§4's statements about BN evaluated as numbers on a BN MLP and the BN VGG, "
             "untrained and trained: Thm 4.1's identity (and the printed bound's failures), "
             "Thm 4.2 by Hessian-vector products, Obs. 4.3 and Lemma 4.5"),
    dataset="cifar10",
    data_paper=("CIFAR-10, standardized per channel, no augmentation; the MLP reads the "
                "flattened images. Quick-scale reductions: both networks on santurkar2018.vgg's "
                "quick data (1,000 CIFAR-10 images per class), the VGG at width 1/8, for 300 "
                "steps (paper: 15,000); Thm 4.2 on 100 batches × 4 units at each check."),
    data_mnist1d=("VGG runs: " + VGG_DATA_MNIST1D + "; the MLP reads the 40-sample signals. "
                  "Quick: 100 steps."),
    stored=(THM41_REL_ERR, THM41_PRINTED_FAIL, THM41_M, OBS43, THM42_CASES, LEMMA45, *_ACC),
    figures=("santurkar_thm41", "santurkar_thm42", "santurkar_obs43_lemma45"),
    runtime={"smoke": "seconds",
             "quick": ("measured in the recipe docstring "
                       "(bnlab.experiments.santurkar2018.theory)"),
             "paper": ("6 runs of 15,000 steps on a GPU plus the checks (Thm 4.1 at 15 "
                       "sites in float64, 800 Thm 4.2 cases of 3 HVPs each): " + _H200
                       + "; expected about 15 min (not measured)")},
))
