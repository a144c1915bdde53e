"""Claims of Ioffe & Szegedy 2015, Fig. 1 (recipe ``ioffe2015.mnist``; PAPERS.md §8, 1–2).

**c01** (Fig. 1a): "BN's test accuracy is higher throughout and it gets there sooner." Read
per PAPERS.md §8 claim 1 as two parts under each condition: (i) at *every* evaluation,
BN's accuracy is at least the unnormalized net's, where a deficit smaller than one
standard error of the difference of two accuracies on the test set counts as a tie (two
networks evaluated on n test examples cannot be told apart below that:
:func:`~bnlab.claims.helpers.binomial_se`); and (ii) BN first reaches the unnormalized
net's final accuracy at an earlier evaluation than the unnormalized net does. The
conditions are every learning rate run for both networks, plus each network at its own
best learning rate (highest seed-mean final accuracy): "no gain at the best LR" refutes.
The value is the fraction of conditions under which both parts hold; the rule asks for 1.
A seed's value uses its own curves; the mean's value uses the seed-mean curves
(``seedwise(mean="of_data")``: the curves a reader of the figure sees).

**c02** (Fig. 1b,c): "BN makes the distribution of a sigmoid's input much more stable."
What the figure shows is the 15/50/85th percentiles of the input of last-hidden-layer
sigmoids *as the network sees them in training*, i.e. with BN normalizing by batch
statistics; the recipe stores exactly that over a fixed probe set of 1,000 test inputs
(BN's running statistics, a lagging ~10-batch average that starts at 0/1, are stored
too, as a detail). The paper describes the drift of the distribution's level, not the
step-to-step jitter of one batch's percentiles, so each track is first smoothed with a
running median over 5 snapshots; the value is the total variation of the smoothed tracks
(averaged over 20 units and the 3 percentiles), unnormalized over BN. Both networks are
compared at the same learning rate, the one best for the unnormalized network (Fig. 1 has
one network of each kind; comparing at one LR keeps the step size equal); every shared LR
is a detail, as are the raw total variation, the mean distance from the first snapshot,
the p85−p15 spread, and the running-statistics tracks. The threshold is PAPERS.md's
"several times lower", read as ≥ 3. A seed's value is its own ratio; the mean's value is
the ratio of the seed-mean totals (``seedwise(mean="of_data")``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import (
    Curves,
    binomial_se,
    find_array,
    load_curves,
    load_track,
    running_median,
    seedwise,
    total_variation,
)
from bnlab.claims.registry import register_claim
from bnlab.recipes import Quantity
from bnlab.recipes.ioffe2015 import MNIST, PAPER, PCT, PCT_EVAL, TEST_ACC, TEST_N
from bnlab.results import Store

__all__ = ["BY", "C01", "C02", "SMOOTH", "load_tracks", "measure_c01", "measure_c02",
           "track_summary"]

BY = ("norm", "lr")  # the recipe's grid axes: a condition is one network at one LR
SMOOTH = 5  # snapshots per running median (the definition of a level track)
C02_THRESHOLD = 3.0  # "several times lower" (PAPERS.md §8 claim 2), read as at least 3x


# -- c01 -----------------------------------------------------------------------------------


def _test_n(store: Store, runs: pd.DataFrame) -> float:
    counts = load_curves(store, runs, TEST_N, BY)
    values = np.unique(np.concatenate([v.ravel() for v in counts.values.values()]))
    if values.size != 1:
        raise MissingDataError(f"runs were evaluated on {values.size} different test sizes "
                               f"({values[0]:g}, {values[1]:g}, ...)")
    return float(values[0])


def _c01_pair(steps: np.ndarray, bn: np.ndarray, none: np.ndarray, n: float
              ) -> tuple[bool, str]:
    """Whether c01 holds for one pair of accuracy curves (T,), and the numbers behind it."""
    if steps.size < 2:
        raise MissingDataError("c01 needs at least two evaluations per run")
    gap = bn - none
    worst = int(np.argmin(gap + binomial_se(bn, none, n)))  # the checkpoint closest to failing
    never_below = bool(gap[worst] + binomial_se(bn[worst], none[worst], n) >= 0)
    target = none[-1]
    t_none = float(steps[np.argmax(none >= target)])  # first step none reaches its final acc
    reached = bn >= target
    t_bn = float(steps[np.argmax(reached)]) if reached.any() else float("inf")
    text = (f"min gap BN − none {gap.min():+.4f} (at step {steps[worst]:g}: {gap[worst]:+.4f}, "
            f"1 SE {binomial_se(bn[worst], none[worst], n):.4f}); none's final accuracy "
            f"{target:.4f} reached at step {t_bn:g} (BN) vs {t_none:g} (none)")
    return never_below and t_bn < t_none, text


def _c01_conditions(acc: Curves) -> list[tuple[str, float, float]]:
    shared = sorted(set(acc.levels("lr", norm="bn")) & set(acc.levels("lr", norm="none")))
    conditions = [(f"lr={lr:g}", lr, lr) for lr in shared]
    bn_lr, none_lr = acc.best("lr", norm="bn"), acc.best("lr", norm="none")
    conditions.append((f"best LRs (BN {bn_lr:g}, none {none_lr:g})", bn_lr, none_lr))
    return conditions


def measure_c01(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of conditions (each shared LR, the best LRs) under which BN wins."""
    acc = load_curves(store, runs, TEST_ACC, BY)
    n = _test_n(store, runs)
    conditions = _c01_conditions(acc)
    pairs = [(acc.get(norm="bn", lr=b), acc.get(norm="none", lr=nl)) for _, b, nl in conditions]
    data = {seed: tuple((bn[i], none[i]) for bn, none in pairs)
            for i, seed in enumerate(acc.seeds)}

    def fraction(curves: tuple) -> float:
        return float(np.mean([_c01_pair(acc.steps, bn, none, n)[0] for bn, none in curves]))

    per_seed, mean = seedwise(data, fraction, mean="of_data")
    details = []
    for (label, _, _), (bn, none) in zip(conditions, pairs, strict=True):
        holds, text = _c01_pair(acc.steps, bn.mean(0), none.mean(0), n)
        wins = sum(_c01_pair(acc.steps, b, m, n)[0] for b, m in zip(bn, none, strict=True))
        details.append(Detail(label, f"{text}; holds for {wins}/{len(bn)} seeds (mean curves "
                                     "shown)", holds))
    return Measurement(per_seed, mean, tuple(details), unit="fraction of conditions")


# -- c02 -----------------------------------------------------------------------------------


def load_tracks(store: Store, run_id: int, quantity: Quantity = PCT
                ) -> tuple[np.ndarray, np.ndarray]:
    """The percentile snapshots of one run: steps (T,), values (T, units, 3).

    Raises:
        MissingDataError: if the run stored no single layer's ``quantity``.
    """
    names = find_array(store, run_id, quantity)
    if len(names) != 1:
        raise MissingDataError(f"run {run_id} stored {len(names)} arrays like "
                               f"{quantity.name!r}; expected one (the last hidden layer)")
    return load_track(store, run_id, names[0])


def track_summary(tracks: np.ndarray) -> dict[str, float]:
    """Level and jitter of percentile tracks (T, U, P), each averaged over units and levels.

    ``tv_smooth``: total variation of the running median over :data:`SMOOTH` snapshots;
    ``tv_raw``: total variation of the raw snapshots; ``drift``: mean over snapshots of
    |x_t − x_0|; ``spread``: mean of the outermost percentiles' difference (p85 − p15).
    """
    return {
        "tv_smooth": float(total_variation(running_median(tracks, SMOOTH)).mean()),
        "tv_raw": float(total_variation(tracks).mean()),
        "drift": float(np.abs(tracks - tracks[:1]).mean()),
        "spread": float((tracks[..., -1] - tracks[..., 0]).mean()),
    }


def _summaries(store: Store, ids: tuple[int, ...], quantity: Quantity) -> list[dict[str, float]]:
    return [track_summary(load_tracks(store, run, quantity)[1]) for run in ids]


def _ratio(none: dict[str, float], bn: dict[str, float], key: str) -> float:
    return none[key] / bn[key] if bn[key] > 0 else float("inf")


def measure_c02(store: Store, runs: pd.DataFrame) -> Measurement:
    """TV of the smoothed percentile tracks, unnormalized / BN, at none's best LR."""
    acc = load_curves(store, runs, TEST_ACC, BY)
    lr = acc.best("lr", norm="none")
    bn = _summaries(store, acc.ids(norm="bn", lr=lr), PCT)
    none = _summaries(store, acc.ids(norm="none", lr=lr), PCT)
    data = {seed: (none[i], bn[i]) for i, seed in enumerate(acc.seeds)}
    per_seed, mean = seedwise(data, lambda d: _ratio(d[0], d[1], "tv_smooth"), mean="of_data")
    m_none = {k: float(np.mean([s[k] for s in none])) for k in none[0]}
    m_bn = {k: float(np.mean([s[k] for s in bn])) for k in bn[0]}
    details = [Detail(f"lr={lr:g} (best for none)",
                      f"smoothed TV none {m_none['tv_smooth']:.4g}, BN {m_bn['tv_smooth']:.4g}")]
    for key, what in (("tv_raw", "raw TV (jitter included)"),
                      ("drift", "mean distance from the first snapshot")):
        details.append(Detail(what, f"none {m_none[key]:.4g}, BN {m_bn[key]:.4g}, ratio "
                                    f"{_ratio(m_none, m_bn, key):.3g}"))
    details.append(Detail("p85 − p15 spread", f"none {m_none['spread']:.4g}, "
                                              f"BN {m_bn['spread']:.4g}"))
    details.append(_eval_detail(store, acc, lr))
    for other in sorted(set(acc.levels("lr", norm="bn")) & set(acc.levels("lr", norm="none"))):
        n = np.mean([s["tv_smooth"] for s in _summaries(store, acc.ids(norm="none", lr=other),
                                                          PCT)])
        b = np.mean([s["tv_smooth"] for s in _summaries(store, acc.ids(norm="bn", lr=other),
                                                          PCT)])
        ratio = n / b if b > 0 else float("inf")
        details.append(Detail(f"lr={other:g}", f"smoothed TV none {n:.4g}, BN {b:.4g}, "
                                               f"ratio {ratio:.3g}", bool(ratio >= C02_THRESHOLD)))
    return Measurement(per_seed, mean, tuple(details), unit="smoothed-TV ratio none/BN")


def _eval_detail(store: Store, acc: Curves, lr: float) -> Detail:
    try:
        bn = _summaries(store, acc.ids(norm="bn", lr=lr), PCT_EVAL)
        none = _summaries(store, acc.ids(norm="none", lr=lr), PCT_EVAL)
    except MissingDataError as err:
        return Detail("running statistics (eval mode)", f"not stored: {err}")
    n, b = (float(np.mean([s["tv_smooth"] for s in x])) for x in (none, bn))
    return Detail("running statistics (eval mode)",
                  f"smoothed TV none {n:.4g}, BN {b:.4g}, ratio {n / b if b else float('inf'):.3g}")


C01 = register_claim(Claim(
    id="c01",
    paper=PAPER,
    figure="Fig. 1a",
    statement=("With BN the sigmoid MLP's test accuracy is never below the unnormalized "
               "net's by more than one standard error at any evaluation, and it reaches the "
               "unnormalized net's final accuracy in fewer steps: at each learning rate and "
               "with each network at its best learning rate."),
    kind="evidence",
    recipe=MNIST.name,
    measure=measure_c01,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 1 (for each LR, at every checkpoint; no gain at "
              "the best LR refutes); a tie is a deficit under 1 binomial SE of a difference",
              "BN wins under every condition (each LR and the best LRs): fraction = 1"),
    explanation="ics",
    paper_value="qualitative: BN higher throughout (Fig. 1a, read off ≈0.97–0.98 vs lower)",
    min_scale="quick",
))

C02 = register_claim(Claim(
    id="c02",
    paper=PAPER,
    figure="Fig. 1b,c",
    statement=("BN stabilises the inputs of the last hidden layer's sigmoids as seen in "
               "training (batch statistics of a fixed probe set): the total variation of "
               "their smoothed 15/50/85th percentile tracks (running median over 5 "
               "snapshots, averaged over 20 units) is several times lower with BN, both "
               "networks at the unnormalized network's best learning rate."),
    kind="evidence",
    recipe=MNIST.name,
    measure=measure_c02,
    rule=Rule(">=", C02_THRESHOLD, "PAPERS.md §8 claim 2: \"several times lower\" read as ≥ 3×",
              "smoothed TV(none) / TV(BN) ≥ 3 at the unnormalized net's best LR"),
    explanation="ics",
    paper_value="qualitative: BN's percentiles much more stable (Fig. 1b,c)",
    min_scale="quick",
))
