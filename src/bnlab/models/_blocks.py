"""Building blocks shared by the bnlab models: the normed unit, activations, inits.

Every norm site of a bnlab model is one :class:`NormedLayer` ``layer -> norm -> act``: the
norm sits before the nonlinearity (Ioffe & Szegedy 2015 §3.2, PAPERS.md §1.2, §2.1), and
the layer's bias is dropped only when the norm has its own shift (``absorbs_bias``), since
BN subtracts the batch mean and any constant added before it is lost (Ioffe §3.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from bnlab.layers import create_norm

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    # Not in place: a forward hook on the norm must see the pre-activation values
    # (Ioffe's Fig. 1 plots the sigmoid *inputs*), which an in-place ReLU would overwrite.
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}

INITS = ("normal", "glorot", "kaiming")


class NormedLayer(nn.Module):
    """One norm site: ``act(norm(layer(x)))``.

    Attributes:
        layer: the conv/linear layer feeding the norm.
        norm: the norm module (an identity module for ``norm="none"``).
        act: the nonlinearity (``nn.Identity`` where there is none).
    """

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.norm = norm
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply layer, norm and activation in that order."""
        return self.act(self.norm(self.layer(x)))


def make_norm(norm: str, channels: int, norm_kwargs: Mapping[str, Any]) -> nn.Module:
    """Build the named norm and check it declares ``absorbs_bias``."""
    module = create_norm(norm, channels, **norm_kwargs)
    if not isinstance(getattr(module, "absorbs_bias", None), bool):
        raise ValueError(
            f"norm {norm!r} built {type(module).__name__} without a bool `absorbs_bias`; "
            "every registered norm must declare whether it has its own shift"
        )
    return module


def normed(
    build_layer: Callable[[bool], nn.Module],
    channels: int,
    norm: str,
    norm_kwargs: Mapping[str, Any],
    act: nn.Module,
) -> NormedLayer:
    """Build a :class:`NormedLayer`; ``build_layer(bias)`` makes the feeding layer.

    The norm is built first so the layer gets a bias exactly when the norm does not
    absorb it.
    """
    norm_module = make_norm(norm, channels, norm_kwargs)
    return NormedLayer(build_layer(not norm_module.absorbs_bias), norm_module, act)


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module; ``ValueError`` names the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_choice(what: str, value: object, choices: tuple[object, ...]) -> None:
    """Raise a ``ValueError`` naming the choices when ``value`` is not one of them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")


def check_positive(what: str, value: object, *, integer: bool = True) -> None:
    """Raise a ``ValueError`` unless ``value`` is a positive int (or number)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "int" if integer else "number"
        raise ValueError(f"{what} must be a positive {kind}, got {value!r}")


def check_probability(what: str, value: object) -> None:
    """Raise a ``ValueError`` unless ``0 <= value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}")


def init_weights(model: nn.Module, scheme: str, std: float = 0.01) -> None:
    """Initialize every conv/linear weight of ``model`` in place; biases to zero.

    Schemes (fan_in = in_channels × kernel size, fan_out = out_channels × kernel size):

    * ``"normal"``: w ~ N(0, std²) (Ioffe's "small random Gaussian values", §4.1).
    * ``"glorot"``: w ~ U(−a, a), a = √(6 / (fan_in + fan_out)), so Var w = 2 / (fan_in +
      fan_out) (Glorot & Bengio 2010; Santurkar's VGG and DLN, PAPERS.md §2.1).
    * ``"kaiming"``: w ~ N(0, 2 / fan_in) (He et al. 2015, for ReLU; Bjorck's ResNet and
      Yang's mean-field setting, PAPERS.md §3.2, §4).

    Norm modules keep their own initialization (γ = 1, β = 0).
    """
    check_choice("init", scheme, INITS)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            _init_layer(module, scheme, std)


def _init_layer(layer: nn.Module, scheme: str, std: float) -> None:
    weight = layer.weight
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    with torch.no_grad():
        if scheme == "normal":
            weight.normal_(0.0, std)
        elif scheme == "glorot":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound)
        else:
            weight.normal_(0.0, math.sqrt(2.0 / fan_in))
        if layer.bias is not None:
            layer.bias.zero_()


def conv_layer(ndim: int, c_in: int, c_out: int, *, stride: int = 1) -> Callable[[bool], nn.Module]:
    """Return ``bias -> Conv{ndim}d(c_in, c_out, 3, stride, padding=1, bias=bias)``."""
    conv = nn.Conv2d if ndim == 2 else nn.Conv1d
    return lambda bias: conv(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


def linear_layer(d_in: int, d_out: int) -> Callable[[bool], nn.Module]:
    """Return ``bias -> Linear(d_in, d_out, bias=bias)``."""
    return lambda bias: nn.Linear(d_in, d_out, bias=bias)


def spatial_ndim(model: str, in_shape: tuple[int, ...]) -> int:
    """Return 2 for ``(C, H, W)`` and 1 for ``(C, L)`` inputs; ``ValueError`` otherwise."""
    if len(in_shape) not in (2, 3):
        raise ValueError(
            f"{model} takes in_shape (C, H, W) for images or (C, L) for 1-D signals, "
            f"got {in_shape!r}"
        )
    return len(in_shape) - 1


def scaled(channels: int, width: float) -> int:
    """Scale a channel count by the width multiplier, keeping at least one channel."""
    return max(1, round(channels * width))
