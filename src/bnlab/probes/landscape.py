"""The loss and its gradient along the update direction.

Santurkar et al. (2018, §3.2, App. A.2.2, Figs. 4 and 10) step from ``w`` along the
descent direction ``−g``, ``g = ∇L_B(w)``, with step sizes η on a grid around the training
learning rate, on the same batch B, and report

- the loss band {L_B(w − ηg)},
- gradient predictiveness {‖g − ∇L_B(w − ηg)‖₂},
- effective β-smoothness β = max_η ‖g − ∇L_B(w − ηg)‖₂ / ‖ηg‖₂.

Bjorck et al. (2018, §3, Fig. 3) plot the relative loss L_B(w − ηg) / L_B(w) on a log grid
of η from 1e-5 to 1e-1. Both are a function evaluated at several points of one landscape:
noise and dropout are replayed identically at each point, and BN uses batch statistics
(``bn_mode="train"``) without touching the running statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import grad_and_value, vmap

from bnlab.probes import _passes, _state
from bnlab.probes.base import Probe, ProbeContext, Schedule

__all__ = ["LandscapeProbe", "RelativeLossProbe", "landscape", "relative_loss"]

#: Bjorck Fig. 3: 17 log-spaced step sizes from 1e-5 to 1e-1 (4 per decade).
DEFAULT_ETAS: tuple[float, ...] = tuple(float(e) for e in np.logspace(-5, -1, 17))


@contextmanager
def _batch_stats_only(model: nn.Module) -> Iterator[None]:
    """Stop train-mode norms from writing running statistics (``vmap`` cannot batch them).

    In train mode the output uses batch statistics either way; only the buffer update goes.
    """
    switched = [
        m
        for m in model.modules()
        if m.training and getattr(m, "track_running_stats", False) is True
    ]
    try:
        for m in switched:
            m.track_running_stats = False
        yield
    finally:
        for m in switched:
            m.track_running_stats = True


def _step_point(params: _passes.Params, g: _passes.Params, eta: Any) -> _passes.Params:
    return {n: p.detach() - eta * g[n] for n, p in params.items()}


def _points_loop(
    model: nn.Module, loss_fn: _passes.LossFn, batch: _passes.Batch, params: _passes.Params,
    g: _passes.Params, etas: Sequence[float], replay: Any, with_grad: bool,
) -> tuple[list[torch.Tensor], list[_passes.Params]]:
    """Loss (and gradient) at each w − ηg, one pass per point."""
    losses, grads = [], []
    for eta in etas:
        point = _step_point(params, g, eta)
        replay()
        if with_grad:
            loss, gk = _passes.grads_at(model, loss_fn, batch, point, list(point))
            grads.append(gk)
        else:
            with torch.no_grad():
                loss = _passes.loss_at(model, loss_fn, batch, point)
        losses.append(loss.detach())
    return losses, grads


def _points_vmap(
    model: nn.Module, loss_fn: _passes.LossFn, batch: _passes.Batch, params: _passes.Params,
    g: _passes.Params, etas: Sequence[float], replay: Any,
) -> tuple[list[torch.Tensor], list[_passes.Params]]:
    """Loss and gradient at all k points in one ``vmap``-ed pass (k× activation memory)."""
    first = next(iter(params.values()))
    eta_t = _passes.device_tensor(etas, first.dtype, first.device)  # (k,)

    def one(eta: torch.Tensor) -> tuple[_passes.Params, torch.Tensor]:
        f = lambda point: _passes.loss_at(model, loss_fn, batch, point)  # noqa: E731
        return grad_and_value(f)(_step_point(params, g, eta))

    replay()
    with _batch_stats_only(model):
        # randomness="same": one dropout mask / noise draw shared by the k points.
        gks, losses = vmap(one, randomness="same")(eta_t)  # leaves (k, *shape)
    return list(losses), [{n: t[i] for n, t in gks.items()} for i in range(len(etas))]


def landscape(
    model: nn.Module,
    loss_fn: _passes.LossFn,
    batch: _passes.Batch,
    *,
    lr: float,
    multipliers: Sequence[float] = (0.5, 1, 2, 4),
    bn_mode: str = "train",
    batched: bool | None = None,
) -> dict[str, Any]:
    """Loss, gradient change and effective β along −g (Santurkar §3.2, Figs. 4, 10, 11).

    With g = ∇L_B(w) over all trainable parameters and η = multiplier × lr:

        loss(η)        = L_B(w − ηg)
        grad_change(η) = ‖g − ∇L_B(w − ηg)‖₂
        beta           = max_η grad_change(η) / ‖ηg‖₂

    Args:
        model: any ``nn.Module`` (a ``torch.compile``'d one is measured through its
            original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the loss.
        batch: ``(inputs, targets)``; every point is evaluated on this batch.
        lr: the training learning rate (Santurkar's "step size").
        multipliers: η / lr; the paper uses [1/2, 4] for VGG and [1/100, 30] for the DLN.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        batched: evaluate the k points in one ``torch.func.vmap`` pass (k× activation
            memory; falls back to a loop when a layer cannot be ``vmap``-ed) or in a loop.
            ``None`` (default) batches on accelerators and loops on the CPU, where the
            batched convolutions are slower than k plain passes (benchmarks/bench_probes.py:
            VGG-16/4, batch 128, k=4: 7.9 steps batched vs 4.9 looped).

    Returns:
        ``{"eta": [k], "loss": [k], "grad_change": [k], "beta": float, "loss0": L_B(w),
        "grad_norm": ‖g‖₂, "batched": whether vmap was used}`` (plain Python floats).

    Cost:
        k + 1 forward+backward passes (one at w, one per step size).

    Example:
        >>> res = landscape(model, F.cross_entropy, (x, y), lr=0.1)
        >>> min(res["loss"]), max(res["loss"]), res["beta"]
    """
    model = _passes.unwrap(model)
    batch = _passes.unpack_batch(batch)
    if batched is None:
        batched = any(p.device.type != "cpu" for p in model.parameters())
    etas = [float(m) * float(lr) for m in multipliers]
    if not etas or min(etas) <= 0:
        raise ValueError(f"lr × multipliers must all be > 0, got {etas}")
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        params = _passes.trainable(model)
        replay()
        loss0, g = _passes.grads_at(model, loss_fn, batch, params, list(params))
        losses, grads, used = _points(model, loss_fn, batch, params, g, etas, replay, batched)
        gnorm = _passes.flat_norm(list(g.values()))
        change = torch.stack([_passes.flat_norm([g[n] - gk[n] for n in g]) for gk in grads])
    host = _passes.to_host(
        {"loss": torch.stack(losses), "change": change, "loss0": loss0, "gnorm": gnorm}
    )
    change_list, norm = host["change"].tolist(), float(host["gnorm"])
    return {
        "eta": etas,
        "loss": host["loss"].tolist(),
        "grad_change": change_list,
        "beta": max(c / (eta * norm) for c, eta in zip(change_list, etas, strict=True)),
        "loss0": float(host["loss0"]),
        "grad_norm": norm,
        "batched": used,
    }


def _points(
    model: nn.Module, loss_fn: _passes.LossFn, batch: _passes.Batch, params: _passes.Params,
    g: _passes.Params, etas: Sequence[float], replay: Any, batched: bool,
) -> tuple[list[torch.Tensor], list[_passes.Params], bool]:
    if batched:
        try:
            return (*_points_vmap(model, loss_fn, batch, params, g, etas, replay), True)
        except (RuntimeError, NotImplementedError):
            pass  # a layer or loss vmap cannot batch (e.g. data-dependent control flow)
    return (*_points_loop(model, loss_fn, batch, params, g, etas, replay, True), False)


def relative_loss(
    model: nn.Module,
    loss_fn: _passes.LossFn,
    batch: _passes.Batch,
    *,
    etas: Sequence[float] = DEFAULT_ETAS,
    bn_mode: str = "train",
) -> dict[str, Any]:
    """Relative loss L_B(w − ηg) / L_B(w) along the gradient (Bjorck et al., Fig. 3).

    Args:
        model: any ``nn.Module`` (a ``torch.compile``'d one is measured through its
            original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the loss.
        batch: ``(inputs, targets)``; all points use this batch.
        etas: step sizes; default 17 log-spaced points in [1e-5, 1e-1].
        bn_mode: ``"train"`` or ``"eval"``.

    Returns:
        ``{"eta": [k], "relative_loss": [k], "loss0": L_B(w)}``. Bjorck's divergence
        criterion is a relative loss above 1e3.

    Cost:
        1 forward+backward, plus k forward passes (no backward).
    """
    model = _passes.unwrap(model)
    batch = _passes.unpack_batch(batch)
    etas = [float(e) for e in etas]
    if not etas or min(etas) <= 0:
        raise ValueError(f"etas must be non-empty and > 0, got {etas}")
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        params = _passes.trainable(model)
        replay()
        loss0, g = _passes.grads_at(model, loss_fn, batch, params, list(params))
        losses, _ = _points_loop(model, loss_fn, batch, params, g, etas, replay, False)
    host = _passes.to_host({"losses": torch.stack(losses), "loss0": loss0})
    l0 = float(host["loss0"])
    return {"eta": etas, "relative_loss": [v / l0 for v in host["losses"].tolist()], "loss0": l0}


class LandscapeProbe(Probe):
    """Log :func:`landscape` at the scheduled steps, with η = multiplier × ``ctx.lr``.

    Logs the metrics ``landscape/loss_min``, ``loss_max``, ``grad_change_min``,
    ``grad_change_max``, ``beta`` (the bands of Santurkar Fig. 4) and the arrays
    ``landscape/loss`` and ``landscape/grad_change`` (one value per multiplier).
    Cost per call: k + 1 forward+backward passes.

    Args:
        multipliers: η / lr, as in :func:`landscape`.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        batched: as in :func:`landscape`.
    """

    name = "landscape"

    def __init__(
        self,
        multipliers: Sequence[float] = (0.5, 1, 2, 4),
        *,
        schedule: Schedule | int = 1,
        bn_mode: str = "train",
        batched: bool | None = None,
    ) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.multipliers = tuple(float(m) for m in multipliers)
        self.batched = batched

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure along −g on this step's batch and log the bands."""
        res = landscape(
            ctx.model, ctx.loss_fn, ctx.batch, lr=ctx.lr, multipliers=self.multipliers,
            bn_mode=self.bn_mode, batched=self.batched,
        )
        for key in ("loss", "grad_change"):
            ctx.log(f"{self.name}/{key}_min", min(res[key]))
            ctx.log(f"{self.name}/{key}_max", max(res[key]))
            ctx.log(f"{self.name}/{key}", np.asarray(res[key]))
        ctx.log(f"{self.name}/beta", res["beta"])


class RelativeLossProbe(Probe):
    """Log :func:`relative_loss` as the array ``relative_loss`` (one value per η).

    Cost per call: 1 forward+backward plus len(etas) forward passes.

    Args:
        etas: step sizes, as in :func:`relative_loss`.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
    """

    name = "relative_loss"

    def __init__(
        self,
        etas: Sequence[float] = DEFAULT_ETAS,
        *,
        schedule: Schedule | int = 1,
        bn_mode: str = "train",
    ) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.etas = tuple(float(e) for e in etas)

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure the relative loss on this step's batch and log it."""
        res = relative_loss(ctx.model, ctx.loss_fn, ctx.batch, etas=self.etas, bn_mode=self.bn_mode)
        ctx.log(self.name, np.asarray(res["relative_loss"]))
