"""Santurkar et al. 2018's deep linear network (DLN) task, shared by the measure recipes.

PAPERS.md §2.1: fit ``A x`` with ``W_25 ⋯ W_1 x``, 25 square 10×10 layers, ``A`` 10×10 with
i.i.d. N(0, 1) entries, 1,000 Gaussian inputs that are also the batch (full-batch gradient
descent), 10,000 steps, Glorot init. In the normalized variants a norm follows every linear
layer (not stated; our reading). The paper does not say how the squared error is reduced
over samples; its loss values of 10^3–10^4 (Fig. 3) imply the **sum** over the 1,000 samples
(with the mean, LR 1e-6 barely moves the network), so the sum is the default and the mean
an option (``dln_reduction``).

The DLN is cheap, so every scale runs it at the paper's size (25 layers of 10×10, 1,000
samples); only the number of steps shrinks at the quick and smoke scales. On a loaded
2-core machine one step takes about 7 ms without a norm, 14 ms with BN and 30 ms with ℓp
normalization (the (1000, 10) × (10, 10) products are dispatch-bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bnlab.data import Loader, gaussian_linear
from bnlab.experiments.harness import RunEnv
from bnlab.models import create_model
from bnlab.sweep.config import NonNegInt, PosInt

__all__ = ["DLNFields", "build_dln", "dln_data", "dln_loss", "dln_steps", "full_batch"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DLNFields:
    """The DLN's config fields, shared by every recipe that runs it (prefix ``dln_``)."""

    dln_depth: PosInt = 25  # paper: k = 25 linear layers (App. A.1)
    dln_width: PosInt = 10  # paper: A is 10×10 and the W_i have "the same dimensions"
    dln_samples: PosInt = 1_000  # paper: 1,000 samples, all of them each step (full batch)
    dln_steps: PosInt = 10_000  # paper: 10,000 steps of full-batch GD (App. A.1)
    dln_reduction: Literal["sum", "mean"] = "sum"  # not stated; sum inferred (PAPERS.md §2.1)
    dln_norm_last: bool = True  # not stated; a norm after every layer (PAPERS.md §2.1)
    dln_mnist1d_steps: NonNegInt = 0  # cap on --data mnist1d (make reproduce); 0: no cap


def dln_loss(reduction: str) -> LossFn:
    """The squared error ``Σ_i ‖ŷ_i − y_i‖²`` (``"sum"``) or its mean over samples (``"mean"``).

    The per-sample error is the squared Euclidean norm over the output dimensions, as in the
    paper's objective ‖W x − A x‖²; only the reduction over samples differs.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"dln_reduction must be 'sum' or 'mean', got {reduction!r}")

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_sample = (out - target).pow(2).sum(dim=1)  # (N, D) -> (N,)
        return per_sample.sum() if reduction == "sum" else per_sample.mean()

    return loss


def dln_data(cfg: DLNFields, env: RunEnv) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's task: ``x`` (N, width) ~ N(0, I) and ``y = A x``, fixed by the run's seed.

    Every condition of one seed (BN, no BN, ℓp) fits the same ``A`` on the same inputs.
    """
    x, y = gaussian_linear(cfg.dln_samples, cfg.dln_width, seed=env.seed)
    return x.to(env.device), y.to(env.device)


def build_dln(cfg: DLNFields, env: RunEnv, norm: str, x: torch.Tensor) -> nn.Module:
    """The DLN with ``norm`` after every layer (Glorot init, no biases), on the run's device.

    Built from the global RNG the harness seeded, so every norm of one seed starts from the
    same weights.
    """
    model = create_model("dln", norm=norm, in_shape=tuple(x.shape[1:]), num_classes=x.shape[1],
                         depth=cfg.dln_depth, width=cfg.dln_width, norm_last=cfg.dln_norm_last)
    return env.place(model)


def full_batch(x: torch.Tensor, y: torch.Tensor, seed: int) -> Loader:
    """Every step sees the whole set in a fixed order (full-batch gradient descent)."""
    return Loader(x, y, len(x), shuffle=False, drop_last=False, seed=seed)


def dln_steps(cfg: DLNFields, env: RunEnv) -> int:
    """The run's step count: ``dln_steps``, capped by ``dln_mnist1d_steps`` off real data.

    ``make reproduce`` runs every recipe on the embedded default (``--data mnist1d``) within
    a budget of about 40 s each; the DLN needs no dataset, so there the quick presets
    shorten it. ``--data paper`` runs ``dln_steps`` as they are.
    """
    if env.data == "paper" or cfg.dln_mnist1d_steps == 0:
        return cfg.dln_steps
    return min(cfg.dln_steps, cfg.dln_mnist1d_steps)
