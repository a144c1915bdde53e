"""VGG networks (Simonyan & Zisserman 2015) with a norm after every weighted layer.

Santurkar et al. 2018 (PAPERS.md §2.1) train a "VGG-like network" on CIFAR-10 with Glorot
init and name layers #2 … #13, so we use VGG-16's 13 conv layers, numbered in depth order,
followed by FC 512-512-classes. Norm sites: conv 1 … conv N (``features.conv{k}.norm``),
then the two hidden FC layers (``classifier.fc1.norm``, ``classifier.fc2.norm``):
15 sites for VGG-16, 10 for VGG-11. Each is ``conv/linear -> norm -> ReLU``.

The same stack runs on 1-D signals (``in_shape=(C, L)``, e.g. MNIST-1D's (1, 40)) with
Conv1d/MaxPool1d. A max-pool is skipped once the spatial size is 1, so small inputs such as
28×28 MNIST (28 → 14 → 7 → 3 → 1) or length 40 still fit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from bnlab.models._blocks import (
    INITS,
    check_choice,
    check_positive,
    check_probability,
    conv_layer,
    init_weights,
    linear_layer,
    normed,
    scaled,
    spatial_ndim,
)
from bnlab.models.registry import register_model

__all__ = ["VGG", "vgg11", "vgg16"]

# Output channels of each conv layer; "M" is a 2× max-pool (Simonyan & Zisserman, Table 1).
_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
        512, 512, 512, "M", 512, 512, 512, "M",
    ),
}
_FC_WIDTH = 512


class VGG(nn.Module):
    """``features`` (conv stack), ``flatten``, ``classifier`` (FC-FC-read-out).

    Shapes: ``(N, C, H, W)`` or ``(N, C, L)`` -> ``(N, num_classes)``.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier
        convs = [f"features.{n}" for n, _ in features.named_children() if n.startswith("conv")]
        fcs = [f"classifier.{n}" for n in ("fc1", "fc2")]
        self.norm_site_names = tuple((f"{p}.norm", f"{p}.layer") for p in convs + fcs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv stack, flatten, classifier."""
        return self.classifier(self.flatten(self.features(x)))  # (N, C', *S') -> (N, K)


def _features(
    config: tuple[int | str, ...], in_shape: tuple[int, ...], width: float,
    norm: str, norm_kwargs: Mapping[str, Any],
) -> tuple[nn.Sequential, int]:
    """Build the conv stack; return it and the flattened feature size."""
    ndim = spatial_ndim("vgg", in_shape)
    pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool1d
    channels, size = in_shape[0], list(in_shape[1:])
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    n_conv = n_pool = 0
    for item in config:
        if item == "M":
            if min(size) >= 2:  # a pool on size 1 would give an empty map
                n_pool += 1
                layers[f"pool{n_pool}"] = pool(2)
                size = [s // 2 for s in size]
            continue
        n_conv += 1
        c_out = scaled(int(item), width)
        build = conv_layer(ndim, channels, c_out)
        layers[f"conv{n_conv}"] = normed(build, c_out, norm, norm_kwargs, nn.ReLU())
        channels = c_out
    return nn.Sequential(layers), channels * math.prod(size)


def _classifier(
    d_in: int, num_classes: int, width: float, dropout: float,
    norm: str, norm_kwargs: Mapping[str, Any],
) -> nn.Sequential:
    d_hidden = scaled(_FC_WIDTH, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k, d in ((1, d_in), (2, d_hidden)):
        layers[f"fc{k}"] = normed(linear_layer(d, d_hidden), d_hidden, norm, norm_kwargs, nn.ReLU())
        if dropout > 0:
            layers[f"drop{k}"] = nn.Dropout(dropout)
    layers["fc3"] = nn.Linear(d_hidden, num_classes)
    return nn.Sequential(layers)


def _vgg(
    config_name: str, *, norm: str, norm_kwargs: Mapping[str, Any], in_shape: tuple[int, ...],
    num_classes: int, width: float, init: str, dropout: float,
) -> VGG:
    check_positive("width", width, integer=False)
    check_choice("init", init, INITS)
    check_probability("dropout", dropout)
    features, d_flat = _features(_CONFIGS[config_name], in_shape, width, norm, norm_kwargs)
    model = VGG(features, _classifier(d_flat, num_classes, width, dropout, norm, norm_kwargs))
    init_weights(model, init)
    return model


_DOC = """Build {name}: {n_conv} conv layers and FC 512-512-classes, a norm before every ReLU.

    Args:
        norm: norm name; one norm per conv layer and per hidden FC layer ({sites} sites).
        norm_kwargs: keyword arguments for every norm.
        in_shape: ``(C, H, W)`` (Conv2d) or ``(C, L)`` (Conv1d).
        num_classes: the number of outputs.
        width: multiplier on every conv and hidden FC width (e.g. 0.25: 16 … 128).
        init: ``"glorot"`` (Santurkar's, the default) or ``"kaiming"``; biases 0.
            (``"normal"`` uses std 0.01.)
        dropout: dropout probability after each hidden FC layer (0 = none, Santurkar's
            setting is not stated).

    Example:
        >>> from bnlab.models import create_model
        >>> net = create_model("{name}", in_shape=(1, 40), num_classes=10, width=0.25)
        >>> len(net.norm_site_names)
        {sites}
    """


def _builder(name: str) -> Callable[..., VGG]:
    def build(
        *, norm: str, norm_kwargs: Mapping[str, Any], in_shape: tuple[int, ...],
        num_classes: int, width: float = 1.0, init: str = "glorot", dropout: float = 0.0,
    ) -> VGG:
        return _vgg(name, norm=norm, norm_kwargs=norm_kwargs, in_shape=in_shape,
                    num_classes=num_classes, width=width, init=init, dropout=dropout)

    n_conv = sum(1 for item in _CONFIGS[name] if item != "M")
    build.__name__ = build.__qualname__ = name
    build.__doc__ = _DOC.format(name=name, n_conv=n_conv, sites=n_conv + 2)
    return build


vgg11 = register_model("vgg11")(_builder("vgg11"))
vgg16 = register_model("vgg16")(_builder("vgg16"))
