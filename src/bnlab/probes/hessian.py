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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnlab.layers.sites import resolve_module
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = [
    "HessianEigs",
    "activation_hvp",
    "hessian_eigs",
    "hessian_top_eigenvalues",
    "hessian_trace",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Hvp = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class HessianEigs:
    """The result of :func:`hessian_eigs`.

    Attributes:
        values: the k largest (algebraic) eigenvalues, largest first.
        hvps: the number of Hessian-vector products spent.
        converged: whether every Ritz residual met ``tol`` within ``max_iter`` products.
        residuals: ``‖H y_i - θ_i y_i‖`` of each returned Ritz pair (same order as values).
    """

    values: list[float]
    hvps: int
    converged: bool
    residuals: list[float]


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

    Cost: 1 forward + 1 backward with ``create_graph`` on entry; each ``hvp`` call is one
    double-backward through that retained graph.
    """
    inputs, targets = batch
    with no_trace(model) as replay, _bn_mode(model, bn_mode):
        params = _select_params(model, layer)
        replay()
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        # Parameters the loss does not reach (or reaches linearly) have no second-order
        # graph: their rows of H are zero, so they are left out of the double backward.
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        sizes = [p.numel() for p in params]
        flat_grad = torch.cat([
            (torch.zeros_like(p) if g is None else g.detach()).reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ])  # (n,)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            chunks = torch.split(v, sizes)  # flat (n,) -> per-parameter pieces
            outs = [grads[i] for i in live]
            vs = [chunks[i].view_as(params[i]) for i in live]
            hv = torch.autograd.grad(
                outs, params, grad_outputs=vs, retain_graph=True, allow_unused=True,
                materialize_grads=True,
            )
            return torch.cat([h.reshape(-1) for h in hv])  # (n,)

        yield hvp, sum(sizes), flat_grad


def _orthogonalize(basis: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ``w`` off the rows of ``basis`` twice (classical Gram-Schmidt, re-run once).

    Returns ``(coeffs, r)`` with ``w = basisᵀ coeffs + r``; the second pass removes the
    rounding left by the first (Kahan's "twice is enough").
    """
    coeffs = basis @ w  # (j,)
    r = w - basis.T @ coeffs
    extra = basis @ r
    return coeffs + extra, r - basis.T @ extra


def _random_unit(n: int, template: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    v = torch.randn(n, generator=gen, dtype=torch.float64).to(template)
    return v / v.norm()


GRADIENT_MIX = 0.3  # weight of the random part of the gradient-informed start vector


def _start_vector(
    start: str, grad: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """The first Lanczos vector: random, or the normalized gradient plus a random part.

    The mini-batch gradient lies mostly in the span of the top Hessian eigenvectors
    (Gur-Ari, Roberts & Dyer 2018, "Gradient descent happens in a tiny subspace"), so a
    Krylov space grown from it finds the top eigenvalues in fewer products. The random
    part (weight :data:`GRADIENT_MIX`) keeps a nonzero overlap with every eigenvector, so
    no eigenvalue is missed when the gradient happens to be orthogonal to it.
    """
    r = _random_unit(grad.numel(), grad, gen)
    gnorm = float(grad.norm())
    if start == "random" or not np.isfinite(gnorm) or gnorm == 0.0:
        return r
    v = grad / gnorm + GRADIENT_MIX * r
    return v / v.norm()


def _lanczos(
    hvp: Hvp, n: int, k: int, tol: float, max_iter: int, start: torch.Tensor, seed: int
) -> HessianEigs:
    """Thick-restart Lanczos for the k largest eigenvalues of the symmetric operator ``hvp``.

    Keeps ``H V = V T + r e_lastᵀ`` for the orthonormal basis V (rows of ``basis``) and the
    small dense ``T = Vᵀ H V``; every new column of T costs one product. When the basis is
    full, it keeps the best Ritz vectors (``T`` becomes diagonal) and goes on from the
    normalized residual, so no product is spent twice.
    """
    template = start
    gen = torch.Generator().manual_seed(seed + 1)  # not the start vector's draw
    ncv = min(n, max(2 * k + 20, 30))  # basis size before a restart
    keep = min(ncv - 1, k + max(k, 8))  # Ritz vectors kept across a restart
    basis = torch.empty(ncv, n, dtype=template.dtype, device=template.device)
    basis[0] = start
    T = np.zeros((ncv, ncv))
    j, hvps = 1, 0  # j = current basis size
    while True:
        w = hvp(basis[j - 1])
        hvps += 1
        coeffs, r = _orthogonalize(basis[:j], w)
        col = coeffs.double().cpu().numpy()
        T[:j, j - 1] = col
        T[j - 1, :j] = col
        beta = float(r.norm())
        theta, S = np.linalg.eigh(T[:j, :j])
        theta, S = theta[::-1], S[:, ::-1]  # largest first
        top = min(k, j)
        res = beta * np.abs(S[-1, :top])
        scale = np.maximum(np.abs(theta[:top]), np.finfo(np.float64).tiny)
        done = j >= k and bool(np.all(res <= tol * scale))
        if done or hvps >= max_iter or j == n:
            converged = done or (j == n and j >= k)
            return HessianEigs(
                [float(t) for t in theta[:top]], hvps, converged, [float(x) for x in res]
            )
        if beta <= 1e3 * np.finfo(np.float64).eps * max(1.0, float(np.abs(theta).max())):
            # An invariant subspace: carry on from a fresh direction orthogonal to it.
            r = _orthogonalize(basis[:j], _random_unit(n, template, gen))[1]
            beta = float(r.norm())
        if j == ncv:  # thick restart: basis <- top Ritz vectors, T <- diag(theta)
            Sk = torch.as_tensor(S[:, :keep].copy()).to(basis)  # (ncv, keep)
            basis[:keep] = Sk.T @ basis
            T[:] = 0.0
            T[np.arange(keep), np.arange(keep)] = theta[:keep]
            j = keep
        basis[j] = r / beta
        j += 1


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
) -> HessianEigs:
    """Top-k Hessian eigenvalues of the batch loss, with the solver's bookkeeping.

    Solves ``H v = λ v`` for ``H = ∇²_w L(w)``, ``L(w) = loss_fn(model(x), y)``, by
    thick-restart Lanczos over HVPs (see the module docstring).

    Cost: 1 forward + 1 backward with ``create_graph`` + ``hvps`` double-backward passes
    (``hvps <= max_iter``). Memory: the retained graph plus ``max(2k + 20, 30)`` vectors of
    the parameter count.

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
        seed: seed of the starting vector (a private generator; global RNG untouched).
        start: ``"gradient"`` (default): start from the batch gradient plus a random part,
            which the top eigenvectors dominate, so fewer products are needed
            (benchmarks/bench_hessian.py: ResNet-20, 3 instead of 5 for 1e-3 accuracy);
            ``"random"``: a random unit vector.

    Returns:
        A :class:`HessianEigs`; ``converged`` is False if ``max_iter`` ran out first.

    Example:
        >>> eigs = hessian_eigs(model, F.cross_entropy, (x, y), k=2, bn_mode="eval")
        >>> eigs.values, eigs.hvps
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if max_iter < 1 or tol <= 0:
        raise ValueError(f"need max_iter >= 1 and tol > 0, got {max_iter=} {tol=}")
    if start not in ("gradient", "random"):
        raise ValueError(f"start must be 'gradient' or 'random', got {start!r}")
    with _hvp_operator(model, loss_fn, batch, bn_mode, layer) as (hvp, n, grad):
        if k > n:
            raise ValueError(f"k={k} exceeds the {n} parameters differentiated")
        with torch.no_grad():  # the Lanczos vectors need no graph of their own
            v0 = _start_vector(start, grad, torch.Generator().manual_seed(seed))
            return _lanczos(hvp, n, k, tol, max_iter, v0, seed)


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
) -> list[float]:
    """The k largest Hessian eigenvalues of the batch loss, largest first.

    A shorthand for ``hessian_eigs(...).values``; see :func:`hessian_eigs` for the
    arguments, the method and the cost (1 forward, 1 create-graph backward, at most
    ``max_iter`` HVPs; use :func:`hessian_eigs` to read the number spent).
    """
    return hessian_eigs(
        model, loss_fn, batch, k=k, bn_mode=bn_mode, tol=tol, max_iter=max_iter, layer=layer
    ).values


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    bn_mode: str = "train",
    samples: int = 100,
    layer: str | int | None = None,
    seed: int = 0,
) -> float:
    """Hutchinson's estimate of ``tr H`` with Rademacher probes.

    ``tr H ≈ (1/S) Σ_s v_sᵀ H v_s`` with ``v_s`` uniform on ``{-1, +1}^n``; unbiased, with
    variance ``2 Σ_{i≠j} H_ij²`` per sample, so exact when H is diagonal.

    Cost: 1 forward + 1 backward with ``create_graph`` + ``samples`` double-backward passes.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        samples: the number S of Rademacher vectors.
        layer: restrict to one module's parameters (a name or a norm-site index).
        seed: seed of the private generator drawing the probes.

    Returns:
        The estimate, a float.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}")
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with _hvp_operator(model, loss_fn, batch, bn_mode, layer) as (hvp, n, template):
        for _ in range(samples):
            v = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(template)  # (n,) ±1
            total += float(torch.dot(v, hvp(v).detach()))
    return total / samples


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
    v: torch.Tensor,
    *,
    bn_mode: str = "train",
) -> torch.Tensor:
    """A Hessian-vector product w.r.t. a site's pre-normalization outputs ``y``.

    Computes ``(∂²L/∂y∂y) v``, where ``y`` is the tensor entering the norm module of the
    site (the output of the feeding layer) and ``L`` is the batch loss as a function of
    ``y`` (with the normalization in ``bn_mode``). This is the ``H_jj`` of Santurkar et al.
    2018, Thm 4.2 (PAPERS.md §2.7); with ``site`` a name, any module's input works.

    Cost: 1 forward + 1 backward with ``create_graph`` + 1 double-backward.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        site: a norm-site index (1-based) or a module name.
        v: a tensor of the shape of ``y``, e.g. (N, C) or (N, C, H, W).
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``H v``, detached, of the shape of ``y``.
    """
    _, module = resolve_module(model, site)
    inputs, targets = batch
    store: dict[str, torch.Tensor] = {}
    with no_trace(model) as replay, _bn_mode(model, bn_mode):
        handle = module.register_forward_pre_hook(_site_input_hook(store))
        try:
            replay()
            loss = loss_fn(model(inputs), targets)
        finally:
            handle.remove()
        y = store["y"]
        if v.shape != y.shape:
            raise ValueError(f"v has shape {tuple(v.shape)}, the site input {tuple(y.shape)}")
        (g,) = torch.autograd.grad(loss, y, create_graph=True)
        if not g.requires_grad:  # L is linear in y: the Hessian is zero
            return torch.zeros_like(y).detach()
        (hv,) = torch.autograd.grad(g, y, grad_outputs=v.to(y), materialize_grads=True)
    return hv.detach()
