"""The pure functional core of the bnlab norms: no modules, no state but the buffers passed in.

Every function takes inputs of shape (N, C, *) with channels in dim 1, reduces over every
dim but 1 (the conv convention of Ioffe & Szegedy 2015 §3.2: H and W count as batch), and
updates the running buffers it is given in place, as :func:`torch.nn.functional.batch_norm`
does, with PyTorch's momentum rule ``running ← (1 − m)·running + m·batch``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bnlab.layers import _grouped

__all__ = [
    "batch_norm_reference",
    "batch_renorm",
    "ghost_batch_norm",
    "lp_norm",
    "reduce_dims",
    "santurkar_noise",
]


def reduce_dims(x: Tensor) -> list[int]:
    """Every dim of ``x`` but the channel dim 1: ``[0, 2, 3, ...]``."""
    return [0, *range(2, x.dim())]


def _per_channel(t: Tensor, x: Tensor) -> Tensor:
    """View a (C,) tensor as (1, C, 1, ...) to broadcast against ``x`` (N, C, *)."""
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in: float32 for float16/bfloat16, else ``dtype``.

    PyTorch's own batch norm does the same ("opmath"): a half-precision variance, s² or
    (var + eps)^(-3/2) overflows float16 from values of a few hundred on (65504 is its
    largest value), and bfloat16 keeps 8 bits of mantissa.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _update_running(running: Tensor | None, batch: Tensor, factor: float) -> None:
    """``running ← (1 − factor)·running + factor·batch`` (PyTorch's momentum convention)."""
    if running is not None and factor > 0.0:
        running.lerp_(batch.to(running.dtype), factor)


# -- bn_reference: Ioffe & Szegedy 2015, Algorithms 1 and 2 ---------------------------------


class _BatchNormReferenceFn(torch.autograd.Function):
    """Algorithm 1 with the backward of Ioffe & Szegedy 2015 §3, term by term."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        dims = reduce_dims(x)
        mu = x.mean(dims, keepdim=True)  # (1, C, 1, ...)
        var = ((x - mu) ** 2).mean(dims, keepdim=True)  # biased, as in Algorithm 1
        x_hat = (x - mu) / torch.sqrt(var + eps)
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        return _per_channel(weight, x) * x_hat + _per_channel(bias, x)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        dims = reduce_dims(x)
        # μ and σ² again, from x: the backward is then a differentiable function of x, so a
        # double backward (Hessian probes, create_graph=True) is exact
        mu = x.mean(dims, keepdim=True)
        var = ((x - mu) ** 2).mean(dims, keepdim=True)
        m = x.numel() // x.shape[1]  # the effective batch m' = m·p·q (§3.2)
        inv_std = 1.0 / torch.sqrt(var + ctx.eps)
        x_hat = (x - mu) * inv_std
        # §3, the chain rule as printed in the paper:
        d_xhat = grad_y * _per_channel(weight, x)
        d_var = (d_xhat * (x - mu)).sum(dims, keepdim=True) * -0.5 * inv_std**3
        d_mu = (d_xhat * -inv_std).sum(dims, keepdim=True) + d_var * (-2.0 * (x - mu)).sum(
            dims, keepdim=True
        ) / m
        d_x = d_xhat * inv_std + d_var * 2.0 * (x - mu) / m + d_mu / m
        d_weight = (grad_y * x_hat).sum(dims)
        d_bias = grad_y.sum(dims)
        return d_x, d_weight, d_bias, None


def batch_norm_reference(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> Tensor:
    r"""Batch normalization exactly as Ioffe & Szegedy 2015 write it (the teaching twin).

    Training (Algorithm 1) normalizes with the batch mean and biased variance and
    backpropagates with the paper's §3 formulas; the running buffers, if given, move by
    ``momentum`` towards the batch mean and the unbiased variance :math:`\frac{m}{m-1}\sigma_B^2`
    (Algorithm 2). Eval uses the folded affine map of Algorithm 2:
    :math:`y = \frac{\gamma}{\sqrt{V + \epsilon}} x + (\beta - \frac{\gamma E}{\sqrt{V+\epsilon}})`.
    float16 and bfloat16 inputs are trained in float32 (statistics, output and the §3
    backward), with the output rounded to the input's dtype, as PyTorch's batch norm does.

    Args:
        x: input (N, C, *).
        running_mean: (C,) buffer or ``None``.
        running_var: (C,) buffer or ``None``.
        weight: γ (C,) or ``None`` (= 1).
        bias: β (C,) or ``None`` (= 0).
        training: batch statistics (``True``) or running statistics (``False``).
        momentum: the running-average factor of this step.
        eps: added to the variance.

    Returns:
        The normalized tensor, shape of ``x``.
    """
    weight = x.new_ones(x.shape[1]) if weight is None else weight
    bias = x.new_zeros(x.shape[1]) if bias is None else bias
    if training and _opmath(x.dtype) != x.dtype:
        # float16/bfloat16: Algorithm 1 and the §3 backward run in float32 (opmath), the
        # result is rounded once; in float16 the backward's inv_std**3 overflows for any
        # channel with σ² + eps < 6.6e-4 (e.g. a constant channel: eps^-3/2 = 3.2e7)
        up = _opmath(x.dtype)
        y = batch_norm_reference(
            x.to(up), running_mean, running_var, weight.to(up), bias.to(up),
            training, momentum, eps,
        )  # fmt: skip
        return y.to(x.dtype)
    if not training:
        scale = weight / torch.sqrt(running_var + eps)  # (C,)
        shift = bias - scale * running_mean
        return _per_channel(scale, x) * x + _per_channel(shift, x)
    if running_mean is not None:
        with torch.no_grad():
            dims = reduce_dims(x)
            m = x.numel() // x.shape[1]
            var, mean = torch.var_mean(x, dims, correction=0)
            _update_running(running_mean, mean, momentum)
            _update_running(running_var, var * m / (m - 1), momentum)
    return _BatchNormReferenceFn.apply(x, weight, bias, eps)


def _grads_by_recomputation(
    forward: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, grad_out: Tensor,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # fmt: skip
    """dL/d(x, γ, β) by autograd through a differentiable re-run of the forward.

    The fast backward passes of :class:`_LpNormFn` and :class:`_GhostBatchNormFn` use
    statistics saved without a graph and write into preallocated memory, so they cannot be
    differentiated again. Under ``create_graph=True`` (grad mode on inside the backward:
    Hessian-vector products) the gradients come from this re-run instead, whose graph
    reaches x, γ, β: the double backward is exact.
    """
    inputs = [t for t, need in zip((x, weight, bias), needs, strict=True)
              if need and t is not None and t.requires_grad]  # fmt: skip
    y = forward(x, weight, bias)
    grads = torch.autograd.grad(y, inputs, grad_out, create_graph=True) if inputs else ()
    found = iter(grads)
    return tuple(  # type: ignore[return-value]
        next(found) if need and t is not None and t.requires_grad else None
        for t, need in zip((x, weight, bias), needs, strict=True)
    )


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """γ y + β per channel (either may be ``None``)."""
    if weight is not None:
        y = y * _per_channel(weight, y)
    return y if bias is None else y + _per_channel(bias, y)


# -- lp normalization: Santurkar et al. 2018 §3.3 ------------------------------------------


def _lp_scale(z: Tensor, p: float, dims: list[int], m: int) -> Tensor:
    """The per-channel ℓp average ((1/m) Σ |z|^p)^(1/p), for finite p. (C,)."""
    return torch.linalg.vector_norm(z, p, dims) / m ** (1.0 / p)


def _abs_max(z: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel of z (N, C, *): max |z| (C,) and where it is, (2, C) = (n, flat position).

    Max and min with indices are two read-only passes; the position is kept for the ℓ∞
    subgradient so the backward needs no search (ties: one of them, a valid subgradient).
    """
    n, c = z.shape[0], z.shape[1]
    flat = z.reshape(n, c, -1)  # (N, C, R)
    hi, hi_at = flat.max(dim=2)  # (N, C)
    lo, lo_at = flat.min(dim=2)
    use_hi = hi >= -lo
    best = torch.where(use_hi, hi, -lo)  # (N, C): max |z| per sample and channel
    n_at = best.argmax(dim=0)  # (C,)
    ch = torch.arange(c, device=z.device)
    r_at = torch.where(use_hi, hi_at, lo_at)[n_at, ch]
    return best[n_at, ch], torch.stack([n_at, r_at])


def _lp_stats(x: Tensor, p: float, centered: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Batch mean and ℓp scale per channel, both (C,), and for p = ∞ the argmax of |z|.

    Mean and scale are in :func:`_opmath` (float32 for a float16/bfloat16 ``x``, which is
    upcast once: s² and Σ|z|^p overflow float16 from s ~ 256 on).
    """
    dims = reduce_dims(x)
    m = x.numel() // x.shape[1]
    with torch.no_grad():
        x = x.to(_opmath(x.dtype))  # no copy for float32/float64
        if p == 2 and centered:  # s² is the biased variance: one stable pass, no x − μ
            var, mean = torch.var_mean(x, dims, correction=0)
            return mean, var.sqrt(), None
        mean = x.mean(dims)
        z = x - _per_channel(mean, x) if centered else x
        if math.isinf(p):
            return mean, *_abs_max(z)
        return mean, _lp_scale(z, p, dims, m), None


class _LpNormFn(torch.autograd.Function):
    """y = γ (x − μ) / sqrt(s² + eps) + β with the closed-form backward through μ and s."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        mean: Tensor,
        scale: Tensor,
        argmax: Tensor | None,
        p: float,
        centered: bool,
        eps: float,
    ) -> Tensor:
        sq = scale * scale  # in the statistics' dtype (float32 for half inputs)
        ctx.save_for_backward(x, weight, bias, mean, scale, argmax)
        ctx.p, ctx.centered, ctx.eps = p, centered, eps
        # An eval-mode batch_norm is one fused pass of the per-channel affine map; with
        # float32 statistics of a half input it takes float32 γ, β (a mixed-type call).
        w, b = (t if t is None else t.to(sq.dtype) for t in (weight, bias))
        return F.batch_norm(x, mean, sq, w, b, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, bias, mean, scale, argmax = ctx.saved_tensors
        p, centered, eps = ctx.p, ctx.centered, ctx.eps
        if torch.is_grad_enabled():  # create_graph: a differentiable backward
            grads = _grads_by_recomputation(
                lambda x_, w_, b_: _affine(_lp_normalized(x_, p, centered, eps), w_, b_),
                x, weight, bias, grad_out, ctx.needs_input_grad[:3],
            )  # fmt: skip
            return (*grads, None, None, None, None, None, None)
        x = _grouped.standard_layout(x)  # so the grouped views of dL/dx below are views
        m = x.numel() // x.shape[1]
        d = torch.sqrt(scale * scale + eps)  # (C,)
        # Σg and Σg·y per channel (y = (x − μ)/d), on public ops: the product g·x is written
        # into the memory that becomes dL/dx below (no extra full-size tensor).
        grad_x = torch.empty_like(x)
        gv, xv = _grouped.grouped(grad_out, 1), _grouped.grouped(x, 1)  # (1, N, C, R)
        acc = scale.dtype  # sums in the statistics' dtype (float32 for half inputs)
        sum_g = gv.sum((1, 3), dtype=acc)[0]  # (C,)
        sum_gx = torch.mul(gv, xv, out=_grouped.grouped(grad_x, 1)).sum((1, 3), dtype=acc)[0]
        sum_gy = (sum_gx - mean * sum_g) / d
        gamma = weight if weight is not None else torch.ones_like(scale)
        a = gamma / d  # dL/dx through (x − μ) alone
        k = -gamma * sum_gy * scale / (d * d)  # dL/ds
        const = -a * sum_g / m  # through μ
        if argmax is not None:  # p = ∞
            _linf_grad_x(grad_x, x, grad_out, a, const, k, mean, argmax, centered, m)
        else:
            _lp_grad_x(grad_x, x, grad_out, a, const, k, mean, scale, p, centered, m)
        grad_w = sum_gy.to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_b = sum_g.to(bias.dtype) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def _lp_normalized(x: Tensor, p: float, centered: bool, eps: float) -> Tensor:
    """(x − μ)/sqrt(s² + eps) with plain differentiable ops (the definition, for autograd).

    Computed in :func:`_opmath` and rounded to ``x``'s dtype, as the fast path.
    """
    if _opmath(x.dtype) != x.dtype:
        return _lp_normalized(x.to(_opmath(x.dtype)), p, centered, eps).to(x.dtype)
    dims = reduce_dims(x)
    mean = x.mean(dims, keepdim=True)
    z = x - mean if centered else x
    if math.isinf(p):
        s = z.abs().amax(dims, keepdim=True)
    else:
        m = x.numel() // x.shape[1]
        s = torch.linalg.vector_norm(z, p, dims, keepdim=True) / m ** (1.0 / p)
    return (x - mean) / torch.sqrt(s * s + eps)


def _linf_grad_x(
    out: Tensor,
    x: Tensor,
    grad_out: Tensor,
    a: Tensor,
    const: Tensor,
    k: Tensor,
    mean: Tensor,
    argmax: Tensor,
    centered: bool,
    m: int,
) -> None:
    """dL/dx for p = ∞ into ``out``: ds/dz is sign(z) at the argmax of |z|, zero elsewhere."""
    ch = torch.arange(x.shape[1], device=x.device)
    # (n, c, *spatial) index of each channel's argmax: valid for any memory layout
    index = (argmax[0], ch, *torch.unravel_index(argmax[1], x.shape[2:]))
    z_at = x[index]  # (C,)
    sign = (z_at - mean if centered else z_at).sign()
    if centered:  # minus the mean of the one-hot term over the channel
        const = const - k * sign / m
    torch.addcmul(_per_channel(const, x), grad_out, _per_channel(a, x), out=out)
    out.index_put_(index, (k * sign).to(out.dtype), accumulate=True)


def _lp_grad_x(
    out: Tensor,
    x: Tensor,
    grad_out: Tensor,
    a: Tensor,
    const: Tensor,
    k: Tensor,
    mean: Tensor,
    scale: Tensor,
    p: float,
    centered: bool,
    m: int,
) -> None:
    """dL/dx = a·g + const + k·ds/dz (minus its mean when z = x − μ is centred), into ``out``."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    if p == 2:
        # ds/dz = z / (m s): linear in x, so the centred case only shifts the constant.
        kk = k / (m * safe)
        shift = const - kk * mean if centered else const
        torch.addcmul(_per_channel(shift, x), grad_out, _per_channel(a, x), out=out)
        out.addcmul_(x, _per_channel(kk, x))
        return
    z = x - _per_channel(mean, x) if centered else x
    # ds/dz = sign(z)|z|^(p−1) s^(1−p) / m  (p = 1: sign(z) / m)
    phi = z.sign() if p == 1 else z.sign() * z.abs().pow(p - 1)
    kk = k * safe.pow(1 - p) / m
    shift = const - kk * phi.mean(reduce_dims(x)) if centered else const
    torch.addcmul(_per_channel(shift, x), grad_out, _per_channel(a, x), out=out)
    out.addcmul_(phi, _per_channel(kk, x))


def lp_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    p: float,
    centered: bool = False,
) -> Tensor:
    r"""ℓp normalization (Santurkar et al. 2018 §3.3; PAPERS.md §2.6).

    Per channel j over every dim but 1, with :math:`\mu_j` the batch mean:

    .. math::
        s_j = \Big(\frac{1}{m}\sum_i |z_{ij}|^p\Big)^{1/p}, \qquad
        y_{ij} = \gamma_j \frac{x_{ij} - \mu_j}{\sqrt{s_j^2 + \epsilon}} + \beta_j

    with :math:`z = x` (implementation I1, "before shifting the mean", the default) or
    :math:`z = x - \mu` (``centered=True``, I2; for p = 2 that is BN). p = ∞ uses
    :math:`s_j = \max_i |z_{ij}|`. In eval mode ``running_mean`` and ``running_var`` (the
    running average of :math:`s_j^2`, no Bessel correction) replace the batch values.

    Args:
        x: input (N, C, *).
        running_mean: (C,) buffer or ``None``.
        running_var: (C,) buffer of the running squared scale, or ``None``.
        weight: γ (C,) or ``None``.
        bias: β (C,) or ``None``.
        training: batch statistics (``True``) or running ones (``False``).
        momentum: the running-average factor of this step.
        eps: added to :math:`s_j^2`.
        p: 1, 2, any p ≥ 1, or ``math.inf``.
        centered: I2 instead of I1.

    Returns:
        The normalized tensor, shape of ``x``.
    """
    if not (p >= 1):
        raise ValueError(f"p must be >= 1 or math.inf, got {p!r}")
    if not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
    mean, scale, argmax = _lp_stats(x, p, centered)
    _update_running(running_mean, mean, momentum)
    _update_running(running_var, scale * scale, momentum)
    return _LpNormFn.apply(x, weight, bias, mean, scale, argmax, p, centered, eps)


# -- ghost BN (Hoffer et al. 2017) ---------------------------------------------------------


def ghost_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    virtual_batch_size: int = 32,
) -> Tensor:
    """BN with statistics over virtual sub-batches of ``virtual_batch_size`` samples.

    The batch is split along dim 0 into chunks of ``virtual_batch_size`` (the last chunk
    holds the remainder; a batch no larger than one chunk is one chunk) and each chunk is
    batch-normalized on its own. The running buffers move once per call, towards the
    size-weighted average of the chunk means and of the chunk unbiased variances.
    float16/bfloat16 inputs are normalized and backpropagated in float32 (one upcast, the
    result rounded once), as PyTorch's batch norm computes half inputs.

    Args:
        x: input (N, C, *).
        running_mean: (C,) buffer or ``None``.
        running_var: (C,) buffer or ``None``.
        weight: γ (C,) or ``None``.
        bias: β (C,) or ``None``.
        training: chunk statistics (``True``) or running ones (``False``).
        momentum: the running-average factor of this step.
        eps: added to the variance.
        virtual_batch_size: samples per chunk, at least 1.

    Returns:
        The normalized tensor, shape of ``x``.

    Raises:
        ValueError: if a chunk has a single value per channel.
    """
    if not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
    chunks = x.split(virtual_batch_size, dim=0)
    per_sample = x.numel() // (x.shape[0] * x.shape[1])
    if chunks[-1].shape[0] * per_sample <= 1:
        raise ValueError(
            f"ghost_bn: the last virtual batch of input shape {tuple(x.shape)} has one value "
            f"per channel (batch {x.shape[0]} % virtual_batch_size {virtual_batch_size} "
            "== 1); change the batch size or virtual_batch_size"
        )
    running = (running_mean, running_var) if running_mean is not None and momentum > 0 else None
    up = _opmath(x.dtype)
    if up != x.dtype:
        # float16/bfloat16: the whole fused forward and backward run in float32 (opmath).
        # In half precision the backward's Σg·x − μΣg keeps only its rounding error on a
        # constant channel, and that error times σ⁻² = 1/eps overflows float16: NaN.
        w, b = (t if t is None else t.to(up) for t in (weight, bias))
        y = _GhostBatchNormFn.apply(x.to(up), w, b, virtual_batch_size, eps, running, momentum)
        return y.to(x.dtype)
    return _GhostBatchNormFn.apply(x, weight, bias, virtual_batch_size, eps, running, momentum)


def _segments(n: int, size: int) -> list[tuple[int, int, int]]:
    """``(start, stop, groups)`` runs of equal virtual batches covering ``n`` samples.

    The full virtual batches form one run; a remainder (``n % size``) is a second run of one
    smaller batch; a batch no larger than ``size`` is one run of one batch.
    """
    if n <= size:
        return [(0, n, 1)]
    full = n // size * size
    return [(0, full, n // size)] + ([(full, n, 1)] if full < n else [])


class _GhostBatchNormFn(torch.autograd.Function):
    """BN per virtual batch, every batch of a run in the same kernels (no Python loop)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        size: int,
        eps: float,
        running: tuple[Tensor, Tensor] | None,
        momentum: float,
    ) -> Tensor:
        original, x = x, _grouped.standard_layout(x)
        out = torch.empty_like(x)
        saved, batch_stats = [], []
        for start, stop, groups in _segments(x.shape[0], size):
            xv = _grouped.grouped(x[start:stop], groups)  # (G, k, C, R)
            mean, var = _grouped.moments(xv)  # (G, C) each
            invstd = (var + eps).rsqrt_()
            scale = invstd if weight is None else invstd * weight  # (G, C)
            # y = x·γσ⁻¹ + (β − μγσ⁻¹): one pass, written into the output (BN's own fold)
            shift = -mean * scale if bias is None else torch.addcmul(bias, mean, scale, value=-1)
            torch.addcmul(
                _grouped.per_group_channel(shift), xv, _grouped.per_group_channel(scale),
                out=_grouped.grouped(out[start:stop], groups),
            )  # fmt: skip
            saved += [mean, invstd]
            if running is not None:  # unbiased, as BN's running variance
                m = xv.shape[1] * xv.shape[3]
                batch_stats.append((stop - start, mean, var.mul_(m / max(m - 1, 1))))
        if running is not None:
            _update_from_virtual_batches(running, batch_stats, x.shape[0], momentum)
        ctx.save_for_backward(original, weight, bias, *saved)
        ctx.size, ctx.eps = size, eps
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, bias, *saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a differentiable backward
            grads = _grads_by_recomputation(
                lambda x_, w_, b_: _affine(_ghost_normalized(x_, ctx.size, ctx.eps), w_, b_),
                x, weight, bias, grad_out, ctx.needs_input_grad[:3],
            )  # fmt: skip
            return (*grads, None, None, None, None)
        x = _grouped.standard_layout(x)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        sum_g, sum_g_xhat = [], []
        for i, (start, stop, groups) in enumerate(_segments(x.shape[0], ctx.size)):
            gx = None if grad_x is None else _grouped.grouped(grad_x[start:stop], groups)
            sg, sgx = _grouped.bn_backward(
                _grouped.grouped(grad_out[start:stop], groups),
                _grouped.grouped(x[start:stop], groups),
                saved[2 * i], saved[2 * i + 1], weight, gx,
            )  # fmt: skip
            sum_g.append(sg.sum(0))
            sum_g_xhat.append(sgx.sum(0))
        grad_w = _total(sum_g_xhat) if ctx.needs_input_grad[1] else None
        grad_b = _total(sum_g) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None


def _ghost_normalized(x: Tensor, size: int, eps: float) -> Tensor:
    """x̂ per virtual batch with plain differentiable ops (the definition, for autograd)."""
    parts = []
    for start, stop, groups in _segments(x.shape[0], size):
        xv = _grouped.grouped(x[start:stop], groups)  # (G, k, C, R)
        var, mean = torch.var_mean(xv, dim=(1, 3), correction=0, keepdim=True)
        parts.append(((xv - mean) * torch.rsqrt(var + eps)).reshape(stop - start, *x.shape[1:]))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _total(parts: list[Tensor]) -> Tensor:
    """The sum of the per-run (C,) parts (no extra kernel for a single run)."""
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)


def _update_from_virtual_batches(
    running: tuple[Tensor, Tensor],
    stats: list[tuple[int, Tensor, Tensor]],
    n: int,
    momentum: float,
) -> None:
    """Move the running buffers towards the size-weighted virtual-batch means / variances.

    ``stats`` holds per run ``(samples, mean (G, C), unbiased var (G, C))``; every virtual
    batch of a run has ``samples / G`` samples, so its weight is ``samples / (G·n)``.
    """
    if len(stats) == 1:  # equal batches (the usual case): plain means, few small ops
        mean, var = stats[0][1].mean(0), stats[0][2].mean(0)
    else:  # a remainder batch: weight each run by its share of the samples
        weights = [count / (m.shape[0] * n) for count, m, _ in stats]
        mean = torch.stack([m.sum(0) * w for (_, m, _), w in zip(stats, weights, strict=True)])
        var = torch.stack([v.sum(0) * w for (_, _, v), w in zip(stats, weights, strict=True)])
        mean, var = mean.sum(0), var.sum(0)
    _update_running(running[0], mean, momentum)
    _update_running(running[1], var, momentum)


# -- batch renormalization (Ioffe 2017) ----------------------------------------------------


def batch_renorm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    r_max: float = 3.0,
    d_max: float = 5.0,
) -> Tensor:
    r"""Batch renormalization (Ioffe 2017, Algorithm 1).

    Training, with batch :math:`\mu_B, \sigma_B = \sqrt{\sigma^2_B + \epsilon}` and running
    :math:`\mu, \sigma = \sqrt{\text{running\_var} + \epsilon}`:

    .. math::
        r = \text{clip}_{[1/r_{max}, r_{max}]}(\sigma_B / \sigma),\quad
        d = \text{clip}_{[-d_{max}, d_{max}]}((\mu_B - \mu) / \sigma),\quad
        y = \gamma\Big(\frac{x - \mu_B}{\sigma_B} r + d\Big) + \beta

    with ``r`` and ``d`` treated as constants in the backward pass (stop-gradient). Since
    they are constants, this is BN with scale γr and shift γd + β: one statistics pass for
    r and d, then :func:`torch.nn.functional.batch_norm` (its own kernels forward and
    backward, and its running-statistics update). Without running buffers
    (``track_running_stats=False``) it is plain BN (r = 1, d = 0).

    Args:
        x: input (N, C, *).
        running_mean: (C,) buffer or ``None``.
        running_var: (C,) buffer or ``None``.
        weight: γ (C,) or ``None``.
        bias: β (C,) or ``None``.
        training: batch statistics (``True``) or running ones (``False``).
        momentum: the running-average factor of this step.
        eps: added to the variances.
        r_max: the clip of r, at least 1.
        d_max: the clip of d, at least 0.

    Returns:
        The normalized tensor, shape of ``x``.
    """
    if not training or running_mean is None or running_var is None:
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    with torch.no_grad():  # r and d are constants of the backward (stop-gradient)
        mean, var = _grouped.moments(_grouped.grouped(_grouped.standard_layout(x), 1))
        inv_sigma = (running_var + eps).rsqrt()  # (C,), the running σ⁻¹ before this update
        r = ((var[0] + eps).sqrt_() * inv_sigma).clamp_(1.0 / r_max, r_max)
        d = ((mean[0] - running_mean) * inv_sigma).clamp_(-d_max, d_max)
    if weight is None:
        scale, shift = r, (d if bias is None else bias + d)
    else:
        scale = weight * r  # autograd: dL/dγ = r·Σg·x̂ + d·Σg
        shift = weight * d if bias is None else torch.addcmul(bias, weight, d)
    # F.batch_norm moves the running buffers (momentum rule, unbiased variance) as BN does
    return F.batch_norm(x, running_mean, running_var, scale, shift, True, momentum, eps)


# -- Santurkar et al. 2018 noise -----------------------------------------------------------


def santurkar_noise(
    a: Tensor,
    generator: torch.Generator,
    n_mu: float = 0.5,
    n_sigma: float = 1.25,
    r_mu: float = 0.1,
    r_sigma: float = 0.1,
    out_m: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Draw the time-varying noise of Santurkar et al. 2018 §2.1 (PAPERS.md §2.3) for ``a``.

    Per channel j: :math:`\mu_j \sim U(-n_\mu, n_\mu)`, :math:`\sigma_j \sim U(1, n_\sigma)`;
    per element: :math:`m \sim U(\mu_j - r_\mu, \mu_j + r_\mu)`,
    :math:`s \sim N(\sigma_j, r_\sigma)` (std). The noisy activation is ``s * a + m``.
    Draw order (fixed, for replay): μ, σ, then m, then s.

    Args:
        a: the activation (N, C, *); only its shape, dtype and device are used.
        generator: the random stream, on ``a``'s device.
        n_mu: half-width of the per-channel shift range.
        n_sigma: upper end of the per-channel scale range.
        r_mu: half-width of the per-element shift around μ_j.
        r_sigma: standard deviation of the per-element scale around σ_j.
        out_m: a contiguous tensor of ``a``'s shape, dtype and device to draw ``m`` into
            (reusing memory that is already mapped); ``None`` allocates.

    Returns:
        ``(s, m)``, both of ``a``'s shape.
    """
    c = a.shape[1]
    kw: dict[str, Any] = {"dtype": a.dtype, "device": a.device}
    mu = torch.empty(c, **kw).uniform_(-n_mu, n_mu, generator=generator)  # (C,)
    sigma = torch.empty(c, **kw).uniform_(1.0, n_sigma, generator=generator)  # (C,)
    # contiguous draws, so the noise of an element does not depend on a's memory format
    m = torch.empty(a.shape, **kw) if out_m is None else out_m
    m.uniform_(-r_mu, r_mu, generator=generator)
    m.add_(_per_channel(mu, a))
    s = torch.empty(a.shape, **kw).normal_(0.0, r_sigma, generator=generator)
    s.add_(_per_channel(sigma, a))
    return s, m
