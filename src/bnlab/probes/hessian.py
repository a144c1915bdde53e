"""Hessian spectrum and curvature: top eigenvalues, trace, activation-space HVPs.

Every quantity here is built from Hessian-vector products (HVPs) of the mini-batch loss
``L(w) = loss_fn(model(x), y)``. Each call runs **one** forward pass and **one**
differentiable backward pass (``create_graph=True``), then reuses that gradient graph for
every HVP (one double-backward each), as PyHessian does (PEERS.md §3).

The eigensolver is a thick-restart Lanczos method with full reorthogonalization. On the
Krylov space of dimension j it finds the Ritz values of ``H`` exactly, so the top
eigenvalue converges at the Chebyshev rate ``~ (1 - 2·sqrt(gap))^j`` instead of the power
method's ``(1 - gap)^j`` (PyHessian iterates the power method). Convergence is declared
from the Ritz residual ``‖H y - θ y‖ = β_j |s_j|``, known without extra products, so some
eigenvalue λ has ``|θ - λ| <= tol·|θ|`` when it stops (and, with a spectral gap g, the
error is also ``<= residual²/g``, far smaller).

Unlike PyHessian, which forces ``model.eval()``, the BN mode is explicit: ``"train"`` is the
Hessian of the training objective (batch statistics), ``"eval"`` the running-statistics loss
(PEERS.md §15, complaint 1). Nothing is left behind (see :mod:`bnlab.probes._state`).

**Precision.** Every function here runs with TF32 off (:func:`tf32_disabled`): PyTorch lets
cuDNN convolutions use TF32 by default, which moved the top eigenvalue of a VGG-16 by
3.5e-3 (relative) on an H200, against 1.4e-4 with it off (issue 15). The global flags are
put back afterwards, also when the measurement raises. On the CPU the flags have no effect.

**Cost.** One HVP is a double backward through the retained graph: about the cost of 2-4
training steps (forward + backward + update) of the same batch (VGG-16/4, batch 128, CPU:
see benchmarks/bench_hessian.py). The setup (1 forward + 1 create-graph backward) costs
about one more step. Cap a measurement with ``budget=HessianBudget(hvps=..., seconds=...)``:
it stops early, says so in its result (and with a :class:`HessianBudgetWarning` from the
functions that return bare numbers), and reports the accuracy reached.

**Per-call overhead** is kept off the device's critical path: the start vector is drawn on
the parameters' device, the Lanczos loop moves one small vector to the host per product (the
new column of T and the residual norm, needed for the stopping test), and the trace sums
its samples on the device, moving them once at the end.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from bnlab.layers.sites import resolve_module
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = [
    "HessianBudget",
    "HessianBudgetWarning",
    "HessianEigs",
    "HessianTrace",
    "activation_hvp",
    "hessian_eigs",
    "hessian_top_eigenvalues",
    "hessian_trace",
    "hessian_trace_estimate",
    "tf32_disabled",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Hvp = Callable[[torch.Tensor], torch.Tensor]


# -- precision: TF32 off for the duration -------------------------------------------------


def _precision_settings() -> list[object]:
    """The per-operation ``fp32_precision`` settings (torch >= 2.9), or ``[]`` before them.

    CUDA matmul, cuDNN conv and RNN, and oneDNN (CPU) matmul, conv and RNN.
    """
    b = torch.backends
    settings = [b.cuda.matmul, getattr(b.cudnn, "conv", None), getattr(b.cudnn, "rnn", None)]
    mkldnn = getattr(b, "mkldnn", None)
    settings += [getattr(mkldnn, op, None) for op in ("matmul", "conv", "rnn")]
    found = [s for s in settings if isinstance(getattr(s, "fp32_precision", None), str)]
    return found if len(found) == len(settings) else []


def _read(getter: Callable[[], object]) -> object:
    """A legacy flag's value, or ``None`` where torch refuses to read it (mixed APIs)."""
    try:
        return getter()
    except RuntimeError:
        return None


@contextmanager
def tf32_disabled() -> Iterator[None]:
    """Run the block with TF32 (and any reduced-precision fp32 math) off, then restore.

    Inside, ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
    read ``False`` and ``torch.get_float32_matmul_precision()`` reads ``"highest"``; with
    torch >= 2.9, a per-operation ``fp32_precision`` that still asks for TF32 or bf16 (set
    through the new API, on CUDA or oneDNN) is set to ``"ieee"`` as well. On exit, also on
    an exception, every flag and setting is put back exactly as it was. The flags are
    process-global: do not change them from another thread meanwhile.

    Every curvature function of this module runs inside it: TF32, PyTorch's default for
    cuDNN convolutions, moved a VGG-16's top Hessian eigenvalue by 3.5e-3 relative on an
    H200, against 1.4e-4 with it off (issue 15). On the CPU the CUDA flags do nothing.

    Example:
        >>> with tf32_disabled():
        ...     assert not torch.backends.cudnn.allow_tf32
    """
    settings = _precision_settings()
    matmul = _read(torch.get_float32_matmul_precision)
    cudnn = _read(lambda: torch.backends.cudnn.allow_tf32)
    saved = [s.fp32_precision for s in settings]  # type: ignore[attr-defined]
    try:
        torch.set_float32_matmul_precision("highest")  # = cuda.matmul.allow_tf32 False
        torch.backends.cudnn.allow_tf32 = False
        for s in settings:  # a parent set to "tf32" through the new API still shows through
            if s.fp32_precision not in ("none", "ieee"):  # type: ignore[attr-defined]
                s.fp32_precision = "ieee"  # type: ignore[attr-defined]
        yield
    finally:
        if matmul is not None:
            torch.set_float32_matmul_precision(str(matmul))
        if cudnn is not None:
            torch.backends.cudnn.allow_tf32 = bool(cudnn)
        for s, value in zip(settings, saved, strict=True):  # last: the exact stored values
            s.fp32_precision = value  # type: ignore[attr-defined]


# -- budget ---------------------------------------------------------------------------------


class HessianBudgetWarning(UserWarning):
    """A Hessian measurement stopped at its budget before reaching its accuracy target."""


@dataclass(frozen=True)
class HessianBudget:
    """A cap on the cost of one Hessian measurement.

    The measurement stops after the product that reaches either cap and says so
    (``stopped_by="budget"``), with the accuracy it reached.

    Attributes:
        hvps: the most Hessian-vector products to spend, or ``None``.
        seconds: the most wall-clock seconds for the whole call (setup included), checked
            after each product (the product under way finishes), or ``None``.
    """

    hvps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.hvps is None and self.seconds is None:
            raise ValueError("HessianBudget needs hvps and/or seconds")
        if self.hvps is not None and (not isinstance(self.hvps, int) or self.hvps < 1):
            raise ValueError(f"HessianBudget.hvps must be an int >= 1, got {self.hvps!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"HessianBudget.seconds must be > 0, got {self.seconds!r}")


@dataclass
class _Clock:
    """Products spent and time elapsed since the call began, against an optional budget."""

    budget: HessianBudget | None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    start: float = field(default_factory=lambda: time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self, hvps: int) -> bool:
        """Whether the budget is used up after ``hvps`` products."""
        b = self.budget
        if b is None:
            return False
        if b.hvps is not None and hvps >= b.hvps:
            return True
        if b.seconds is None:
            return False
        if self.device.type == "cuda":  # time the work, not its queueing
            torch.cuda.synchronize(self.device)
        return self.elapsed() >= b.seconds


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HessianEigs:
    """The result of :func:`hessian_eigs`.

    Attributes:
        values: the k largest (algebraic) eigenvalues, largest first.
        hvps: the number of Hessian-vector products spent.
        converged: whether every Ritz residual met ``tol`` (or the Krylov space filled the
            whole parameter space, which makes the values exact).
        residuals: ``‖H y_i - θ_i y_i‖`` of each returned Ritz pair (same order as values).
        stopped_by: ``"tol"`` (every residual met tol), ``"dimension"`` (the Krylov space is
            the whole space), ``"max_iter"`` or ``"budget"``.
        seconds: wall-clock time of the call.
    """

    values: list[float]
    hvps: int
    converged: bool
    residuals: list[float]
    stopped_by: str = "tol"
    seconds: float = 0.0

    @property
    def accuracy(self) -> list[float]:
        """Per value θ, ``residual / |θ|``: an eigenvalue of H lies within ``accuracy·|θ|``."""
        return [r / max(abs(v), np.finfo(np.float64).tiny)
                for v, r in zip(self.values, self.residuals, strict=True)]  # fmt: skip


@dataclass(frozen=True)
class HessianTrace:
    """The result of :func:`hessian_trace_estimate`.

    Attributes:
        value: the Hutchinson estimate of ``tr H``.
        samples: the number of Rademacher probes used (one HVP each).
        stderr: the standard error of ``value`` (sample std / sqrt(samples); NaN for 1).
        stopped_by: ``"samples"`` (all were drawn) or ``"budget"``.
        seconds: wall-clock time of the call.
    """

    value: float
    samples: int
    stderr: float
    stopped_by: str = "samples"
    seconds: float = 0.0


# -- the HVP operator -------------------------------------------------------------------------


def _select_params(model: nn.Module, layer: str | int | None) -> list[nn.Parameter]:
    """The trainable parameters of ``model`` or of one of its modules."""
    module = model if layer is None else resolve_module(model, layer)[1]
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        where = "the model" if layer is None else f"layer {layer!r}"
        raise ValueError(f"{where} has no parameters with requires_grad=True to differentiate")
    return params


@contextmanager
def _hvp_operator(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    bn_mode: str,
    layer: str | int | None,
) -> Iterator[tuple[Hvp, int, torch.Tensor]]:
    """Yield ``(hvp, n, grad)``: ``hvp(v)`` for flat ``v`` of length n, inside no_trace.

    ``grad`` is the flat (n,) gradient at w, detached (a free by-product of the setup).
    ``hvp`` writes into one buffer: its result is overwritten by the next call. TF32 is off
    for the whole block (:func:`tf32_disabled`).

    Cost: 1 forward + 1 backward with ``create_graph`` on entry; each ``hvp`` call is one
    double-backward through that retained graph (the graph is built once, never per product).
    """
    inputs, targets = batch
    with tf32_disabled(), no_trace(model) as replay, _bn_mode(model, bn_mode):
        params = _select_params(model, layer)
        replay()
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        # Parameters the loss does not reach (or reaches linearly) have no second-order
        # graph: their rows of H are zero, so they are left out of the double backward.
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        outs = [grads[i] for i in live]
        sizes = [p.numel() for p in params]
        flat_grad = torch.cat([
            (torch.zeros_like(p) if g is None else g.detach()).reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ])  # (n,)
        result = torch.empty_like(flat_grad)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            chunks = torch.split(v, sizes)  # flat (n,) -> per-parameter pieces (views)
            vs = [chunks[i].view_as(params[i]) for i in live]
            hv = torch.autograd.grad(
                outs, params, grad_outputs=vs, retain_graph=True, allow_unused=True,
                materialize_grads=True,
            )
            return torch.cat([h.reshape(-1) for h in hv], out=result)  # (n,)

        yield hvp, sum(sizes), flat_grad


# -- Lanczos ----------------------------------------------------------------------------------


def _orthogonalize(basis: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ``w`` off the rows of ``basis`` twice (classical Gram-Schmidt, re-run once).

    Returns ``(coeffs, r)`` with ``w = basisᵀ coeffs + r``; the second pass removes the
    rounding left by the first (Kahan's "twice is enough").
    """
    coeffs = basis @ w  # (j,)
    r = w - basis.T @ coeffs
    extra = basis @ r
    return coeffs + extra, r - basis.T @ extra


def _generator(device: torch.device, seed: int) -> torch.Generator:
    """A private generator on ``device`` (draws happen where the vectors live)."""
    return torch.Generator(device=device).manual_seed(seed)


def _random_unit(n: int, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    v = torch.randn(n, generator=gen, dtype=like.dtype, device=like.device)
    return v / torch.linalg.vector_norm(v)


GRADIENT_MIX = 0.3  # weight of the random part of the gradient-informed start vector


def _start_vector(start: str, grad: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The first Lanczos vector: random, or the normalized gradient plus a random part.

    The mini-batch gradient lies mostly in the span of the top Hessian eigenvectors
    (Gur-Ari, Roberts & Dyer 2018, "Gradient descent happens in a tiny subspace"), so a
    Krylov space grown from it finds the top eigenvalues in fewer products. The random
    part (weight :data:`GRADIENT_MIX`) keeps a nonzero overlap with every eigenvector, so
    no eigenvalue is missed when the gradient happens to be orthogonal to it. A zero or
    non-finite gradient falls back to the random vector, decided on the device (no sync).
    """
    r = _random_unit(grad.numel(), grad, gen)
    if start == "random":
        return r
    gnorm = torch.linalg.vector_norm(grad)
    usable = torch.isfinite(gnorm) & (gnorm > 0)
    v = grad / torch.where(usable, gnorm, torch.ones_like(gnorm)) + GRADIENT_MIX * r
    return torch.where(usable, v / torch.linalg.vector_norm(v), r)


def _ritz(T: np.ndarray, j: int, k: int, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values (largest first), their vectors in the basis, and the k top residuals."""
    theta, S = np.linalg.eigh(T[:j, :j])
    theta, S = theta[::-1], S[:, ::-1]  # largest first
    return theta, S, beta * np.abs(S[-1, : min(k, j)])


def _lanczos(
    hvp: Hvp, n: int, k: int, tol: float, max_iter: int, start: torch.Tensor, seed: int,
    clock: _Clock,
) -> HessianEigs:  # fmt: skip
    """Thick-restart Lanczos for the k largest eigenvalues of the symmetric operator ``hvp``.

    Keeps ``H V = V T + r e_lastᵀ`` for the orthonormal basis V (rows of ``basis``, on the
    device) and the small dense ``T = Vᵀ H V`` (on the host); every new column of T costs
    one product and one transfer of j + 1 numbers. When the basis is full, it keeps the best
    Ritz vectors (``T`` becomes diagonal) and goes on from the normalized residual, so no
    product is spent twice.
    """
    gen = _generator(start.device, seed + 1)  # not the start vector's draw
    ncv = min(n, max(2 * k + 20, 30))  # basis size before a restart
    keep = min(ncv - 1, k + max(k, 8))  # Ritz vectors kept across a restart
    basis = torch.empty(ncv, n, dtype=start.dtype, device=start.device)
    basis[0] = start
    T = np.zeros((ncv, ncv))
    j, hvps = 1, 0  # j = current basis size
    while True:
        coeffs, r = _orthogonalize(basis[:j], hvp(basis[j - 1]))
        hvps += 1
        # the one host transfer per product: the new column of T and the residual norm
        host = torch.cat([coeffs, torch.linalg.vector_norm(r).reshape(1)]).double().cpu().numpy()
        T[:j, j - 1] = T[j - 1, :j] = host[:-1]
        beta = float(host[-1])
        theta, S, res = _ritz(T, j, k, beta)
        top = min(k, j)
        scale = np.maximum(np.abs(theta[:top]), np.finfo(np.float64).tiny)
        done = j >= k and bool(np.all(res <= tol * scale))
        stopped_by = _stop_reason(done, j == n, hvps >= max_iter, clock.spent(hvps))
        if stopped_by is not None:
            return HessianEigs(
                [float(t) for t in theta[:top]], hvps, done or (j == n and j >= k),
                [float(x) for x in res], stopped_by, clock.elapsed(),
            )  # fmt: skip
        if beta <= 1e3 * np.finfo(np.float64).eps * max(1.0, float(np.abs(theta).max())):
            # An invariant subspace: carry on from a fresh direction orthogonal to it.
            r = _orthogonalize(basis[:j], _random_unit(n, start, gen))[1]
            beta = float(torch.linalg.vector_norm(r))
        if j == ncv:  # thick restart: basis <- top Ritz vectors, T <- diag(theta)
            Sk = torch.as_tensor(S[:, :keep].copy()).to(basis)  # (ncv, keep)
            basis[:keep] = Sk.T @ basis
            T[:] = 0.0
            T[np.arange(keep), np.arange(keep)] = theta[:keep]
            j = keep
        basis[j] = r / beta
        j += 1


def _stop_reason(done: bool, full: bool, max_iter: bool, budget: bool) -> str | None:
    """Why Lanczos stops now (first reason that holds, in this order), or ``None``."""
    for reason, holds in (("tol", done), ("dimension", full), ("max_iter", max_iter),
                          ("budget", budget)):  # fmt: skip
        if holds:
            return reason
    return None


def _warn_budget(what: str, detail: str) -> None:
    warnings.warn(f"{what} stopped at its budget: {detail}", HessianBudgetWarning, stacklevel=3)


# -- public functions -------------------------------------------------------------------------


def hessian_eigs(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    k: int = 1,
    bn_mode: str = "train",
    tol: float = 1e-4,
    max_iter: int = 100,
    layer: str | int | None = None,
    seed: int = 0,
    start: str = "gradient",
    budget: HessianBudget | None = None,
) -> HessianEigs:
    """Top-k Hessian eigenvalues of the batch loss, with the solver's bookkeeping.

    Solves ``H v = λ v`` for ``H = ∇²_w L(w)``, ``L(w) = loss_fn(model(x), y)``, by
    thick-restart Lanczos over HVPs (see the module docstring), with TF32 off.

    Cost: 1 forward + 1 backward with ``create_graph`` + ``hvps`` double-backward passes
    (``hvps <= max_iter``; each about 2-4 training steps, see the module docstring). Top-1
    at ``tol=1e-2`` took 3-5 HVPs on VGG-16/4 and ResNet-20 (eval mode, CIFAR-10 batch of
    128) for 1e-4 relative accuracy; train mode typically needs more. Memory: the retained
    graph plus ``max(2k + 20, 30)`` vectors of the parameter count.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        k: how many eigenvalues (the largest, algebraically).
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        tol: relative Ritz residual ``‖Hy - θy‖ <= tol·|θ|`` for each of the k pairs, so
            an eigenvalue of H lies within ``tol·|θ|`` of each value (when the top of the
            spectrum is a tight cluster, a loose tol may stop on one just below the largest).
        max_iter: the most Hessian-vector products to spend.
        layer: restrict ``w`` to one module's parameters (a name or a norm-site index).
        seed: seed of the starting vector (a private generator on the parameters' device;
            the global RNG is untouched).
        start: ``"gradient"`` (default): start from the batch gradient plus a random part,
            which the top eigenvectors dominate, so fewer products are needed
            (benchmarks/bench_hessian.py: ResNet-20, 3 instead of 5 for 1e-3 accuracy);
            ``"random"``: a random unit vector.
        budget: stop after this many products or seconds (:class:`HessianBudget`); the
            result then has ``stopped_by="budget"`` and its ``accuracy`` says how close
            the values are.

    Returns:
        A :class:`HessianEigs`; ``converged`` is False if ``max_iter`` or the budget ran out.

    Example:
        >>> eigs = hessian_eigs(model, F.cross_entropy, (x, y), k=2, bn_mode="eval")
        >>> eigs.values, eigs.hvps, eigs.accuracy
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if max_iter < 1 or tol <= 0:
        raise ValueError(f"need max_iter >= 1 and tol > 0, got {max_iter=} {tol=}")
    if start not in ("gradient", "random"):
        raise ValueError(f"start must be 'gradient' or 'random', got {start!r}")
    if budget is not None and not isinstance(budget, HessianBudget):
        raise ValueError(f"budget must be a HessianBudget or None, got {budget!r}")
    clock = _Clock(budget)
    with _hvp_operator(model, loss_fn, batch, bn_mode, layer) as (hvp, n, grad):
        if k > n:
            raise ValueError(f"k={k} exceeds the {n} parameters differentiated")
        clock.device = grad.device
        with torch.no_grad():  # the Lanczos vectors need no graph of their own
            v0 = _start_vector(start, grad, _generator(grad.device, seed))
            return _lanczos(hvp, n, k, tol, max_iter, v0, seed, clock)


def hessian_top_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    k: int = 1,
    bn_mode: str = "train",
    tol: float = 1e-4,
    max_iter: int = 100,
    layer: str | int | None = None,
    budget: HessianBudget | None = None,
) -> list[float]:
    """The k largest Hessian eigenvalues of the batch loss, largest first.

    A shorthand for ``hessian_eigs(...).values``; see :func:`hessian_eigs` for the
    arguments, the method and the cost (1 forward, 1 create-graph backward, at most
    ``max_iter`` HVPs; use :func:`hessian_eigs` to read the number spent). When the
    ``budget`` stops it before ``tol`` is met, a :class:`HessianBudgetWarning` gives the
    accuracy reached.
    """
    eigs = hessian_eigs(model, loss_fn, batch, k=k, bn_mode=bn_mode, tol=tol,
                        max_iter=max_iter, layer=layer, budget=budget)  # fmt: skip
    if eigs.stopped_by == "budget":
        _warn_budget("hessian_top_eigenvalues", f"{eigs.hvps} HVPs in {eigs.seconds:.2f} s, "
                     f"relative accuracy {max(eigs.accuracy):.1e} (tol {tol:g})")  # fmt: skip
    return eigs.values


def hessian_trace_estimate(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    bn_mode: str = "train",
    samples: int = 100,
    layer: str | int | None = None,
    seed: int = 0,
    budget: HessianBudget | None = None,
) -> HessianTrace:
    """Hutchinson's estimate of ``tr H`` with Rademacher probes, with its standard error.

    ``tr H ≈ (1/S) Σ_s v_sᵀ H v_s`` with ``v_s`` uniform on ``{-1, +1}^n``; unbiased, with
    variance ``2 Σ_{i≠j} H_ij²`` per sample, so exact when H is diagonal. TF32 is off.

    Cost: 1 forward + 1 backward with ``create_graph`` + ``samples`` double-backward passes
    (each about 2-4 training steps): the default 100 samples cost hundreds of steps (issue
    18: 262 steps on ShuffleNetV2), so give a ``budget`` or fewer samples when the
    standard error allows.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        samples: the number S of Rademacher vectors.
        layer: restrict to one module's parameters (a name or a norm-site index).
        seed: seed of the private generator (on the parameters' device) drawing the probes.
        budget: stop after this many products or seconds; the result has the samples used.

    Returns:
        A :class:`HessianTrace`.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}")
    clock = _Clock(budget)
    stopped_by = "samples"
    with _hvp_operator(model, loss_fn, batch, bn_mode, layer) as (hvp, n, template):
        clock.device = template.device
        gen = _generator(template.device, seed)
        values = []  # v·Hv per sample, kept on the device until the end
        for s in range(samples):
            v = torch.randint(0, 2, (n,), generator=gen, dtype=template.dtype,
                              device=template.device)  # fmt: skip
            v.mul_(2).sub_(1)  # (n,) ±1
            values.append(torch.dot(v, hvp(v).detach()))
            if s + 1 < samples and clock.spent(s + 1):
                stopped_by = "budget"
                break
        per_sample = torch.stack(values).double().cpu()
    count = len(per_sample)
    stderr = float(per_sample.std() / math.sqrt(count)) if count > 1 else math.nan
    return HessianTrace(float(per_sample.mean()), count, stderr, stopped_by, clock.elapsed())


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    bn_mode: str = "train",
    samples: int = 100,
    layer: str | int | None = None,
    seed: int = 0,
    budget: HessianBudget | None = None,
) -> float:
    """Hutchinson's estimate of ``tr H`` with Rademacher probes, as a float.

    A shorthand for ``hessian_trace_estimate(...).value``: see
    :func:`hessian_trace_estimate` for the method, the arguments and the cost
    (1 forward, 1 create-graph backward, ``samples`` HVPs). When the ``budget`` stops it
    early, a :class:`HessianBudgetWarning` gives the samples used and the standard error.
    """
    est = hessian_trace_estimate(model, loss_fn, batch, bn_mode=bn_mode, samples=samples,
                                 layer=layer, seed=seed, budget=budget)  # fmt: skip
    if est.stopped_by == "budget":
        _warn_budget("hessian_trace", f"{est.samples} of {samples} samples in "
                     f"{est.seconds:.2f} s, standard error {est.stderr:.3g}")  # fmt: skip
    return est.value


def _site_input_hook(store: dict[str, torch.Tensor]) -> Callable[..., tuple[object, ...]]:
    """A forward pre-hook that replaces the site's input by a leaf that requires grad."""

    def hook(module: nn.Module, args: tuple[object, ...]) -> tuple[object, ...]:
        del module
        if "y" in store:
            raise ValueError("the site module ran twice in one forward; pick a site used once")
        if not args or not isinstance(args[0], torch.Tensor):
            raise ValueError("the site module's first input is not a tensor")
        # Cutting the graph here is harmless: L is differentiated only downstream of y.
        store["y"] = args[0].detach().requires_grad_(True)
        return (store["y"], *args[1:])

    return hook


def activation_hvp(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    site: str | int,
    v: torch.Tensor | Sequence[torch.Tensor],
    *,
    bn_mode: str = "train",
) -> torch.Tensor | list[torch.Tensor]:
    """Hessian-vector products w.r.t. a site's pre-normalization outputs ``y``.

    Computes ``(∂²L/∂y∂y) v``, where ``y`` is the tensor entering the norm module of the
    site (the output of the feeding layer) and ``L`` is the batch loss as a function of
    ``y`` (with the normalization in ``bn_mode``). This is the ``H_jj`` of Santurkar et al.
    2018, Thm 4.2 (PAPERS.md §2.7); with ``site`` a name, any module's input works. TF32
    is off for the call (:func:`tf32_disabled`).

    Several vectors share one graph: pass a sequence to get one product each.

    Cost: 1 forward + 1 backward with ``create_graph`` + 1 double-backward per vector.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        site: a norm-site index (1-based) or a module name.
        v: a tensor of the shape of ``y``, e.g. (N, C) or (N, C, H, W), or a sequence of
            such tensors.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``H v``, detached, of the shape of ``y`` (a list of them for a sequence ``v``).
    """
    vs = [v] if isinstance(v, torch.Tensor) else list(v)
    if not vs:
        raise ValueError("v is an empty sequence; give at least one vector")
    _, module = resolve_module(model, site)
    inputs, targets = batch
    store: dict[str, torch.Tensor] = {}
    with tf32_disabled(), no_trace(model) as replay, _bn_mode(model, bn_mode):
        handle = module.register_forward_pre_hook(_site_input_hook(store))
        try:
            replay()
            loss = loss_fn(model(inputs), targets)
        finally:
            handle.remove()
        y = store["y"]
        for vi in vs:
            if vi.shape != y.shape:
                raise ValueError(f"v has shape {tuple(vi.shape)}, the site input {tuple(y.shape)}")
        (g,) = torch.autograd.grad(loss, y, create_graph=True)
        if not g.requires_grad:  # L is linear in y: the Hessian is zero
            out = [torch.zeros_like(y).detach() for _ in vs]
        else:
            out = [
                torch.autograd.grad(g, y, grad_outputs=vi.to(y), retain_graph=i + 1 < len(vs),
                                    materialize_grads=True)[0].detach()
                for i, vi in enumerate(vs)
            ]  # fmt: skip
    return out[0] if isinstance(v, torch.Tensor) else out
