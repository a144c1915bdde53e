"""Batched per-(group, channel) statistics and the closed-form BN backward, on public ops.

Ghost BN, batch renormalization and the ℓp norms need the same few reductions: per channel
(and per virtual batch) the mean and variance of x, and in the backward Σg and Σg·x. They
are written here once, on views (N, C, *) -> (G, k, C, R) with G virtual batches of k
samples and R positions, so every virtual batch is handled in the same kernel launch
instead of a Python loop (the loop was launch-bound on the GPU: ghost_bn 3.3-8.3x
BatchNorm2d on an H200, issue 15).

Only public torch ops are used: ``aten.native_batch_norm*`` have contracts that differ
between CPU and CUDA (the ℓp backward crashed on CUDA on an undefined saved mean).

Two reductions have a device branch, each a choice between public ops with the same
result (both branches are tested on the CPU by forcing them):

* moments: CUDA (any non-CPU device) uses ``torch.var_mean``, one Welford pass; on the CPU
  that kernel is ~1.4x a whole BatchNorm2d forward+backward, so the CPU takes the mean,
  then Σ(x − μ)² over cache-sized slices (two passes, no full-size temporary).
* Σg·x: the product is written into the buffer that becomes the input gradient, then
  summed, on every device (no full-size allocation beyond the gradient itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import Tensor

_SLICE_BYTES = 1 << 21  # the CPU's second moment pass works on ~2 MiB slices (cache-sized)
#: How :func:`moments` reduces on each device type (any other: ``"welford"``). Tests swap it
#: to run the CUDA choice on the CPU.
MOMENTS_BY_DEVICE: Mapping[str, str] = MappingProxyType({"cpu": "two_pass"})


def standard_layout(x: Tensor) -> Tensor:
    """``x`` itself if contiguous or channels-last (its grouped views are views), else a copy."""
    if x.is_contiguous():
        return x
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return x
    return x.contiguous()


def grouped(t: Tensor, groups: int) -> Tensor:
    """(N, C, *) -> (G, N/G, C, R) with R the product of the trailing dims.

    A view (writes go through) when ``t`` is in a standard layout (see
    :func:`standard_layout`): the batch dim splits, and the trailing dims merge in both
    the contiguous and the channels-last strides.
    """
    v = t.unflatten(0, (groups, -1))  # (G, k, C, *)
    return v.flatten(3) if t.dim() > 2 else v.unsqueeze(3)  # (G, k, C, R)


def per_group_channel(t: Tensor) -> Tensor:
    """View a (G, C) tensor as (G, 1, C, 1), to broadcast against a grouped (G, k, C, R)."""
    return t[:, None, :, None]


def moments(xv: Tensor, *, impl: str | None = None) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of a grouped ``xv`` (G, k, C, R) per (group, channel).

    Args:
        xv: the grouped input.
        impl: ``"welford"`` (``torch.var_mean``, one pass), ``"two_pass"`` (mean, then
            Σ(x − μ)² in slices), or ``None``: :data:`MOMENTS_BY_DEVICE` (two_pass on the
            CPU, welford elsewhere).

    Returns:
        ``(mean, var)``, each (G, C).
    """
    impl = impl or MOMENTS_BY_DEVICE.get(xv.device.type, "welford")
    if impl == "welford":
        var, mean = torch.var_mean(xv, dim=(1, 3), correction=0)
        return mean, var
    g, k, c, r = xv.shape
    mean = xv.mean((1, 3), keepdim=True)  # (G, 1, C, 1)
    step = max(1, _SLICE_BYTES // max(1, g * c * r * xv.element_size()))
    parts = [
        (xv[:, j : j + step] - mean).square_().sum((1, 3)) for j in range(0, k, step)
    ]  # each (G, C); a slice's temporary stays in cache
    sq = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
    return mean.view(g, c), sq / (k * r)


def bn_backward(
    gv: Tensor,
    xv: Tensor,
    mean: Tensor,
    invstd: Tensor,
    gamma: Tensor | None,
    grad_x: Tensor | None,
) -> tuple[Tensor, Tensor]:
    r"""The BN backward per (group, channel), in closed form, on grouped views.

    With :math:`\hat x = (x - \mu)\,\sigma^{-1}` and :math:`y = \gamma \hat x + \beta` per
    group g and channel c over the M = k·R values of the group:

    .. math::
        \frac{\partial L}{\partial x} = \frac{\gamma}{\sigma M}
        \Big(M g - \textstyle\sum g - \hat x \sum g \hat x\Big)
        = a\,g + b\,x + c_0

    with :math:`a = \gamma/\sigma`, :math:`b = -a \sigma^{-1} \sum g\hat x / M` and
    :math:`c_0 = -a \sum g / M - b\mu`: two elementwise passes into ``grad_x``.

    Args:
        gv: dL/dy, grouped (G, k, C, R).
        xv: the input, grouped the same way.
        mean: μ per (group, channel), (G, C).
        invstd: 1/sqrt(var + eps), (G, C).
        gamma: the effective scale γ, (C,) or (G, C); ``None`` means 1.
        grad_x: a grouped view of the input gradient to fill, or ``None`` if not needed.

    Returns:
        ``(sum_g, sum_g_xhat)``: Σg and Σg·x̂ per (group, channel), (G, C) each; their sums
        over groups are the gradients of β and γ.
    """
    sum_g = gv.sum((1, 3))  # (G, C)
    # Σg·x, the product written into the memory that becomes the input gradient; then
    # Σg·(x − μ) = Σg·x − μΣg (loses ~|μ|/σ digits, as BN's folded forward does).
    prod = gv * xv if grad_x is None else torch.mul(gv, xv, out=grad_x)
    sum_g_xhat = torch.addcmul(prod.sum((1, 3)), mean, sum_g, value=-1).mul_(invstd)
    if grad_x is not None:
        # few, small ops: on a GPU each is a kernel launch (counted by bnlab.bench layers)
        m = gv.shape[1] * gv.shape[3]
        a = invstd if gamma is None else gamma * invstd  # (G, C)
        b = torch.mul(sum_g_xhat, invstd).mul_(a).mul_(-1.0 / m)  # -a σ⁻¹ Σgx̂ / M
        c0 = torch.addcmul(b * mean, a, sum_g, value=1.0 / m).neg_()  # -bμ - aΣg/M
        torch.addcmul(per_group_channel(c0), gv, per_group_channel(a), out=grad_x)
        grad_x.addcmul_(xv, per_group_channel(b))
    return sum_g, sum_g_xhat
