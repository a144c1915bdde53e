"""``none``: the identity, as a norm, so "no normalization" is one more registry name."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from bnlab.layers.base import check_input
from bnlab.layers.registry import register_norm

__all__ = ["NoNorm"]


@register_norm("none")
class NoNorm(nn.Identity):
    """The identity map with the BatchNorm signature (every argument is accepted and ignored).

    It keeps a network's norm sites numbered the same whatever norm is chosen. It has no
    shift, so the preceding layer keeps its bias (``absorbs_bias = False``).

    Args:
        num_features: C, recorded for ``extra_repr`` only.
        eps: ignored.
        momentum: ignored.
        affine: ignored.
        track_running_stats: ignored.
        device: ignored.
        dtype: ignored.
    """

    absorbs_bias: ClassVar[bool] = False

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        del eps, momentum, affine, track_running_stats, device, dtype
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, *) unchanged, after checking its rank and channel count."""
        check_input(x, self.num_features, batch_stats=False, name="NoNorm")
        return x

    def extra_repr(self) -> str:
        """The constructor arguments, as ``torch.nn.BatchNorm`` prints them."""
        return f"{self.num_features}"
