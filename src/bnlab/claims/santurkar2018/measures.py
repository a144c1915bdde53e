"""Claims of Santurkar et al. 2018's measurement recipes (PAPERS.md §8, claims 8–14).

**c13** (Thm 4.1, recipe ``santurkar2018.theory``, kind ``identity``): with 1/m in the last
term, ‖∂L̂/∂y_j‖² = (γ²/σ²)(‖g‖² − ⟨1,g⟩²/m − ⟨g,ŷ⟩²/m) holds exactly (PAPERS.md §2.7: the
proof's own steps give this identity; the theorem as printed has 1/√m). It is checked at
every BN site of every network run, untrained and trained, in float64 on the step's
training batch; the value is a seed's worst relative error over sites, channels, networks
and both checks. "To float precision" (PAPERS.md §8 claim 13) is read as ≤ 1e-9 relative
in float64: rounding of sums of up to 10^6 terms stays below 1e-10. How often the printed
1/√m bound fails (the fraction of channels) is reported beside it, per network and check.

**c14** (Thm 4.2, ``santurkar2018.theory``): at one site of the BN MLP, on 100 random
batches and a few random units each, untrained and trained, vᵀ(∂²L̂/∂y_j²)v ≤ T1 − T2
(see :data:`bnlab.recipes.santurkar2018.measures.THM42_CASES`). The paper's reading
("BN makes the gradient more predictive") needs H ⪰ 0 on the direction (T1 ≥ 0) and
⟨ŷ, ĝ⟩ ≥ 0; PAPERS.md §8 claim 14 asks that the inequality hold in *every* case where
both do. The value is the fraction of those cases in which it holds up to 1e-9 of the
terms' magnitude (float64 rounding); the rule asks for 1. The details give how many cases
met the assumptions, how often the curvature consequence lhs ≤ T1 holds there, the largest
relative gap |lhs − (T1 − T2)| over all cases (the inequality is in fact an equality at
ε = 0: PAPERS.md does not say so; we found it), and how often the second form's bound holds
without its extra assumption on H.

A seed's value comes from its own runs; the mean's value is the mean of the seeds' values
(``seedwise(mean="of_values")``): each seed is an independent network and set of batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import find_array, load_track, seedwise
from bnlab.claims.registry import register_claim
from bnlab.recipes.santurkar2018.measures import (
    PAPER,
    THEORY,
    THM41_PRINTED_FAIL,
    THM41_REL_ERR,
    THM42_CASES,
    THM42_COLUMNS,
)
from bnlab.results import Store

__all__ = [
    "C13",
    "C14",
    "FLOAT64_TOL",
    "load_thm42_cases",
    "measure_c13",
    "measure_c14",
    "thm42_runs",
    "thm42_summary",
]

#: "To float precision" in float64 (PAPERS.md §8 claim 13): sums of up to 10^6 terms round
#: to below 1e-10 relative, and every effect the checks look for is above 1e-6.
FLOAT64_TOL = 1e-9


def _seeds(runs: pd.DataFrame) -> dict[int, pd.DataFrame]:
    if runs.empty:
        raise MissingDataError("no finished runs")
    return {int(s): grp for s, grp in runs.groupby("seed")}


def _net(row: pd.Series) -> str:
    return str(row.get("cfg.net", "?"))


# -- c13 -------------------------------------------------------------------------------------


def _site_metrics(store: Store, run: int, quantity_name: str) -> pd.DataFrame:
    """Every stored instance of one per-site metric of a run (rows: step, name, value)."""
    table = store.metrics(runs=run)
    prefix, suffix = quantity_name.split("{site}")
    hits = table[table["name"].str.startswith(prefix) & table["name"].str.endswith(suffix)]
    if hits.empty:
        raise MissingDataError(f"run {run} stored no {quantity_name!r}")
    return hits


def measure_c13(store: Store, runs: pd.DataFrame) -> Measurement:
    """A seed's worst relative error of the 1/m identity over sites, nets and checks."""
    data, details = {}, []
    fails: dict[tuple[str, int], list[float]] = {}
    errs: dict[str, list[float]] = {}
    for seed, grp in _seeds(runs).items():
        worst = 0.0
        for _, row in grp.iterrows():
            err = _site_metrics(store, int(row["id"]), THM41_REL_ERR.name)
            worst = max(worst, float(err["value"].max()))
            errs.setdefault(_net(row), []).append(float(err["value"].max()))
            printed = _site_metrics(store, int(row["id"]), THM41_PRINTED_FAIL.name)
            for step, part in printed.groupby("step"):
                fails.setdefault((_net(row), int(step)), []).append(float(part["value"].mean()))
        data[seed] = worst
    for net, values in sorted(errs.items()):
        details.append(Detail(f"{net}: 1/m identity", f"worst relative error {max(values):.2e} "
                              "over sites, channels and both checks",
                              bool(max(values) <= FLOAT64_TOL)))
    for (net, step), values in sorted(fails.items()):
        details.append(Detail(f"{net}, step {step}: printed 1/√m bound",
                              f"fails for {np.mean(values):.1%} of channels (mean over sites "
                              "and seeds)"))
    per_seed, mean = seedwise(data, float, mean="of_values")
    return Measurement(per_seed, mean, tuple(details), unit="max relative error")


# -- c14 -------------------------------------------------------------------------------------


def load_thm42_cases(store: Store, run: int) -> np.ndarray:
    """All Thm 4.2 cases of one run, both checks pooled: shape (K, 6)."""
    names = find_array(store, run, THM42_CASES)
    if not names:
        raise MissingDataError(f"run {run} stored no {THM42_CASES.name!r}")
    rows = [load_track(store, run, n)[1].reshape(-1, len(THM42_COLUMNS)) for n in names]
    return np.concatenate(rows)


def thm42_runs(store: Store, runs: pd.DataFrame) -> list[int]:
    """The ids of the runs that stored Thm 4.2 cases (the MLP runs)."""
    return [int(r) for r in runs["id"] if find_array(store, int(r), THM42_CASES)]


def thm42_summary(cases: np.ndarray) -> dict[str, float]:
    """Thm 4.2 over cases (K, 6): the fractions and the largest gap described above.

    ``holds``: fraction of the assumption cases with lhs ≤ t1 − t2 (up to
    :data:`FLOAT64_TOL` of |lhs| + |t1| + |t2|); ``lower``: fraction of them with lhs ≤ t1;
    ``alt``: fraction of them with lhs ≤ alt; ``n``, ``n_assumed``: case counts; ``gap``:
    max |lhs − (t1 − t2)| / (|lhs| + |t1| + |t2|) over all cases.
    """
    lhs, t1, t2, alt, g_yhat, _ = cases.T
    scale = np.abs(lhs) + np.abs(t1) + np.abs(t2)
    slack = FLOAT64_TOL * scale
    assumed = (t1 >= 0) & (g_yhat >= 0)
    if not assumed.any():
        raise MissingDataError(f"none of {len(cases)} Thm 4.2 cases met H ⪰ 0 and ⟨ŷ, ĝ⟩ ≥ 0")
    gap = np.divide(np.abs(lhs - (t1 - t2)), scale, out=np.zeros_like(scale), where=scale > 0)
    return {
        "holds": float(np.mean((lhs <= t1 - t2 + slack)[assumed])),
        "lower": float(np.mean((lhs <= t1 + slack)[assumed])),
        "alt": float(np.mean((lhs <= alt + slack)[assumed])),
        "n": float(len(cases)),
        "n_assumed": float(assumed.sum()),
        "gap": float(gap.max()),
    }


def measure_c14(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of assumption cases where Thm 4.2's inequality holds, per seed."""
    data = {}
    for seed, grp in _seeds(runs).items():
        with_cases = thm42_runs(store, grp)
        if not with_cases:
            raise MissingDataError(f"seed {seed} has no run that stored Thm 4.2 cases")
        data[seed] = np.concatenate([load_thm42_cases(store, r) for r in with_cases])
    per_seed, mean = seedwise(data, lambda c: thm42_summary(c)["holds"], mean="of_values")
    s = thm42_summary(np.concatenate(list(data.values())))
    details = (
        Detail("cases meeting the assumptions", f"{s['n_assumed']:.0f} of {s['n']:.0f} "
               "(H ⪰ 0 on v and ⟨ŷ, ĝ⟩ ≥ 0), all seeds"),
        Detail("BN's curvature consequence", f"lhs ≤ T1 in {s['lower']:.1%} of them",
               bool(s["lower"] >= 1.0)),
        Detail("equality", f"max |lhs − (T1 − T2)| / (|lhs| + |T1| + |T2|) = {s['gap']:.1e} "
               "over all cases: at ε = 0 the inequality holds with equality"),
        Detail("second form (assumes H preserves relative norms)",
               f"lhs ≤ its bound in {s['alt']:.1%} of the assumption cases (its extra "
               "assumption is not checked)"),
    )
    return Measurement(per_seed, mean, details, unit="fraction of cases")


C13 = register_claim(Claim(
    id="c13",
    paper=PAPER,
    figure="Thm 4.1",
    statement=("With 1/m in the last term (the proof's own identity), ‖∂L̂/∂y_j‖² = "
               "(γ²/σ_j²)(‖g‖² − ⟨1,g⟩²/m − ⟨g,ŷ_j⟩²/m) holds to float precision at every BN "
               "site of an untrained and a trained network; the printed 1/√m bound fails "
               "wherever ⟨g, ŷ⟩ ≠ 0."),
    kind="identity",
    recipe=THEORY.name,
    measure=measure_c13,
    rule=Rule("<=", FLOAT64_TOL, "PAPERS.md §8 claim 13 (\"to float precision\"; §2.7 "
              "erratum), read as 1e-9 relative in float64",
              "worst relative error of the 1/m identity ≤ 1e-9"),
    paper_value="printed with 1/√m as an inequality (Thm 4.1); the 1/m identity is eq. 5–9",
    min_scale="smoke",
))

C14 = register_claim(Claim(
    id="c14",
    paper=PAPER,
    figure="Thm 4.2",
    statement=("At a BN layer, vᵀ(∂²L̂/∂y_j²)v ≤ (γ²/σ²)vᵀH_jj v − (γ/(mσ²))⟨ĝ_j, ŷ_j⟩‖v‖² "
               "for v = ∂L̂/∂y_j, in every case where H ⪰ 0 on v and ⟨ŷ_j, ĝ_j⟩ ≥ 0 (3-layer "
               "ReLU BN MLP, 100 batches, untrained and trained)."),
    kind="evidence",
    recipe=THEORY.name,
    measure=measure_c14,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 14: \"holds in every case where its assumptions "
              "hold\"", "fraction of assumption cases where the inequality holds = 1"),
    paper_value="a theorem (no numbers)",
    min_scale="quick",
))
