"""Claims of Bjorck et al. 2018 (PAPERS.md §8, claims 16–23), measured on stored runs.

The paper's full text was not available to the specification: its figures were read from
screenshots, so every number below marked "read off" is approximate, and the thresholds
come from PAPERS.md §8 unless a claim says it is this project's own reading. All eight
bear on the explanation that BN works by enabling large learning rates
(``explanation="large_lr"``): c16 and c23 on the learning rate and its noise, c17–c22 on
why an unnormalized network cannot take large steps. Claims with several parts take as
their value the fraction of parts that hold, and the rule asks for all of them (value
≥ 1); each part is a :class:`~bnlab.claims.Detail` with its numbers.

**c16** (``bjorck2018.lr``, Fig. 1): at LR 1e-4 BN and no-BN reach test accuracies within
2 points, and BN at LR 0.1 beats BN at 1e-4 by ≥ 5 points (final evaluation). Fig. 1
compares networks that all fit their training set (≈ 100% training accuracy), so test
accuracy is a statement about generalization only between runs that fit: if any compared
run ends below 99% training accuracy the measurement is kept but the claim is
``inconclusive`` with that reason (PAPERS.md's "or equal training loss" alternative needs
a tolerance nobody states, so it is not used). The no-BN runs at LR 0.003 and 0.1 may
diverge: that is expected (``diverge_ok``) and listed. Mean: the seed-mean accuracies.

**c17** (``bjorck2018.divergence``, Fig. 3): on each of mini-batches 1, 4 and 7 the
relative loss L(w − ηg)/L(w) of the network without BN exceeds 10³ at some η ≤ 1e-2, and
that of the BN network stays below 10^0.5 for every η ≤ 0.1. A non-finite loss after the
step counts as above 10³ (it diverged). Mean: the geometric mean of the curves over seeds.

**c18** (``bjorck2018.gradients``, Fig. 2): the std of layer 55's kernel gradient is ≥ 20×
larger without BN, its excess kurtosis is > 3 without BN, and |excess kurtosis| ≤ 1 with
BN. The last tolerance is this project's reading of PAPERS.md's "≈ 0" (a third of the
heavy-tail threshold; a logistic distribution has 1.2), fixed before any run. Mean: the
seed-mean stds and kurtoses.

**c19** (``bjorck2018.depth``, Fig. 5): without BN the log10 channel std grows with the
layer number (slope > 0 with R² > 0.8, fitted by :func:`bnlab.probes.depth_profile` over
the conv layers 6, 18, …, 102; the read-out, layer 110, is another kind of map and is
shown, not fitted); with BN |slope| ≤ 2.2/104 decades per layer, the whole range Fig. 5's
BN curves span (≈ −1.2…+1, read off) spread over its 104 layers. Mean: the seed means.

**c20** (``bjorck2018.divergence``, Fig. 4): at the end (s = 1) of the interpolated
diverging update, the largest channel variance of layer 80's conv output exceeds layer 8's
by ≥ 10⁶; the value is log10 of that ratio (mean: the mean of the logs).

**c21** (``bjorck2018.gradients``, Fig. 6): without BN at least 90% of the batch is
predicted as one class and the logit gradients are aligned (A averaged over the 10
logits ≥ 0.9, "A ≈ 1" read with the same threshold); with BN the mode fraction and mean A
are ≤ 0.5 ("well below": this project's reading, fixed before any run, not a paper
number). The per-kernel-entry alignment comes from a table the specification only recalls
[RECALLED, no numbers] and is shown as a detail. Mean: the seed means.

**c22** (``bjorck2018.rmt``, §4, kind ``identity``): the fraction of singular values below
0.1 and the condition number grow strictly with the number of factors M, and the largest
singular value is within 5% ("a few %", PAPERS.md §8 claim 22) of the edge
(M+1)^((M+1)/2)/M^(M/2) for every M.

**c23** (``bjorck2018.noise_scale``, §3, kind ``identity``): for every |B| and α, the
Monte Carlo estimate of E‖α∇ℓ − α∇_SGD‖² with replacement equals α²C/|B| within 3
standard errors of the estimate, and without replacement is not above it by more than 3
standard errors (3 SE: the Monte Carlo precision of the check). Mean: the seed-mean
estimates with the standard error of their mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import load_curves, load_track, seedwise
from bnlab.claims.registry import register_claim
from bnlab.recipes import Quantity
from bnlab.recipes.bjorck2018 import (
    CONV_ALIGN_MEDIAN,
    DEPTH,
    DEPTH_LAYER,
    DEPTH_LOG_STD,
    DEPTH_R2,
    DEPTH_SLOPE,
    DIVERGENCE,
    GRAD_KURTOSIS,
    GRAD_STD,
    GRADIENTS,
    INTERP_LAYERS,
    INTERP_VAR,
    LOGIT_ALIGN,
    LR,
    MODE_FRACTION,
    NOISE_BOUND,
    NOISE_ESTIMATE,
    NOISE_SCALE,
    NOISE_SE,
    PAPER,
    REL_LOSS,
    RMT,
    SAMPLINGS,
    SV_CONDITION,
    SV_EDGE,
    SV_FRAC_SMALL,
    SV_MAX,
    TEST_ACC,
    TRAIN_ACC,
    eta_grid,
)
from bnlab.results import Store

__all__ = [
    "BN_KURTOSIS_TOL",
    "BN_SLOPE_TOL",
    "FIT_THRESHOLD",
    "measure_c16",
    "measure_c17",
    "measure_c18",
    "measure_c19",
    "measure_c20",
    "measure_c21",
    "measure_c22",
    "measure_c23",
    "runs_by",
]

FIT_THRESHOLD = 0.99  # c16: compare only runs that fit their training set (the issue)
C16_SAME_LR_GAP = 0.02  # PAPERS.md §8 claim 16: |Δ| ≤ 2 points
C16_LR_GAIN = 0.05  # PAPERS.md §8 claim 16: ≥ 5 points
DIVERGED = 1e3  # S3d summary: "divergence: when relative loss > 10^3"; PAPERS.md §8 claim 17
BN_REL_MAX = 10**0.5  # PAPERS.md §8 claim 17 (Fig. 3 read-off: BN ≤ 10^0.48)
NONE_ETA_MAX, BN_ETA_MAX = 1e-2, 1e-1  # PAPERS.md §8 claim 17
STD_RATIO = 20.0  # PAPERS.md §8 claim 18
NONE_KURTOSIS = 3.0  # PAPERS.md §8 claim 18 ("≫ 0 (e.g. > 3)")
BN_KURTOSIS_TOL = 1.0  # this project's reading of "≈ 0" (module docstring)
R2_MIN = 0.8  # PAPERS.md §8 claim 19
BN_SLOPE_TOL = 2.2 / 104  # Fig. 5: BN spans ≈ −1.2…+1 over 104 layers (PAPERS.md §3.8)
VAR_DECADES = 6.0  # PAPERS.md §8 claim 20: ≥ 10^6
MODE_NONE, ALIGN_NONE = 0.9, 0.9  # PAPERS.md §8 claim 21 (A ≈ 1 read at the same 0.9)
BN_WELL_BELOW = 0.5  # this project's reading of "well below" (module docstring)
EDGE_TOL = 0.05  # PAPERS.md §8 claim 22: "within a few %"
MC_SE = 3.0  # c23: 3 Monte Carlo standard errors

Parts = list[tuple[str, bool]]


# -- shared --------------------------------------------------------------------------------


def runs_by(runs: pd.DataFrame, field: str) -> dict[Any, dict[int, int]]:
    """``{value of config field: {seed: run id}}`` over the given runs.

    Raises:
        MissingDataError: if the field is missing or the values do not share one seed set.
    """
    column = f"cfg.{field}"
    if column not in runs.columns:
        raise MissingDataError(f"the runs have no config field {field!r}")
    out: dict[Any, dict[int, int]] = {}
    for value, seed, run in zip(runs[column], runs["seed"], runs["id"], strict=True):
        out.setdefault(_plain(value), {})[int(seed)] = int(run)
    seed_sets = {tuple(sorted(v)) for v in out.values()}
    if len(seed_sets) > 1:
        raise MissingDataError(f"the {field} conditions were run for different seeds: "
                               f"{sorted(seed_sets)}")
    return out


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _metric(store: Store, run: int, q: Quantity | str) -> float:
    name = q.name if isinstance(q, Quantity) else q
    table = store.metrics(runs=run, names=name)
    if table.empty:
        raise MissingDataError(f"run {run} stored no {name!r}")
    return float(table.sort_values("step")["value"].iloc[-1])


def _array(store: Store, run: int, name: str) -> np.ndarray:
    """The last stored array ``name`` of one run."""
    return load_track(store, run, name)[1][-1]


def _by_norm(runs: pd.DataFrame) -> tuple[dict[int, int], dict[int, int]]:
    """``({seed: BN run}, {seed: no-BN run})``."""
    by = runs_by(runs, "norm")
    if "bn" not in by or "none" not in by:
        raise MissingDataError(f"needs runs with and without BN, got norms {sorted(by)}")
    return by["bn"], by["none"]


def _fraction(parts: Parts) -> float:
    return float(np.mean([ok for _, ok in parts]))


def _part_details(parts: Parts) -> tuple[Detail, ...]:
    return tuple(Detail(label, "holds" if ok else "fails", ok) for label, ok in parts)


def _by_parts(data: Mapping[int, Any], parts_of: Callable[[Any], Parts], mean_data: Any,
              unit: str, extra: Sequence[Detail] = ()) -> Measurement:
    """A fraction-of-parts measurement: per seed from ``data``, the mean from ``mean_data``."""
    per_seed = {seed: _fraction(parts_of(d)) for seed, d in sorted(data.items())}
    mean_parts = parts_of(mean_data)
    return Measurement(per_seed, _fraction(mean_parts),
                       (*_part_details(mean_parts), *extra), unit=unit)


def _mean_over(data: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
    keys = next(iter(data.values())).keys()
    return {k: float(np.mean([d[k] for d in data.values()])) for k in keys}


# -- c16 (Fig. 1) --------------------------------------------------------------------------

C16_CONDITIONS = (("bn", 0.1), ("bn", 1e-4), ("none", 1e-4))


def _final(store: Store, runs: pd.DataFrame, q: Quantity, norm: str, lr: float) -> np.ndarray:
    """Final value of ``q`` per seed (S,) for one condition."""
    chosen = runs[(runs["cfg.norm"] == norm) & np.isclose(runs["cfg.lr"].astype(float), lr)]
    if chosen.empty:
        raise MissingDataError(f"no finished run with norm={norm}, lr={lr:g}")
    return load_curves(store, chosen, q, ("norm", "lr")).get(norm=norm, lr=lr)[:, -1]


def _c16_parts(acc: Mapping[str, float]) -> Parts:
    gap = acc["bn@0.0001"] - acc["none@0.0001"]
    gain = acc["bn@0.1"] - acc["bn@0.0001"]
    return [(f"|test BN − none| at LR 1e-4 = {abs(gap):.3f} ≤ {C16_SAME_LR_GAP}",
             abs(gap) <= C16_SAME_LR_GAP),
            (f"test BN(0.1) − BN(1e-4) = {gain:+.3f} ≥ {C16_LR_GAIN}", gain >= C16_LR_GAIN)]


def _fit_problem(train: Mapping[str, np.ndarray]) -> str | None:
    low = {k: v for k, v in train.items() if v.min() < FIT_THRESHOLD}
    if not low:
        return None
    shown = "; ".join(f"{k}: {', '.join(f'{a:.3f}' for a in v)}" for k, v in low.items())
    return (f"runs compared did not fit their training data (final training accuracy below "
            f"{FIT_THRESHOLD:.0%}, per seed: {shown}); Fig. 1 compares networks at ≈ 100% "
            "training accuracy, so these test accuracies do not decide the claim (run "
            "longer, e.g. --scale paper)")


def _diverged_detail(store: Store, recipe: str, seeds: Sequence[int]) -> Detail:
    every = store.runs(recipe=recipe)
    every = every[every["seed"].astype(int).isin(seeds)]
    div = every[every["status"] == "diverged"]
    if div.empty:
        return Detail("runs that diverged", "none")
    counts = div.groupby(["cfg.norm", "cfg.lr"]).size()
    text = "; ".join(f"{n} lr={lr:g}: {c} of {len(seeds)} seeds" for (n, lr), c in counts.items())
    return Detail("runs that diverged (expected without BN at LR > 1e-4)", text)


def measure_c16(store: Store, runs: pd.DataFrame) -> Measurement:
    """Final test accuracies at equal LR and across LRs, if the compared runs fit."""
    keys = {f"{n}@{lr:g}": (n, lr) for n, lr in C16_CONDITIONS}
    test = {k: _final(store, runs, TEST_ACC, *c) for k, c in keys.items()}  # each (S,)
    train = {k: _final(store, runs, TRAIN_ACC, *c) for k, c in keys.items()}
    seeds = sorted(int(s) for s in runs["seed"].unique())
    data = {seed: {k: float(v[i]) for k, v in test.items()} for i, seed in enumerate(seeds)}
    extra = [Detail(f"{k} (paper ≈ {_C16_PAPER[k]})",
                    f"final test {test[k].mean():.3f}, train {train[k].mean():.3f} "
                    f"(seed means)") for k in keys]
    extra.append(_diverged_detail(store, LR.name, seeds))
    m = _by_parts(data, _c16_parts, _mean_over(data), "fraction of parts", extra)
    return Measurement(m.per_seed, m.mean, m.details, m.unit, _fit_problem(train))


_C16_PAPER = {"bn@0.1": "0.93", "bn@0.0001": "0.81", "none@0.0001": "0.82"}


# -- c17 (Fig. 3) --------------------------------------------------------------------------


def _log_rel(store: Store, run: int) -> dict[int, np.ndarray]:
    """log10 relative loss per probed step; non-finite values (a diverged loss) → +inf."""
    rows = store.arrays(run, REL_LOSS.name)
    if not rows:
        raise MissingDataError(f"run {run} stored no {REL_LOSS.name!r}")
    out = {}
    for step, values in rows:
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[step] = np.where(np.isfinite(v) & (v > 0), np.log10(np.abs(v)), np.inf)
    return out


def _etas(runs: pd.DataFrame) -> np.ndarray:
    lo, hi = runs["cfg.eta_range"].iloc[0]
    return np.array(eta_grid(float(lo), float(hi), int(runs["cfg.eta_points"].iloc[0])))


def _c17_parts(etas: np.ndarray) -> Callable[[Any], Parts]:
    none_mask, bn_mask = etas <= NONE_ETA_MAX * (1 + 1e-9), etas <= BN_ETA_MAX * (1 + 1e-9)

    def parts(d: tuple[dict[int, np.ndarray], dict[int, np.ndarray]]) -> Parts:
        bn, none = d
        out = []
        for step in sorted(none):
            top = none[step][none_mask].max()
            out.append((f"batch {step + 1}, no BN: max log10 rel. loss for η ≤ 1e-2 = "
                        f"{top:.3g} > 3", bool(top > math.log10(DIVERGED))))
        for step in sorted(bn):
            top = bn[step][bn_mask].max()
            out.append((f"batch {step + 1}, BN: max log10 rel. loss for η ≤ 0.1 = {top:.3g} "
                        "< 0.5", bool(top < math.log10(BN_REL_MAX))))
        return out

    return parts


def measure_c17(store: Store, runs: pd.DataFrame) -> Measurement:
    """Fraction of the batch × network parts of c17 that hold."""
    bn_ids, none_ids = _by_norm(runs)
    data = {seed: (_log_rel(store, bn_ids[seed]), _log_rel(store, none_ids[seed]))
            for seed in sorted(bn_ids)}
    first = next(iter(data.values()))
    if sorted(first[0]) != sorted(first[1]):
        raise MissingDataError("the BN and no-BN runs were probed at different steps")
    mean = tuple({step: np.mean([d[i][step] for d in data.values()], axis=0)
                  for step in first[i]} for i in (0, 1))
    etas = _etas(runs)
    extra = [_first_divergent_eta(etas, mean[1])]
    return _by_parts(data, _c17_parts(etas), mean, "fraction of parts", extra)


def _first_divergent_eta(etas: np.ndarray, none: Mapping[int, np.ndarray]) -> Detail:
    text = []
    for step, curve in sorted(none.items()):
        over = np.nonzero(curve > math.log10(DIVERGED))[0]
        text.append(f"batch {step + 1}: " + (f"{etas[over[0]]:.2g}" if over.size else "none"))
    return Detail("smallest η with relative loss > 10³ without BN (geometric seed mean; paper "
                  "≈ 3e-3 to 1e-2, read off)", "; ".join(text))


# -- c18 (Fig. 2) and c21 (Fig. 6) ---------------------------------------------------------


def _per_run(store: Store, ids: Mapping[int, int], read: Callable[[Store, int], dict]
             ) -> dict[int, dict[str, float]]:
    return {seed: read(store, run) for seed, run in sorted(ids.items())}


def _c18_parts(d: Mapping[str, float]) -> Parts:
    ratio = d["std_none"] / d["std_bn"] if d["std_bn"] > 0 else math.inf
    return [(f"std ratio none/BN = {ratio:.3g} ≥ {STD_RATIO:g}", ratio >= STD_RATIO),
            (f"excess kurtosis without BN = {d['kurt_none']:.3g} > {NONE_KURTOSIS:g}",
             d["kurt_none"] > NONE_KURTOSIS),
            (f"|excess kurtosis with BN| = {abs(d['kurt_bn']):.3g} ≤ {BN_KURTOSIS_TOL:g}",
             abs(d["kurt_bn"]) <= BN_KURTOSIS_TOL)]


def measure_c18(store: Store, runs: pd.DataFrame) -> Measurement:
    """Std ratio and excess kurtoses of layer 55's kernel gradient at initialization."""
    bn_ids, none_ids = _by_norm(runs)
    data = {seed: {"std_bn": _metric(store, bn_ids[seed], GRAD_STD),
                   "std_none": _metric(store, none_ids[seed], GRAD_STD),
                   "kurt_bn": _metric(store, bn_ids[seed], GRAD_KURTOSIS),
                   "kurt_none": _metric(store, none_ids[seed], GRAD_KURTOSIS)}
            for seed in sorted(bn_ids)}
    m = _mean_over(data)
    extra = [Detail("gradient std (seed means)", f"BN {m['std_bn']:.3g}, no BN "
                    f"{m['std_none']:.3g} (paper: ±0.04 vs ±4 ranges, ≈ 100×, read off)")]
    return _by_parts(data, _c18_parts, m, "fraction of parts", extra)


def _c21_read(store: Store, bn: int, none: int) -> dict[str, float]:
    return {"mode_bn": _metric(store, bn, MODE_FRACTION),
            "mode_none": _metric(store, none, MODE_FRACTION),
            "align_bn": float(np.nanmean(_array(store, bn, LOGIT_ALIGN.name))),
            "align_none": float(np.nanmean(_array(store, none, LOGIT_ALIGN.name))),
            "conv_bn": _metric(store, bn, CONV_ALIGN_MEDIAN),
            "conv_none": _metric(store, none, CONV_ALIGN_MEDIAN)}


def _c21_parts(d: Mapping[str, float]) -> Parts:
    return [(f"mode fraction without BN = {d['mode_none']:.3f} ≥ {MODE_NONE}",
             d["mode_none"] >= MODE_NONE),
            (f"mean logit alignment A without BN = {d['align_none']:.3f} ≥ {ALIGN_NONE}",
             d["align_none"] >= ALIGN_NONE),
            (f"mode fraction with BN = {d['mode_bn']:.3f} ≤ {BN_WELL_BELOW}",
             d["mode_bn"] <= BN_WELL_BELOW),
            (f"mean logit alignment A with BN = {d['align_bn']:.3f} ≤ {BN_WELL_BELOW}",
             d["align_bn"] <= BN_WELL_BELOW)]


def measure_c21(store: Store, runs: pd.DataFrame) -> Measurement:
    """Mode fraction and logit alignment with and without BN at initialization."""
    bn_ids, none_ids = _by_norm(runs)
    data = {seed: _c21_read(store, bn_ids[seed], none_ids[seed]) for seed in sorted(bn_ids)}
    m = _mean_over(data)
    extra = [Detail("median alignment A of layer 55's kernel entries [RECALLED table]",
                    f"BN {m['conv_bn']:.3g}, no BN {m['conv_none']:.3g} (the recalled table: "
                    "similar |Σg| and Σ|g| without BN, orders of magnitude apart with BN)",
                    bool(m["conv_none"] > m["conv_bn"]))]
    return _by_parts(data, _c21_parts, m, "fraction of parts", extra)


# -- c19 (Fig. 5) --------------------------------------------------------------------------


def _c19_read(store: Store, bn: int, none: int) -> dict[str, float]:
    return {"slope_none": _metric(store, none, DEPTH_SLOPE),
            "r2_none": _metric(store, none, DEPTH_R2),
            "slope_bn": _metric(store, bn, DEPTH_SLOPE)}


def _c19_parts(d: Mapping[str, float]) -> Parts:
    return [(f"slope without BN = {d['slope_none']:.4f} decades/layer > 0",
             d["slope_none"] > 0),
            (f"R² without BN = {d['r2_none']:.3f} > {R2_MIN}", d["r2_none"] > R2_MIN),
            (f"|slope| with BN = {abs(d['slope_bn']):.4f} ≤ {BN_SLOPE_TOL:.4f}",
             abs(d["slope_bn"]) <= BN_SLOPE_TOL)]


def _profile_detail(store: Store, ids: Mapping[int, int], label: str) -> Detail:
    layers = _array(store, next(iter(ids.values())), DEPTH_LAYER.name)
    logs = np.mean([_array(store, run, DEPTH_LOG_STD.name) for run in ids.values()], axis=0)
    shown = ", ".join(f"{int(la)}: {v:+.2f}" for la, v in zip(layers, logs, strict=True))
    return Detail(f"log10 std by layer, {label} (seed means)", shown)


def measure_c19(store: Store, runs: pd.DataFrame) -> Measurement:
    """Slope and R² of log10 channel std against depth, with and without BN."""
    bn_ids, none_ids = _by_norm(runs)
    data = {seed: _c19_read(store, bn_ids[seed], none_ids[seed]) for seed in sorted(bn_ids)}
    extra = [_profile_detail(store, none_ids, "without BN (paper ≈ −1.5 at 6 to ≈ +3…3.5 "
                             "at 102–110, read off)"),
             _profile_detail(store, bn_ids, "with BN (paper within ≈ −1.2…+1)")]
    return _by_parts(data, _c19_parts, _mean_over(data), "fraction of parts", extra)


# -- c20 (Fig. 4) --------------------------------------------------------------------------


def _max_var_at_end(store: Store, run: int, layer: int) -> float:
    var = _array(store, run, INTERP_VAR[layer].name)[-1]  # the row s = 1: (C,)
    return float(np.nanmax(np.where(np.isfinite(var), var, np.inf)))


def _decades(top: float, low: float) -> float:
    if low <= 0:
        return math.inf if top > 0 else math.nan
    with np.errstate(invalid="ignore"):
        return float(np.log10(top) - np.log10(low))


def measure_c20(store: Store, runs: pd.DataFrame) -> Measurement:
    """log10 of max variance at layer 80 over layer 8, at the end of the diverging step."""
    _, none_ids = _by_norm(runs)
    tops = {seed: {layer: _max_var_at_end(store, run, layer) for layer in INTERP_LAYERS}
            for seed, run in sorted(none_ids.items())}
    per_seed, mean = seedwise(tops, lambda t: _decades(t[80], t[8]), mean="of_values")
    shown = "; ".join(f"layer {la}: {np.exp(np.mean(np.log([t[la] for t in tops.values()]))):.3g}"
                      for la in INTERP_LAYERS)
    details = (Detail("largest channel variance at s = 1 without BN (geometric seed mean)",
                      f"{shown} (paper colour bars: ≤ 1, ≈ 5e6, ≈ 5e16, read off)"),)
    return Measurement(per_seed, mean, details, unit="decades (log10 var ratio 80/8)")


# -- c22 (§4) ------------------------------------------------------------------------------


def _c22_read(store: Store, run: int, ms: Sequence[int]) -> dict[str, float]:
    out = {}
    for m in ms:
        out[f"max{m}"] = _metric(store, run, SV_MAX.key(m=m))
        out[f"edge{m}"] = _metric(store, run, SV_EDGE.key(m=m))
        out[f"small{m}"] = _metric(store, run, SV_FRAC_SMALL.key(m=m))
        out[f"cond{m}"] = _metric(store, run, SV_CONDITION.key(m=m))
    return out


def _c22_parts(ms: Sequence[int]) -> Callable[[Mapping[str, float]], Parts]:
    def parts(d: Mapping[str, float]) -> Parts:
        small = [d[f"small{m}"] for m in ms]
        cond = [d[f"cond{m}"] for m in ms]
        out = [(f"fraction < 0.1 grows with M: {', '.join(f'{v:.3f}' for v in small)}",
                bool(np.all(np.diff(small) > 0))),
               (f"log10 condition number grows with M: {', '.join(f'{v:.2f}' for v in cond)}",
                bool(np.all(np.diff(cond) > 0)))]
        for m in ms:
            rel = d[f"max{m}"] / d[f"edge{m}"] - 1
            out.append((f"M = {m}: max σ {d[f'max{m}']:.3f} vs edge {d[f'edge{m}']:.3f} "
                        f"({rel:+.1%}, within ±{EDGE_TOL:.0%})", abs(rel) <= EDGE_TOL))
        return out

    return parts


def _products(store: Store, run: int) -> list[int]:
    names = store.metrics(runs=run)["name"].unique()
    ms = sorted(int(n.split("/")[1]) for n in names if SV_MAX.matches(n))
    if len(ms) < 2:
        raise MissingDataError(f"run {run} stored fewer than two products ({ms})")
    return ms


def measure_c22(store: Store, runs: pd.DataFrame) -> Measurement:
    """Spread (fraction < 0.1, condition number) against M, max σ against the edge."""
    ids = {int(r.seed): int(r.id) for r in runs.itertuples()}
    ms = _products(store, next(iter(ids.values())))
    data = {seed: _c22_read(store, run, ms) for seed, run in sorted(ids.items())}
    return _by_parts(data, _c22_parts(ms), _mean_over(data), "fraction of parts")


# -- c23 (§3) ------------------------------------------------------------------------------


def _c23_parts(runs: pd.DataFrame) -> Callable[[tuple[np.ndarray, ...]], Parts]:
    sizes = [int(b) for b in runs["cfg.batch_sizes"].iloc[0]]
    alphas = [float(a) for a in runs["cfg.alphas"].iloc[0]]

    def parts(d: tuple[np.ndarray, ...]) -> Parts:
        est, se, bound = d  # each (2, |B|, |α|)
        out = []
        for s, sampling in enumerate(SAMPLINGS):
            for b, size in enumerate(sizes):
                for a, alpha in enumerate(alphas):
                    z = (est[s, b, a] - bound[s, b, a]) / se[s, b, a]
                    ok = abs(z) <= MC_SE if s == 0 else z <= MC_SE
                    rel = est[s, b, a] / bound[s, b, a]
                    out.append((f"{sampling.replace('_', ' ')}, |B|={size}, α={alpha:g}: "
                                f"estimate/bound {rel:.4f}, z = {z:+.2f}", bool(ok)))
        return out

    return parts


def measure_c23(store: Store, runs: pd.DataFrame) -> Measurement:
    """Monte Carlo SGD noise against α²C/|B| with and without replacement."""
    ids = {int(r.seed): int(r.id) for r in runs.itertuples()}
    data = {seed: tuple(_array(store, run, q.name) for q in (NOISE_ESTIMATE, NOISE_SE,
                                                              NOISE_BOUND))
            for seed, run in sorted(ids.items())}
    stacked = [np.stack([d[i] for d in data.values()]) for i in range(3)]  # (S, 2, |B|, |α|)
    mean = (stacked[0].mean(0), np.sqrt((stacked[1] ** 2).sum(0)) / len(data), stacked[2].mean(0))
    return _by_parts(data, _c23_parts(runs), mean, "fraction of parts")


# -- the claims ----------------------------------------------------------------------------

_ALL_PARTS = "every part holds: fraction = 1"

C16 = register_claim(Claim(
    id="c16", paper=PAPER, figure="Fig. 1", kind="evidence", recipe=LR.name,
    statement=("At the same small LR (1e-4) ResNets with and without BN generalize alike "
               "(final test accuracies within 2 points), and BN at LR 0.1 beats BN at 1e-4 "
               "by at least 5 points; compared only between runs that fit their training "
               "data (≥ 99% training accuracy)."),
    explanation="large_lr",
    measure=measure_c16,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 16 (|Δ| ≤ 2 points; ≥ 5 points); the ≥ 99% "
              "training-accuracy gate: issue 13, after Fig. 1's ≈ 100%", _ALL_PARTS),
    paper_value="BN 0.1: ≈ 93%, BN 1e-4: ≈ 81%, no BN 1e-4: ≈ 82% (Fig. 1, read off)",
    diverge_ok=lambda cfg: cfg.get("norm") == "none" and float(cfg.get("lr", 0)) > 1e-4,
))

C17 = register_claim(Claim(
    id="c17", paper=PAPER, figure="Fig. 3", kind="evidence", recipe=DIVERGENCE.name,
    statement=("On mini-batches 1, 4 and 7 the relative loss L(w − ηg)/L(w) of ResNet-110 "
               "without BN exceeds 10³ at some η ≤ 1e-2, while with BN it stays below "
               "10^0.5 for every η ≤ 0.1."),
    explanation="large_lr",
    measure=measure_c17,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 17; 10³ is the divergence criterion of the S3d "
              "summary; 10^0.5 from Fig. 3's BN range (≤ 10^0.48, read off)", _ALL_PARTS),
    paper_value="BN within 10^−0.19…10^0.48; no BN > 10^6 by η ≈ 3e-3…1e-2 (read off)",
))

C18 = register_claim(Claim(
    id="c18", paper=PAPER, figure="Fig. 2", kind="evidence", recipe=GRADIENTS.name,
    statement=("At initialization the gradient of layer 55's kernel is at least 20× wider "
               "without BN and heavy-tailed (excess kurtosis > 3), while with BN it is "
               "Gaussian-like (|excess kurtosis| ≤ 1)."),
    explanation="large_lr",
    measure=measure_c18,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 18 (ratio ≥ 20, kurtosis > 3); |κ_BN| ≤ 1 is "
              "this project's reading of '≈ 0'", _ALL_PARTS),
    paper_value="≈ 100× (±4 vs ±0.04 ranges, read off); heavy tails without BN",
))

C19 = register_claim(Claim(
    id="c19", paper=PAPER, figure="Fig. 5", kind="evidence", recipe=DEPTH.name,
    statement=("At initialization, without BN the channel stds grow exponentially with "
               "depth (log10 std against layer: slope > 0, R² > 0.8); with BN they stay O(1) "
               "(|slope| ≤ 2.2 decades over 104 layers)."),
    explanation="large_lr",
    measure=measure_c19,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 19 (slope > 0, R² > 0.8); the BN tolerance is "
              "Fig. 5's BN range, ≈ −1.2…+1 over layers 6–110 (PAPERS.md §3.8)", _ALL_PARTS),
    paper_value="without BN ≈ −1.5 → +3…3.5 over layers 6–110 (≈ 0.05 decades/layer, read off)",
))

C20 = register_claim(Claim(
    id="c20", paper=PAPER, figure="Fig. 4", kind="evidence", recipe=DIVERGENCE.name,
    statement=("At the end of one diverging update (η = 0.01) of ResNet-110 without BN, the "
               "largest channel variance of layer 80 exceeds layer 8's by at least 10⁶."),
    explanation="large_lr",
    measure=measure_c20,
    rule=Rule(">=", VAR_DECADES, "PAPERS.md §8 claim 20", "log10(max var layer 80 / max var "
              "layer 8) at s = 1 ≥ 6"),
    paper_value="≈ 16.7 decades (≈ 5e16 vs ≤ 1, colour bars read off)",
))

C21 = register_claim(Claim(
    id="c21", paper=PAPER, figure="Fig. 6", kind="evidence", recipe=GRADIENTS.name,
    statement=("At initialization without BN the network predicts one class for ≥ 90% of a "
               "batch and the output gradients are aligned across images (mean A ≥ 0.9); "
               "with BN both are well below (≤ 0.5)."),
    explanation="large_lr",
    measure=measure_c21,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 21 (mode fraction ≥ 0.9, A ≈ 1 read as ≥ 0.9); "
              "'well below' read as ≤ 0.5 by this project", _ALL_PARTS),
    paper_value="qualitative: one class column positive for almost every image without BN",
))

C22 = register_claim(Claim(
    id="c22", paper=PAPER, figure="§4, Fig. 7", kind="identity", recipe=RMT.name,
    statement=("Products of more random Gaussian matrices are worse conditioned: the fraction "
               "of singular values below 0.1 and the condition number grow with the number of "
               "factors M, and the largest singular value sits at the known edge "
               "(M+1)^((M+1)/2)/M^(M/2) within 5%."),
    explanation="large_lr",
    measure=measure_c22,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 22 ('within a few %' read as 5%)", _ALL_PARTS),
    paper_value="support up to ≈ 2, ≈ 3.1, ≈ 4 for M = 1, 3, 5 (Fig. 7, read off)",
))

C23 = register_claim(Claim(
    id="c23", paper=PAPER, figure="§3 (bound)", kind="identity", recipe=NOISE_SCALE.name,
    statement=("The SGD noise E‖α∇ℓ − α∇_SGD‖² equals α²C/|B| when mini-batches are drawn "
               "with replacement and is at most that without replacement."),
    explanation="large_lr",
    measure=measure_c23,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 23; the tolerance is 3 Monte Carlo standard "
              "errors of each estimate", _ALL_PARTS),
    paper_value="E‖α∇ℓ − α∇_SGD‖² ≤ α²C/|B| (the paper's bound)",
))
