"""Shared pieces of every claim's measurement (no torch).

* :func:`load_curves` reads one metric of every run into a :class:`Curves`: curves aligned
  on their steps, keyed by the runs' condition (the grid values, e.g. ``norm`` and ``lr``)
  and stacked over seeds; :meth:`Curves.best` picks the best condition.
* :func:`load_track` and :func:`find_array` read a run's arrays by their card
  :class:`~bnlab.recipes.Quantity`.
* :func:`seedwise` makes explicit how a claim's mean value is taken: the mean of the
  per-seed values, or the value of the seed-averaged data.
* :func:`running_median`, :func:`total_variation`, :func:`binomial_se`: small numerics
  with their definitions in the docstrings.
* :func:`with_diverged`: a run set's diverged runs beside the finished ones, for claims
  about divergence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from bnlab.claims.core import MissingDataError
from bnlab.recipes import Quantity
from bnlab.results import Store

__all__ = [
    "Curves",
    "binomial_se",
    "find_array",
    "load_curves",
    "load_track",
    "running_median",
    "seedwise",
    "total_variation",
    "with_diverged",
]

D = TypeVar("D")
Condition = tuple[Any, ...]


@dataclass(frozen=True)
class Curves:
    """One metric of a set of runs, aligned on steps, by condition and seed.

    Attributes:
        metric: the metric's stored name.
        by: the config fields that make a condition, e.g. ``("norm", "lr")``.
        steps: the steps every run stored the metric at, shape (T,).
        seeds: the seeds, in the row order of every value array, length S.
        values: condition (a tuple in the order of ``by``) → values, shape (S, T).
        run_ids: condition → the run id of each seed, length S.
    """

    metric: str
    by: tuple[str, ...]
    steps: np.ndarray
    seeds: tuple[int, ...]
    values: Mapping[Condition, np.ndarray]
    run_ids: Mapping[Condition, tuple[int, ...]]

    def condition(self, **fields: Any) -> Condition:
        """The condition with these field values (every field of :attr:`by`).

        Raises:
            MissingDataError: if no run has that condition.
        """
        if set(fields) != set(self.by):
            raise ValueError(f"a condition of {self.metric!r} sets {self.by}, got {sorted(fields)}")
        cond = tuple(fields[k] for k in self.by)
        if cond not in self.values:
            raise MissingDataError(f"no runs with {_label(self.by, cond)} stored {self.metric!r}")
        return cond

    def get(self, **fields: Any) -> np.ndarray:
        """The (S, T) values of one condition."""
        return self.values[self.condition(**fields)]

    def ids(self, **fields: Any) -> tuple[int, ...]:
        """The run id of each seed of one condition."""
        return self.run_ids[self.condition(**fields)]

    def levels(self, field: str, **fixed: Any) -> list[Any]:
        """The values ``field`` takes among the conditions that match ``fixed``, sorted."""
        i = self.by.index(field)
        return sorted({c[i] for c in self._matching(fixed)})

    def best(self, over: str, *, higher: bool = True, **fixed: Any) -> Any:
        """The value of ``over`` whose seed-mean final value is best (ties: the smaller).

        Args:
            over: the field to choose (e.g. ``"lr"``).
            higher: whether a larger final value is better (accuracy) or worse (loss).
            **fixed: the other fields of :attr:`by` (e.g. ``norm="bn"``).
        """
        i = self.by.index(over)
        sign = 1.0 if higher else -1.0
        finals = [(sign * float(self.values[c][:, -1].mean()), -c[i], c[i])
                  for c in self._matching(fixed)]
        if not finals:
            shown = ", ".join(f"{k}={v}" for k, v in fixed.items())
            raise MissingDataError(f"no runs with {shown} stored {self.metric!r}")
        return max(finals)[2]

    def _matching(self, fixed: Mapping[str, Any]) -> list[Condition]:
        return [c for c in self.values
                if all(c[self.by.index(k)] == v for k, v in fixed.items())]


def _label(by: Sequence[str], cond: Condition) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(by, cond, strict=True))


def _run_table(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    for name in by:
        if f"cfg.{name}" not in runs.columns:
            raise MissingDataError(f"the runs have no config field {name!r}")
    table = pd.DataFrame({"id": runs["id"].astype(int), "seed": runs["seed"].astype(int)})
    for name in by:
        table[name] = [_plain(v) for v in runs[f"cfg.{name}"]]
    return table


def _plain(value: Any) -> Any:
    """Config values as hashable Python scalars (JSON lists become tuples)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_curves(store: Store, runs: pd.DataFrame, metric: str | Quantity,
                by: Sequence[str]) -> Curves:
    """Read ``metric`` of ``runs`` (rows of ``Store.runs``) as :class:`Curves`.

    Raises:
        MissingDataError: if there are no runs, a run stored no ``metric``, the runs
            stored it at different steps, or a condition lacks a seed another one has.
    """
    name = metric.name if isinstance(metric, Quantity) else metric
    table = _run_table(runs, by).sort_values([*by, "seed"])
    if table.empty:
        raise MissingDataError(f"no finished runs to read {name!r} from")
    stored = store.metrics(runs=table["id"].tolist(), names=name)
    by_run = {run: grp.sort_values("step") for run, grp in stored.groupby("run")}
    seeds = tuple(sorted(int(s) for s in table["seed"].unique()))
    steps: np.ndarray | None = None
    values: dict[Condition, np.ndarray] = {}
    ids: dict[Condition, tuple[int, ...]] = {}
    for cond, grp in table.groupby(list(by), sort=True):
        cond = cond if isinstance(cond, tuple) else (cond,)
        if tuple(int(s) for s in grp["seed"]) != seeds:
            raise MissingDataError(f"{_label(by, cond)} lacks some of the seeds {seeds}")
        rows = []
        for run in grp["id"]:
            if run not in by_run:
                raise MissingDataError(f"run {run} ({_label(by, cond)}) stored no {name!r}")
            run_steps = by_run[run]["step"].to_numpy()
            steps = run_steps if steps is None else steps
            if not np.array_equal(run_steps, steps):
                raise MissingDataError(f"run {run} stored {name!r} at other steps than the rest")
            rows.append(by_run[run]["value"].to_numpy(np.float64))
        values[cond] = np.stack(rows)  # (S, T)
        ids[cond] = tuple(int(r) for r in grp["id"])
    assert steps is not None  # table is not empty
    return Curves(name, tuple(by), steps, seeds, values, ids)


def find_array(store: Store, run_id: int, quantity: Quantity) -> list[str]:
    """The stored names of run ``run_id`` that are instances of ``quantity``, sorted."""
    return sorted(n for n in store.array_names(run_id) if quantity.matches(n))


def load_track(store: Store, run_id: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``name`` of one run: steps (T,) and the stacked values (T, ...).

    Raises:
        MissingDataError: if the run stored none or their shapes differ between steps.
    """
    rows = store.arrays(run_id, name)
    if not rows:
        raise MissingDataError(f"run {run_id} stored no {name!r} arrays")
    shapes = {a.shape for _, a in rows}
    if len(shapes) != 1:
        raise MissingDataError(f"run {run_id} stored {name!r} with shapes {sorted(shapes)}")
    steps = np.array([step for step, _ in rows])
    return steps, np.stack([np.asarray(a, dtype=np.float64) for _, a in rows])


def _tree_mean(items: Sequence[Any]) -> Any:
    """The elementwise mean of equally shaped floats, arrays, tuples or dicts of them."""
    first = items[0]
    if isinstance(first, Mapping):
        return {k: _tree_mean([it[k] for it in items]) for k in first}
    if isinstance(first, tuple):
        return tuple(_tree_mean([it[i] for it in items]) for i in range(len(first)))
    return np.mean(np.stack([np.asarray(it, dtype=np.float64) for it in items]), axis=0)


def seedwise(
    data: Mapping[int, D],
    value: Callable[[D], float],
    *,
    mean: Literal["of_values", "of_data"],
) -> tuple[dict[int, float], float]:
    """Per-seed values and the value "for the mean over seeds", with the choice explicit.

    Args:
        data: seed → that seed's data (a float, array, or tuple/dict of them).
        value: the claim's value of one seed's (or the averaged) data.
        mean: ``"of_values"``: the mean of the per-seed values; ``"of_data"``: ``value``
            of the data averaged over seeds elementwise (e.g. the seed-mean curve, or
            the ratio of seed-mean totals). Claims say which and why.

    Returns:
        ``({seed: value}, mean value)``.
    """
    if not data:
        raise MissingDataError("no seeds to measure")
    per_seed = {int(s): float(value(d)) for s, d in sorted(data.items())}
    if mean == "of_values":
        return per_seed, float(np.mean(list(per_seed.values())))
    if mean == "of_data":
        return per_seed, float(value(_tree_mean([data[s] for s in sorted(data)])))
    raise ValueError(f"mean must be 'of_values' or 'of_data', got {mean!r}")


def running_median(x: np.ndarray, window: int) -> np.ndarray:
    """Medians of every ``window`` consecutive entries along axis 0 (no padding).

    Args:
        x: shape (T, ...).
        window: an odd-or-even count >= 1; the result has T − window + 1 rows.
    """
    if window < 1 or x.shape[0] < window:
        raise MissingDataError(f"a running median over {window} needs >= {window} rows, "
                               f"got {x.shape[0]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (T-w+1, ..., w)
    return np.median(windows, axis=-1)


def total_variation(x: np.ndarray) -> np.ndarray:
    """Σ_t |x_{t+1} − x_t| along axis 0, for each remaining index: (T, ...) → (...)."""
    if x.shape[0] < 2:
        raise MissingDataError(f"total variation needs >= 2 snapshots, got {x.shape[0]}")
    return np.abs(np.diff(x, axis=0)).sum(axis=0)


def binomial_se(p1: np.ndarray, p2: np.ndarray, n: float) -> np.ndarray:
    """The standard error of a difference of two accuracies, each over ``n`` examples.

    √(p₁(1−p₁)/n + p₂(1−p₂)/n): two independent binomial proportions (the Wald standard
    error of a difference, e.g. Agresti, *Categorical Data Analysis*, 3rd ed., §2.2.3).
    """
    p1, p2 = np.clip(p1, 0.0, 1.0), np.clip(p2, 0.0, 1.0)
    return np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / float(n))


def with_diverged(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """The finished ``runs`` plus the diverged runs of the same recipe, scale and data.

    :func:`bnlab.claims.evaluate` hands a measurement the finished runs only; a claim whose
    subject includes divergence (a network that does not train at some learning rate or
    depth) reads the diverged runs of its run set through this. Rows as in ``Store.runs``.

    Raises:
        MissingDataError: if ``runs`` is empty (its run set cannot be told).
    """
    if runs.empty:
        raise MissingDataError("no finished runs")
    every = store.runs(recipe=str(runs["recipe"].iloc[0]))
    same = np.ones(len(every), dtype=bool)
    for label in ("cfg.scale", "cfg.data"):
        if label in every.columns and label in runs.columns:
            same &= (every[label] == runs[label].iloc[0]).to_numpy()
    return every[same & every["status"].isin(["finished", "diverged"]).to_numpy()]
