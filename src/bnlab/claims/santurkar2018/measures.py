"""Claims of Santurkar et al. 2018's measurement recipes (PAPERS.md §8, claims 8–14).

**c08** (Fig. 3b, recipe ``santurkar2018.ics``): "BN does not reduce gradient-based ICS; in
the DLN it increases it". Fig. 3b is the DLN: Standard's cos∠(G, G′) ≈ 1 throughout, BN's
often ≈ 0 or below. PAPERS.md §8 claim 8 refutes it if BN's mean cosine exceeds Standard's,
so at each DLN learning rate (1e-6, 1e-7) D = mean cos(Standard) − mean cos(BN), the mean
over layers #9, #17 and every probed step; the value is the smaller D over the LRs and the
rule asks for D ≥ 0. The mean cosines themselves and the median ℓ2 difference of BN over
Standard's are details per LR, and so is the VGG (Fig. 3a, "similar or larger" ICS with BN)
at each LR, judged by the same rule. A seed's value uses its own runs; the mean's value is
the mean of the seeds' (D is linear in the cosines, so it is also the seed-mean curves').

**c09–c11** (Figs. 4a–c, recipe ``santurkar2018.landscape``) are read from the VGG runs at
LR 0.1, as PAPERS.md §8 claims 9–11 state them (the DLN's Fig. 10 is a detail of each). At
every probed step the probe stores the band over η ∈ {0.5, 1, 2, 4} × LR.

* **c09**: "BN narrows the loss band": the median over the probed steps in the first half
  of training (step ≤ half the last probed step) of log(max_η L / min_η L); the value is
  Standard's median − BN's, and "BN's median band ratio is < Standard's" asks for > 0. A
  non-finite loss on the band counts as an infinitely wide band.
* **c10**: "gradients are more predictive with BN by ≈ 2 orders of magnitude early on":
  max over the early steps (step < 1,000, PAPERS.md §8 claim 10's "first 1k steps") of
  max_η ‖g − ∇L(w − ηg)‖₂, Standard over BN; the rule asks for ≥ 10 (the paper's ≈250 vs
  ≤30 on VGG is 8–100×). Step 0 is included (BN's gradient change at initialization can be
  the larger one); the ratio without it is a detail.
* **c11**: "BN's effective β is lower and steadier": over all probed steps, the 95th
  percentile and the coefficient of variation (std/mean) of β_t; the value is the smaller of
  p95(Standard)/p95(BN) and CV(Standard)/CV(BN), and the rule "BN has the lower 95th
  percentile and the lower CV" asks for > 1. The claim is about spikes, not the mean
  (PAPERS.md §8 claim 11), so the means are a detail.

At quick scale (a few hundred steps of a width-1/8 VGG) the smoothness effects show as
spikes rather than the paper's two orders of magnitude; the verdict says which scale ran.
A seed's values come from its own runs; the mean's is the mean of the seeds' values.

**c31** (Fig. 5b, recipe ``santurkar2018.lp_landscape``; the DLN part of PAPERS.md §8 claim
12): "for deep linear networks, ℓ1-normalization performs even better than BatchNorm": the
DLN's final training loss (the full-batch objective at the end) with ℓ1 over BN's; the rule
"reaches a loss ≤ BN's" asks for ≤ 1. The other norms' final losses are details. The
Standard and BN runs may be ``santurkar2018.landscape``'s (the same configs, stored once):
they are found by config.

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

import json
from typing import Any

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import Curves, find_array, load_track, seedwise
from bnlab.claims.registry import register_claim
from bnlab.claims.santurkar2018.vgg import load_condition_curves
from bnlab.recipes.santurkar2018.measures import (
    DLN_LOSS,
    ICS,
    ICS_COS,
    ICS_L2,
    ICS_LAYERS_DLN,
    ICS_LAYERS_VGG,
    LANDSCAPE,
    LP_LANDSCAPE,
    LS_BETA,
    LS_GC_MAX,
    LS_LOSS_MAX,
    LS_LOSS_MIN,
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

LABELS = {"none": "Standard", "bn": "+BN", "l1": "+ℓ1", "l2": "+ℓ2", "linf": "+ℓ∞"}
#: "To float precision" in float64 (PAPERS.md §8 claim 13): sums of up to 10^6 terms round
#: to below 1e-10 relative, and every effect the checks look for is above 1e-6.
FLOAT64_TOL = 1e-9


def _seeds(runs: pd.DataFrame) -> dict[int, pd.DataFrame]:
    if runs.empty:
        raise MissingDataError("no finished runs")
    return {int(s): grp for s, grp in runs.groupby("seed")}


def _net(row: pd.Series) -> str:
    return str(row.get("cfg.net", "?"))


# -- c08 -------------------------------------------------------------------------------------

ICS_BY = ("norm", "lr")  # the ICS grid's axes within one net


def ics_curves(store: Store, runs: pd.DataFrame, net: str, layers: tuple[str, ...]
               ) -> tuple[dict[str, Curves], dict[str, Curves]]:
    """Cos and ℓ2 curves of ``net``'s runs by layer: ``({layer: Curves}, {layer: Curves})``."""
    cos = {k: load_condition_curves(store, runs, ICS_COS.key(layer=k), ICS_BY, net=net)
           for k in layers}
    l2 = {k: load_condition_curves(store, runs, ICS_L2.key(layer=k), ICS_BY, net=net)
          for k in layers}
    return cos, l2


def _mean_cos(cos: dict[str, Curves], norm: str, lr: float) -> np.ndarray:
    """Per seed, the mean cosine over layers and probed steps (NaN: a zero gradient): (S,)."""
    return np.nanmean(np.concatenate([c.get(norm=norm, lr=lr) for c in cos.values()], 1), 1)


def _l2_ratio(l2: dict[str, Curves], lr: float) -> float:
    """Median over steps, layers and seeds of ‖G − G′‖ with BN over Standard's."""
    bn = np.concatenate([c.get(norm="bn", lr=lr) for c in l2.values()], 1)
    none = np.concatenate([c.get(norm="none", lr=lr) for c in l2.values()], 1)
    return float(np.nanmedian(bn) / np.nanmedian(none))


def _ics_details(cos: dict[str, Curves], l2: dict[str, Curves], label: str) -> list[Detail]:
    first = next(iter(cos.values()))
    out = []
    for lr in first.levels("lr"):
        std, bn = _mean_cos(cos, "none", lr).mean(), _mean_cos(cos, "bn", lr).mean()
        out.append(Detail(f"{label}, lr={lr:g}", f"mean cos Standard {std:.3f}, BN {bn:.3f}; "
                          f"median ℓ2 BN/Standard {_l2_ratio(l2, lr):.3g}", bool(std >= bn)))
    return out


def measure_c08(store: Store, runs: pd.DataFrame) -> Measurement:
    """Min over DLN LRs of mean cos(Standard) − mean cos(BN), per seed."""
    cos, l2 = ics_curves(store, runs, "dln", tuple(str(k) for k in ICS_LAYERS_DLN))
    first = next(iter(cos.values()))
    lrs = first.levels("lr")
    diffs = np.stack([_mean_cos(cos, "none", lr) - _mean_cos(cos, "bn", lr) for lr in lrs])
    data = {seed: float(diffs[:, i].min()) for i, seed in enumerate(first.seeds)}
    per_seed, mean = seedwise(data, float, mean="of_values")
    details = _ics_details(cos, l2, "DLN (Fig. 3b)")
    try:
        vgg_cos, vgg_l2 = ics_curves(store, runs, "vgg", tuple(str(k) for k in ICS_LAYERS_VGG))
        details += _ics_details(vgg_cos, vgg_l2, "VGG (Fig. 3a)")
    except MissingDataError as err:
        details.append(Detail("VGG (Fig. 3a)", f"not measured: {err}"))
    return Measurement(per_seed, mean, tuple(details), unit="cos difference")


# -- c09, c10, c11 -----------------------------------------------------------------------------

LANDSCAPE_BY = ("norm",)  # a landscape condition within one net (one LR per net)
C10_RATIO = 10.0  # PAPERS.md §8 claim 10: Standard/BN ≥ 10 (paper ≈250 vs ≤30: 8–100×)
C10_EARLY = 1_000  # PAPERS.md §8 claim 10: "over the first 1k steps"


def shared_runs(store: Store, runs: pd.DataFrame, vary: tuple[str, ...] = ("norm",)
                ) -> pd.DataFrame:
    """``runs`` plus the store's finished runs that differ from one of them only in ``vary``.

    A run is stored once, under the recipe that registered it first (identical configs
    share a run key), so a recipe's sibling conditions may sit under another recipe.
    """
    def stem(config: object) -> str:
        cfg = json.loads(config) if isinstance(config, str) else dict(config)
        return json.dumps({k: v for k, v in cfg.items() if k not in (*vary, "seed")},
                          sort_keys=True, default=str)

    stems = {stem(c) for c in runs["config"]}
    every = store.runs()
    keep = [(st == "finished" and rid not in set(runs["id"]) and stem(cfg) in stems)
            for rid, st, cfg in zip(every["id"], every["status"], every["config"], strict=True)]
    return pd.concat([runs, every[keep]]) if any(keep) else runs


def landscape_curves(store: Store, runs: pd.DataFrame, net: str) -> dict[str, Curves]:
    """The landscape metrics of ``net``'s runs by norm: {metric name: Curves}."""
    return {q.name: load_condition_curves(store, runs, q, LANDSCAPE_BY, net=net)
            for q in (LS_LOSS_MIN, LS_LOSS_MAX, LS_GC_MAX, LS_BETA)}


def band_width(loss_min: np.ndarray, loss_max: np.ndarray) -> np.ndarray:
    """log(max/min) of the loss band; a non-finite end (a blown-up loss) is +inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.log(loss_max / loss_min)
    return np.where(np.isfinite(width) | np.isinf(width), width, np.inf)


def _c09_values(c: dict[str, Curves], norm: str) -> np.ndarray:
    """Per seed, the median band width over the first half of the probed steps: (S,)."""
    steps = c[LS_LOSS_MIN.name].steps
    half = steps <= steps.max() / 2
    width = band_width(c[LS_LOSS_MIN.name].get(norm=norm), c[LS_LOSS_MAX.name].get(norm=norm))
    return np.median(width[:, half], axis=1)


def _c10_values(c: dict[str, Curves], norm: str, first: int = 0) -> np.ndarray:
    """Per seed, the max over early steps (from ``first``) of max_η grad change: (S,)."""
    steps = c[LS_GC_MAX.name].steps
    early = (steps < C10_EARLY) & (steps >= first)
    if not early.any():
        raise MissingDataError(f"no probed step in [{first}, {C10_EARLY})")
    gc = c[LS_GC_MAX.name].get(norm=norm)[:, early]
    return np.where(np.isnan(gc), np.inf, gc).max(axis=1)


def _c11_stats(c: dict[str, Curves], norm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per seed: the 95th percentile, the coefficient of variation and the mean of β_t."""
    beta = c[LS_BETA.name].get(norm=norm)  # (S, T)
    beta = np.where(np.isnan(beta), np.inf, beta)
    with np.errstate(invalid="ignore"):
        mean, std = beta.mean(axis=1), beta.std(axis=1)
        return np.percentile(beta, 95, axis=1), std / mean, mean


def _per_seed(c: dict[str, Curves], values: np.ndarray) -> dict[int, float]:
    seeds = next(iter(c.values())).seeds
    return {seed: float(values[i]) for i, seed in enumerate(seeds)}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64)


def _c09(c: dict[str, Curves]) -> np.ndarray:
    return _c09_values(c, "none") - _c09_values(c, "bn")


def _c10(c: dict[str, Curves], first: int = 0) -> np.ndarray:
    return _ratio(_c10_values(c, "none", first), _c10_values(c, "bn", first))


def _c11(c: dict[str, Curves]) -> np.ndarray:
    p95_s, cv_s, _ = _c11_stats(c, "none")
    p95_b, cv_b, _ = _c11_stats(c, "bn")
    return np.minimum(_ratio(p95_s, p95_b), _ratio(cv_s, cv_b))


def _dln_detail(store: Store, runs: pd.DataFrame, value: Any, text: Any, label: str
                ) -> Detail:
    """The same value on the DLN (Fig. 10): a detail; missing DLN runs are said so."""
    try:
        c = landscape_curves(store, runs, "dln")
    except MissingDataError as err:
        return Detail(label, f"not measured: {err}")
    return Detail(label, text(c), bool(value(c)))


def measure_c09(store: Store, runs: pd.DataFrame) -> Measurement:
    """Standard's − BN's median log(max/min) loss band, first half of training (VGG)."""
    c = landscape_curves(store, runs, "vgg")
    per_seed, mean = seedwise(_per_seed(c, _c09(c)), float, mean="of_values")

    def text(cc: dict[str, Curves]) -> str:
        std, bn = _c09_values(cc, "none").mean(), _c09_values(cc, "bn").mean()
        return f"median log(max/min): Standard {std:.3g}, BN {bn:.3g}"

    details = (Detail("VGG (Fig. 4a)", text(c)),
               _dln_detail(store, runs, lambda cc: np.all(_c09(cc) > 0), text,
                           "DLN (Fig. 10a), every seed"))
    return Measurement(per_seed, mean, details, unit="difference of log(max/min)")


def measure_c10(store: Store, runs: pd.DataFrame) -> Measurement:
    """Standard over BN of the early max gradient change along −g (VGG)."""
    c = landscape_curves(store, runs, "vgg")
    per_seed, mean = seedwise(_per_seed(c, _c10(c)), float, mean="of_values")

    def text(cc: dict[str, Curves]) -> str:
        std, bn = _c10_values(cc, "none").mean(), _c10_values(cc, "bn").mean()
        return f"early max ‖g − g(η)‖: Standard {std:.3g}, BN {bn:.3g} (ratio {std / bn:.3g})"

    steps = c[LS_GC_MAX.name].steps
    later = steps[steps > 0]
    details = [Detail("VGG (Figs. 4b, 11)", text(c))]
    if later.size and later.min() < C10_EARLY:
        ratio = _c10(c, first=int(later.min()))
        details.append(Detail("VGG without step 0", f"ratio {np.mean(ratio):.3g} (mean over "
                              "seeds)", bool(np.all(ratio >= C10_RATIO))))
    details.append(_dln_detail(store, runs, lambda cc: np.all(_c10(cc) >= C10_RATIO), text,
                               "DLN (Fig. 10b), every seed"))
    return Measurement(per_seed, mean, tuple(details), unit="ratio Standard/BN")


def measure_c11(store: Store, runs: pd.DataFrame) -> Measurement:
    """min(p95 ratio, CV ratio) of effective β, Standard over BN (VGG)."""
    c = landscape_curves(store, runs, "vgg")
    per_seed, mean = seedwise(_per_seed(c, _c11(c)), float, mean="of_values")

    def text(cc: dict[str, Curves]) -> str:
        (p_s, v_s, m_s), (p_b, v_b, m_b) = _c11_stats(cc, "none"), _c11_stats(cc, "bn")
        return (f"β p95 Standard {p_s.mean():.3g}, BN {p_b.mean():.3g}; CV Standard "
                f"{v_s.mean():.3g}, BN {v_b.mean():.3g}; mean Standard {m_s.mean():.3g}, "
                f"BN {m_b.mean():.3g}")

    details = (Detail("VGG (Fig. 4c)", text(c)),
               _dln_detail(store, runs, lambda cc: np.all(_c11(cc) > 1), text,
                           "DLN (Fig. 10c), every seed"))
    return Measurement(per_seed, mean, details, unit="min(p95, CV) ratio Standard/BN")


# -- c31 ---------------------------------------------------------------------------------------


def dln_finals(store: Store, runs: pd.DataFrame) -> tuple[Curves, dict[str, np.ndarray]]:
    """The DLN's loss curves by norm (shared runs included) and each norm's finals (S,)."""
    curves = load_condition_curves(store, shared_runs(store, runs), DLN_LOSS, LANDSCAPE_BY,
                                   net="dln")
    return curves, {n: curves.get(norm=n)[:, -1] for n in curves.levels("norm")}


def measure_c31(store: Store, runs: pd.DataFrame) -> Measurement:
    """The DLN's final loss with ℓ1 over BN's, per seed."""
    curves, finals = dln_finals(store, runs)
    for norm in ("l1", "bn"):
        curves.condition(norm=norm)  # a clear MissingDataError if a norm was not run
    per_seed, mean = seedwise(_per_seed({"x": curves}, _ratio(finals["l1"], finals["bn"])),
                              float, mean="of_values")
    shown = ", ".join(f"{LABELS.get(n, n)} {v.mean():.4g}" for n, v in sorted(finals.items()))
    details = (Detail(f"final loss at step {curves.steps[-1]} (mean over seeds)", shown),)
    return Measurement(per_seed, mean, details, unit="final loss ratio ℓ1/BN")


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


C08 = register_claim(Claim(
    id="c08",
    paper=PAPER,
    figure="Fig. 3b (3a as a detail)",
    statement=("BN does not reduce gradient-based internal covariate shift (Def. 2.1); in the "
               "deep linear network it increases it: at each learning rate, BN's mean "
               "cos∠(G, G′) at layers #9 and #17 is not above Standard's (Standard ≈ 1, BN "
               "often ≈ 0 or below)."),
    kind="evidence",
    explanation="ics",
    recipe=ICS.name,
    measure=measure_c08,
    rule=Rule(">=", 0.0, "PAPERS.md §8 claim 8: refuted if BN's mean cosine > Standard's",
              "min over DLN LRs of mean cos(Standard) − mean cos(BN) ≥ 0"),
    paper_value="DLN: Standard cos ≈ 1 throughout, BN's ≈ 0 (G, G′ \"almost uncorrelated\")",
    min_scale="quick",
))

C09 = register_claim(Claim(
    id="c09",
    paper=PAPER,
    figure="Fig. 4a (10a as a detail)",
    statement=("BN narrows the loss band along the gradient: over the first half of training, "
               "BN's median log(max/min) of L(w − ηg) over η ∈ [0.5, 4] × LR is below "
               "Standard's (VGG, LR 0.1)."),
    kind="evidence",
    explanation="smoothness",
    recipe=LANDSCAPE.name,
    measure=measure_c09,
    rule=Rule(">", 0.0, "PAPERS.md §8 claim 9: BN's median band ratio < Standard's over the "
              "first 50% of training", "median band(Standard) − median band(BN) > 0"),
    paper_value="VGG: Standard's band wide, up to ≈10^1 early; BN's narrow, ≈10^0 (Fig. 4a)",
    min_scale="quick",
))

C10 = register_claim(Claim(
    id="c10",
    paper=PAPER,
    figure="Figs. 4b, 11 (10b as a detail)",
    statement=("Gradients are more predictive with BN early in training: the maximum over "
               "the first 1,000 steps of max_η ‖g − ∇L(w − ηg)‖₂ is at least 10× larger "
               "for Standard than for BN (VGG, LR 0.1)."),
    kind="evidence",
    explanation="smoothness",
    recipe=LANDSCAPE.name,
    measure=measure_c10,
    rule=Rule(">=", C10_RATIO, "PAPERS.md §8 claim 10: Standard/BN ratio ≥ 10 (the paper's "
              "≈250 vs ≤ 30 on VGG, \"close to two orders of magnitude\")",
              "early max grad change Standard / BN ≥ 10"),
    paper_value="VGG: ≈250 vs ≤ 30 (Fig. 4b; Fig. 11 at η = 0.4: ≈250 vs ≤ 40)",
    min_scale="quick",
))

C11 = register_claim(Claim(
    id="c11",
    paper=PAPER,
    figure="Fig. 4c (10c as a detail)",
    statement=("BN's effective β-smoothness along the gradient is lower and steadier: BN has "
               "the lower 95th percentile and the lower coefficient of variation of β_t over "
               "training (VGG, LR 0.1; the claim is about spikes, not the mean)."),
    kind="evidence",
    explanation="smoothness",
    recipe=LANDSCAPE.name,
    measure=measure_c11,
    rule=Rule(">", 1.0, "PAPERS.md §8 claim 11: BN has the lower 95th percentile and lower CV",
              "min(p95 ratio, CV ratio) Standard/BN > 1"),
    paper_value="VGG: BN ≈ 20 steady vs Standard erratic ≈ 7–45 (Fig. 4c); DLN ≈ 1e7 vs up "
                "to 1e15 (Fig. 10c)",
    min_scale="quick",
))

C31 = register_claim(Claim(
    id="c31",
    paper=PAPER,
    figure="Fig. 5b",
    statement=("PAPERS.md §8 claim 12, DLN part: on the 25-layer deep linear network, ℓ1 "
               "normalization reaches a final training loss ≤ BN's."),
    kind="evidence",
    explanation="smoothness",
    recipe=LP_LANDSCAPE.name,
    measure=measure_c31,
    rule=Rule("<=", 1.0, "PAPERS.md §8 claim 12: \"reaches a loss ≤ BN's (DLN, L1)\"",
              "final loss ℓ1 / final loss BN ≤ 1"),
    paper_value="\"for deep linear networks, ℓ1-normalization performs even better than "
                "BatchNorm\" (Fig. 5b)",
    min_scale="quick",
))

C13 = register_claim(Claim(
    id="c13",
    paper=PAPER,
    figure="Thm 4.1",
    statement=("With 1/m in the last term (the proof's own identity), ‖∂L̂/∂y_j‖² = "
               "(γ²/σ_j²)(‖g‖² − ⟨1,g⟩²/m − ⟨g,ŷ_j⟩²/m) holds to float precision at every BN "
               "site of an untrained and a trained network; the printed 1/√m bound fails "
               "wherever ⟨g, ŷ⟩ ≠ 0."),
    kind="identity",
    explanation="smoothness",
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
    explanation="smoothness",
    recipe=THEORY.name,
    measure=measure_c14,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 14: \"holds in every case where its assumptions "
              "hold\"", "fraction of assumption cases where the inequality holds = 1"),
    paper_value="a theorem (no numbers)",
    min_scale="quick",
))
