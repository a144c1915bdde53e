"""Claims of Ioffe & Szegedy 2015, Fig. 1 (PAPERS.md §1.2 and §8, claims 1-2).

Both claims read the runs of the recipe ``ioffe2015.mnist`` (docs/internals.md, "The stored
data of a recipe"): per run, config fields ``norm`` ∈ {``bn``, ``none``} and ``lr``, the
metric ``test_acc`` at every evaluation step, and the array ``sigmoid_input_pct`` of shape
(20, 3): the 15/50/85th percentiles of the sigmoid inputs of 20 fixed last-hidden-layer
units over a fixed test batch.

**Best learning rate.** A network's best LR is the one with the highest final test accuracy,
averaged over seeds; ties go to the smaller LR. The same best LR is used for every seed, so
the per-seed verdicts are not tuned to each seed's noise.

**c01** (Fig. 1a) is judged under several conditions: each learning rate (BN and the
unnormalized net at the same LR) and each network at its own best LR. Under one condition
the claim *holds* when the BN net's test accuracy is ≥ the unnormalized one's at every
evaluation after the first, and BN reaches the unnormalized net's final accuracy at an
earlier evaluation step than the unnormalized net itself first does. A seed's value is the
fraction of conditions that hold; the mean's value is the same fraction computed on the
seed-averaged accuracy curves. Steps are evaluation steps, so when the unnormalized net
is already at its final accuracy at the first evaluation (a flat curve), BN cannot be
"faster" and the condition fails: the data cannot show a speed-up there. The rule asks
for 1: every LR and the best-LR comparison (PAPERS.md §8 claim 1: "for each LR ...
Refutes: the curves cross, or there is no gain at the best LR").

**c02** (Fig. 1b,c) compares drift of the sigmoid inputs. The total variation of a
percentile track x_0..x_T is Σ_t |x_{t+1} − x_t|; it is averaged over the 20 units and the
three percentiles. The value is TV(none) / TV(BN), each network at its own best LR (the
networks as one would use them, as in Fig. 1, where each curve is one trained network;
BN's best LR is usually the larger, which raises its TV, so this choice works against the
claim). A seed's value is its own ratio; the mean's value is the ratio of the seed-mean TVs.
The ratio at each shared LR is shown as detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.registry import RecipeInfo, register_claim, register_recipe
from bnlab.results import Store

__all__ = [
    "ACC_METRIC",
    "C01",
    "C02",
    "PCT_ARRAY",
    "RECIPE",
    "AccuracyCurves",
    "load_accuracy",
    "load_tracks",
    "measure_c01",
    "measure_c02",
    "total_variation",
    "typical_unit",
]

RECIPE = "ioffe2015.mnist"
ACC_METRIC = "test_acc"
PCT_ARRAY = "sigmoid_input_pct"
NORMS = ("bn", "none")
PAPER = "Ioffe & Szegedy 2015"
C02_THRESHOLD = 3.0  # "several times lower" (PAPERS.md §8 claim 2), read as at least 3x


@dataclass(frozen=True)
class AccuracyCurves:
    """Test-accuracy curves of the stored runs, aligned on their evaluation steps.

    Attributes:
        steps: the evaluation steps, shape (T,).
        seeds: the seeds, in the row order of every curve array, length S.
        acc: ``(norm, lr)`` → accuracies, shape (S, T).
        run_ids: ``(norm, lr)`` → the run id of each seed, length S.
    """

    steps: np.ndarray
    seeds: tuple[int, ...]
    acc: Mapping[tuple[str, float], np.ndarray]
    run_ids: Mapping[tuple[str, float], tuple[int, ...]]

    def lrs(self, norm: str) -> list[float]:
        """The learning rates run for ``norm``, ascending."""
        return sorted(lr for n, lr in self.acc if n == norm)

    def best_lr(self, norm: str) -> float:
        """The LR with the highest seed-mean final accuracy (ties: the smaller LR)."""
        finals = [(float(self.acc[(norm, lr)][:, -1].mean()), -lr) for lr in self.lrs(norm)]
        return -max(finals)[1]


def _run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` reduced to ``[id, norm, lr, seed]``; checks both networks are present."""
    for column in ("cfg.norm", "cfg.lr"):
        if column not in runs.columns:
            raise MissingDataError(f"the runs have no config field {column[4:]!r}")
    table = pd.DataFrame({"id": runs["id"].astype(int), "norm": runs["cfg.norm"],
                          "lr": runs["cfg.lr"].astype(float), "seed": runs["seed"].astype(int)})
    for norm in NORMS:
        if not (table["norm"] == norm).any():
            raise MissingDataError(f"no finished run with norm={norm!r}")
    return table[table["norm"].isin(NORMS)]


def load_accuracy(store: Store, runs: pd.DataFrame) -> AccuracyCurves:
    """Read the ``test_acc`` curves of ``runs`` (rows of ``Store.runs``).

    Raises:
        MissingDataError: if a network has no run, a run has no ``test_acc``, or the runs
            were evaluated at different steps.
    """
    table = _run_table(runs).sort_values(["norm", "lr", "seed"])
    metrics = store.metrics(runs=table["id"].tolist(), names=ACC_METRIC)
    by_run = {run: grp.sort_values("step") for run, grp in metrics.groupby("run")}
    steps: np.ndarray | None = None
    acc: dict[tuple[str, float], np.ndarray] = {}
    run_ids: dict[tuple[str, float], tuple[int, ...]] = {}
    seeds = tuple(sorted(int(s) for s in table["seed"].unique()))
    for (norm, lr), grp in table.groupby(["norm", "lr"]):
        rows = []
        for run in grp["id"]:
            if run not in by_run:
                raise MissingDataError(f"run {run} ({norm}, lr={lr:g}) stored no {ACC_METRIC!r}")
            run_steps = by_run[run]["step"].to_numpy()
            steps = run_steps if steps is None else steps
            if not np.array_equal(run_steps, steps):
                raise MissingDataError(f"run {run} was evaluated at other steps than the rest")
            rows.append(by_run[run]["value"].to_numpy(np.float64))
        if tuple(int(s) for s in grp["seed"]) != seeds:
            raise MissingDataError(f"norm={norm}, lr={lr:g} lacks some of the seeds {seeds}")
        acc[(norm, lr)] = np.stack(rows)  # (S, T)
        run_ids[(norm, lr)] = tuple(int(r) for r in grp["id"])
    if steps is None:
        raise MissingDataError("no runs to read accuracy curves from")
    return AccuracyCurves(steps, seeds, acc, run_ids)


def _c01_condition(steps: np.ndarray, bn: np.ndarray, none: np.ndarray) -> tuple[bool, str]:
    """Whether c01 holds for one pair of curves (T,), and the numbers behind it."""
    if steps.size < 2:
        raise MissingDataError("c01 needs at least two evaluations per run")
    gap = float((bn[1:] - none[1:]).min())  # after the first evaluation (PAPERS.md §8)
    target = none[-1]
    t_none = float(steps[np.argmax(none >= target)])  # first step none reaches its final acc
    reached = bn >= target
    t_bn = float(steps[np.argmax(reached)]) if reached.any() else float("inf")
    holds = gap >= 0.0 and t_bn < t_none
    text = (f"min acc gap BN − none after the first eval {gap:+.4f}; none's final accuracy "
            f"{target:.4f} reached at step {t_bn:g} (BN) vs {t_none:g} (none)")
    return holds, text


def _c01_conditions(curves: AccuracyCurves) -> list[tuple[str, float, float]]:
    shared = sorted(set(curves.lrs("bn")) & set(curves.lrs("none")))
    conditions = [(f"lr={lr:g}", lr, lr) for lr in shared]
    bn_lr, none_lr = curves.best_lr("bn"), curves.best_lr("none")
    conditions.append((f"best LRs (BN {bn_lr:g}, none {none_lr:g})", bn_lr, none_lr))
    return conditions


def measure_c01(store: Store, runs: pd.DataFrame) -> Measurement:
    """c01's value: the fraction of conditions (each LR, best LRs) under which BN wins.

    See the module docstring for the conditions and for how the mean is taken.
    """
    curves = load_accuracy(store, runs)
    wins = np.zeros(len(curves.seeds))  # (S,) conditions that hold, per seed
    mean_wins = 0
    details = []
    conditions = _c01_conditions(curves)
    for label, bn_lr, none_lr in conditions:
        bn, none = curves.acc[("bn", bn_lr)], curves.acc[("none", none_lr)]  # (S, T) each
        per_seed = [_c01_condition(curves.steps, b, n)[0] for b, n in zip(bn, none, strict=True)]
        wins += per_seed
        holds, text = _c01_condition(curves.steps, bn.mean(0), none.mean(0))
        mean_wins += holds
        details.append(Detail(label, f"{text}; holds for {sum(per_seed)}/{len(per_seed)} "
                                     "seeds (mean curves shown)", holds))
    per_seed_value = dict(zip(curves.seeds, (wins / len(conditions)).tolist(), strict=True))
    return Measurement(per_seed_value, mean_wins / len(conditions), tuple(details),
                       unit="fraction of conditions")


def total_variation(tracks: np.ndarray) -> float:
    """Σ_t |x_{t+1} − x_t| of each track, averaged over units and percentiles.

    Args:
        tracks: shape (T, U, P): T snapshots of P percentiles of U units.
    """
    if tracks.ndim != 3 or tracks.shape[0] < 2:
        raise MissingDataError(f"percentile tracks need shape (T>=2, U, P), got {tracks.shape}")
    return float(np.abs(np.diff(tracks, axis=0)).sum(axis=0).mean())  # (T-1,U,P) -> (U,P) -> ()


def load_tracks(store: Store, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``sigmoid_input_pct`` snapshots of one run: steps (T,), values (T, U, 3).

    Raises:
        MissingDataError: if the run stored none.
    """
    rows = store.arrays(run_id, PCT_ARRAY)
    if not rows:
        raise MissingDataError(f"run {run_id} stored no {PCT_ARRAY!r} arrays")
    steps = np.array([step for step, _ in rows])
    return steps, np.stack([np.asarray(a, dtype=np.float64) for _, a in rows])


def typical_unit(tracks: np.ndarray) -> int:
    """The unit whose total variation (mean over percentiles) is the median of all units.

    Args:
        tracks: shape (T, U, P).
    """
    per_unit = np.abs(np.diff(tracks, axis=0)).sum(axis=0).mean(axis=1)  # (U,)
    return int(np.argsort(per_unit)[(per_unit.size - 1) // 2])


def _tv_by_seed(store: Store, curves: AccuracyCurves, norm: str, lr: float) -> np.ndarray:
    ids = curves.run_ids[(norm, lr)]
    return np.array([total_variation(load_tracks(store, run)[1]) for run in ids])  # (S,)


def measure_c02(store: Store, runs: pd.DataFrame) -> Measurement:
    """c02's value: TV(none) / TV(BN) of the sigmoid-input percentiles, at the best LRs.

    See the module docstring for the choice of LRs and for how the mean is taken.
    """
    curves = load_accuracy(store, runs)
    tv: dict[tuple[str, float], np.ndarray] = {}
    for norm, lr in curves.acc:
        tv[(norm, lr)] = _tv_by_seed(store, curves, norm, lr)
    bn_lr, none_lr = curves.best_lr("bn"), curves.best_lr("none")
    bn, none = tv[("bn", bn_lr)], tv[("none", none_lr)]
    per_seed = dict(zip(curves.seeds, (none / bn).tolist(), strict=True))
    details = [Detail(f"best LRs (BN {bn_lr:g}, none {none_lr:g})",
                      f"TV none {none.mean():.4g}, BN {bn.mean():.4g}, "
                      f"ratio {none.mean() / bn.mean():.3g}")]
    for lr in sorted(set(curves.lrs("bn")) & set(curves.lrs("none"))):
        n, b = tv[("none", lr)].mean(), tv[("bn", lr)].mean()
        details.append(Detail(f"lr={lr:g}", f"TV none {n:.4g}, BN {b:.4g}, ratio {n / b:.3g}",
                              bool(n / b >= C02_THRESHOLD)))
    return Measurement(per_seed, float(none.mean() / bn.mean()), tuple(details),
                       unit="TV ratio none/BN")


C01 = register_claim(Claim(
    id="c01",
    paper=PAPER,
    figure="Fig. 1a",
    statement=("With BN the sigmoid MLP's test accuracy is at least the unnormalized net's "
               "at every evaluation after the first, and it reaches the unnormalized net's "
               "final accuracy in fewer steps: at each learning rate and at each network's "
               "best learning rate."),
    kind="evidence",
    recipe=RECIPE,
    measure=measure_c01,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 1 (for each LR; no gain at the best LR refutes)",
              "BN wins under every condition (each LR and the best LRs): fraction = 1"),
    paper_value=None,
    min_scale="quick",
))

C02 = register_claim(Claim(
    id="c02",
    paper=PAPER,
    figure="Fig. 1b,c",
    statement=("BN stabilises the inputs of the last hidden layer's sigmoids: the total "
               "variation over training of their 15/50/85th percentiles, averaged over 20 "
               "units, is several times lower with BN."),
    kind="evidence",
    recipe=RECIPE,
    measure=measure_c02,
    rule=Rule(">=", C02_THRESHOLD, "PAPERS.md §8 claim 2: \"several times lower\" read as ≥ 3×",
              "TV(none) / TV(BN) ≥ 3, each network at its best LR"),
    paper_value=None,
    min_scale="quick",
))

INFO = register_recipe(RecipeInfo(
    name=RECIPE,
    paper=PAPER,
    figure="Fig. 1",
    title=("MNIST 784-100-100-100-10 sigmoid MLP with and without BN: test accuracy and the "
           "sigmoid-input percentiles of the last hidden layer over training"),
    figures=("ioffe_fig1a", "ioffe_fig1bc"),
))
