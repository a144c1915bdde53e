"""Cards of Santurkar et al. 2018's measurement recipes (PAPERS.md §2.4–2.7).

``santurkar2018.theory`` (§4). The ICS, landscape and ℓp-landscape cards follow.
"""

from __future__ import annotations

from bnlab.recipes.card import Card, array, metric, register_card
from bnlab.recipes.santurkar2018.common import PAPER

__all__ = ["LEMMA45", "OBS43", "PAPER", "THEORY", "THM41_M", "THM41_PRINTED_FAIL",
           "THM41_REL_ERR", "THM42_CASES", "THM42_COLUMNS"]

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
    data_paper="CIFAR-10 training split, standardized per channel, no augmentation",
    data_mnist1d="the same networks on the 40-sample MNIST-1D signals (1-D convolutions)",
    stored=(THM41_REL_ERR, THM41_PRINTED_FAIL, THM41_M, OBS43, THM42_CASES, LEMMA45),
    figures=("santurkar_thm41", "santurkar_thm42"),
    runtime={"smoke": "seconds", "quick": "measured in the recipe docstring",
             "paper": "the 15k training steps plus a few minutes of checks on a GPU"},
))
