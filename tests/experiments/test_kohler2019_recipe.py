"""kohler2019.decoupling's problems and optimizers against closed forms and finite differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bnlab.experiments.kohler2019 import (
    PRESETS,
    Oracle,
    covariance,
    halfspace,
    least_squares,
    line_min,
    make_problem,
    optimize,
)

CFG = replace(PRESETS["smoke"].config, dim=6, iters=12)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_covariance_has_the_requested_condition_number():
    for spectrum in ("two_level", "log_spaced"):
        eig = np.linalg.eigvalsh(covariance(replace(CFG, kappa=250.0, spectrum=spectrum),
                                            _rng()))
        assert eig[0] == pytest.approx(1 / 250.0) and eig[-1] == pytest.approx(1.0)
    eig = np.linalg.eigvalsh(covariance(replace(CFG, kappa=250.0), _rng()))
    assert np.allclose(np.sort(eig), [1 / 250.0] * 3 + [1.0] * 3)


def test_gd_follows_the_closed_form_error_recursion():
    s = covariance(replace(CFG, kappa=30.0), _rng())
    w_star, w0 = _rng(1).standard_normal(6), _rng(2).standard_normal(6)
    problem = least_squares(s, w_star)
    trace = optimize("gd", problem, w0, CFG)
    alpha = 2.0 / (1 / 30.0 + 1.0)
    e = w0 - w_star
    for t in range(CFG.iters + 1):
        assert trace.subopt[t] == pytest.approx(0.5 * e @ s @ e, rel=1e-9)
        e = e - alpha * s @ e
    np.testing.assert_array_equal(trace.grads, np.arange(CFG.iters + 1))
    np.testing.assert_array_equal(trace.funcs, 0.0)


@pytest.mark.parametrize(("method", "counted"), [("bisection", "grads"), ("golden", "funcs")])
def test_line_searches_find_the_exact_step_and_count_their_calls(method, counted):
    s = covariance(replace(CFG, kappa=30.0), _rng())
    problem = least_squares(s, _rng(1).standard_normal(6))
    w = _rng(2).standard_normal(6)
    d = -problem.grad(w)
    exact = float(d @ d / (d @ s @ d))  # argmin_a of the quadratic along d
    oracle = Oracle(problem)
    a = line_min(oracle, w, d, 0.01, 0.01, method, 40)
    assert a == pytest.approx(exact, rel=1e-6)
    assert getattr(oracle, counted) > 40 and getattr(oracle, {"grads": "funcs",
                                                              "funcs": "grads"}[counted]) == 0


def test_a_stationary_start_costs_one_call():
    problem = least_squares(np.eye(3), np.zeros(3))
    oracle = Oracle(problem)
    assert line_min(oracle, np.zeros(3), np.ones(3), 0.0, 1.0, "bisection", 30) == 0.0
    assert oracle.grads == 1


def test_decoupled_direction_gradient_matches_finite_differences():
    # The step uses ∇_u f(g·u/‖u‖_S) = (g/‖u‖_S)(∇f − S u ⟨u, ∇f⟩/‖u‖²_S).
    s = covariance(replace(CFG, kappa=30.0), _rng())
    problem = least_squares(s, _rng(1).standard_normal(6))
    u, g = _rng(2).standard_normal(6), 0.7

    def f_of_u(v):
        return problem.value(g * v / np.sqrt(v @ s @ v))

    norm = np.sqrt(u @ s @ u)
    grad_w = problem.grad(g * u / norm)
    formula = (g / norm) * (grad_w - (s @ u) * (u @ grad_w) / norm**2)
    h = 1e-6
    numeric = np.array([(f_of_u(u + h * e) - f_of_u(u - h * e)) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(formula, numeric, rtol=1e-6, atol=1e-9)
    assert formula @ u == pytest.approx(0.0, abs=1e-12)  # scale invariance: ∇_u ⊥ u


def test_halfspace_gradient_minimizer_and_smoothness_bound():
    rng = _rng(3)
    x = rng.standard_normal((200, 5))
    y = np.sign(x @ rng.standard_normal(5))
    y[:30] *= -1
    problem = halfspace(x, y)
    w = rng.standard_normal(5)
    h = 1e-6
    numeric = np.array([(problem.value(w + h * e) - problem.value(w - h * e)) / (2 * h)
                        for e in np.eye(5)])
    np.testing.assert_allclose(problem.grad(w), numeric, rtol=1e-6, atol=1e-10)
    w_opt = np.linalg.solve(x.T @ x, x.T @ y)  # any point: check f* really is the minimum
    assert problem.value(w_opt) >= problem.f_star
    assert 0 < problem.mu <= problem.lipschitz


@pytest.mark.parametrize("task", ["least_squares", "halfspace"])
def test_every_method_converges_on_a_well_conditioned_problem(task):
    cfg = replace(CFG, task=task, kappa=4.0, iters=40, samples=300)
    problem, w0 = make_problem(cfg, _rng())
    for method in ("gd", "gd_line_search", "decoupled"):
        trace = optimize(method, problem, w0, cfg)
        assert trace.subopt[-1] < 1e-6 * trace.subopt[0], method
        assert (np.diff(trace.grads + trace.funcs) >= 1).all()


def test_problems_of_one_seed_share_rotation_target_and_start():
    a, w0a = make_problem(replace(CFG, kappa=10.0), _rng(7))
    b, w0b = make_problem(replace(CFG, kappa=1e4), _rng(7))
    np.testing.assert_array_equal(w0a, w0b)
    # Same eigenvectors: the κ = 10 and κ = 1e4 covariances commute.
    np.testing.assert_allclose(a.metric @ b.metric, b.metric @ a.metric, atol=1e-12)
