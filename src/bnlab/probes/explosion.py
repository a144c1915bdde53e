"""Gradient-explosion rate: how fast squared backward signals grow towards the input.

Yang et al. 2019 (PAPERS.md §4) show that in a wide BN network at initialization the
squared gradient norm with respect to a layer's activations grows by a constant factor per
layer going backwards, ``λ = E‖∂L/∂h_{l-1}‖² / E‖∂L/∂h_l‖²``; for ReLU after BN with
Kaiming weights the large-batch limit is ``π/(π-1) ≈ 1.467``, and 1 without BN.
:func:`gradient_explosion_rate` measures the per-pair ratios on one batch, for any model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from bnlab.layers.sites import norm_sites, resolve_module
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = ["gradient_explosion_rate"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


def _output_hook(key: str, store: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A forward hook that records a module's output and passes on a copy.

    Passing a clone downstream keeps the recorded tensor intact when the next module works
    in place (``ReLU(inplace=True)`` after a norm), so its gradient is ``∂L/∂h`` itself.
    """

    def hook(module: nn.Module, args: tuple[object, ...], out: object) -> torch.Tensor:
        del module, args
        if key in store:
            raise ValueError(f"layer {key!r} ran twice in one forward; pick modules used once")
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"layer {key!r} does not return a single tensor")
        store[key] = out
        return out.clone()

    return hook


def _middle_half(n: int) -> slice:
    """Indices of the middle half of n items (all of them when n < 4)."""
    lo = n // 4
    return slice(lo, n - lo)


def gradient_explosion_rate(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    layers: Sequence[str | int] | None = None,
    bn_mode: str = "train",
) -> dict[str, list[float] | float]:
    """Ratios of squared gradient norms w.r.t. the outputs of consecutive layers.

    For layers ``h_1, …, h_n`` in depth order (outputs captured by forward hooks),
    ``ratios[i] = ‖∂L/∂h_{i+1}‖² / ‖∂L/∂h_{i+2}‖²`` (earlier over later; > 1 means the
    gradient explodes towards the input), and ``mean`` is the arithmetic mean of the ratios
    over the middle half (``ratios[n//4 : n - n//4]``, i.e. away from the input and the
    loss, where Yang et al.'s mean-field rate applies).

    Cost: 1 forward + 1 backward pass, plus one copy of each hooked output.

    Args:
        model: any ``nn.Module``; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        layers: module names or norm-site indices, in depth order; default: every norm
            site (for bnlab models built with ``norm="none"`` these are Identity modules,
            so the control without BN is measured at the same places).
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``{"ratios": [n - 1 floats], "mean": float}``.

    Raises:
        ValueError: for fewer than 2 layers, a layer used twice, or an output the loss does
            not depend on.

    Example:
        >>> out = gradient_explosion_rate(mlp, F.cross_entropy, (x, y))
        >>> out["mean"]  # ≈ π/(π-1) for a wide BN-ReLU MLP at Kaiming init, large batch
    """
    items = list(layers) if layers is not None else [s.index for s in norm_sites(model)]
    if len(items) < 2:
        raise ValueError(f"need at least 2 layers to form a ratio, got {items!r}")
    resolved = [resolve_module(model, item) for item in items]
    store: dict[str, torch.Tensor] = {}
    inputs, targets = batch
    with no_trace(model) as replay, _bn_mode(model, bn_mode):
        handles = [m.register_forward_hook(_output_hook(k, store)) for k, m in resolved]
        try:
            replay()
            loss = loss_fn(model(inputs), targets)
        finally:
            for h in handles:
                h.remove()
        keys = [k for k, _ in resolved]
        missing = [k for k in keys if k not in store or not store[k].requires_grad]
        if missing:
            raise ValueError(f"layers {missing} did not run or their outputs need no gradient")
        grads = torch.autograd.grad(loss, [store[k] for k in keys], allow_unused=True)
    sq = torch.stack([g.pow(2).sum() if g is not None else _zero(loss) for g in grads])
    ratios = (sq[:-1] / sq[1:]).tolist()  # one host transfer for all pairs
    middle = ratios[_middle_half(len(ratios))]
    return {"ratios": ratios, "mean": sum(middle) / len(middle)}


def _zero(loss: torch.Tensor) -> torch.Tensor:
    """A zero of the loss's dtype (a layer the loss does not reach has zero gradient)."""
    return torch.zeros((), dtype=loss.dtype, device=loss.device)
