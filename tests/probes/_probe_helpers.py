"""Shared helpers for the probe tests: tiny models and a bit-exact state fingerprint."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn


class LocalNoisyBN(nn.BatchNorm1d):
    """A stand-in for ``noisy_bn``: BN plus additive noise from its own generator.

    It has the ``noise_state()`` / ``set_noise_state()`` API of docs/internals.md and
    ``absorbs_bias`` so bnlab treats it as a norm.
    """

    absorbs_bias = True

    def __init__(self, num_features: int, seed: int = 123) -> None:
        super().__init__(num_features)
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if self.training:
            y = y + 0.1 * torch.randn(y.shape, generator=self.gen, dtype=y.dtype)
        return y

    def noise_state(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def set_noise_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


def noisy_norm(c: int) -> nn.Module:
    """The registry's ``noisy_bn`` when it exists, else the local stand-in."""
    from bnlab.layers import create_norm, list_norms

    if "noisy_bn" in list_norms():
        return create_norm("noisy_bn", c)
    return LocalNoisyBN(c)


def bn_norm(c: int) -> nn.Module:
    """The registry's ``bn`` when it exists, else ``nn.BatchNorm1d``."""
    from bnlab.layers import create_norm, list_norms

    if "bn" in list_norms():
        return create_norm("bn", c)
    return nn.BatchNorm1d(c)


def mlp_bn_noisy_dropout(d_in: int = 6, width: int = 8, classes: int = 3) -> nn.Sequential:
    """Linear-bn-ReLU-dropout-linear-noisy_bn-ReLU-linear: every kind of hidden state."""
    return nn.Sequential(
        nn.Linear(d_in, width),
        bn_norm(width),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(width, width),
        noisy_norm(width),
        nn.ReLU(),
        nn.Linear(width, classes),
    )


class ConvNet(nn.Module):
    """A non-Sequential model with native BatchNorm2d in two flavours."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4, momentum=None)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4, track_running_stats=False)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))  # (N, 4, H, W)
        h = torch.relu(self.bn2(self.conv2(h))) + h
        return self.head(self.drop(h.mean(dim=(2, 3))))  # (N, 4) -> (N, classes)


def noise_states(model: nn.Module) -> dict[str, Any]:
    modules = model.named_modules()
    return {n: m.noise_state() for n, m in modules if callable(getattr(m, "noise_state", None))}


def _tensor_state(t: torch.Tensor | None) -> Any:
    return None if t is None else (t.dtype, tuple(t.shape), t.detach().clone())


def fingerprint(
    model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *, versions: bool = True
) -> dict[str, Any]:
    """Everything the no-side-effect contract covers, as comparable values.

    ``versions``: also the autograd version counters of parameters, grads and buffers. A
    probe that moves them breaks a graph the user built before calling it (issue 18).
    """
    fp: dict[str, Any] = {
        "params": {n: _tensor_state(p) for n, p in model.named_parameters()},
        "grads": {n: _tensor_state(p.grad) for n, p in model.named_parameters()},
        "grad_ids": {n: id(p.grad) for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "buffers": {
            f"{mn}.{bn}": _tensor_state(b)
            for mn, m in model.named_modules()
            for bn, b in m._buffers.items()
        },
        "training": {n: m.training for n, m in model.named_modules()},
        "torch_rng": torch.get_rng_state().clone(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
        "noise": noise_states(model),
    }
    if optimizer is not None:
        fp["optimizer"] = optimizer.state_dict()
    if versions:
        fp["versions"] = {
            **{f"param {n}": p._version for n, p in model.named_parameters()},
            **{f"grad {n}": p.grad._version for n, p in model.named_parameters()
               if p.grad is not None},
            **{f"buffer {n}": b._version for n, b in model.named_buffers()},
        }
    return fp


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Bit-exact recursive comparison (tensors by dtype, shape and every bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
