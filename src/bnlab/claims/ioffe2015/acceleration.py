"""Claim of Ioffe & Szegedy 2015 §4.2.1, Figs. 2–3 (PAPERS.md §8, claim 3).

Recipe ``ioffe2015.acceleration``, a CIFAR-10 proxy of the ImageNet study.

**c03**: BN enables 5–30× larger learning rates and then reaches the unnormalized
baseline's accuracy in far fewer steps; the unnormalized network at 5× diverges. As in
Fig. 3, the target is the baseline's ("Inception"'s) best held-out accuracy and the
baseline's own steps-to-target is the first evaluation at which it reaches it. Three parts:
(i) BN-x5 and (ii) BN-x30 each reach the target in at most half the baseline's steps
("far fewer": the paper's are 14.8× and 11.5× fewer, and BN at the baseline's own rate
already needed "less than half"); (iii) the unnormalized net at 5·η0 diverges (its loss
became non-finite or exceeded 10× its initial loss: PAPERS.md §8 claim 3's definition). A
variant that diverged reaches no target after diverging. The value is the fraction of the
parts that hold; the rule asks for all three. A seed's value uses its own curves; the
mean's uses the seed-mean curves (a diverged run's curve stops, so the mean curve stops
there too) and counts the 5·η0 run diverged only if every seed's did. The paper's table
(31.0M / 13.3M / 2.1M / 2.7M steps; 72.2 / 72.7 / 73.0 / 74.8%) is set beside the
measured one in the details.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import seedwise, with_diverged
from bnlab.claims.registry import register_claim
from bnlab.recipes.ioffe2015 import ACCELERATION, PAPER, PAPER_TABLE, VAL_ACC
from bnlab.results import Store

__all__ = ["C03", "SPEEDUP", "VARIANT_NAMES", "load_variants", "measure_c03", "steps_to"]

SPEEDUP = 2.0  # "far fewer steps", read as at most half the baseline's
#: recipe variant → the paper's name for it
VARIANT_NAMES = {"inception": "Inception", "bn_baseline": "BN-Baseline", "bn_x5": "BN-x5",
                 "bn_x30": "BN-x30", "inception_x5": "Inception ×5"}

# seed → variant → (held-out accuracy at each evaluation step (T,), NaN after divergence;
# 1.0 if the run diverged else 0.0)
Variants = dict[str, tuple[np.ndarray, float]]


def load_variants(store: Store, runs: pd.DataFrame) -> tuple[np.ndarray, dict[int, Variants]]:
    """The evaluation steps (T,) and, per seed, every variant's curve and divergence.

    Raises:
        MissingDataError: a variant lacks a seed, or a finished run stored no curve.
    """
    every = with_diverged(store, runs)
    if "cfg.variant" not in every.columns:
        raise MissingDataError("the runs have no config field 'variant'")
    metrics = store.metrics(runs=every["id"].astype(int).tolist(), names=VAL_ACC.name)
    curves = {int(r): g.sort_values("step") for r, g in metrics.groupby("run")}
    finished = [curves[int(r)] for r, s in zip(every["id"], every["status"], strict=True)
                if s == "finished" and int(r) in curves]
    if not finished:
        raise MissingDataError(f"no finished run stored {VAL_ACC.name!r}")
    steps = finished[0]["step"].to_numpy()
    out: dict[int, Variants] = {}
    for run, seed, variant, status in zip(every["id"], every["seed"], every["cfg.variant"],
                                          every["status"], strict=True):
        curve = np.full(steps.size, np.nan)
        stored = curves.get(int(run))
        if stored is not None:
            at = dict(zip(stored["step"], stored["value"], strict=True))
            curve = np.array([at.get(s, np.nan) for s in steps])
        elif status == "finished":
            raise MissingDataError(f"run {int(run)} ({variant}) stored no {VAL_ACC.name!r}")
        out.setdefault(int(seed), {})[str(variant)] = (curve, float(status == "diverged"))
    variants = {frozenset(v) for v in out.values()}
    if len(variants) != 1 or not set(VARIANT_NAMES) <= next(iter(variants)):
        raise MissingDataError(f"every seed needs the variants {sorted(VARIANT_NAMES)}")
    return steps, out


def steps_to(steps: np.ndarray, curve: np.ndarray, target: float) -> float:
    """The first evaluation step whose accuracy is ≥ ``target`` (inf if none)."""
    reached = curve >= target  # NaN (after divergence) never reaches
    return float(steps[np.argmax(reached)]) if reached.any() else float("inf")


def _table(steps: np.ndarray, data: Variants) -> dict[str, tuple[float, float]]:
    """Variant → (steps to the baseline's best accuracy, best accuracy reached)."""
    base = data["inception"][0]
    if np.isnan(base).all():
        return {v: (float("inf"), float("nan")) for v in data}
    target = float(np.nanmax(base))
    return {v: (steps_to(steps, c, target), float(np.nanmax(c)) if not np.isnan(c).all()
                else float("nan")) for v, (c, _) in data.items()}


def _parts(steps: np.ndarray, data: Variants) -> tuple[bool, bool, bool]:
    table = _table(steps, data)
    base = table["inception"][0]
    fast = [bool(table[v][0] * SPEEDUP <= base) for v in ("bn_x5", "bn_x30")]
    return fast[0], fast[1], bool(data["inception_x5"][1] >= 1.0)


def _paper_rows(steps: np.ndarray, data: Variants) -> list[Detail]:
    table = _table(steps, data)
    target = table["inception"][1]
    rows = []
    for variant, (multiple, paper_steps, paper_max) in zip(
            ("inception", "bn_baseline", "bn_x5", "bn_x30"), PAPER_TABLE.values(), strict=True):
        n, best = table[variant]
        reach = (f"never reaches {100 * target:.1f}%" if np.isinf(n) else
                 f"{n:g} steps to {100 * target:.1f}%")
        rows.append(Detail(f"{VARIANT_NAMES[variant]} (LR {multiple:g}·η0)",
                           f"paper: {paper_steps / 1e6:.1f}M steps to 72.2%, max "
                           f"{100 * paper_max:.1f}%; measured: {reach}, max {100 * best:.1f}%"))
    return rows


def measure_c03(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of (BN-x5 fast, BN-x30 fast, unnormalized ×5 diverges) that hold."""
    steps, per_seed_data = load_variants(store, runs)
    per_seed, mean = seedwise(per_seed_data, lambda d: float(np.mean(_parts(steps, d))),
                              mean="of_data")
    avg = {v: (np.mean([d[v][0] for d in per_seed_data.values()], axis=0),
               float(np.mean([d[v][1] for d in per_seed_data.values()])))
           for v in VARIANT_NAMES}
    table = _table(steps, avg)
    parts = _parts(steps, avg)
    base = table["inception"][0]
    details = [Detail(f"({i}) {VARIANT_NAMES[v]} reaches the target in ≤ half the baseline's "
                      "steps", f"{table[v][0]:g} vs {base:g} steps", ok)
               for i, v, ok in (("i", "bn_x5", parts[0]), ("ii", "bn_x30", parts[1]))]
    diverged = sum(d["inception_x5"][1] for d in per_seed_data.values())
    best_x5 = table["inception_x5"][1]
    details.append(Detail("(iii) the unnormalized net at 5·η0 diverges",
                          f"{diverged:g} of {len(per_seed_data)} seeds diverged (paper: "
                          "\"machine infinity\"); best accuracy of the seed-mean curve "
                          f"{100 * best_x5:.1f}% (chance 10%)", parts[2]))
    details += _paper_rows(steps, avg)
    return Measurement(per_seed, mean, tuple(details), unit="fraction of (i)–(iii)")


C03 = register_claim(Claim(
    id="c03",
    paper=PAPER,
    figure="§4.2.1, Figs. 2–3",
    statement=("BN trains at 5× and 30× the unnormalized network's learning rate η0 and "
               "then reaches the unnormalized network's best held-out accuracy in at most "
               "half its steps, while the unnormalized network at 5·η0 diverges."),
    kind="evidence",
    recipe=ACCELERATION.name,
    measure=measure_c03,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 3 (steps-to-target; no-BN at 5·η0 diverges: NaN "
              "or loss > 10× initial); \"far fewer\" read as ≤ half (the paper: 14.8× for "
              "BN-x5)", "all three parts hold: fraction = 1"),
    explanation="large_lr",
    paper_value=("ImageNet: 31.0M (Inception) vs 13.3M / 2.1M / 2.7M steps to 72.2% "
                 "(BN-Baseline / BN-x5 / BN-x30), max 72.2 / 72.7 / 73.0 / 74.8%; "
                 "Inception ×5 diverged"),
    min_scale="quick",
    diverge_ok=lambda config: True,  # divergence is what part (iii) measures
))
