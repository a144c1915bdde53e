"""Shared tables and float64 references for the layer tests (no bnlab code in the references)."""

from __future__ import annotations

import torch

from bnlab.layers import list_norms

# What each norm declares (issue 2): the BN family and centred lp absorb a preceding bias.
ABSORBS_BIAS = {
    "bn": True, "bn_reference": True, "noisy_bn": True, "ghost_bn": True, "batch_renorm": True,
    "l1": False, "l2": False, "linf": False, "ln": False, "gn": False, "none": False,
    "noise": False,
}  # fmt: skip
BATCH_STATS = {"bn", "bn_reference", "noisy_bn", "ghost_bn", "batch_renorm", "l1", "l2", "linf"}
NOISY = {"noisy_bn", "noise"}
AFFINE = set(list_norms()) - {"none", "noise"}
NORMS = list_norms()
SHAPES = {"rank2": (6, 3), "rank3": (4, 3, 5), "rank4": (3, 3, 2, 4)}


def channel_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, *([1] * (x.dim() - 2)))


def per_channel_columns(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *) -> (C, M): every value of channel c in row c."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def bn_reference_loop(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Float64 BN without affine, channel by channel with Python loops over channels."""
    cols = per_channel_columns(x.double())
    out = torch.empty_like(cols)
    for c in range(cols.shape[0]):
        mu = cols[c].sum() / cols.shape[1]
        var = ((cols[c] - mu) ** 2).sum() / cols.shape[1]
        out[c] = (cols[c] - mu) / torch.sqrt(var + eps)
    shape = (x.shape[1], x.shape[0], *x.shape[2:])
    return out.reshape(shape).transpose(0, 1)


def freeze_noise(module: torch.nn.Module) -> None:
    """Make every forward of a noisy module draw the same noise (for gradcheck)."""
    if hasattr(module, "noise_state"):
        state = module.noise_state()
        hook = lambda mod, args: mod.set_noise_state(state)  # noqa: E731
        module.register_forward_pre_hook(hook)
