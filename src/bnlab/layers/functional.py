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
    """The per-channel ℓp average ((1/m) Σ |z|^p)^(1/p), or max |z| for p = ∞. (C,)."""
    if math.isinf(p):
        return torch.linalg.vector_norm(z, math.inf, dims)
    return torch.linalg.vector_norm(z, p, dims) / m ** (1.0 / p)


def _lp_stats(x: Tensor, p: float, centered: bool) -> tuple[Tensor, Tensor]:
    """Batch mean and ℓp scale per channel, both (C,), without autograd."""
    dims = reduce_dims(x)
    m = x.numel() // x.shape[1]
    with torch.no_grad():
        if centered and p == 2:
            var, mean = torch.var_mean(x, dims, correction=0)
            return mean, var.sqrt()
        mean = x.mean(dims)
        z = x - _per_channel(mean, x) if centered else x
        return mean, _lp_scale(z, p, dims, m)


def _argmax_abs(z: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """One argmax of |z| per channel of z (N, C, *): its index into z.reshape(N, C, -1), sign."""
    n, c = z.shape[0], z.shape[1]
    flat = z.reshape(n, c, -1)  # (N, C, R)
    best_r, r_idx = flat.abs().max(dim=2)  # (N, C)
    n_idx = best_r.argmax(dim=0)  # (C,)
    ch = torch.arange(c, device=z.device)
    index = (n_idx, ch, r_idx[n_idx, ch])
    return index, flat[index].sign()  # sign: (C,)


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
        p: float,
        centered: bool,
        eps: float,
    ) -> Tensor:
        sq = scale * scale
        ctx.save_for_backward(x, weight, mean, scale)
        ctx.p, ctx.centered, ctx.eps = p, centered, eps
        # An eval-mode batch_norm is one fused pass of the per-channel affine map.
        return F.batch_norm(x, mean, sq, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, scale = ctx.saved_tensors
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
        grad_x = _lp_grad_x(x, grad_out, a, const, k, mean, scale, p, centered, m)
        grad_w = sum_gy if ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None, None


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
    if math.isinf(p):
        # ds/dz is one-hot at the argmax of |z| (ties: one of them, a valid subgradient).
        z = x - _per_channel(mean, x) if centered else x
        index, sign = _argmax_abs(z)
        if centered:  # minus the mean of the one-hot term over the channel
            const = const - k * sign / m
        grad = torch.addcmul(_per_channel(const, x), grad_out, _per_channel(a, x)).contiguous()
        grad.view(x.shape[0], x.shape[1], -1)[index] += k * sign
        return grad
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
    mean, scale = _lp_stats(x, p, centered)
    _update_running(running_mean, mean, momentum)
    _update_running(running_var, scale * scale, momentum)
    return _LpNormFn.apply(x, weight, bias, mean, scale, p, centered, eps)


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
    track = running_mean is not None and momentum > 0.0
    stats = x.new_zeros(2, len(chunks), x.shape[1]) if track else None
    outs = []
    for i, chunk in enumerate(chunks):
        # momentum 1 makes F.batch_norm write this chunk's mean and unbiased variance
        # into the scratch rows, for free, during its own pass.
        rm, rv = (stats[0, i], stats[1, i]) if stats is not None else (None, None)
        outs.append(F.batch_norm(chunk, rm, rv, weight, bias, True, 1.0, eps))
    if stats is not None:
        sizes = torch.tensor([c.shape[0] for c in chunks], dtype=x.dtype, device=x.device)
        w = (sizes / x.shape[0]).unsqueeze(1)  # (chunks, 1)
        _update_running(running_mean, (w * stats[0]).sum(0), momentum)
        _update_running(running_var, (w * stats[1]).sum(0), momentum)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


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
    with torch.no_grad():
        var_b, mean_b = torch.var_mean(x, reduce_dims(x), correction=0)
        sigma = torch.sqrt(running_var + eps)
        r = (torch.sqrt(var_b + eps) / sigma).clamp(1.0 / r_max, r_max)
        d = ((mean_b - running_mean) / sigma).clamp(-d_max, d_max)
    gamma = weight if weight is not None else torch.ones_like(r)
    shift = gamma * d if bias is None else torch.addcmul(bias, gamma, d)
    return F.batch_norm(x, running_mean, running_var, gamma * r, shift, True, momentum, eps)


# -- Santurkar et al. 2018 noise -----------------------------------------------------------


def santurkar_noise(
    a: Tensor,
    generator: torch.Generator,
    n_mu: float = 0.5,
    n_sigma: float = 1.25,
    r_mu: float = 0.1,
    r_sigma: float = 0.1,
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

    Returns:
        ``(s, m)``, both of ``a``'s shape.
    """
    c = a.shape[1]
    kw: dict[str, Any] = {"dtype": a.dtype, "device": a.device}
    mu = torch.empty(c, **kw).uniform_(-n_mu, n_mu, generator=generator)  # (C,)
    sigma = torch.empty(c, **kw).uniform_(1.0, n_sigma, generator=generator)  # (C,)
    m = torch.empty_like(a).uniform_(-r_mu, r_mu, generator=generator)
    m.add_(_per_channel(mu, a))
    s = torch.empty_like(a).normal_(0.0, r_sigma, generator=generator)
    s.add_(_per_channel(sigma, a))
    return s, m
