"""Kohler et al. 2019: length-direction decoupling on least squares and halfspaces (PAPERS.md §5).

BN makes a unit's output depend on its weights only through ``w = g·u/‖u‖_S`` with
``‖u‖_S = √(uᵀSu)``, S = E[xxᵀ] (the pre-activation's batch standard deviation), so an
optimizer can treat the length ``g`` and the direction ``u`` separately. This recipe runs
three optimizers from the same starting point on problems whose input covariance S has
condition number κ, and stores f(w_t) − f* per iteration with the oracle calls spent:

* ``gd``: gradient descent with the constant step 2/(μ+L) (the best constant step for a
  μ-strongly convex, L-smooth function; 1 gradient per iteration);
* ``gd_line_search``: gradient descent with an exact line search along −∇f (a bisection or
  golden-section search to ``search_steps`` halvings);
* ``decoupled``: Kohler et al.'s scheme as PAPERS.md recalls it [RECALLED]: a line search
  on the length ``g`` for the current direction, then one gradient step on ``u`` with the
  step 2/(μ+L) carried to the direction's scale (η = 2/(μ+L)·‖u‖²_S/g²: ∇_u f shrinks
  as 1/‖u‖_S and the curvature in ``u`` is g²/‖u‖²_S times that in ``w``).

Problems (``task``): ``least_squares``, the population objective of a linear model on
Gaussian inputs, f(w) = ½ E[(xᵀw − xᵀw*)²] = ½ (w − w*)ᵀ S (w − w*); ``halfspace``, the
logistic loss of the halfspace sign(xᵀw*) on ``samples`` drawn inputs with ``label_noise``
flipped labels (so the minimizer is finite; f* from Newton's method), S its sample
covariance. The line searches assume f convex along a line, which both are.

Command: ``bnlab run kohler2019.decoupling --scale quick`` (no dataset: ``--data`` is
ignored and recorded as ``none``).

Scales (3 seeds; task × κ ∈ {10, 10², 10³, 10⁴} = 8 runs a seed), measured on a 2-core
CPU (numpy; no torch):

* ``smoke``: d = 8, 15 iterations, κ ∈ {10, 10⁴}, least squares: a second.
* ``quick``: d = 50, 300 iterations, 30 search steps, 1,000 halfspace samples: 24 runs in
  26 s with ``--executor process --workers 2`` (load average 4.4 on the 2 cores); the same
  on ``--data mnist1d`` (no dataset either way).
* ``paper``: d = 500, 3,000 iterations, 10,000 samples: about 45 minutes on 2 CPU cores
  (estimated from the quick timing: the halfspace gradients dominate; the paper's sizes
  are not known, and a GPU does not help numpy).

With the default two-level spectrum the exact line search along −∇f finishes in a few
iterations (the error lives in two eigenspaces, which one search nearly separates);
``spectrum=log_spaced`` shows the textbook zigzag but needs t ≫ κ iterations before the
linear rate shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bnlab.experiments.harness import LogFn, Measure, RunEnv
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.recipes.kohler2019 import DECOUPLING, FUNC_EVALS, GRAD_EVALS, METHODS, SUBOPT
from bnlab.sweep.config import PosFloat, PosInt, Probability

__all__ = ["PAPER", "PRESETS", "RECIPE", "KohlerConfig", "build", "make_problem", "optimize"]

Vector = np.ndarray


@dataclass(frozen=True)
class KohlerConfig(RecipeConfig):
    """One problem (task, κ) and the three optimizers run on it."""

    task: Literal["least_squares", "halfspace"] = "least_squares"  # paper: both settings
    kappa: PosFloat = 1_000.0  # condition number of S; PAPERS.md §8 claim 28 (ill-conditioned)
    dim: PosInt = 500  # input dimension d; not stated
    spectrum: Literal["two_level", "log_spaced"] = "two_level"  # S's eigenvalues; not stated:
    # half at 1 and half at 1/κ shows the linear rate from the first iterations; log-spaced
    # ones give a long sublinear-looking transient before it (t ≫ κ)
    iters: PosInt = 3_000  # iterations of every optimizer; not stated
    search_steps: PosInt = 30  # halvings per line search (Kohler's T_s) [RECALLED]
    line_search: Literal["bisection", "golden"] = "bisection"  # bisection on the sign of the
    # directional derivative (gradient calls, as Kohler's length search [RECALLED]) or
    # golden section on values (function calls)
    samples: PosInt = 10_000  # halfspace: inputs drawn; least squares is the population
    label_noise: Probability = 0.1  # halfspace: labels flipped (a finite minimizer); not stated


PAPER = KohlerConfig()
GRID = {"task": ("least_squares", "halfspace"), "kappa": (10.0, 100.0, 1_000.0, 10_000.0)}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(replace(PAPER, dim=50, iters=300, samples=1_000), GRID),
    "smoke": Preset(replace(PAPER, dim=8, iters=15, samples=100),
                    {"task": ("least_squares", "halfspace"), "kappa": (10.0, 10_000.0)}),
}


# -- problems ------------------------------------------------------------------------------


@dataclass
class Problem:
    """A smooth convex objective with its minimum and the constants the steps need.

    Attributes:
        value: f(w).
        grad: ∇f(w).
        f_star: min f.
        mu: the strong-convexity constant used by the steps (at the minimizer).
        lipschitz: the smoothness constant L (global).
        metric: S, the covariance that defines ‖u‖_S.
    """

    value: Callable[[Vector], float]
    grad: Callable[[Vector], Vector]
    f_star: float
    mu: float
    lipschitz: float
    metric: np.ndarray


def covariance(cfg: KohlerConfig, rng: np.random.Generator) -> np.ndarray:
    """S = Q diag(λ) Qᵀ, Q a random rotation, λ ∈ [1/κ, 1] (``cfg.spectrum``): (d, d)."""
    d = cfg.dim
    if cfg.spectrum == "two_level":
        eig = np.where(np.arange(d) < d // 2, 1.0, 1.0 / cfg.kappa)
    else:
        eig = cfg.kappa ** -np.linspace(0.0, 1.0, d)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * eig) @ q.T


def least_squares(s: np.ndarray, w_star: Vector) -> Problem:
    """f(w) = ½ (w − w*)ᵀ S (w − w*): the population least-squares objective."""
    eig = np.linalg.eigvalsh(s)
    return Problem(value=lambda w: 0.5 * float((w - w_star) @ s @ (w - w_star)),
                   grad=lambda w: s @ (w - w_star), f_star=0.0, mu=float(eig[0]),
                   lipschitz=float(eig[-1]), metric=s)


def halfspace(x: np.ndarray, y: Vector) -> Problem:
    """Mean logistic loss log(1 + exp(−y xᵀw)) of labels y ∈ {±1} on inputs x (n, d)."""
    n = x.shape[0]

    def value(w: Vector) -> float:
        return float(np.logaddexp(0.0, -y * (x @ w)).mean())

    def grad(w: Vector) -> Vector:
        return -(x.T @ (y / (1.0 + np.exp(y * (x @ w))))) / n  # σ(−m) = 1/(1 + e^m)

    def hessian(w: Vector) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        return (x.T * (p * (1.0 - p))) @ x / n

    w_opt = _newton(value, grad, hessian, np.zeros(x.shape[1]))
    # L bounds the Hessian everywhere (σ' ≤ 1/4); μ is its smallest eigenvalue at w_opt.
    return Problem(value, grad, f_star=value(w_opt), mu=float(np.linalg.eigvalsh(
        hessian(w_opt))[0]), lipschitz=float(np.linalg.eigvalsh(x.T @ x / n)[-1]) / 4.0,
        metric=x.T @ x / n)


def _newton(value: Callable[[Vector], float], grad: Callable[[Vector], Vector],
            hessian: Callable[[Vector], np.ndarray], w: Vector) -> Vector:
    """Damped Newton to machine precision (the reference minimizer; its calls are not counted)."""
    for _ in range(200):
        g = grad(w)
        step = np.linalg.solve(hessian(w), g)
        t, f0 = 1.0, value(w)
        while value(w - t * step) > f0 - 0.25 * t * float(g @ step) and t > 1e-12:
            t *= 0.5  # Armijo backtracking
        w = w - t * step
        if np.linalg.norm(g) < 1e-14:
            break
    return w


def make_problem(cfg: KohlerConfig, rng: np.random.Generator) -> tuple[Problem, Vector]:
    """The task's problem and the shared starting point w₀ (the same for every method)."""
    s = covariance(cfg, rng)
    w_star = rng.standard_normal(cfg.dim) / np.sqrt(cfg.dim)
    w0 = rng.standard_normal(cfg.dim) / np.sqrt(cfg.dim)
    if cfg.task == "least_squares":
        return least_squares(s, w_star), w0
    root = np.linalg.cholesky(s)  # x = root·z has covariance S
    x = rng.standard_normal((cfg.samples, cfg.dim)) @ root.T  # (n, d)
    y = np.sign(x @ w_star)
    y[rng.random(cfg.samples) < cfg.label_noise] *= -1.0
    return halfspace(x, y), w0


# -- oracle and line searches --------------------------------------------------------------


class Oracle:
    """Counts the gradient and function evaluations an optimizer makes."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.grads = 0
        self.funcs = 0

    def grad(self, w: Vector) -> Vector:
        """∇f(w), counted."""
        self.grads += 1
        return self.problem.grad(w)

    def value(self, w: Vector) -> float:
        """f(w), counted."""
        self.funcs += 1
        return self.problem.value(w)


def line_min(oracle: Oracle, base: Vector, d: Vector, start: float, scale: float,
             method: str, steps: int) -> float:
    """argmin_a f(base + a·d), bracketed from ``start`` in steps of ``scale``, then refined.

    ``bisection`` halves a bracket of the derivative's sign change (gradient calls);
    ``golden`` shrinks a bracket of the minimum by the golden ratio (function calls).

    Raises:
        ArithmeticError: no bracket within 2^100 · ``scale`` (f is not bounded below).
    """
    if method == "bisection":
        slope = lambda a: float(oracle.grad(base + a * d) @ d)  # noqa: E731
        bracket = _sign_bracket(slope, start, scale)
        if bracket is None:  # the derivative vanishes at start: it is the minimizer
            return start
        lo, hi = bracket
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if slope(mid) < 0 else (lo, mid)
        return 0.5 * (lo + hi)
    phi = lambda a: oracle.value(base + a * d)  # noqa: E731
    return _golden(phi, *_min_bracket(phi, start, scale), steps)


_MAX_DOUBLINGS = 100


def _sign_bracket(slope: Callable[[float], float], start: float, scale: float
                  ) -> tuple[float, float] | None:
    """(lo, hi) with slope(lo) < 0 < slope(hi), stepping out from ``start`` by doubling.

    ``None`` when slope(start) = 0.
    """
    first = slope(start)
    if first == 0.0:
        return None
    step = scale if first < 0 else -scale
    a, b = start, start + step
    for _ in range(_MAX_DOUBLINGS):
        if (slope(b) < 0) != (step > 0):
            return (a, b) if step > 0 else (b, a)
        a, b, step = b, b + 2 * step, 2 * step
    raise ArithmeticError(f"no sign change of the derivative within {abs(step):.3g} of {start}")


def _min_bracket(phi: Callable[[float], float], start: float, scale: float
                 ) -> tuple[float, float]:
    """(lo, hi) around a minimizer of a convex phi: a downhill walk with doubling steps."""
    a, b = start, start + scale
    fa, fb = phi(a), phi(b)
    if fb > fa:
        a, b, fa, fb = b, a, fb, fa  # walk downhill from a to b
    c = b + 2.0 * (b - a)
    fc = phi(c)
    for _ in range(_MAX_DOUBLINGS):
        if fc >= fb:
            return min(a, c), max(a, c)
        a, b, fb = b, c, fc
        c = b + 2.0 * (b - a)
        fc = phi(c)
    raise ArithmeticError(f"no minimum bracketed within {abs(c - start):.3g} of {start}")


def _golden(phi: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """Golden-section search on [lo, hi]: one function call per step."""
    r = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = phi(x1), phi(x2)
    for _ in range(steps):
        if f1 < f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - r * (hi - lo)
            f1 = phi(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + r * (hi - lo)
            f2 = phi(x2)
    return 0.5 * (lo + hi)


# -- the optimizers ------------------------------------------------------------------------


@dataclass
class Trace:
    """What one optimizer did: f(w_t) − f* and cumulative calls, each (iters+1,)."""

    subopt: np.ndarray
    grads: np.ndarray
    funcs: np.ndarray


def optimize(method: str, problem: Problem, w0: Vector, cfg: KohlerConfig) -> Trace:
    """Run ``method`` for ``cfg.iters`` iterations from ``w0``; record after each one.

    A method that breaks down (a non-finite value, a line search without a bracket) stops
    there; the rest of its trace is NaN.
    """
    oracle = Oracle(problem)
    step = 2.0 / (problem.mu + problem.lipschitz)
    iterate = {"gd": _gd_step, "gd_line_search": _line_search_step,
               "decoupled": _decoupled_step}[method]
    state = {"w": w0.copy(), "u": w0.copy(), "g": _s_norm(w0, problem.metric)}
    rows = [(problem.value(w0) - problem.f_star, 0, 0)]  # monitoring calls are not counted
    with np.errstate(all="ignore"):
        for _ in range(cfg.iters):
            try:
                iterate(state, oracle, step, cfg)
            except ArithmeticError:
                break  # the method broke down: the rest of its trace stays NaN
            value = problem.value(state["w"])
            if not np.isfinite(value):
                break
            rows.append((value - problem.f_star, oracle.grads, oracle.funcs))
    trace = np.full((cfg.iters + 1, 3), np.nan)
    trace[: len(rows)] = rows
    return Trace(trace[:, 0], trace[:, 1], trace[:, 2])


def _gd_step(state: dict, oracle: Oracle, step: float, cfg: KohlerConfig) -> None:
    state["w"] = state["w"] - step * oracle.grad(state["w"])


def _line_search_step(state: dict, oracle: Oracle, step: float, cfg: KohlerConfig) -> None:
    d = -oracle.grad(state["w"])
    a = line_min(oracle, state["w"], d, step, step, cfg.line_search, cfg.search_steps)
    state["w"] = state["w"] + a * d


def _s_norm(u: Vector, s: np.ndarray) -> float:
    return float(np.sqrt(u @ s @ u))


def _decoupled_step(state: dict, oracle: Oracle, step: float, cfg: KohlerConfig) -> None:
    """A line search on g for û = u/‖u‖_S, then a gradient step on u at w = g·û."""
    s, u = oracle.problem.metric, state["u"]
    norm = _s_norm(u, s)
    unit = u / norm
    g = line_min(oracle, np.zeros_like(u), unit, state["g"], max(abs(state["g"]), 1e-3),
                 cfg.line_search, cfg.search_steps)
    grad_w = oracle.grad(g * unit)
    # ∂w/∂u = (g/‖u‖_S)(I − u uᵀS/‖u‖²_S), so ∇_u f = (g/‖u‖_S)(∇f − S u ⟨u, ∇f⟩/‖u‖²_S).
    grad_u = (g / norm) * (grad_w - (s @ u) * float(u @ grad_w) / norm**2)
    if g != 0.0:
        u = u - step * norm**2 / g**2 * grad_u
    state["u"], state["g"] = u, g
    state["w"] = g * u / _s_norm(u, s)


# -- the recipe ----------------------------------------------------------------------------


def build(cfg: KohlerConfig, env: RunEnv) -> Measure:
    """One problem per run and the three optimizers on it; their traces are stored.

    The problem is seeded by the run's seed alone, so every κ and task of a seed shares
    the rotation, w* and w₀.
    """

    def run(log: LogFn) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([env.seed, 2019]))
        problem, w0 = make_problem(cfg, rng)
        for method in METHODS:
            trace = optimize(method, problem, w0, cfg)
            log(0, SUBOPT.key(method=method), trace.subopt)
            log(0, GRAD_EVALS.key(method=method), trace.grads)
            log(0, FUNC_EVALS.key(method=method), trace.funcs)

    return Measure(run)


RECIPE = register_recipe(Recipe(DECOUPLING, PRESETS, build))
