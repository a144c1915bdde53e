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
        ctx.save_for_backward(x, weight, mu, var)
        ctx.eps = eps
        return _per_channel(weight, x) * x_hat + _per_channel(bias, x)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mu, var = ctx.saved_tensors
        dims = reduce_dims(x)
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
    """Batch mean and ℓp scale per channel, both (C,), and for p = ∞ the argmax of |z|."""
    dims = reduce_dims(x)
    m = x.numel() // x.shape[1]
    with torch.no_grad():
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
        sq = scale * scale
        ctx.save_for_backward(x, weight, mean, scale, argmax)
        ctx.p, ctx.centered, ctx.eps = p, centered, eps
        # An eval-mode batch_norm is one fused pass of the per-channel affine map.
        return F.batch_norm(x, mean, sq, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, scale, argmax = ctx.saved_tensors
        p, centered, eps = ctx.p, ctx.centered, ctx.eps
        m = x.numel() // x.shape[1]
        # One fused pass for Σ g·y and Σ g per channel (g = dL/d out, y the normalized x).
        _, sum_gy, sum_g = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, mean, scale * scale, None, None, False, eps, [False, True, True]
        )
        gamma = weight if weight is not None else torch.ones_like(scale)
        d = torch.sqrt(scale * scale + eps)
        a = gamma / d  # dL/dx through (x − μ) alone
        k = -gamma * sum_gy * scale / (d * d)  # dL/ds
        const = -a * sum_g / m  # through μ
        if argmax is not None:  # p = ∞
            grad_x = _linf_grad_x(x, grad_out, a, const, k, mean, argmax, centered, m)
        else:
            grad_x = _lp_grad_x(x, grad_out, a, const, k, mean, scale, p, centered, m)
        grad_w = sum_gy if ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def _linf_grad_x(
    x: Tensor,
    grad_out: Tensor,
    a: Tensor,
    const: Tensor,
    k: Tensor,
    mean: Tensor,
    argmax: Tensor,
    centered: bool,
    m: int,
) -> Tensor:
    """dL/dx for p = ∞: ds/dz is sign(z) at the argmax of |z|, zero elsewhere."""
    ch = torch.arange(x.shape[1], device=x.device)
    index = (argmax[0], ch, argmax[1])
    z_at = x.reshape(x.shape[0], x.shape[1], -1)[index]  # (C,)
    sign = (z_at - mean if centered else z_at).sign()
    if centered:  # minus the mean of the one-hot term over the channel
        const = const - k * sign / m
    grad = torch.addcmul(_per_channel(const, x), grad_out, _per_channel(a, x)).contiguous()
    grad.view(x.shape[0], x.shape[1], -1)[index] += k * sign
    return grad


def _lp_grad_x(
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
) -> Tensor:
    """dL/dx = a·g + const + k·ds/dz (minus its mean when z = x − μ is centred)."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    if p == 2:
        # ds/dz = z / (m s): linear in x, so the centred case only shifts the constant.
        kk = k / (m * safe)
        shift = const - kk * mean if centered else const
        grad = torch.addcmul(_per_channel(shift, x), grad_out, _per_channel(a, x))
        return grad.addcmul_(x, _per_channel(kk, x))
    z = x - _per_channel(mean, x) if centered else x
    # ds/dz = sign(z)|z|^(p−1) s^(1−p) / m  (p = 1: sign(z) / m)
    phi = z.sign() if p == 1 else z.sign() * z.abs().pow(p - 1)
    kk = k * safe.pow(1 - p) / m
    shift = const - kk * phi.mean(reduce_dims(x)) if centered else const
    grad = torch.addcmul(_per_channel(shift, x), grad_out, _per_channel(a, x))
    return grad.addcmul_(phi, _per_channel(kk, x))


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
    return _GhostBatchNormFn.apply(x, weight, bias, virtual_batch_size, eps, running, momentum)


def _update_from_chunks(running: tuple[Tensor, Tensor], scratch: Tensor, sizes: list[int],
                        momentum: float) -> None:  # fmt: skip
    """Move the running buffers towards the size-weighted chunk means / unbiased variances."""
    w = torch.tensor(sizes, dtype=scratch.dtype, device=scratch.device) / sum(sizes)
    batch = (w.view(1, -1, 1) * scratch).sum(1)  # (2, chunks, C) -> (2, C)
    _update_running(running[0], batch[0], momentum)
    _update_running(running[1], batch[1], momentum)


class _GhostBatchNormFn(torch.autograd.Function):
    """Native BN kernels per chunk, writing into one output (no concatenation pass)."""

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
        n_chunks, c = -(-x.shape[0] // size), x.shape[1]
        out = torch.empty_like(x)
        save = x.new_empty(2, n_chunks, c)  # per chunk: mean and 1/sqrt(var + eps)
        # with momentum 1 the kernel writes each chunk's mean and unbiased variance into
        # these scratch rows during its own pass, for the running statistics
        scratch = x.new_zeros(2, n_chunks, c) if running is not None else None
        for i, (xs, ys) in enumerate(zip(x.split(size), out.split(size), strict=True)):
            rm, rv = (scratch[0, i], scratch[1, i]) if scratch is not None else (None, None)
            torch.ops.aten.native_batch_norm.out(
                xs, weight, bias, rm, rv, True, 1.0, eps,
                out=ys, save_mean=save[0, i], save_invstd=save[1, i],
            )  # fmt: skip
        if running is not None:
            _update_from_chunks(running, scratch, [len(xs) for xs in x.split(size)], momentum)
        ctx.save_for_backward(x, weight, save)
        ctx.size, ctx.eps = size, eps
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, save = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        c = x.shape[1]
        grad_x = torch.empty_like(x) if mask[0] else None
        sums = x.new_zeros(2, len(save[0]), c)  # per chunk: Σ g·x̂, Σ g
        gx_chunks = grad_x.split(ctx.size) if grad_x is not None else [None] * len(save[0])
        for i, (xs, gs) in enumerate(zip(x.split(ctx.size), grad_out.split(ctx.size), strict=True)):
            torch.ops.aten.native_batch_norm_backward.out(
                gs, xs, weight, None, None, save[0, i], save[1, i], True, ctx.eps,
                [mask[0], True, True],
                out0=gx_chunks[i] if mask[0] else torch.empty(0, dtype=x.dtype),
                out1=sums[0, i], out2=sums[1, i],
            )  # fmt: skip
        grad_w = sums[0].sum(0) if mask[1] else None
        grad_b = sums[1].sum(0) if mask[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None


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
    they are constants, this is BN with scale γr and shift γd + β, run on the native kernel.
    Without running buffers (``track_running_stats=False``) it is plain BN (r = 1, d = 0).

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
    if not training or running_mean is None:
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return _BatchRenormFn.apply(
        x, weight, bias, running_mean, running_var, momentum, eps, r_max, d_max
    )


class _BatchRenormFn(torch.autograd.Function):
    """One native BN pass for x̂ and the statistics, then γ r x̂ + (γ d + β)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        running_mean: Tensor,
        running_var: Tensor,
        momentum: float,
        eps: float,
        r_max: float,
        d_max: float,
    ) -> Tensor:
        old_mean, old_var = running_mean.clone(), running_var.clone()
        # the kernel also moves the running buffers (momentum rule, unbiased variance)
        x_hat, mean, invstd = torch.native_batch_norm(
            x, None, None, running_mean, running_var, True, momentum, eps
        )
        sigma = torch.sqrt(old_var + eps)  # (C,)
        r = (1.0 / (invstd * sigma)).clamp(1.0 / r_max, r_max)
        d = ((mean - old_mean) / sigma).clamp(-d_max, d_max)
        gamma = weight if weight is not None else torch.ones_like(r)
        shift = gamma * d if bias is None else torch.addcmul(bias, gamma, d)
        ctx.save_for_backward(x, gamma * r, mean, invstd, r, d)
        ctx.eps = eps
        return x_hat.mul_(_per_channel(gamma * r, x)).add_(_per_channel(shift, x))

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, mean, invstd, r, d = ctx.saved_tensors
        # r and d are constants (stop-gradient), so this is BN's backward with weight γr
        grad_x, sum_gxhat, sum_g = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, scale, None, None, mean, invstd, True, ctx.eps,
            [ctx.needs_input_grad[0], True, True],
        )  # fmt: skip
        grad_w = r * sum_gxhat + d * sum_g if ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


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
