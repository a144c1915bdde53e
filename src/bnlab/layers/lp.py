"""ℓp normalization (Santurkar et al. 2018 §3.3): ``l1``, ``l2``, ``linf``.

The paper "fixes the first-order moment, as BatchNorm does, and then normalizes by the
average ℓp norm (before shifting the mean)". The formula is not printed; PAPERS.md §2.6
recommends implementation I1 (scale from the uncentred input, the default here) and names
I2 (scale from the centred input, ``centered=True``; for p = 2 that is BN).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from bnlab.layers import functional as bnf
from bnlab.layers.base import NormBase
from bnlab.layers.registry import register_norm

__all__ = ["L1Norm", "L2Norm", "LInfNorm", "LpNorm"]


class LpNorm(NormBase):
    r"""Subtract the batch mean, divide by the batch ℓp average (per channel).

    .. math::
        y = \gamma \frac{x - \mu}{\sqrt{s^2 + \epsilon}} + \beta, \qquad
        s = \Big(\tfrac{1}{m}\textstyle\sum |z|^p\Big)^{1/p} \;(p=\infty:\ \max |z|)

    with ``z = x`` (I1) or ``z = x − μ`` (I2, ``centered=True``). ``running_var`` holds the
    running average of s² (no Bessel correction), used with ``running_mean`` in eval mode.
    The backward is closed form (a custom autograd Function). I1 keeps the input's mean in
    the scale, so only the centred variant is a pure shift-remover: ``absorbs_bias`` is
    ``centered``.

    float16/bfloat16 inputs get float32 statistics (mean, s, s², the backward's sums), as
    PyTorch's batch norm; only the output and the gradients are rounded to the input's
    dtype. The running buffers keep the module's dtype: in float16 a running s² above
    65504 (s > 256) is ``inf`` and eval mode then outputs β, exactly as a float16
    ``torch.nn.BatchNorm2d`` does with its running variance; keep float32 buffers (or
    autocast) for such activations.

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        p: the norm order, ≥ 1 or ``math.inf``.
        centered: implementation I2 instead of I1 (keyword).
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    absorbs_bias = False  # set per instance from ``centered``

    def __init__(
        self, num_features: int, p: float = 2.0, *, centered: bool = False, **kwargs: Any
    ) -> None:
        if not p >= 1:
            raise ValueError(f"p must be >= 1 or math.inf, got {p!r}")
        super().__init__(num_features, **kwargs)
        self.p = float(p)
        self.centered = centered
        # I2 output is invariant to a per-channel input shift; I1's scale is not (§2.6).
        self.absorbs_bias = centered

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        return bnf.lp_norm(
            x, running_mean, running_var, self.weight, self.bias,
            batch_stats, momentum, self.eps, self.p, self.centered,
        )  # fmt: skip

    def extra_repr(self) -> str:
        """The BN arguments plus ``p`` and ``centered``."""
        return f"{super().extra_repr()}, p={self.p}, centered={self.centered}"


@register_norm("l1")
class L1Norm(LpNorm):
    """:class:`LpNorm` with p = 1."""

    def __init__(self, num_features: int, *, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(num_features, 1.0, centered=centered, **kwargs)


@register_norm("l2")
class L2Norm(LpNorm):
    """:class:`LpNorm` with p = 2."""

    def __init__(self, num_features: int, *, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(num_features, 2.0, centered=centered, **kwargs)


@register_norm("linf")
class LInfNorm(LpNorm):
    """:class:`LpNorm` with p = ∞ (scale = max |z| per channel)."""

    def __init__(self, num_features: int, *, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(num_features, math.inf, centered=centered, **kwargs)
