"""Claims of Ioffe & Szegedy 2015 §3.1 and §3.3 (PAPERS.md §8, claims 5–6).

Recipe ``ioffe2015.properties``.

**c05** (Alg. 2, evidence): inference with BN folded into affine maps from population
statistics (recomputed over many training batches with the weights frozen, unbiased
variance) computes what the eval-mode network computes with the momentum running
statistics. The paper's reason for the running averages is that "we can track the
accuracy of a model as it trains" with them, so the two inference networks are compared
by test accuracy at the end of training: the value is |acc_population − acc_running| in
units of the binomial standard error of a difference of two accuracies on the test set
(:func:`~bnlab.claims.helpers.binomial_se`; the test set cannot resolve less, as in c01),
and the rule asks for ≤ 1. The logits' relative difference, the share of identical
predictions, the statistics' gaps, the biased-variance variant and the algebraic folding
error (running statistics folded: float precision) are details. A seed's value uses its
own accuracies; the mean's, the seed-mean accuracies (``seedwise(mean="of_data")``).

**c06** (§3.3, identity): BN((aW)u) = BN(Wu), ∂BN((aW)u)/∂u = ∂BN(Wu)/∂u and
∂BN((aW)u)/∂(aW) = (1/a)·∂BN(Wu)/∂W, measured on the trained network at every evaluation:
the value is the largest relative change of the output, of ∂L/∂x and of a·∂L/∂(aW_k)
against ∂L/∂W_k over every norm site, a ∈ {0.1, 10} and every evaluation, in float64 with
ε → 0; the rule asks for ≤ 1e-6 (PAPERS.md §8's tolerance for these checks). The same
with the trained ε in float32 (the ε effect) is a detail. The mean is the mean of the
seeds' values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import binomial_se, seedwise
from bnlab.claims.registry import register_claim
from bnlab.recipes import Quantity
from bnlab.recipes.ioffe2015 import (
    ACC_POP,
    AGREEMENT,
    BIASED_GAP,
    FOLD_ERR,
    LOGIT_GAP,
    MEAN_GAP,
    PAPER,
    PROPERTIES,
    SCALE_IN_GRAD,
    SCALE_IN_GRAD_EPS,
    SCALE_OUT,
    SCALE_OUT_EPS,
    SCALE_W_GRAD,
    SCALE_W_GRAD_EPS,
    TEST_ACC,
    TEST_N,
    VAR_GAP,
)
from bnlab.results import Store

__all__ = ["C05", "C06", "IDENTITY_TOL", "load_table", "measure_c05", "measure_c06"]

IDENTITY_TOL = 1e-6  # PAPERS.md §8 claims 5–6: "to 1e-6"
_SCALE = (SCALE_OUT, SCALE_IN_GRAD, SCALE_W_GRAD)
_SCALE_EPS = (SCALE_OUT_EPS, SCALE_IN_GRAD_EPS, SCALE_W_GRAD_EPS)


def load_table(store: Store, runs: pd.DataFrame, quantities: tuple[Quantity, ...]
               ) -> dict[int, pd.DataFrame]:
    """Seed → a (steps × quantities) table of that seed's run.

    Raises:
        MissingDataError: no runs, two runs for a seed, or a quantity never stored.
    """
    if runs.empty:
        raise MissingDataError("no finished runs")
    if runs["seed"].duplicated().any():
        raise MissingDataError("more than one run per seed (the recipe has no grid)")
    names = [q.name for q in quantities]
    out = {}
    for run, seed in zip(runs["id"], runs["seed"], strict=True):
        m = store.metrics(runs=[int(run)], names=names)
        table = m.pivot(index="step", columns="name", values="value").sort_index()
        missing = sorted(set(names) - set(table.columns))
        if missing or table.empty:
            raise MissingDataError(f"run {int(run)} stored no {missing or names}")
        out[int(seed)] = table[names]
    return out


def measure_c05(store: Store, runs: pd.DataFrame) -> Measurement:
    """|acc_population − acc_running| / SE at the last evaluation."""
    tables = load_table(store, runs, (TEST_ACC, ACC_POP, TEST_N, AGREEMENT, LOGIT_GAP,
                                      BIASED_GAP, FOLD_ERR, MEAN_GAP, VAR_GAP))
    last = {s: t.iloc[-1].to_dict() for s, t in tables.items()}

    def gap(row: dict[str, float]) -> float:
        se = float(binomial_se(np.array(row[ACC_POP.name]), np.array(row[TEST_ACC.name]),
                               row[TEST_N.name]))
        diff = abs(row[ACC_POP.name] - row[TEST_ACC.name])
        return diff / se if se > 0 else (0.0 if diff == 0 else float("inf"))

    per_seed, mean = seedwise(last, gap, mean="of_data")
    avg = pd.DataFrame(list(last.values())).mean()
    details = [
        Detail("test accuracy", f"population-statistics fold {avg[ACC_POP.name]:.4f}, "
                                f"running statistics {avg[TEST_ACC.name]:.4f}"),
        Detail("same predictions", f"{avg[AGREEMENT.name]:.4f} of the test inputs"),
        Detail("logits", f"relative difference {avg[LOGIT_GAP.name]:.3g} (biased variance "
                         f"instead of m/(m−1): {avg[BIASED_GAP.name]:.3g})"),
        Detail("statistics", f"|mean gap| {avg[MEAN_GAP.name]:.3g} population std; |var "
                             f"ratio − 1| {avg[VAR_GAP.name]:.3g}"),
        Detail("folding the running statistics (algebra)",
               f"max relative error {avg[FOLD_ERR.name]:.2g}",
               bool(avg[FOLD_ERR.name] <= 1e-5)),
    ]
    first = {s: t.iloc[0] for s, t in tables.items()}
    early = pd.concat(first.values(), axis=1).mean(axis=1)
    details.append(Detail(f"at the first evaluation (step {next(iter(tables.values())).index[0]})",
                          f"accuracies {early[ACC_POP.name]:.4f} vs {early[TEST_ACC.name]:.4f};"
                          f" logits differ by {early[LOGIT_GAP.name]:.3g}"))
    return Measurement(per_seed, mean, tuple(details), unit="standard errors")


def measure_c06(store: Store, runs: pd.DataFrame) -> Measurement:
    """The largest relative change under W_k → a·W_k (float64, ε → 0), all evaluations."""
    tables = load_table(store, runs, (*_SCALE, *_SCALE_EPS))
    per_seed, mean = seedwise(tables, lambda t: float(t[[q.name for q in _SCALE]].max().max()),
                              mean="of_values")
    details = []
    for exact, eps in zip(_SCALE, _SCALE_EPS, strict=True):
        worst = max(float(t[exact.name].max()) for t in tables.values())
        with_eps = max(float(t[eps.name].max()) for t in tables.values())
        details.append(Detail(exact.name, f"float64, ε → 0: {worst:.2g}; float32, trained ε: "
                                          f"{with_eps:.2g}", bool(worst <= IDENTITY_TOL)))
    return Measurement(per_seed, mean, tuple(details), unit="max relative change")


C05 = register_claim(Claim(
    id="c05",
    paper=PAPER,
    figure="§3.1, Alg. 2",
    statement=("At inference, BN folded into an affine map with population statistics "
               "(E[μ_B] and m/(m−1)·E[σ²_B] over many training batches, weights frozen) "
               "gives the test accuracy the momentum running statistics give, within one "
               "standard error of the test set."),
    kind="evidence",
    recipe=PROPERTIES.name,
    measure=measure_c05,
    rule=Rule("<=", 1.0, "Ioffe §3.1 (running averages \"track the accuracy\" of the "
              "population-statistics network); the test set's resolution, 1 binomial SE of "
              "a difference, as in c01", "|acc_population − acc_running| ≤ 1 SE"),
    explanation="transform",
    paper_value="qualitative: moving averages track the inference network's accuracy",
    min_scale="quick",
))

C06 = register_claim(Claim(
    id="c06",
    paper=PAPER,
    figure="§3.3 (and Santurkar Lemma 4.5)",
    statement=("BN is invariant to the scale of the weights feeding it: BN((aW)u) = BN(Wu), "
               "∂/∂u unchanged and ∂/∂(aW) = (1/a)·∂/∂W, on the trained network at every "
               "norm site, a ∈ {0.1, 10}, to 1e-6 relative (float64, ε → 0)."),
    kind="identity",
    recipe=PROPERTIES.name,
    measure=measure_c06,
    rule=Rule("<=", IDENTITY_TOL, "PAPERS.md §8 claims 5–6 (\"to 1e-6\", \"up to the ε effect "
              "(use ε → 0)\")", "largest relative change ≤ 1e-6"),
    explanation="decoupling",
    paper_value="exact (an identity of the transform, ε → 0)",
    min_scale="smoke",
))
