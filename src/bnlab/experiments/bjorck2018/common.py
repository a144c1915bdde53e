"""What the Bjorck et al. 2018 recipes share: data preparation, the networks, a batch.

The network is He et al.'s CIFAR ResNet (PAPERS.md §3.2: "110 layer Resnet", "setup
similar to the original Resnet paper"), with BN after every conv or without any norm.
What replaces BN in the unnormalized network is NOT STATED; here the conv layers get
biases (zero at initialization; :mod:`bnlab.models` adds them wherever the norm does not
absorb a shift) and the initialization is a config option:

* ``init`` (the BN network): He (``"kaiming"``), as in He et al. [17] [INFERRED].
* ``init_none`` (the network without BN): Glorot (``"glorot"``) by default. He init
  without BN makes ResNet-110's activations grow ≈ 2× in variance per block: measured on
  a CIFAR-10 batch, the initial loss is ≈ 2·10⁸ and the loss after a gradient step of any
  η ≥ 1e-5 is not finite, so the network could not be trained at LR 1e-4, which the paper
  does (Fig. 1, "LR 0.0001 without BN", ≈ 82% test accuracy). With Glorot's N(0, 1/fan)
  variance the initial loss is finite (≈ 10²) and a step of 1e-4 lowers it. ``--set
  init_none=kaiming`` runs the He-initialized variant.

Inputs are per-pixel mean-subtracted with the training set's mean image (He et al.'s
preprocessing [INFERRED from [17]]; for MNIST-1D the mean signal).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from bnlab.experiments.harness import RunEnv
from bnlab.models import create_model

__all__ = ["Init", "Norm", "centered_data", "random_batch", "resnet"]

Norm = Literal["bn", "none"]
Init = Literal["kaiming", "glorot", "normal"]


def centered_data(env: RunEnv, *, test: bool = False) -> tuple[torch.Tensor, ...]:
    """Training inputs minus their mean input, with labels (and the test split likewise).

    Returns:
        ``(x, y)``, or ``(x, y, x_test, y_test)`` with ``test``, on the run's device; x is
        (N, C, H, W) or (N, C, L). Both splits are centred with the training mean.
    """
    x, y = env.load("train")
    mean = x.mean(dim=0, keepdim=True)  # (N, C, ...) -> (1, C, ...): the mean image
    if not test:
        return x - mean, y
    xt, yt = env.load("test")
    return x - mean, y, xt - mean, yt


def resnet(model: str, norm: Norm, in_shape: tuple[int, ...], *, init: Init, init_none: Init,
           width: float = 1.0) -> nn.Module:
    """He et al.'s CIFAR ResNet with BN (``init``) or without norms (``init_none``)."""
    return create_model(model, norm=norm, in_shape=in_shape, num_classes=10, width=width,
                        init=init if norm == "bn" else init_none)


def random_batch(x: torch.Tensor, y: torch.Tensor, size: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` distinct training examples drawn with ``gen`` (the same for BN and no-BN)."""
    idx = torch.randperm(x.shape[0], generator=gen)[:size].to(x.device)
    return x[idx], y[idx]
