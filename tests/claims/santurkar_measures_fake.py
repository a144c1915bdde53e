"""Write synthetic runs of Santurkar's measurement recipes through the real Store API.

Every value is a closed-form function of (net, norm, lr, seed, step), so each test knows its
claim's answer without bnlab code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bnlab.recipes.santurkar2018.measures import (
    DLN_LOSS,
    ICS,
    ICS_COS,
    ICS_L2,
    LANDSCAPE,
    LP_LANDSCAPE,
    LS_BETA,
    LS_GC_MAX,
    LS_GC_MIN,
    LS_LOSS_MAX,
    LS_LOSS_MIN,
    THEORY,
    THM41_PRINTED_FAIL,
    THM41_REL_ERR,
    THM42_CASES,
)
from bnlab.results import Store

SEEDS = (0, 1, 2)
STEPS = np.arange(0, 400, 25)  # (16,) probed steps
ICS_GRID = {"dln": ((9, 17), (1e-6, 1e-7)), "vgg": ((5, 10), (0.1, 0.01))}
LANDSCAPE_LR = {"vgg": 0.1, "dln": 1e-6}


def _key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _run(store: Store, recipe: str, config: dict, status: str = "finished") -> int:
    config = {"scale": "quick", "data": "paper", **config}
    run = store.register_run(_key(config), recipe, config, config["seed"])
    store.start_run(run, resumed_from=None, provenance={"device": "cpu"})
    return run


def write_ics(out: Path, cos: Callable[[str, str, float, int], float],
              l2: Callable[[str, str, float, int], float] = lambda *a: 1.0,
              seeds: Iterable[int] = SEEDS) -> Store:
    """ICS runs of both nets, norms and LRs; cos(net, norm, lr, seed) at every step."""
    store = Store(out)
    for net, (layers, lrs) in ICS_GRID.items():
        for norm in ("none", "bn"):
            for lr in lrs:
                for seed in seeds:
                    run = _run(store, ICS.name, {"net": net, "norm": norm, "lr": lr,
                                                 "seed": seed})
                    rows = [(int(s), q.key(layer=k), f(net, norm, lr, seed))
                            for s in STEPS for k in layers
                            for q, f in ((ICS_COS, cos), (ICS_L2, l2))]
                    store.log_metrics(run, rows)
                    store.finish_run(run, "finished")
    return store


Track = Callable[[str, str, int], np.ndarray]  # (net, norm, seed) -> values over STEPS


def write_landscape(out: Path, *, loss_min: Track, loss_max: Track, gc_max: Track,
                    beta: Track, seeds: Iterable[int] = SEEDS,
                    norms: tuple[str, ...] = ("none", "bn"), recipe: str = LANDSCAPE.name,
                    dln_loss: Track | None = None, store: Store | None = None) -> Store:
    """Landscape runs of both nets: the five metric tracks given per (net, norm, seed)."""
    store = store or Store(out)
    for net, lr in LANDSCAPE_LR.items():
        for norm in norms:
            for seed in seeds:
                run = _run(store, recipe, {"net": net, "norm": norm, "lr": lr, "seed": seed})
                tracks = {LS_LOSS_MIN: loss_min, LS_LOSS_MAX: loss_max, LS_GC_MAX: gc_max,
                          LS_GC_MIN: lambda *a: 0.5 * gc_max(*a), LS_BETA: beta}
                rows = [(int(s), q.name, float(v)) for q, f in tracks.items()
                        for s, v in zip(STEPS, f(net, norm, seed), strict=True)]
                if dln_loss is not None and net == "dln":
                    rows += [(int(s), DLN_LOSS.name, float(v))
                             for s, v in zip(STEPS, dln_loss(net, norm, seed), strict=True)]
                store.log_metrics(run, rows)
                store.finish_run(run, "finished")
    return store


def flat(value: float) -> Track:
    """A track that is ``value`` at every step."""
    return lambda *a: np.full(STEPS.size, float(value))


def write_lp(out: Path, finals: dict[str, Callable[[int], float]], *,
             shared: bool = False, seeds: Iterable[int] = SEEDS) -> Store:
    """DLN loss curves falling to finals[norm](seed); with ``shared``, Standard and BN are
    registered by santurkar2018.landscape (as after ``bnlab reproduce``)."""
    store = Store(out)
    for norm, final in finals.items():
        def curve(net: str, n: str, seed: int, final: Callable[[int], float] = final
                  ) -> np.ndarray:
            return final(seed) * (1.0 + 10.0 * (1.0 - STEPS / STEPS.max()))  # ends at final

        recipe = LANDSCAPE.name if shared and norm in ("none", "bn") else LP_LANDSCAPE.name
        write_landscape(out, loss_min=flat(1.0), loss_max=flat(2.0), gc_max=flat(1.0),
                        beta=flat(1.0), seeds=seeds, norms=(norm,), recipe=recipe,
                        dln_loss=curve, store=store)
    return store


def write_theory(out: Path, *, rel_err: Callable[[str, int], float],
                 cases: Callable[[int], np.ndarray], seeds: Iterable[int] = SEEDS,
                 printed_fail: float = 1.0) -> Store:
    """Theory runs (MLP and VGG): Thm 4.1 errors at 3 sites, Thm 4.2 cases on the MLP."""
    store = Store(out)
    for net in ("mlp", "vgg"):
        for seed in seeds:
            run = _run(store, THEORY.name, {"net": net, "seed": seed})
            rows = [(s, q.key(site=k), v) for s in (0, 299) for k in (1, 2, 3)
                    for q, v in ((THM41_REL_ERR, rel_err(net, seed)),
                                 (THM41_PRINTED_FAIL, printed_fail))]
            store.log_metrics(run, rows)
            if net == "mlp":
                store.log_arrays(run, [(s, THM42_CASES.key(site=2), cases(seed))
                                       for s in (0, 299)])
            store.finish_run(run, "finished")
    return store


def thm42_rows(lhs: np.ndarray, t1: np.ndarray, t2: np.ndarray, g_yhat: np.ndarray
               ) -> np.ndarray:
    """Cases (B=len, U=1, 6) from the columns; alt = t1 and γ = 1."""
    cols = [lhs, t1, t2, t1, g_yhat, np.ones_like(lhs)]
    return np.stack(cols, axis=-1)[:, None, :]
