"""He et al.'s CIFAR ResNets (resnet20/56/110) on images or 1-D signals.

He et al. 2016 §4.2: a 3×3 conv (16 channels), three stages of ``n`` basic blocks with
16, 32 and 64 channels (stride 2 at the start of stages 2 and 3), global average pooling
and a linear read-out: 6n + 2 weighted layers. Shortcuts are option A, the parameter-free
identity, subsampled and zero-padded when the shape changes, so the only weighted layers
are the convs and the read-out. Bjorck et al. 2018 (PAPERS.md §3.2) use n = 18 (110 layers)
and number layers in depth order (layer 8: 16 channels, 44: 32, 80: 64).

Norm site ``k`` is weighted layer ``k`` (k = 1 … 6n + 1; the read-out has no norm):
site 1 is ``stem.norm``, then ``stage{s}.{b}.unit1.norm`` and ``stage{s}.{b}.unit2.norm``.
Each block is ``relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))``; ``skip=False``
drops the ``+ shortcut(x)``, leaving a plain network of the same depth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.models._blocks import (
    INITS,
    check_choice,
    check_positive,
    conv_layer,
    init_weights,
    normed,
    scaled,
    spatial_ndim,
)
from bnlab.models.registry import register_model

__all__ = ["BasicBlock", "CifarResNet", "ShortcutA", "resnet20", "resnet56", "resnet110"]

_STAGE_CHANNELS = (16, 32, 64)


class ShortcutA(nn.Module):
    """Option-A shortcut (He et al. 2016 §4.2): identity, strided, zero-padded channels.

    Shapes: ``(N, C_in, *S) -> (N, C_out, *S')`` with ``S' = ceil(S / stride)``; the new
    ``C_out - C_in`` channels are zeros, split evenly before and after the old ones.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, ndim: int) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride, self.ndim = c_in, c_out, stride, ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample by the stride and pad the channel dimension with zeros."""
        if self.stride > 1:
            x = x[(slice(None), slice(None)) + (slice(None, None, self.stride),) * self.ndim]
        extra = self.c_out - self.c_in
        if extra:
            # F.pad lists (before, after) from the last dim back: spatial dims, then C.
            x = F.pad(x, (0, 0) * self.ndim + (extra // 2, extra - extra // 2))
        return x

    def extra_repr(self) -> str:
        """Show the channel change and stride."""
        return f"{self.c_in}->{self.c_out}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two norm sites ``unit1`` (conv-norm-ReLU) and ``unit2`` (conv-norm), a shortcut, ReLU."""

    def __init__(
        self, ndim: int, c_in: int, c_out: int, stride: int, *,
        norm: str, norm_kwargs: Mapping[str, Any], skip: bool,
    ) -> None:
        super().__init__()
        self.unit1 = normed(conv_layer(ndim, c_in, c_out, stride=stride), c_out, norm,
                            norm_kwargs, nn.ReLU())
        # No activation inside unit2: the ReLU comes after the residual sum.
        self.unit2 = normed(conv_layer(ndim, c_out, c_out), c_out, norm, norm_kwargs,
                            nn.Identity())
        self.shortcut = ShortcutA(c_in, c_out, stride, ndim) if skip else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(unit2(unit1(x)) + shortcut(x))``, without the sum when ``skip=False``."""
        out = self.unit2(self.unit1(x))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class CifarResNet(nn.Module):
    """``stem``, ``stage1`` … ``stage3`` of basic blocks, global average pool, ``fc``.

    Shapes: ``(N, C, H, W)`` or ``(N, C, L)`` -> ``(N, num_classes)``.
    """

    def __init__(
        self, n: int, *, in_shape: tuple[int, ...], num_classes: int, norm: str,
        norm_kwargs: Mapping[str, Any], skip: bool, width: float,
    ) -> None:
        super().__init__()
        ndim = spatial_ndim("resnet", in_shape)
        chans = [scaled(c, width) for c in _STAGE_CHANNELS]
        self.stem = normed(conv_layer(ndim, in_shape[0], chans[0]), chans[0], norm,
                           norm_kwargs, nn.ReLU())
        c_in = chans[0]
        for s, c_out in enumerate(chans, start=1):
            blocks = [
                BasicBlock(ndim, c_in if b == 0 else c_out, c_out,
                           2 if (b == 0 and s > 1) else 1,
                           norm=norm, norm_kwargs=norm_kwargs, skip=skip)
                for b in range(n)
            ]
            self.add_module(f"stage{s}", nn.Sequential(*blocks))
            c_in = c_out
        self.pool = nn.AdaptiveAvgPool2d(1) if ndim == 2 else nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(chans[-1], num_classes)
        prefixes = ["stem"] + [
            f"stage{s}.{b}.unit{u}" for s in (1, 2, 3) for b in range(n) for u in (1, 2)
        ]
        self.norm_site_names = tuple((f"{p}.norm", f"{p}.layer") for p in prefixes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, three stages, pool, read-out."""
        h = self.stage3(self.stage2(self.stage1(self.stem(x))))  # (N, 64w, *S/4)
        return self.fc(self.flatten(self.pool(h)))  # (N, 64w, 1..) -> (N, K)


def _resnet(n: int, **kwargs: Any) -> CifarResNet:
    init = kwargs.pop("init")
    check_choice("init", init, INITS)
    check_positive("width", kwargs["width"], integer=False)
    model = CifarResNet(n, **kwargs)
    init_weights(model, init)
    return model


_DOC = """Build {name}: He et al.'s CIFAR ResNet with n = {n} ({layers} weighted layers).

    Args:
        norm: norm name; after every conv ({sites} sites), before the ReLU.
        norm_kwargs: keyword arguments for every norm.
        in_shape: ``(C, H, W)`` (Conv2d) or ``(C, L)`` (Conv1d).
        num_classes: the number of outputs.
        skip: keep the option-A residual connections (False: a plain network).
        width: multiplier on the 16/32/64 stage widths (e.g. 0.25: 4/8/16).
        init: ``"kaiming"`` (He et al.'s, the default) or ``"glorot"``; biases 0.
            (``"normal"`` uses std 0.01.)

    Example:
        >>> from bnlab.models import create_model
        >>> net = create_model("{name}", in_shape=(3, 32, 32), num_classes=10)
        >>> len(net.norm_site_names)
        {sites}
    """


def _builder(name: str, n: int) -> Callable[..., CifarResNet]:
    def build(
        *, norm: str, norm_kwargs: Mapping[str, Any], in_shape: tuple[int, ...],
        num_classes: int, skip: bool = True, width: float = 1.0, init: str = "kaiming",
    ) -> CifarResNet:
        return _resnet(n, norm=norm, norm_kwargs=norm_kwargs, in_shape=in_shape,
                       num_classes=num_classes, skip=skip, width=width, init=init)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = _DOC.format(name=name, n=n, layers=6 * n + 2, sites=6 * n + 1)
    return build


resnet20 = register_model("resnet20")(_builder("resnet20", 3))
resnet56 = register_model("resnet56")(_builder("resnet56", 9))
resnet110 = register_model("resnet110")(_builder("resnet110", 18))
