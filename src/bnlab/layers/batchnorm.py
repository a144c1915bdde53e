"""Batch normalization (Ioffe & Szegedy 2015) and its batch-statistics relatives.

* ``bn``: the fast path on :func:`torch.nn.functional.batch_norm`.
* ``bn_reference``: Algorithms 1 and 2 with the paper's hand-derived backward (§3).
* ``ghost_bn``: BN over virtual sub-batches (Hoffer et al. 2017).
* ``batch_renorm``: batch renormalization (Ioffe 2017).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from bnlab.layers import functional as bnf
from bnlab.layers.base import NormBase
from bnlab.layers.registry import register_norm

__all__ = ["BatchNorm", "BatchNormReference", "BatchRenorm", "GhostBatchNorm"]


@register_norm("bn")
class BatchNorm(NormBase):
    r"""Batch normalization for inputs (N, C), (N, C, L) or (N, C, H, W).

    Training (Ioffe & Szegedy 2015, Algorithm 1), per channel c over every dim but 1:

    .. math::
        y = \gamma \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta

    with the biased batch variance :math:`\sigma_B^2`; ``running_var`` receives the
    unbiased estimate (Algorithm 2). Eval mode uses ``running_mean`` / ``running_var``.
    See :class:`~bnlab.layers.base.NormBase` for the signature and the momentum rule.

    Example:
        >>> import torch
        >>> norm = BatchNorm(8)
        >>> norm(torch.randn(4, 8, 5, 5)).shape
        torch.Size([4, 8, 5, 5])
    """

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        return F.batch_norm(
            x, running_mean, running_var, self.weight, self.bias, batch_stats, momentum, self.eps
        )


@register_norm("bn_reference")
class BatchNormReference(NormBase):
    """Ioffe & Szegedy 2015 Algorithms 1 and 2 with the hand-derived §3 backward.

    The teaching twin of :class:`BatchNorm` and a test oracle: same signature, buffers and
    running-statistics rule, same outputs and gradients, written as the paper writes them
    (see :func:`bnlab.layers.functional.batch_norm_reference`). Slower than ``bn``.
    """

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        return bnf.batch_norm_reference(
            x, running_mean, running_var, self.weight, self.bias,
            batch_stats, momentum, self.eps,
        )  # fmt: skip


@register_norm("ghost_bn")
class GhostBatchNorm(NormBase):
    """Ghost batch normalization: BN over virtual sub-batches (Hoffer et al. 2017).

    Training splits the batch along dim 0 into chunks of ``virtual_batch_size`` samples
    (a smaller batch is one chunk, a remainder makes a smaller last chunk) and normalizes
    each chunk with its own statistics; running statistics move once per forward towards
    the size-weighted mean of the chunk means and unbiased variances. Eval is plain BN on
    the running statistics.

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        virtual_batch_size: samples per virtual batch (keyword), default 32.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    def __init__(self, num_features: int, *, virtual_batch_size: int = 32, **kwargs: Any) -> None:
        if not isinstance(virtual_batch_size, int) or virtual_batch_size < 1:
            raise ValueError(f"virtual_batch_size must be an int >= 1, got {virtual_batch_size!r}")
        super().__init__(num_features, **kwargs)
        self.virtual_batch_size = virtual_batch_size

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        return bnf.ghost_batch_norm(
            x, running_mean, running_var, self.weight, self.bias,
            batch_stats, momentum, self.eps, self.virtual_batch_size,
        )  # fmt: skip

    def extra_repr(self) -> str:
        """The BN arguments plus ``virtual_batch_size``."""
        return f"{super().extra_repr()}, virtual_batch_size={self.virtual_batch_size}"


@register_norm("batch_renorm")
class BatchRenorm(NormBase):
    """Batch renormalization (Ioffe 2017), see :func:`bnlab.layers.functional.batch_renorm`.

    ``r_max`` and ``d_max`` are plain attributes so a recipe can warm them up (the paper
    raises them from 1 and 0 during training). σ is ``sqrt(running_var + eps)`` with
    PyTorch's unbiased ``running_var``, not a running average of batch σ as in the paper.

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        r_max: clip of the scale correction r to [1/r_max, r_max] (keyword), default 3.
        d_max: clip of the shift correction d to [-d_max, d_max] (keyword), default 5.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    def __init__(
        self, num_features: int, *, r_max: float = 3.0, d_max: float = 5.0, **kwargs: Any
    ) -> None:
        if r_max < 1.0 or d_max < 0.0:
            raise ValueError(f"need r_max >= 1 and d_max >= 0, got r_max={r_max}, d_max={d_max}")
        super().__init__(num_features, **kwargs)
        self.r_max = r_max
        self.d_max = d_max

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        return bnf.batch_renorm(
            x, running_mean, running_var, self.weight, self.bias,
            batch_stats, momentum, self.eps, self.r_max, self.d_max,
        )  # fmt: skip

    def extra_repr(self) -> str:
        """The BN arguments plus ``r_max`` and ``d_max``."""
        return f"{super().extra_repr()}, r_max={self.r_max}, d_max={self.d_max}"
