"""Santurkar et al. 2018's BN theorems, evaluated as measurements.

Theorem 4.1 (PAPERS.md §2.7) compares, at one BN site, the gradient w.r.t. the BN input
``y_j`` (unit or channel j, a vector over the m values of the batch) with the gradient
``g = ∂L/∂z_j`` w.r.t. the BN output ``z = γ ŷ + β``. The BN backward pass is

    ∂L/∂y_j = (γ / (m σ̃)) (m g − 1⟨1, g⟩ − ŷ ⟨g, ŷ⟩),   ŷ = (y − μ)/σ̃,  σ̃² = σ² + ε,

and since ``⟨1, ŷ⟩ = 0`` and ``‖ŷ‖² = m σ²/σ̃²`` its squared norm is exactly

    ‖∂L/∂y_j‖² = (γ²/σ̃²) (‖g‖² − ⟨1, g⟩²/m − (1 + ε/σ̃²) ⟨g, ŷ⟩²/m),

which at ε = 0 is the proof's identity with 1/m. The theorem as printed has 1/√m in the
last term; it then claims ``‖∂L/∂y_j‖² <= …``, which fails whenever ⟨g, ŷ⟩ ≠ 0 and m > 1
(the erratum of §2.7). :func:`bn_gradient_identity` returns the measured left side and both
right sides so a recipe can show which holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bnlab.layers.sites import resolve_module
from bnlab.probes import _passes
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace
from bnlab.probes.hessian import _site_input_hook

__all__ = ["bn_gradient_identity"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


def _output_hook(store: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Record the site's output ``z``; pass on a copy so in-place ops downstream spare it."""

    def hook(module: nn.Module, args: tuple[object, ...], out: torch.Tensor) -> torch.Tensor:
        del module, args
        store["z"] = out
        return out.clone()

    return hook


def _by_channel(t: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (C, m) with m = N·(spatial size): one row per normalized unit."""
    return t.detach().transpose(0, 1).reshape(t.shape[1], -1)


def _capture_grads(
    model: nn.Module, module: nn.Module, loss_fn: LossFn, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One train-mode forward/backward: returns the site's input y, ∂L/∂y and ∂L/∂z."""
    store: dict[str, torch.Tensor] = {}
    inputs, targets = batch
    with no_trace(model) as replay, _bn_mode(model, "train"):
        handles = [
            module.register_forward_pre_hook(_site_input_hook(store)),
            module.register_forward_hook(_output_hook(store)),
        ]
        try:
            replay()
            loss = loss_fn(model(inputs), targets)
        finally:
            for h in handles:
                h.remove()
        grad_y, grad_z = torch.autograd.grad(loss, [store["y"], store["z"]])
    return store["y"].detach(), grad_y, grad_z


def bn_gradient_identity(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    site: str | int,
    *,
    bn_mode: str = "train",
) -> dict[str, np.ndarray | float | int]:
    """Both sides of Santurkar et al.'s Theorem 4.1 at a BN site, per channel.

    See the module docstring for the formulas. ``lhs`` is measured by autograd (the
    gradient w.r.t. the tensor entering the norm); the right sides are computed from the
    gradient ``g`` w.r.t. the norm's output and the batch statistics of its input, with
    ``γ`` the norm's weight (1 if it has none) and σ̃² = σ² + ε (biased σ², over batch and
    space). ``rhs_printed`` uses the same σ̃ so that it differs from ``rhs`` only in the
    printed 1/√m term.

    Cost: 1 forward + 1 backward pass, in train mode.

    Args:
        model: any ``nn.Module`` (BN in train mode is what the theorem is about; a
            ``torch.compile``'d one is measured through its original module).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        site: a norm-site index or the name of a BatchNorm-like module (it must have an
            ``eps`` attribute and normalize each channel over batch and space).
        bn_mode: must be ``"train"``: with running statistics BN is affine in y and the
            theorem does not apply.

    Returns:
        ``{"lhs": (C,), "rhs": (C,), "rhs_printed": (C,), "g_dot_yhat": (C,), "m": int,
        "eps": float}``, float64 numpy arrays; ``lhs ≈ rhs`` (the corrected identity) and
        ``lhs <= rhs_printed`` fails where ``g_dot_yhat ≠ 0`` and m > 1.
    """
    if bn_mode != "train":
        raise ValueError(
            f"bn_gradient_identity needs bn_mode='train' (batch statistics), got {bn_mode!r}"
        )
    model = _passes.unwrap(model)
    key, module = resolve_module(model, site)
    eps = getattr(module, "eps", None)
    if not isinstance(eps, float):
        raise ValueError(f"site {key!r} ({type(module).__name__}) is not a BatchNorm-like module")
    y, grad_y, grad_z = _capture_grads(model, module, loss_fn, batch)
    y, g = _by_channel(y).double(), _by_channel(grad_z).double()  # (C, m)
    m = y.shape[1]
    var, mean = torch.var_mean(y, dim=1, correction=0, keepdim=True)  # (C, 1)
    var_eps = var + eps  # σ̃²
    y_hat = (y - mean) / var_eps.sqrt()
    weight = getattr(module, "weight", None)
    gamma = weight.detach().double().reshape(-1, 1) if weight is not None else 1.0
    a = g.sum(1, keepdim=True)  # ⟨1, g⟩
    b = (g * y_hat).sum(1, keepdim=True)  # ⟨g, ŷ⟩
    head = g.pow(2).sum(1, keepdim=True) - a.pow(2) / m
    scale = gamma**2 / var_eps
    rhs = scale * (head - (1.0 + eps / var_eps) * b.pow(2) / m)
    printed = scale * (head - b.pow(2) / math.sqrt(m))
    host = _passes.to_host({
        "lhs": _by_channel(grad_y).double().pow(2).sum(1),
        "rhs": rhs.squeeze(1),
        "rhs_printed": printed.squeeze(1),
        "g_dot_yhat": b.squeeze(1),
    })  # the one transfer
    return {**host, "m": m, "eps": float(eps)}
