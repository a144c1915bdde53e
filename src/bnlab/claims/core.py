"""Claims as data and the verdicts the stored data gives them.

A :class:`Claim` names a published statement, the recipe whose runs test it, a measurement
over stored results (one value per seed plus the mean) and a :class:`Rule` with its
threshold and the source of that threshold. :func:`evaluate` turns a claim and a results
store into a :class:`Verdict` (DESIGN.md, "Claims"):

* ``supported``: the rule holds for the mean over seeds and for every seed;
* ``not supported``: the rule fails for the mean and for every seed;
* ``inconclusive``: anything else, or when a run is missing, failed or diverged
  unexpectedly, fewer than :data:`MIN_SEEDS` seeds were run, or the runs' scale is below
  the claim's ``min_scale``. The reason is always given.

No verdict is ever written by hand: :class:`Verdict` objects come only from
:func:`evaluate`.

Example:
    >>> from bnlab.claims import evaluate, get_claim
    >>> from bnlab.results import Store
    >>> verdict = evaluate(get_claim("c01"), Store("bnlab_out"))  # doctest: +SKIP
    >>> verdict.status, verdict.reason  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from bnlab.names import EXECUTION_FIELDS, SCALES

if TYPE_CHECKING:
    from bnlab.results import Store

__all__ = [
    "EXPLANATIONS",
    "MIN_SEEDS",
    "SCALES",
    "Claim",
    "Detail",
    "Measurement",
    "MissingDataError",
    "Rule",
    "RunSet",
    "Verdict",
    "evaluate",
    "run_sets",
    "select_runs",
]

#: Fewer seeds than this make every verdict inconclusive (DESIGN.md, "Claims").
MIN_SEEDS = 3

#: The synthesis groups, in the order the report shows them: the explanations of why BN
#: works that the five papers propose or test, plus one group for properties of the
#: transform that no explanation rests on. Every claim names one (``Claim.explanation``).
#: A claim belongs where its measurement bears, whichever paper makes it: Santurkar's
#: gradient-ICS measurement belongs to ``ics`` (it tests that explanation), Ioffe's scale
#: invariance to ``decoupling`` (the decoupled parameterization rests on it).
EXPLANATIONS: dict[str, str] = {
    "ics": "BN reduces internal covariate shift",
    "smoothness": "BN smooths the optimization landscape",
    "large_lr": "BN enables large learning rates, which regularize",
    "explosion": "BN explodes gradients at initialization without skip connections",
    "decoupling": "BN decouples the length and the direction of the weights",
    "transform": "properties of the BN transform itself (bear on no explanation)",
}

Status = Literal["supported", "not supported", "inconclusive"]
Kind = Literal["evidence", "identity"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
# Execution-only and per-seed config fields: runs that differ only in these are one condition.
_NOT_CONDITION = EXECUTION_FIELDS | {"seed"}


class MissingDataError(LookupError):
    """The stored runs lack something a measurement needs (a run, a metric, an array).

    :func:`evaluate` turns it into an ``inconclusive`` verdict whose reason is the message.
    """


@dataclass(frozen=True)
class Rule:
    """A decision rule ``value <op> threshold``.

    Attributes:
        op: one of ``">="``, ``">"``, ``"<="``, ``"<"``.
        threshold: the number the measured value is compared with.
        source: where the threshold comes from (a paper section, PAPERS.md §8).
        text: the rule in words, as shown in the report.
    """

    op: str
    threshold: float
    source: str
    text: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown rule operator {self.op!r}; choose one of {sorted(_OPS)}")

    def holds(self, value: float) -> bool:
        """Whether ``value <op> threshold``; NaN (an undefined measurement) never holds."""
        return not math.isnan(value) and _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"value {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Detail:
    """One labelled sub-measurement shown under a claim (e.g. one learning rate).

    Attributes:
        label: what was measured, e.g. ``"lr=0.1"``.
        text: the numbers behind it, e.g. ``"min gap +0.012; 2000 vs 9000 steps"``.
        holds: whether this part satisfies its part of the rule (``None``: not judged).
    """

    label: str
    text: str
    holds: bool | None = None


@dataclass(frozen=True)
class Measurement:
    """The value of a claim's measurement per seed and over seeds.

    Attributes:
        per_seed: seed → value.
        mean: the value for the mean over seeds. Usually the mean of ``per_seed``; a claim
            may instead measure the seed-averaged data (its docstring says which).
        details: labelled sub-measurements for the report.
        unit: the unit of the value, for display.
    """

    per_seed: Mapping[int, float]
    mean: float
    details: tuple[Detail, ...] = ()
    unit: str = ""

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (``nan`` with fewer than two seeds)."""
        values = np.asarray(list(self.per_seed.values()), dtype=np.float64)
        return float(values.std(ddof=1)) if values.size > 1 else float("nan")


Measure = Callable[["Store", pd.DataFrame], Measurement]


@dataclass(frozen=True)
class Claim:
    """A published claim, stated so the data can decide it.

    Attributes:
        id: ``"cNN"``, the numbering of PAPERS.md §8.
        paper: short citation, e.g. ``"Ioffe & Szegedy 2015"``.
        figure: the figure or section the claim is read from.
        statement: the claim in one or two sentences.
        kind: ``"evidence"`` (an experiment) or ``"identity"`` (an algebraic check).
        recipe: the recipe whose runs test it.
        measure: ``measure(store, runs) -> Measurement`` over the finished runs of one
            run set (a DataFrame from ``Store.runs``); raises :class:`MissingDataError`
            when something it needs is absent.
        rule: the decision rule applied to each seed's value and to the mean.
        explanation: the synthesis group the claim bears on, a key of
            :data:`EXPLANATIONS`.
        paper_value: the paper's own number, as text, or ``None`` when it gives none.
        min_scale: the smallest scale (``smoke``/``quick``/``paper``) at which the claim
            is meaningful.
        diverge_ok: predicate on a run's config; ``True`` when divergence of that run is
            an expected outcome (default: no divergence is expected).
    """

    id: str
    paper: str
    figure: str
    statement: str
    kind: Kind
    recipe: str
    measure: Measure = field(repr=False, compare=False)
    rule: Rule
    explanation: str
    paper_value: str | None = None
    min_scale: str = "quick"
    diverge_ok: Callable[[Mapping[str, object]], bool] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not (len(self.id) == 3 and self.id[0] == "c" and self.id[1:].isdigit()):
            raise ValueError(f"claim id must look like 'c01' (PAPERS.md §8), got {self.id!r}")
        if self.kind not in ("evidence", "identity"):
            raise ValueError(f"claim kind must be 'evidence' or 'identity', got {self.kind!r}")
        if self.min_scale not in SCALES:
            raise ValueError(f"min_scale must be one of {SCALES}, got {self.min_scale!r}")
        if self.explanation not in EXPLANATIONS:
            raise ValueError(f"claim {self.id}: explanation must be one of "
                             f"{', '.join(EXPLANATIONS)}, got {self.explanation!r}")


@dataclass(frozen=True)
class RunSet:
    """The runs of one recipe at one scale on one data source (any status).

    Attributes:
        recipe: the recipe name.
        scale: the runs' ``scale`` config field (``None`` if the runs record none).
        data: the runs' ``data`` config field (``None`` if the runs record none).
        runs: the rows of ``Store.runs`` for this set.
    """

    recipe: str
    scale: str | None
    data: str | None
    runs: pd.DataFrame = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """``"scale quick, data mnist1d"``, for headings."""
        return f"scale {self.scale or '?'}, data {self.data or '?'}"


@dataclass(frozen=True)
class Verdict:
    """What the stored data says about a claim. Built only by :func:`evaluate`.

    Attributes:
        claim: the claim judged.
        status: ``"supported"``, ``"not supported"`` or ``"inconclusive"``.
        reason: why; always set (for a decided claim it names the seeds and the mean).
        measurement: the measurement, or ``None`` when it could not be taken.
        seeds: the seeds whose runs were used.
        scale: the scale of the runs judged.
        data: the data source of the runs judged.
    """

    claim: Claim
    status: Status
    reason: str
    measurement: Measurement | None
    seeds: tuple[int, ...]
    scale: str | None
    data: str | None


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    if f"cfg.{name}" in runs.columns:
        return runs[f"cfg.{name}"]
    return pd.Series([None] * len(runs), index=runs.index, dtype=object)


def _config(row: pd.Series) -> dict:
    config = row["config"]
    return json.loads(config) if isinstance(config, str) else dict(config)


def _none_if_missing(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def run_sets(store: Store, recipe: str) -> list[RunSet]:
    """Split a recipe's stored runs by ``(scale, data)``, largest scale first.

    Within a scale, ``data="paper"`` comes first (it is the paper's dataset), then the
    others alphabetically. An empty list means the recipe has no runs in the store.
    """
    runs = store.runs(recipe=recipe)
    if runs.empty:
        return []
    # Plain tuples, not Series comparisons: ``series == None`` is False even for None.
    pairs = list(zip(_column(runs, "scale").map(_none_if_missing),
                     _column(runs, "data").map(_none_if_missing), strict=True))
    return [
        RunSet(recipe, s, d, runs[[pair == (s, d) for pair in pairs]])
        for s, d in sorted(set(pairs), key=_set_order)
    ]


def _set_order(key: tuple[str | None, str | None]) -> tuple[int, int, str]:
    scale, data = key
    rank = SCALES.index(scale) if scale in SCALES else -1
    return (-rank, 0 if data == "paper" else 1, data or "")


def select_runs(
    store: Store, recipe: str, *, scale: str | None = None, data: str | None = None
) -> RunSet | None:
    """The run set a verdict is computed on: the first of :func:`run_sets` that matches.

    With no ``scale``/``data`` this is the largest scale run, preferring ``data="paper"``.
    Returns ``None`` when no stored run matches.
    """
    for run_set in run_sets(store, recipe):
        if (scale is None or run_set.scale == scale) and (data is None or run_set.data == data):
            return run_set
    return None


def _run_name(config: Mapping[str, object], seed: object) -> str:
    shown = ", ".join(f"{k}={config[k]}" for k in sorted(config) if k not in _NOT_CONDITION)
    return f"[{shown}] seed {seed}"


def _status_problem(claim: Claim, runs: pd.DataFrame) -> str | None:
    """A reason for ``inconclusive`` from run statuses, or ``None`` if every run is usable."""
    for _, row in runs.sort_values("id").iterrows():
        name = _run_name(_config(row), row["seed"])
        status = row["status"]
        if status in ("pending", "running"):
            return f"run missing: {name} is {status}, not finished"
        if status == "failed":
            error = str(row.get("error") or "").strip().splitlines()
            return f"run failed: {name}: {error[-1] if error else 'no error recorded'}"
        if status == "diverged" and not (claim.diverge_ok and claim.diverge_ok(_config(row))):
            return f"run diverged unexpectedly: {name}: {row.get('error') or 'no reason recorded'}"
        if status not in ("finished", "diverged"):
            return f"run {name} has unknown status {status!r}"
    return None


def _grid_problem(runs: pd.DataFrame) -> str | None:
    """A reason if some condition lacks a seed that another condition has."""
    conditions: dict[str, set[int]] = {}
    names: dict[str, dict] = {}
    for _, row in runs.iterrows():
        config = {k: v for k, v in _config(row).items() if k not in _NOT_CONDITION}
        key = json.dumps(config, sort_keys=True, default=str)
        conditions.setdefault(key, set()).add(int(row["seed"]))
        names[key] = config
    all_seeds = set().union(*conditions.values())
    for key, seeds in sorted(conditions.items()):
        missing = sorted(all_seeds - seeds)
        if missing:
            return f"run missing: {_run_name(names[key], missing[0])} was not run"
    return None


def _inconclusive(
    claim: Claim,
    reason: str,
    run_set: RunSet | None,
    measurement: Measurement | None = None,
    seeds: tuple[int, ...] = (),
) -> Verdict:
    scale = run_set.scale if run_set else None
    data = run_set.data if run_set else None
    return Verdict(claim, "inconclusive", reason, measurement, seeds, scale, data)


def _precheck(claim: Claim, run_set: RunSet | None) -> str | None:
    if run_set is None:
        return f"no stored runs of recipe {claim.recipe!r} at the requested scale and data"
    if run_set.scale not in SCALES:
        return f"the runs record no known scale (got {run_set.scale!r}; expected one of {SCALES})"
    if SCALES.index(run_set.scale) < SCALES.index(claim.min_scale):
        return (f"runs are at scale {run_set.scale!r}; the claim needs at least "
                f"{claim.min_scale!r} (`--scale {claim.min_scale}`)")
    seeds = set(run_set.runs["seed"].astype(int))
    if len(seeds) < MIN_SEEDS:
        return f"only {len(seeds)} seed(s) run; at least {MIN_SEEDS} are needed (`--seeds`)"
    return _status_problem(claim, run_set.runs) or _grid_problem(run_set.runs)


def _decide(claim: Claim, m: Measurement) -> tuple[Status, str]:
    seed_ok = {int(seed): claim.rule.holds(v) for seed, v in sorted(m.per_seed.items())}
    mean_ok = claim.rule.holds(m.mean)
    passed = [s for s, ok in seed_ok.items() if ok]
    failed = [s for s, ok in seed_ok.items() if not ok]
    where = f"mean {m.mean:.4g} {'holds' if mean_ok else 'fails'} ({claim.rule})"
    if mean_ok and not failed:
        return "supported", f"rule holds for the mean and all {len(passed)} seeds; {where}"
    if not mean_ok and not passed:
        return "not supported", f"rule fails for the mean and all {len(failed)} seeds; {where}"
    return "inconclusive", (f"seeds disagree: holds for seeds {passed}, fails for seeds "
                            f"{failed}; {where}")


def evaluate(
    claim: Claim, store: Store, *, scale: str | None = None, data: str | None = None
) -> Verdict:
    """Judge ``claim`` on the stored runs of its recipe.

    The run set is chosen by :func:`select_runs` (by default the largest scale run,
    preferring ``data="paper"``). The verdict is ``inconclusive`` with a reason when a run
    is missing, pending, failed or diverged unexpectedly, fewer than :data:`MIN_SEEDS`
    seeds were run, the scale is below ``claim.min_scale``, the measurement lacks data, or
    seeds disagree. Otherwise it is ``supported`` when ``claim.rule`` holds for the mean
    over seeds and every seed, and ``not supported`` when it fails for all of them.

    Args:
        claim: the claim to judge.
        store: a :class:`bnlab.results.Store`.
        scale: judge the runs at this scale only.
        data: judge the runs on this data source only.

    Returns:
        The :class:`Verdict`, with the measurement when it could be taken.
    """
    run_set = select_runs(store, claim.recipe, scale=scale, data=data)
    problem = _precheck(claim, run_set)
    if problem is not None or run_set is None:
        return _inconclusive(claim, problem or "no stored runs", run_set)
    usable = run_set.runs[run_set.runs["status"] == "finished"]
    try:
        m = claim.measure(store, usable)
    except MissingDataError as err:
        return _inconclusive(claim, f"missing data: {err}", run_set)
    seeds = tuple(sorted(int(s) for s in m.per_seed))
    if len(seeds) < MIN_SEEDS:
        reason = f"the measurement has {len(seeds)} seed(s); at least {MIN_SEEDS} are needed"
        return _inconclusive(claim, reason, run_set, m, seeds)
    status, reason = _decide(claim, m)
    return Verdict(claim, status, reason, m, seeds, run_set.scale, run_set.data)
