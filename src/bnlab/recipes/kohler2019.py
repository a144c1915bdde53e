"""Cards of Kohler et al. 2019 (PAPERS.md §5).

"Exponential convergence rates for Batch Normalization: the power of length-direction
decoupling in non-convex optimization" (AISTATS 2019; arXiv 1805.10694). What PAPERS.md
could check is the abstract [SEEN S5]: BN splits optimization into the length and the
direction of the weights, and gradient methods on that split converge linearly on learning
halfspaces and on networks with Gaussian inputs. The parameterization
``w = g·u/‖u‖_S`` (S = E[xxᵀ]) and the algorithm (gradient steps on the direction ``u``,
a bisection on the length ``g``) are [RECALLED, verify]; "a rate independent of the
conditioning" (PAPERS.md §8 claim 28) is unverified.
"""

from __future__ import annotations

from bnlab.recipes.card import Card, array, register_card

__all__ = ["DECOUPLING", "FUNC_EVALS", "GRAD_EVALS", "METHODS", "PAPER", "SUBOPT"]

PAPER = "Kohler et al. 2019"
#: The optimizers compared, in display order: plain GD with the step 2/(μ+L), GD with an
#: exact line search, and GD on the direction with a line search on the length.
METHODS = ("gd", "gd_line_search", "decoupled")
_METHOD = {"method": METHODS}

SUBOPT = array("subopt/{method}", ("iters+1",), "f(w_t) − f* after each iteration t = "
               "0 … iters of the method (f* from an exact solve)", when="once (step 0)",
               keys=_METHOD)
GRAD_EVALS = array("grad_evals/{method}", ("iters+1",), "gradient evaluations used by the "
                   "method up to iteration t (cumulative)", when="once (step 0)", keys=_METHOD)
FUNC_EVALS = array("func_evals/{method}", ("iters+1",), "function evaluations used by the "
                   "method up to iteration t (cumulative; line searches on values)",
                   when="once (step 0)", keys=_METHOD)

DECOUPLING = register_card(Card(
    name="kohler2019.decoupling",
    paper=PAPER,
    figure="§4–5 (linear convergence of length-direction decoupling) [RECALLED]",
    summary=("least squares with Gaussian inputs and learning halfspaces, covariance "
             "condition number κ ∈ {10, 10², 10³, 10⁴}: plain GD, GD with exact line "
             "search, and GD on the direction u of w = g·u/‖u‖_S with a line search on g; "
             "suboptimality per iteration and the oracle calls it cost"),
    dataset=None,
    data_paper="no dataset: Gaussian inputs x ~ N(0, S) with S's eigenvalues log-spaced "
               "in [1/κ, 1]; least squares on the population objective, halfspaces on "
               "a drawn sample with label noise",
    data_mnist1d="no dataset (the same problems)",
    stored=(SUBOPT, GRAD_EVALS, FUNC_EVALS),
    figures=("kohler_convergence", "kohler_rates"),
    runtime={"smoke": "seconds", "quick": "measured below (recipe docstring)",
             "paper": "minutes on a CPU (no GPU needed)"},
))
