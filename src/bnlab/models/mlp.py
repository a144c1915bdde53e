"""Fully connected networks: Ioffe & Szegedy's MNIST MLP and Yang et al.'s deep BN MLPs.

Ioffe & Szegedy 2015 §4.1 (PAPERS.md §1.2): 784 → 3 hidden layers of 100 sigmoid units →
10, "weights initialized to small random Gaussian values", BN on each hidden layer before
the sigmoid. Yang et al. 2019 (PAPERS.md §4): deep ReLU/tanh/linear BN MLPs without skip
connections, Kaiming init. Both are :func:`mlp` with different options.

Norm site ``k`` is hidden layer ``k`` (``hidden.{k-1}.norm``); the read-out has no norm.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bnlab.models._blocks import (
    ACTIVATIONS,
    INITS,
    NormedLayer,
    check_choice,
    check_positive,
    check_probability,
    init_weights,
    linear_layer,
    make_activation,
    normed,
)
from bnlab.models.registry import register_model

__all__ = ["MLP", "mlp"]

IOFFE_WIDTHS = (100, 100, 100)


class MLP(nn.Module):
    """A stack of :class:`NormedLayer` units and a linear read-out, on flattened inputs.

    ``h_0 = flatten(x)``; ``h_k = h_{k-1} + u_k(h_{k-1})`` where ``skips[k-1]`` is true,
    else ``h_k = u_k(h_{k-1})``; dropout after each unit; output ``readout(h_K)``.

    Shapes: ``(N, *in_shape) -> (N, num_classes)``.
    """

    def __init__(
        self,
        units: Sequence[NormedLayer],
        readout: nn.Module,
        *,
        skips: Sequence[bool] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.ModuleList(units)
        self.readout = readout
        self.skips = tuple(skips) if skips is not None else (False,) * len(units)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm_site_names = tuple(
            (f"hidden.{i}.norm", f"hidden.{i}.layer") for i in range(len(units))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten, run the hidden units (with residual sums where enabled), read out."""
        h = self.flatten(x)  # (N, *in_shape) -> (N, D)
        for unit, skip in zip(self.hidden, self.skips, strict=True):
            out = unit(h)
            h = self.dropout(h + out if skip else out)
        return self.readout(h)


def _hidden_widths(
    widths: Sequence[int] | None, depth: int | None, width: int | None
) -> tuple[int, ...]:
    if widths is not None and (depth is not None or width is not None):
        raise ValueError("give either `widths` or `depth`/`width`, not both")
    if widths is None:
        depth = len(IOFFE_WIDTHS) if depth is None else depth
        width = IOFFE_WIDTHS[0] if width is None else width
        check_positive("depth", depth)
        widths = (width,) * depth
    widths = tuple(widths)
    if not widths:
        raise ValueError("an MLP needs at least one hidden layer; got widths=()")
    for w in widths:
        check_positive("every hidden width", w)
    return widths


@register_model("mlp")
def mlp(
    *,
    norm: str,
    norm_kwargs: Mapping[str, Any],
    in_shape: tuple[int, ...],
    num_classes: int,
    widths: Sequence[int] | None = None,
    depth: int | None = None,
    width: int | None = None,
    activation: str = "sigmoid",
    init: str = "normal",
    init_std: float = 0.1,
    skip: bool = False,
    dropout: float = 0.0,
) -> MLP:
    """Build a fully connected network; the defaults are Ioffe's 784-100-100-100-10 MLP.

    Args:
        norm: norm name; one norm per hidden layer, before the activation.
        norm_kwargs: keyword arguments for every norm.
        in_shape: input shape without the batch dimension (flattened, e.g. (1, 28, 28)).
        num_classes: the number of outputs.
        widths: the hidden widths, e.g. ``(100, 100, 100)``; or give ``depth`` hidden
            layers of ``width`` units (defaults 3 and 100).
        depth: the number of hidden layers (= norm sites) when ``widths`` is not given.
        width: the hidden width when ``widths`` is not given.
        activation: ``"sigmoid"``, ``"relu"``, ``"tanh"`` or ``"linear"`` (none).
        init: ``"normal"`` (N(0, init_std²)), ``"glorot"`` or ``"kaiming"``; biases 0.
            Ioffe's std is not stated (PAPERS.md §1.2); 0.1 gives sigmoid inputs of
            order 1 on binarized MNIST.
        init_std: the weight std of the ``"normal"`` init.
        skip: residual connections ``h + unit(h)`` around every hidden layer whose
            input and output widths agree (so not the first when D differs).
        dropout: dropout probability after every hidden layer (0 = none).

    Example:
        >>> from bnlab.models import create_model
        >>> net = create_model("mlp", norm="bn", in_shape=(1, 28, 28), num_classes=10)
        >>> [site for site, _ in net.norm_site_names]
        ['hidden.0.norm', 'hidden.1.norm', 'hidden.2.norm']
    """
    hidden = _hidden_widths(widths, depth, width)
    check_choice("init", init, INITS)
    check_positive("init_std", init_std, integer=False)
    check_probability("dropout", dropout)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    dims = (math.prod(in_shape), *hidden)
    units = [
        normed(linear_layer(d_in, d_out), d_out, norm, norm_kwargs, make_activation(activation))
        for d_in, d_out in itertools.pairwise(dims)
    ]
    skips = [skip and d_in == d_out for d_in, d_out in itertools.pairwise(dims)]
    model = MLP(units, nn.Linear(dims[-1], num_classes), skips=skips, dropout=dropout)
    init_weights(model, init, init_std)
    return model
