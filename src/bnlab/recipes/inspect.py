"""The card of ``bnlab inspect``: the instrument panel on a user's own model (no torch).

``inspect`` is not a paper's recipe: ``bnlab inspect`` (or ``bnlab.inspect(...)``) runs
the panel on the user's network and data and stores one run per model variant under the
recipe name ``inspect`` (the network as given, and e.g. its BNs swapped for ``none``).
Its card declares what those runs store, so ``bnlab report`` shows the "what is stored"
table and draws the panel's figures exactly as for a reproduction. A stored ``{layer}`` is
a 1-based norm-site index (:func:`bnlab.layers.norm_sites`), the same place in every
variant; ``{probe}`` is a panel probe name.

Each probe's cost is measured in the run itself (``cost/{probe}``, in training steps:
the probe's wall time over the time of one bare training step of the same model, timed
in the same process) and shown by the ``inspect_cost`` figure.
"""

from __future__ import annotations

from bnlab.recipes.card import Card, activation_quantities, array, metric, register_card

__all__ = [
    "ACT_PCT",
    "COST",
    "DEPTH_LOG10_STD",
    "DEPTH_SITES",
    "DEPTH_SLOPE",
    "EXPLOSION_MEAN",
    "EXPLOSION_RATIOS",
    "EXPLOSION_SITES",
    "GRAD_KURTOSIS",
    "GRAD_NORM",
    "HESSIAN_HVPS",
    "HESSIAN_TOP",
    "ICS_COS",
    "ICS_L2",
    "INSPECT",
    "LANDSCAPE_BETA",
    "PROBES",
    "RELATIVE_LOSS",
    "STEP_SECONDS",
    "TEST_ACC",
    "TEST_LOSS",
]

#: The panel's probes, in the order the report shows them.
PROBES = ("activations", "gradients", "ics", "landscape", "explosion", "depth", "hessian",
          "relative_loss")

_SITE = {"layer": (1, 2)}
_AT_POINTS = "at the panel's measurement points (steps in the run's config)"

_ACT = activation_quantities(
    "act", units="channels", levels="percentiles", bins="act_bins", keys=_SITE,
    when="at act_points evenly spaced steps from 0 to the last (after training)",
    what=("the input of the norm at site {layer} (what BN normalizes; the same tensor in "
          "the no-norm variant), on the training batch with batch statistics; channels = "
          "the site's first max_units channels"))
ACT_PCT = _ACT[2]

ICS_L2 = metric("ics/{layer}/l2", "Santurkar's ICS ‖G − G'‖₂ of the weight feeding the norm "
                "at site {layer} (Def. 2.1; G' after the earlier layers take the real optimizer's "
                "step)", when=_AT_POINTS, keys=_SITE)
ICS_COS = metric("ics/{layer}/cos", "cos∠(G, G') of the same gradients", when=_AT_POINTS,
                 keys=_SITE)
LANDSCAPE_BETA = metric("landscape/beta", "effective β-smoothness max_η ‖g − ∇L(w − ηg)‖ / "
                        "‖ηg‖ along the gradient (Santurkar §3.2)", when=_AT_POINTS)
_LANDSCAPE = (
    metric("landscape/loss_min", "the lowest loss L(w − ηg) over η = multipliers × lr (the "
           "lower edge of Santurkar's loss band)", when=_AT_POINTS),
    metric("landscape/loss_max", "the highest loss over the same step sizes (upper edge)",
           when=_AT_POINTS),
    metric("landscape/grad_change_min", "the smallest ‖g − ∇L(w − ηg)‖₂ over the step sizes",
           when=_AT_POINTS),
    metric("landscape/grad_change_max", "the largest ‖g − ∇L(w − ηg)‖₂ over the step sizes",
           when=_AT_POINTS),
    array("landscape/loss", ("multipliers",), "L(w − ηg) per step size", when=_AT_POINTS),
    array("landscape/grad_change", ("multipliers",), "‖g − ∇L(w − ηg)‖₂ per step size",
          when=_AT_POINTS),
)
GRAD_NORM = metric("grad/{layer}/norm", "‖∂L/∂W‖₂ of the weight feeding the norm at site "
                   "{layer} (Bjorck §3.5)", when=_AT_POINTS, keys=_SITE)
GRAD_KURTOSIS = metric("grad/{layer}/kurtosis", "excess kurtosis of the entries of ∂L/∂W "
                       "(0 for a Gaussian; heavy tails > 0)", when=_AT_POINTS, keys=_SITE)
_GRAD = (
    GRAD_NORM,
    metric("grad/{layer}/std", "standard deviation of the entries of ∂L/∂W", when=_AT_POINTS,
           keys=_SITE),
    GRAD_KURTOSIS,
    array("grad/{layer}/hist", (2, "grad_bins+1"), "histogram of the entries of ∂L/∂W: row 0 "
          "the counts (NaN-padded), row 1 the bin edges", when=_AT_POINTS, keys=_SITE),
)
EXPLOSION_RATIOS = array("explosion/ratios", ("pairs",), "‖∂L/∂h_l‖² / ‖∂L/∂h_{l+1}‖² for "
                         "consecutive measured norm sites (Yang et al. 2019; > 1: the gradient "
                         "grows towards the input)", when=_AT_POINTS)
EXPLOSION_SITES = array("explosion/sites", ("pairs+1",), "the norm-site indices measured "
                        "(sites that cannot be measured are skipped; see the run's notes)",
                        when=_AT_POINTS)
EXPLOSION_MEAN = metric("explosion/mean", "the mean ratio over the middle half of the pairs "
                        "(Yang's per-layer rate; π/(π−1) ≈ 1.467 for a wide BN-ReLU MLP)",
                        when=_AT_POINTS)
DEPTH_LOG10_STD = array("depth/log10_std", ("sites",), "mean over channels of log10 of the "
                        "channel std at each site's block output (Bjorck Fig. 5)",
                        when=_AT_POINTS)
DEPTH_SITES = array("depth/sites", ("sites",), "the norm-site indices of depth/log10_std",
                    when=_AT_POINTS)
DEPTH_SLOPE = metric("depth/slope", "least-squares slope of log10 std against site index "
                     "(> 0: activations grow exponentially with depth)", when=_AT_POINTS)
HESSIAN_TOP = metric("hessian/top", "the largest Hessian eigenvalue of the batch loss "
                     "(Lanczos over Hessian-vector products)", when=_AT_POINTS)
HESSIAN_HVPS = metric("hessian/hvps", "Hessian-vector products the eigenvalue took",
                      when="with hessian/top")
_HESSIAN = (
    HESSIAN_TOP,
    HESSIAN_HVPS,
    metric("hessian/converged", "1 when the Ritz residual met the tolerance within the "
           "budget of products, else 0", when="with hessian/top"),
    metric("hessian/accuracy", "‖Hy − θy‖ / |θ| of the returned Ritz pair: an eigenvalue "
           "of H lies within this fraction of hessian/top", when="with hessian/top"),
)
RELATIVE_LOSS = array("relative_loss", ("etas",), "L(w − ηg) / L(w) on a log grid of η "
                      "(Bjorck Fig. 3)", when=_AT_POINTS)
COST = metric("cost/{probe}", "the probe's wall time at this call in training steps (its "
              "seconds over step_seconds)", when="at every call of the probe",
              keys={"probe": PROBES})
STEP_SECONDS = metric("step_seconds", "the median wall time of one bare training step "
                      "(forward, backward, optimizer step) of an eager copy of the model, "
                      "timed in the same process", when="once, at step 0")
TEST_LOSS = metric("test_loss", "mean loss on the held-out split", when="every eval_every "
                   "steps and at the end, when a test split is given")
TEST_ACC = metric("test_acc", "accuracy on the held-out split (classification), as a "
                  "fraction", when="with test_loss")

INSPECT = register_card(Card(
    name="inspect",
    paper="bnlab inspect",
    figure="the instrument panel",
    summary=("your own model: activation statistics, ICS, the landscape band and β, "
             "gradient statistics, the explosion rate, the depth profile and the top "
             "Hessian eigenvalue, each probe with its measured cost; variants side by side"),
    dataset="user",
    data_paper=("the data given to `bnlab inspect --data` (cifar10, mnist, mnist1d or an "
                ".npz file) or the loader given to bnlab.inspect()"),
    data_mnist1d="`bnlab inspect --data mnist1d`: the generated MNIST-1D signals (N, 1, 40)",
    stored=(*_ACT, ICS_L2, ICS_COS, LANDSCAPE_BETA, *_LANDSCAPE, *_GRAD, EXPLOSION_RATIOS,
            EXPLOSION_SITES, EXPLOSION_MEAN, DEPTH_LOG10_STD, DEPTH_SITES, DEPTH_SLOPE,
            *_HESSIAN, RELATIVE_LOSS, COST, STEP_SECONDS, TEST_LOSS, TEST_ACC),
    figures=("inspect_loss", "inspect_activations", "inspect_histograms", "inspect_ics",
             "inspect_landscape", "inspect_gradients", "inspect_explosion", "inspect_depth",
             "inspect_hessian", "inspect_cost"),
    runtime={"default panel": "measured per probe in each run (cost/{probe}); see "
                              "docs/inspect.md for typical costs",
             "all": "several times the default (more points, every site, a larger Hessian "
                    "budget, the relative loss)"},
))
