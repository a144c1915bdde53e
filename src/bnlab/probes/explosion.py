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
from bnlab.probes import _passes
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = ["gradient_explosion_rate"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


def _output_hook(
    key: str, store: dict[str, torch.Tensor], problems: dict[str, str]
) -> Callable[..., object]:
    """A forward hook that records a module's output and passes on a copy.

    Passing a clone downstream keeps the recorded tensor intact when the next module works
    in place (``ReLU(inplace=True)`` after a norm), so its gradient is ``∂L/∂h`` itself.
    What cannot be recorded goes to ``problems`` instead.
    """

    def hook(module: nn.Module, args: tuple[object, ...], out: object) -> object:
        del module, args
        if key in store or key in problems:
            problems[key] = "ran more than once in one forward pass (a shared module)"
            store.pop(key, None)
            return None
        if not isinstance(out, torch.Tensor):
            problems[key] = f"returns a {type(out).__name__}, not a single tensor"
            return None
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
) -> dict[str, object]:
    """Ratios of squared gradient norms w.r.t. the outputs of consecutive layers.

    For layers ``h_1, …, h_n`` in depth order (outputs captured by forward hooks),
    ``ratios[i] = ‖∂L/∂h_{i+1}‖² / ‖∂L/∂h_{i+2}‖²`` (earlier over later; > 1 means the
    gradient explodes towards the input), and ``mean`` is the arithmetic mean of the ratios
    over the middle half (``ratios[n//4 : n - n//4]``, i.e. away from the input and the
    loss, where Yang et al.'s mean-field rate applies).

    With the default ``layers`` (every norm site) a site that cannot be measured is
    skipped and named in ``skipped`` with the reason (and a warning): a norm registered
    but never called, one called twice, one that returns no tensor, or one whose output
    the loss does not depend on. Layers named in ``layers`` are measured or refused with
    an error.

    Cost: 1 forward + 1 backward pass, plus one copy of each hooked output.

    Args:
        model: any ``nn.Module``; left exactly as found (a ``torch.compile``'d one is
            measured through its original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        layers: module names or norm-site indices, in depth order; default: every norm
            site (for bnlab models built with ``norm="none"`` these are Identity modules,
            so the control without BN is measured at the same places).
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``{"ratios": [n - 1 floats], "mean": float, "layers": [the n keys measured],
        "skipped": {key: reason}}``.

    Raises:
        ValueError: for fewer than 2 measurable layers, or a named layer that cannot be
            measured.

    Example:
        >>> out = gradient_explosion_rate(mlp, F.cross_entropy, (x, y))
        >>> out["mean"]  # ≈ π/(π-1) for a wide BN-ReLU MLP at Kaiming init, large batch
    """
    model = _passes.unwrap(model)
    explicit = layers is not None
    items = list(layers) if layers is not None else [s.index for s in norm_sites(model)]
    if explicit and len(items) < 2:
        raise ValueError(f"need at least 2 layers to form a ratio, got {items!r}")
    resolved = [resolve_module(model, item) for item in items]
    store: dict[str, torch.Tensor] = {}
    problems: dict[str, str] = {}
    inputs, targets = batch
    with no_trace(model) as replay, _bn_mode(model, bn_mode):
        handles = [m.register_forward_hook(_output_hook(k, store, problems)) for k, m in resolved]
        try:
            replay()
            loss = loss_fn(model(inputs), targets)
        finally:
            for h in handles:
                h.remove()
        keys = _usable([k for k, _ in resolved], store, problems, explicit)
        grads = torch.autograd.grad(loss, [store[k] for k in keys], allow_unused=True)
        keys, grads = _reached(keys, grads, problems, explicit)
    sq = torch.stack([g.pow(2).sum() for g in grads])
    ratios = _passes.to_host(sq[:-1] / sq[1:]).tolist()  # one host transfer for all pairs
    middle = ratios[_middle_half(len(ratios))]
    skipped = {k: problems[k] for k, _ in resolved if k in problems}
    _passes.warn_skipped("gradient_explosion_rate", skipped, len(resolved))
    return {"ratios": ratios, "mean": sum(middle) / len(middle), "layers": keys,
            "skipped": skipped}


def _usable(keys: list[str], store: dict[str, torch.Tensor], problems: dict[str, str],
            explicit: bool) -> list[str]:
    """The keys whose outputs were recorded and need a gradient; the rest into problems."""
    for k in keys:
        if k not in problems and k not in store:
            problems[k] = "was not called in the forward pass"
        elif k in store and not store[k].requires_grad:
            problems[k] = "its output needs no gradient (nothing before it is trained)"
    return _checked(keys, problems, explicit)


def _reached(keys: list[str], grads: Sequence[torch.Tensor | None], problems: dict[str, str],
             explicit: bool) -> tuple[list[str], list[torch.Tensor]]:
    """Drop outputs the loss does not depend on (no gradient reaches them)."""
    for k, g in zip(keys, grads, strict=True):
        if g is None:
            problems[k] = "the loss does not depend on its output"
    kept = _checked(keys, problems, explicit)
    by_key = dict(zip(keys, grads, strict=True))
    return kept, [by_key[k] for k in kept]  # type: ignore[misc]


def _checked(keys: list[str], problems: dict[str, str], explicit: bool) -> list[str]:
    bad = {k: problems[k] for k in keys if k in problems}
    if bad and explicit:
        detail = "; ".join(f"layer {k!r} {why}" for k, why in bad.items())
        raise ValueError(f"gradient_explosion_rate: {detail}; pick other layers")
    kept = [k for k in keys if k not in bad]
    if len(kept) < 2:
        raise ValueError(
            f"gradient_explosion_rate needs at least 2 measurable layers, got {kept!r} "
            f"(skipped: {bad})"
        )
    return kept
