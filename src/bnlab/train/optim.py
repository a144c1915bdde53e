"""Optimizers built from typed, frozen configs.

A run's optimizer is data (part of its key), so it is a frozen dataclass, not a callable.
:func:`build_optimizer` turns it into the ``torch.optim`` object.

Example:
    >>> opt = build_optimizer(SGD(lr=0.1, momentum=0.9, nesterov=True), model.parameters())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["SGD", "Adam", "OptimizerConfig", "build_optimizer"]


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay.

    Update (PyTorch's convention): ``b ← μ·b + (g + λ·w)``, ``w ← w − η·b``
    (Nesterov: ``w ← w − η·(g + λ·w + μ·b)``).

    Attributes:
        lr: base learning rate η (the schedule multiplies it).
        momentum: μ in [0, 1); 0 is plain SGD.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 coefficient λ ≥ 0 added to the gradient.
    """

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr, self.weight_decay)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD nesterov=True needs momentum > 0; set momentum, e.g. 0.9")


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient.

    Attributes:
        lr: base learning rate (the schedule multiplies it).
        betas: decay rates (β₁, β₂) of the first and second moment estimates, each in [0, 1).
        eps: added to the denominator for numerical stability.
        weight_decay: L2 coefficient ≥ 0 added to the gradient.
    """

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr, self.weight_decay)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam betas must be two numbers in [0, 1), got {self.betas}")
        if self.eps <= 0.0:
            raise ValueError(f"Adam eps must be > 0, got {self.eps}")


OptimizerConfig = SGD | Adam


def _check_lr(lr: float, weight_decay: float) -> None:
    if not lr > 0.0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")


def build_optimizer(
    config: OptimizerConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """Build the ``torch.optim`` optimizer described by ``config``.

    Args:
        config: an :class:`SGD` or :class:`Adam` config.
        params: the parameters (or parameter groups) to optimize.

    Raises:
        TypeError: if ``config`` is not one of the optimizer configs.
    """
    if isinstance(config, SGD):
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if isinstance(config, Adam):
        return torch.optim.Adam(
            params,
            lr=config.lr,
            betas=tuple(config.betas),
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
    raise TypeError(f"unknown optimizer config {config!r}; use bnlab.train.SGD or bnlab.train.Adam")
