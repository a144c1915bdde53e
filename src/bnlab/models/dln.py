"""Santurkar et al.'s deep linear network (DLN).

Santurkar et al. 2018 App. A.1 (PAPERS.md §2.1): fit ``A x`` with ``W_k … W_2 W_1 x``,
k = 25 square 10×10 matrices, Glorot init, no nonlinearity and no biases. Where BN sits
is not stated; we follow the inferred reading (a norm after every linear layer,
``norm_last=True``). With ``norm_last=False`` the last layer is a plain linear read-out
and only the first ``depth - 1`` layers carry a norm. With ``norm="none"`` the network is
exactly the linear map ``W_k … W_1``.

Norm site ``k`` is linear layer ``k`` (``hidden.{k-1}.norm``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from bnlab.models._blocks import INITS, check_choice, check_positive, init_weights, normed
from bnlab.models.mlp import MLP
from bnlab.models.registry import register_model

__all__ = ["dln"]


def _linear(d_in: int, d_out: int, allow_bias: bool) -> Callable[[bool], nn.Module]:
    # `wanted` is the norm's answer (no shift of its own); the DLN adds a bias only if asked.
    return lambda wanted: nn.Linear(d_in, d_out, bias=wanted and allow_bias)


@register_model("dln")
def dln(
    *,
    norm: str,
    norm_kwargs: Mapping[str, Any],
    in_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 25,
    width: int = 10,
    norm_last: bool = True,
    bias: bool = False,
    init: str = "glorot",
    init_std: float = 0.01,
) -> MLP:
    """Build a deep linear network of ``depth`` layers (norm before nothing: no activation).

    Layer sizes: ``D → width → … → width → num_classes`` with ``D = prod(in_shape)``;
    Santurkar's network is ``in_shape=(10,)``, ``num_classes=10`` (the output dimension).

    Args:
        norm: norm name; placed after each linear layer (see ``norm_last``).
        norm_kwargs: keyword arguments for every norm.
        in_shape: input shape without the batch dimension (flattened).
        num_classes: the output dimension (the DLN is a regression model).
        depth: the number of linear layers (the paper's k = 25).
        width: the hidden width (10 in the paper).
        norm_last: a norm after the last layer too (``depth`` sites); if false the last
            layer is a plain read-out and there are ``depth - 1`` sites.
        bias: add biases (only before norms without their own shift); the paper's DLN
            has none.
        init: ``"glorot"`` (the paper's), ``"normal"`` (N(0, init_std²)) or ``"kaiming"``.
        init_std: the weight std of the ``"normal"`` init.

    Example:
        >>> from bnlab.models import create_model
        >>> net = create_model("dln", norm="none", in_shape=(10,), num_classes=10)
        >>> len(net.norm_site_names)
        25
    """
    check_positive("depth", depth)
    check_positive("width", width)
    check_choice("init", init, INITS)
    check_positive("init_std", init_std, integer=False)
    dims = (math.prod(in_shape), *([width] * (depth - 1)), num_classes)
    n_normed = depth if norm_last else depth - 1
    units = [
        normed(_linear(dims[i], dims[i + 1], bias), dims[i + 1], norm, norm_kwargs, nn.Identity())
        for i in range(n_normed)
    ]
    readout = nn.Identity() if norm_last else nn.Linear(dims[-2], dims[-1], bias=bias)
    model = MLP(units, readout)
    init_weights(model, init, init_std)
    return model
