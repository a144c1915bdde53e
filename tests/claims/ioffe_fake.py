"""Write synthetic ``ioffe2015.mnist`` runs through the real Store API.

Shared by tests/claims and tests/report (the latter loads this file by path). Curves and
percentile tracks are closed-form, so every test knows its answer without bnlab code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bnlab.recipes.ioffe2015 import MNIST, PCT, PCT_EVAL, TEST_ACC, TEST_N
from bnlab.results import Store

RECIPE = MNIST.name
EVAL_STEPS = np.arange(1, 6) * 100  # (5,) evaluations at 100 ... 500
PCT_STEPS = np.arange(0, 11) * 50  # (11,) snapshots at 0 ... 500
TEST_SIZE = 1000  # test examples behind each accuracy: 1 SE of a difference at 0.9 is ~0.013
LAYER = 3  # the last hidden layer's norm site

AccFn = Callable[[str, float, int], np.ndarray]
PctFn = Callable[[str, float, int], np.ndarray]


def saturating(final: float, rate: float) -> np.ndarray:
    """A rising accuracy curve 0.1 → final over EVAL_STEPS."""
    return 0.1 + (final - 0.1) * (1.0 - np.exp(-rate * EVAL_STEPS / 100.0))


def acc_bn_wins(norm: str, lr: float, seed: int) -> np.ndarray:
    """BN: fast and high; none: slow and lower. BN wins at every LR and every seed."""
    if norm == "bn":
        return saturating(0.97 + 0.001 * seed, 3.0)
    return saturating(0.90 - 0.01 * lr, 0.5)


def drifting_tracks(step_size: float, seed: int) -> np.ndarray:
    """Percentile tracks (T, 20, 3) that move monotonically by ``step_size`` per snapshot.

    Their total variation is exactly ``step_size * (T - 1)`` for every unit and percentile,
    and that of their running median over 5 snapshots ``step_size * (T - 5)``.
    """
    t = np.arange(PCT_STEPS.size, dtype=np.float64)[:, None, None]  # (T, 1, 1)
    offsets = np.array([-1.0, 0.0, 1.0]) + 0.01 * seed  # (3,) the 15/50/85th percentiles
    base = np.linspace(-0.5, 0.5, 20)[None, :, None]  # (1, 20, 1)
    return base + offsets[None, None, :] + step_size * t  # (T, 20, 3)


def pct_ratio(ratio: float) -> PctFn:
    """Tracks whose TV(none) / TV(BN) equals ``ratio`` at every LR and seed."""
    def fn(norm: str, lr: float, seed: int) -> np.ndarray:
        return drifting_tracks(0.01 * (ratio if norm == "none" else 1.0), seed)

    return fn


def run_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def write_runs(
    out: Path,
    *,
    seeds: Iterable[int] = (0, 1, 2),
    lrs: Iterable[float] = (0.1, 0.5),
    acc: AccFn = acc_bn_wins,
    pct: PctFn | None = None,
    scale: str = "quick",
    data: str = "mnist1d",
    status: Callable[[str, float, int], str] = lambda norm, lr, seed: "finished",
    skip: Callable[[str, float, int], bool] = lambda norm, lr, seed: False,
    extra_config: dict | None = None,
    arrays: bool = True,
    eval_pct: PctFn | None = None,
) -> Store:
    """Register, fill and finish one run per (norm, lr, seed); return the open store."""
    pct = pct or pct_ratio(5.0)
    store = Store(out)
    for norm in ("bn", "none"):
        for lr in lrs:
            for seed in seeds:
                if skip(norm, lr, seed):
                    continue
                config = {"norm": norm, "lr": lr, "seed": seed, "steps": int(EVAL_STEPS[-1]),
                          "scale": scale, "data": data, **(extra_config or {})}
                tracks = pct(norm, lr, seed) if arrays else None
                eval_tracks = eval_pct(norm, lr, seed) if arrays and eval_pct else None
                _write_one(store, config, acc(norm, lr, seed), tracks, eval_tracks,
                           status(norm, lr, seed))
    return store


def _write_one(store: Store, config: dict, acc: np.ndarray, pct: np.ndarray | None,
               eval_pct: np.ndarray | None, status: str) -> None:
    run = store.register_run(run_key(config), RECIPE, config, config["seed"])
    store.start_run(run, resumed_from=None,
                    provenance={"git_sha": "0" * 40, "git_dirty": False, "device": "cpu",
                                "packages": {"numpy": np.__version__}})
    store.log_metrics(run, [(int(s), name, float(v)) for s, a in zip(EVAL_STEPS, acc, strict=True)
                            for name, v in ((TEST_ACC.name, a), (TEST_N.name, TEST_SIZE))])
    for quantity, tracks in ((PCT, pct), (PCT_EVAL, eval_pct)):
        if tracks is not None:
            store.log_arrays(run, [(int(s), quantity.key(layer=LAYER), p)
                                   for s, p in zip(PCT_STEPS, tracks, strict=True)])
    if status == "running":
        return
    error = {"diverged": "loss became nan at step 120", "failed": "Traceback ...\nValueError: boom"}
    store.finish_run(run, status, error=error.get(status))
