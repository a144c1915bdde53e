"""Batch normalization (Ioffe & Szegedy 2015) and its batch-statistics relatives.

* ``bn``: the fast path on :func:`torch.nn.functional.batch_norm`.
* ``bn_reference``: Algorithms 1 and 2 with the paper's hand-derived backward (§3).
* ``ghost_bn``: BN over virtual sub-batches (Hoffer et al. 2017).
* ``batch_renorm``: batch renormalization (Ioffe 2017).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from bnlab.layers.base import NormBase
from bnlab.layers.registry import register_norm

__all__ = ["BatchNorm"]


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

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape (N, C, *); returns the same shape."""
        self._check_input(x)
        factor = self._update_factor()
        running_mean, running_var = self._running()
        return F.batch_norm(
            x, running_mean, running_var, self.weight, self.bias,
            self._batch_stats_mode(), factor, self.eps,
        )  # fmt: skip
