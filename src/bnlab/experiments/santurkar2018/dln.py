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
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.santurkar2018.common import VggConfig, build_model, load_data, norm_kwargs
from bnlab.experiments.santurkar2018.common import vgg_training as _vgg_training
from bnlab.models import create_model
from bnlab.probes import Probe
from bnlab.probes._state import bn_mode, no_trace
from bnlab.recipes.santurkar2018.measures import DLN_LOSS
from bnlab.sweep.config import NonNegInt, PosInt
from bnlab.train import SGD, build_optimizer

__all__ = ["DLNFields", "VggDlnConfig", "build_dln", "dln_data", "dln_loss", "dln_steps",
           "dln_training", "full_batch", "full_batch_loss", "training"]

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
    dln_eval_every: PosInt = 100  # the full-batch loss every this many steps (Figs. 3b, 5b)


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


def build_dln(cfg: DLNFields, env: RunEnv, norm: str, x: torch.Tensor,
              kwargs: dict | None = None) -> nn.Module:
    """The DLN with ``norm`` after every layer (Glorot init, no biases), on the run's device.

    Built from the global RNG the harness seeded, so every norm of one seed starts from the
    same weights.
    """
    model = create_model("dln", norm=norm, norm_kwargs=kwargs, in_shape=tuple(x.shape[1:]),
                         num_classes=x.shape[1], depth=cfg.dln_depth, width=cfg.dln_width,
                         norm_last=cfg.dln_norm_last)
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


@dataclass(frozen=True)
class VggDlnConfig(DLNFields, VggConfig):
    """A run of either of the paper's two setups: VGG on CIFAR-10 or the DLN (``net``).

    The VGG fields are :class:`~bnlab.experiments.santurkar2018.common.VggConfig`'s (the
    shared setup); ``norm`` and ``lr`` serve both; the ``dln_`` fields only the DLN.
    """

    net: Literal["vgg", "dln"] = "vgg"  # paper: VGG (Figs. 3a, 4, 12) or DLN (3b, 5b, 10, 13)


def full_batch_loss(x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
                    ) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate(model)``: the training objective L(w) on the whole set, norms as in training.

    The loop evaluates in eval mode; the DLN's curve is the training loss, so the norms use
    the full batch's statistics here (running statistics restored, nothing steered).
    """

    def evaluate(model: nn.Module) -> dict[str, float]:
        with torch.no_grad(), no_trace(model), bn_mode(model, "train"):
            return {DLN_LOSS.name: float(loss_fn(model(x), y))}

    return evaluate


def dln_training(cfg: VggDlnConfig, env: RunEnv, probes: list[Probe]) -> Training:
    """Full-batch gradient descent on the DLN task with ``cfg.norm`` at every layer."""
    x, y = dln_data(cfg, env)
    model = build_dln(cfg, env, cfg.norm, x, norm_kwargs(cfg))
    loss = dln_loss(cfg.dln_reduction)
    return Training(model, full_batch(x, y, env.seed), loss,
                    build_optimizer(SGD(lr=cfg.lr), model.parameters()),
                    steps=dln_steps(cfg, env), evaluate=full_batch_loss(x, y, loss),
                    eval_every=cfg.dln_eval_every, probes=probes, log_every=cfg.log_every,
                    checkpoint_every=cfg.checkpoint_every)


def training(cfg: VggDlnConfig, env: RunEnv, probes: list[Probe]) -> Training:
    """The run's training job: the shared VGG setup or the DLN, with ``probes``."""
    if cfg.net == "dln":
        return dln_training(cfg, env, probes)
    return _vgg_training(cfg, env, build_model(cfg, env, load_data(cfg, env)), probes)
