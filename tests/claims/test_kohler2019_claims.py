"""c28 on hand-made stores whose linear rates are known exactly, and the rate fit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from bnlab.claims import evaluate, get_claim
from bnlab.claims.kohler2019 import FLOOR, fit_rate, rate_slope
from bnlab.recipes.kohler2019 import DECOUPLING, FUNC_EVALS, GRAD_EVALS, METHODS, SUBOPT
from bnlab.results import Store

KAPPAS = (10.0, 100.0, 1_000.0, 10_000.0)
ITERS = 60
CALLS = {"gd": 1, "gd_line_search": 20, "decoupled": 20}  # oracle calls per iteration


def kohler_rates(method, kappa, seed):
    """The paper's picture: decoupled at 0.5 per iteration whatever κ, GD at 4/κ."""
    return 0.5 if method == "decoupled" else 4.0 / kappa


def write(tmp_path, rates=kohler_rates, tasks=("least_squares", "halfspace"), seeds=(0, 1, 2)):
    store = Store(tmp_path)
    t = np.arange(ITERS + 1, dtype=np.float64)
    for task in tasks:
        for kappa in KAPPAS:
            for seed in seeds:
                config = {"task": task, "kappa": kappa, "iters": ITERS, "scale": "quick",
                          "data": "none"}
                key = hashlib.sha256(json.dumps({**config, "seed": seed}).encode()).hexdigest()
                run = store.register_run(key, DECOUPLING.name, config, seed)
                store.start_run(run, resumed_from=None, provenance={})
                rows = []
                for m in METHODS:
                    rows += [(0, SUBOPT.key(method=m), 0.3 * np.exp(-rates(m, kappa, seed) * t)),
                             (0, GRAD_EVALS.key(method=m), CALLS[m] * t),
                             (0, FUNC_EVALS.key(method=m), 0.0 * t)]
                store.log_arrays(run, rows)
                store.finish_run(run, "finished")
    return store


def test_kappa_independent_and_faster_per_call_is_supported(tmp_path):
    v = evaluate(get_claim("c28"), write(tmp_path))
    assert v.status == "supported", v.reason
    assert v.measurement.per_seed == {0: 1.0, 1: 1.0, 2: 1.0}
    (i, ii) = v.measurement.details[:2]
    assert i.holds and i.text in ("slope +0.000", "slope -0.000")
    assert ii.holds and ii.text == f"{0.5 / 20:.3g} vs {4e-4:.3g}"
    assert any(d.label.startswith("halfspace, decoupled") for d in v.measurement.details)


def test_rates_like_gd_fail_both_parts(tmp_path):
    v = evaluate(get_claim("c28"), write(tmp_path, rates=lambda m, k, s: 8.0 / k))
    assert v.status == "not supported"
    assert v.measurement.mean == 0.0
    assert v.measurement.details[0].text == "slope -1.000"


def test_independent_but_slower_per_call_is_half(tmp_path):
    # Decoupled at 1e-5 per iteration: flat in κ, but 20 calls an iteration lose to GD.
    v = evaluate(get_claim("c28"), write(tmp_path, rates=lambda m, k, s: 1e-5 if m ==
                                         "decoupled" else 4.0 / k))
    assert v.status == "not supported"
    assert v.measurement.mean == 0.5
    assert [d.holds for d in v.measurement.details[:2]] == [True, False]


def test_just_below_the_slope_bound_fails(tmp_path):
    # ρ ∝ κ^-0.12: a 2.3x fall over three decades, steeper than the −0.1 bound.
    v = evaluate(get_claim("c28"), write(tmp_path, rates=lambda m, k, s: 0.5 * k ** -0.12 if
                                         m == "decoupled" else 4.0 / k))
    assert v.measurement.details[0].text == "slope -0.120"
    assert v.measurement.mean == 0.5


def test_one_seed_with_kappa_dependent_rates_makes_it_inconclusive(tmp_path):
    def rates(m, k, seed):
        return 8.0 / k if seed == 1 and m == "decoupled" else kohler_rates(m, k, seed)

    v = evaluate(get_claim("c28"), write(tmp_path, rates=rates))
    assert v.status == "inconclusive"
    assert v.measurement.per_seed[1] == 0.0
    assert "fails for seeds [1]" in v.reason


def test_missing_least_squares_is_missing_data(tmp_path):
    v = evaluate(get_claim("c28"), write(tmp_path, tasks=("halfspace",)))
    assert v.status == "inconclusive" and "no finished least_squares runs" in v.reason


def test_fit_rate_recovers_exponentials_and_stops_at_the_floor():
    t = np.arange(200, dtype=np.float64)
    assert fit_rate(2.0 * np.exp(-0.03 * t)) == pytest.approx(0.03, rel=1e-10)
    assert fit_rate(2.0 * np.exp(-0.03 * t), cost=5 * t) == pytest.approx(0.006, rel=1e-10)
    # Fast start, then a slower tail: the tail's rate is the linear rate.
    two_phase = np.exp(-np.minimum(t, 20) * 1.0 - np.maximum(t - 20, 0) * 0.01)
    assert fit_rate(two_phase) == pytest.approx(0.01, rel=1e-8)
    # Down to the floor at t = 10, then stuck there (line-search precision): fit before.
    stuck = np.maximum(np.exp(-3.0 * t), FLOOR * 1e-3)
    assert fit_rate(stuck) == pytest.approx(3.0, rel=1e-8)
    # Below the floor after 2 iterations: the rate to the floor, a lower bound.
    assert fit_rate(np.array([1.0, 1e-6, 0.0, 0.0])) == pytest.approx(np.log(1e10) / 2)
    # A method that broke down (NaN) is fitted on what it did before.
    broken = np.exp(-0.5 * t)
    broken[30:] = np.nan
    assert fit_rate(broken) == pytest.approx(0.5, rel=1e-10)


def test_rate_slope_is_the_log_log_slope():
    by_kappa = {k: (3.0 * k ** -0.7, 0.0) for k in KAPPAS}
    assert rate_slope(by_kappa) == pytest.approx(-0.7)
    assert rate_slope({10.0: (0.0, 0.0), 100.0: (0.1, 0.0)}) == float("-inf")
