"""Write synthetic runs of the Santurkar VGG recipes through the real Store API.

Curves and drift tracks are closed-form, so every test knows its answer without bnlab
code. A condition is a dict of the recipe's grid fields (``{"norm": "bn"}``,
``{"norm": "l1", "centered": True}``, ``{"norm": "none", "lr": 0.1}``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bnlab.recipes.santurkar2018.common import TEST_ACC, TRAIN_ACC, TRAIN_ACC_EVAL
from bnlab.recipes.santurkar2018.vgg import FIG2_LAYERS, MOMENTS
from bnlab.results import Store

EVAL_STEPS = np.arange(1, 11) * 50  # (10,) evaluations at 50 ... 500
DRIFT_STEPS = np.arange(1, 21) * 25  # (20,) drift snapshots at 25 ... 500
UNITS = 8

NOISE_CONDITIONS = tuple({"norm": n} for n in ("none", "bn", "noisy_bn", "noise"))
LP_CONDITIONS = (*({"norm": n, "centered": False} for n in ("none", "bn", "l1", "l2", "linf")),
                 *({"norm": n, "centered": True} for n in ("l1", "l2", "linf")))
VGG_CONDITIONS = tuple({"norm": n, "lr": lr} for n in ("none", "bn") for lr in (0.1, 0.5))

Cond = Mapping[str, Any]
CurveFn = Callable[[Cond, int], np.ndarray]
DriftFn = Callable[[Cond, int, int], float]


def rising(final: float, rate: float = 3.0) -> np.ndarray:
    """An accuracy curve rising from 0.1 over EVAL_STEPS to exactly ``final`` at the end."""
    shape = 1.0 - np.exp(-rate * EVAL_STEPS / EVAL_STEPS[-1])
    return 0.1 + (final - 0.1) * shape / shape[-1]


def finals(table: Mapping[str, float], key: str = "norm") -> CurveFn:
    """Curves ending at ``table[cond[key]]`` (fractions), the same for every seed."""
    return lambda cond, seed: rising(table[cond[key]])


def drift_table(table: Mapping[str, float]) -> DriftFn:
    """|Δμ| = |Δσ²| = table[norm] / 2 at every step, unit and layer (so D = table[norm])."""
    return lambda cond, seed, layer: table[cond["norm"]] / 2


def run_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def write_runs(
    out: Path,
    recipe: str,
    conditions: Iterable[Cond],
    *,
    train_acc: CurveFn,
    test_acc: CurveFn | None = None,
    drift: DriftFn | None = None,
    std: DriftFn | None = None,
    seeds: Iterable[int] = (0, 1, 2),
    scale: str = "quick",
    data: str = "paper",
    status: Callable[[Cond, int], str] = lambda cond, seed: "finished",
) -> Store:
    """Register, fill and finish one run per condition and seed; return the open store."""
    store = Store(out)
    for cond in conditions:
        for seed in seeds:
            config = {"norm": "bn", "centered": False, "lr": 0.1, **cond, "seed": seed,
                      "scale": scale, "data": data}
            run = store.register_run(run_key(config), recipe, config, seed)
            store.start_run(run, resumed_from=None, provenance={"device": "cpu"})
            _write_curves(store, run, cond, seed, train_acc, test_acc or train_acc)
            if drift is not None:
                _write_drift(store, run, cond, seed, drift, std)
            state = status(cond, seed)
            if state != "running":
                store.finish_run(run, state, error="loss exploded" if state == "diverged" else None)
    return store


def _write_curves(store: Store, run: int, cond: Cond, seed: int, train: CurveFn,
                  test: CurveFn) -> None:
    rows = []
    for name, fn in ((TRAIN_ACC.name, train), (TRAIN_ACC_EVAL.name, train),
                     (TEST_ACC.name, test)):
        rows += [(int(s), name, float(v)) for s, v in zip(EVAL_STEPS, fn(cond, seed), strict=True)]
    store.log_metrics(run, rows)


def _write_drift(store: Store, run: int, cond: Cond, seed: int, drift: DriftFn,
                 std: DriftFn | None) -> None:
    mean_q, var_q, std_q = (next(q for q in MOMENTS if q.name.endswith(f"/{f}"))
                            for f in ("mean_drift", "var_drift", "std"))
    rows = []
    for layer in FIG2_LAYERS:
        value = np.full(UNITS, drift(cond, seed, layer))
        for q in (mean_q, var_q):
            rows += [(int(s), q.key(layer=layer), value) for s in DRIFT_STEPS]
        if std is not None:
            sigma = np.full(UNITS, std(cond, seed, layer))
            rows += [(int(s), std_q.key(layer=layer), sigma) for s in DRIFT_STEPS]
    store.log_arrays(run, rows)
