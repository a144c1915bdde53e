"""Per-sample norms: ``ln`` (layer norm) and ``gn`` (group norm), the usual comparators.

Both take statistics per sample, so they have no running statistics and behave the same
in train and eval mode; they accept the BN signature for drop-in use (``momentum`` and
``track_running_stats`` are accepted and ignored). Both run on ``torch.group_norm``, the
op under :func:`torch.nn.functional.group_norm` without its batch-size check: that check
raised "Expected more than 1 value per channel when training" (even in eval mode) when the
whole batch held one value per group, though the per-sample result is defined: a group of
one value has x = μ, so y = β.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from bnlab.layers.base import NormBase
from bnlab.layers.registry import register_norm

__all__ = ["GroupNorm", "LayerNorm", "default_num_groups"]


def default_num_groups(num_features: int, max_groups: int = 32) -> int:
    """The largest divisor of ``num_features`` that is at most ``max_groups``."""
    return max(g for g in range(1, min(num_features, max_groups) + 1) if num_features % g == 0)


@register_norm("gn")
class GroupNorm(NormBase):
    r"""Group normalization (Wu & He 2018) with per-channel γ, β.

    Per sample n and group g of C/G channels, over the group's channels and all positions:

    .. math:: y = \gamma_c \frac{x - \mu_{n,g}}{\sqrt{\sigma^2_{n,g} + \epsilon}} + \beta_c

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        num_groups: G, a divisor of C (keyword); default the largest divisor ≤ 32.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    absorbs_bias: ClassVar[bool] = False
    uses_batch_stats: ClassVar[bool] = False

    def __init__(self, num_features: int, *, num_groups: int | None = None, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        groups = default_num_groups(num_features) if num_groups is None else num_groups
        if not isinstance(groups, int) or groups < 1 or num_features % groups:
            raise ValueError(
                f"num_groups must divide num_features={num_features}, got {num_groups!r}"
            )
        self.num_groups = groups

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        del running_mean, running_var, batch_stats, momentum  # per-sample: no running stats
        # one value per group is fine (y = β): no batch-size check, see the module docstring
        cudnn = torch.backends.cudnn.enabled  # what F.group_norm passes
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps, cudnn)

    def extra_repr(self) -> str:
        """C, ``num_groups``, ``eps`` and ``affine``."""
        return (
            f"{self.num_features}, num_groups={self.num_groups}, eps={self.eps}, "
            f"affine={self.affine}"
        )


@register_norm("ln")
class LayerNorm(GroupNorm):
    r"""Layer normalization (Ba et al. 2016) over all non-batch dims, per-channel γ, β.

    .. math:: y = \gamma_c \frac{x - \mu_n}{\sqrt{\sigma^2_n + \epsilon}} + \beta_c

    with :math:`\mu_n, \sigma^2_n` over every dim of sample n (group norm with one group).

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(num_features, num_groups=1, **kwargs)

    def extra_repr(self) -> str:
        """C, ``eps`` and ``affine``."""
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"
