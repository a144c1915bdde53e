"""Internal covariate shift as Santurkar et al. (2018) define it (Definition 2.1, §2.2).

For layer i with weight W_i, on the training batch (x, y):

    G  = ∇_{W_i} L(W_1, …, W_k; x, y)                       (all layers at time t)
    G' = ∇_{W_i} L(W_1⁺, …, W_{i−1}⁺, W_i, …, W_k; x, y)   (only layers 1..i−1 updated)
    ICS_i = ‖G − G'‖₂,  cos_i = ⟨G, G'⟩ / (‖G‖ ‖G'‖)

where W⁺ is the update the training optimizer would really make from this gradient. The
update is computed by stepping a *copy* of the optimizer with its state (momentum, Adam
moments), never by assuming plain SGD (PEERS.md §8c, §15.8). "Layers 1..i−1" are the
parameters of the layers that run before layer i (``order=`` overrides).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bnlab.probes import _passes, _state
from bnlab.probes.base import Probe, ProbeContext, Schedule

__all__ = ["ICSProbe", "internal_covariate_shift"]


def _pair_metrics(g: torch.Tensor, g2: torch.Tensor) -> dict[str, torch.Tensor]:
    g, g2 = g.double().flatten(), g2.double().flatten()
    denom = g.norm() * g2.norm()
    cos = torch.where(denom > 0, g @ g2 / denom, torch.nan)
    return {"l2": (g - g2).norm(), "cos": cos}


def internal_covariate_shift(
    model: nn.Module,
    loss_fn: _passes.LossFn,
    batch: _passes.Batch,
    optimizer: torch.optim.Optimizer,
    layers: Sequence[str | int] = (1,),
    *,
    bn_mode: str = "train",
    order: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Santurkar's gradient-based ICS of each layer (Definition 2.1).

    Args:
        model: any ``nn.Module``; ``loss_fn(model(inputs), targets)`` is the loss (a
            ``torch.compile``'d one is measured through its original module, with a
            warning).
        loss_fn: the training loss.
        batch: ``(inputs, targets)`` of this step.
        optimizer: the training optimizer; a copy of it (and its state) takes the step, so
            the update is what SGD, momentum, Adam, … would really do. Not modified.
        layers: norm-site indices (``int``, the weight of the layer feeding the norm, found
            from a traced forward pass for models that do not declare it), module names
            (their ``weight``) or parameter names.
        bn_mode: ``"train"`` (batch statistics, the training objective) or ``"eval"``.
        order: parameter names in depth order, to decide which parameters are "layers
            1..i−1". Default: for bnlab models (declared sites) ``named_parameters()``
            order; for any other model the order in which their modules first run in the
            forward pass (registration order can differ from it).

    Returns:
        ``{str(layer): {"l2": ‖G − G'‖₂, "cos": cos∠(G, G')}}`` (``cos`` is NaN when a
        gradient is zero).

    Raises:
        ValueError: for a layer that does not run in the forward pass, a norm site without
            a single feeding layer, or an unknown layer.

    Cost:
        1 forward+backward for G (and the update), plus 1 forward+backward per layer for
        G' (the backward only reaches down to layer i), plus one optimizer step on a copy,
        plus 1 forward (no backward) to trace a model that does not declare its sites
        when ``order`` is not given. Noise and dropout are replayed, so all passes see the
        same function.

    Example:
        >>> ics = internal_covariate_shift(model, F.cross_entropy, (x, y), opt, layers=[5, 10])
        >>> ics["5"]["l2"], ics["5"]["cos"]
    """
    model = _passes.unwrap(model)
    batch = _passes.unpack_batch(batch)
    targets, traced_order = _passes.layer_params(
        model, layers, batch[0], bn_mode, with_order=order is None
    )
    order = traced_order if order is None else order
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        params = _passes.trainable(model)
        frozen = {p: t for p, t in model.named_parameters() if p not in params}
        point0 = {**params, **{p: frozen[p] for _, p in targets if p in frozen}}
        replay()
        _, grads = _passes.grads_at(model, loss_fn, batch, point0, list(point0), unused="none")
        _passes.require_gradients(grads, targets)
        update = {id(params[n]): grads[n] for n in params if grads[n] is not None}
        new = _passes.simulate_step(optimizer, update)  # W⁺ for every layer
        result = {}
        for key, pname in targets:
            point = dict(point0)
            for n in _passes.params_before(model, pname, order):
                if n in params and id(params[n]) in new:
                    point[n] = new[id(params[n])]  # layers 1..i−1 take their step
            replay()
            _, g2 = _passes.grads_at(model, loss_fn, batch, point, [pname])  # G'
            result[key] = _pair_metrics(grads[pname], g2[pname])  # type: ignore[arg-type]
    host = _passes.to_host(result)
    return {key: {m: float(v) for m, v in metrics.items()} for key, metrics in host.items()}


class ICSProbe(Probe):
    """Log Santurkar's ICS for ``layers`` in the training loop.

    Logs ``ics/<layer>/l2`` and ``ics/<layer>/cos`` at the scheduled steps. Cost per call:
    ``len(layers) + 1`` forward+backward passes, +1 forward for a model that does not
    declare its sites (see :func:`internal_covariate_shift`).

    Args:
        layers: as in :func:`internal_covariate_shift`.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
    """

    name = "ics"

    def __init__(
        self,
        layers: Sequence[str | int] = (1,),
        *,
        schedule: Schedule | int = 1,
        bn_mode: str = "train",
    ) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.layers = list(layers)

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure ICS on this step's batch and optimizer, then log it."""
        res = internal_covariate_shift(
            ctx.model, ctx.loss_fn, ctx.batch, ctx.optimizer, self.layers, bn_mode=self.bn_mode
        )
        for key, metrics in res.items():
            for metric, value in metrics.items():
                ctx.log(f"{self.name}/{key}/{metric}", value)
