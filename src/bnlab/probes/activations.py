"""Activation statistics per unit at a norm's input or output.

Ioffe & Szegedy 2015 (§4.1, Fig. 1b,c) track the {15, 50, 85}th percentiles of a sigmoid's
input over training; Santurkar et al. 2018 (§2.1, Figs. 2 and 8) show activation histograms
and the moment drift |μ_{t+1} − μ_t|, |σ²_{t+1} − σ²_t| between successive steps. Both are
per unit: over the batch for a fully connected layer, over batch × spatial positions for a
convolution (channel j of an (N, C, *S) tensor pools N·∏S values).

:func:`activation_stats` measures once; :class:`ActivationStatsProbe` measures on a schedule
inside :func:`bnlab.train.train` and adds the drift between its successive calls.

Cost: at most one extra forward pass (no backward) per call, stopped after the last
requested layer; leaves no trace on the model.

Example:
    >>> stats = activation_stats(model, (x, y), [1, "features.3"], where="post")
    >>> stats["1"].percentiles.shape  # (C, 3): 15th, 50th, 85th percentile per unit
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.layers.sites import is_norm_module, resolve_module
from bnlab.probes import _hist, _passes
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace
from bnlab.probes.base import Probe, ProbeContext, Schedule

__all__ = ["ActivationStats", "ActivationStatsProbe", "activation_stats"]

Layer = str | int
Units = Sequence[int] | Mapping[Layer, Sequence[int]] | None
WHERE = ("pre", "post")


@dataclass(frozen=True)
class ActivationStats:
    """Statistics of one layer's activations, one row per unit (channel).

    Attributes:
        units: (C,) the unit indices measured.
        mean: (C,) μ_j = mean of unit j's values.
        std: (C,) σ_j = population standard deviation (divides by the count, like BN).
        levels: (P,) the percentile levels, in [0, 100].
        percentiles: (C, P) linear-interpolation percentiles (numpy's default method).
        edges: (B+1,) histogram bin edges, shared by all units of the layer.
        hist: (C, B) counts; bin i is [e_i, e_{i+1}), the last bin also holds e_B; values
            outside the edges are not counted.
        count: values per unit (N, or N·∏S for a convolution).
    """

    units: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    levels: np.ndarray
    percentiles: np.ndarray
    edges: np.ndarray
    hist: np.ndarray
    count: int


def _inputs_of(batch: Any) -> torch.Tensor:
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, torch.Tensor):
        return batch
    raise ValueError(f"batch must be (inputs, targets) or an input tensor, got {type(batch)}")


class _Captured(Exception):
    """Raised from a hook to end the forward pass once every layer is captured."""


def _capture_hooks(modules: dict[str, nn.Module], where: str, seen: dict[str, torch.Tensor],
                   *, stop_when_done: bool, problems: dict[str, str] | None = None) -> list[Any]:
    """Forward hooks copying each module's first input (pre) or output (post) into ``seen``.

    With ``stop_when_done`` the last capture ends the forward pass (see :func:`_capture`).
    A value that is not a tensor (a module returning a tuple) raises a ``ValueError``
    naming the layer, or, with ``problems``, is noted there and the pass goes on (the
    training pass a watcher observes must not fail because of the probe).
    """

    def hook_for(key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if key not in seen:  # a module called twice: its first call counts
                value = (args[0] if args else None) if where == "pre" else out
                if not isinstance(value, torch.Tensor):
                    why = _not_a_tensor(key, where, value)
                    if problems is None:
                        raise ValueError(why)
                    problems[key] = why
                    return
                seen[key] = value.detach().clone()
            if stop_when_done and len(seen) == len(modules):
                # Everything asked for is captured: skip the rest of the network.
                raise _Captured

        return hook

    return [m.register_forward_hook(hook_for(k)) for k, m in modules.items()]


def _not_a_tensor(key: str, where: str, value: Any) -> str:
    what = "returns" if where == "post" else "receives as its first argument"
    return (f"layer {key!r} {what} a {type(value).__name__}, not a tensor; name the "
            "submodule that produces the tensor to measure")


def _capture(model: nn.Module, inputs: torch.Tensor, modules: dict[str, nn.Module],
             where: str, mode: str) -> dict[str, torch.Tensor]:
    """Capture each module's first input (pre) or output (post) in one forward pass.

    The pass is cut short after the last requested layer; ``no_trace`` restores the state.
    """
    seen: dict[str, torch.Tensor] = {}
    handles = _capture_hooks(modules, where, seen, stop_when_done=True)
    try:
        with torch.no_grad(), no_trace(model) as replay, _bn_mode(model, mode):
            replay()
            try:
                model(inputs)
            except _Captured:
                pass
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in modules if k not in seen]
    if missing:
        raise ValueError(
            f"layers {missing} were not called in the forward pass (registered but never "
            "used?); pick layers that run"
        )
    return seen


def _units_for(units: Units, key: str, item: Layer) -> Sequence[int] | None:
    if units is None or not isinstance(units, Mapping):
        return units
    for k in (item, key):
        if k in units:
            return units[k]
    return None


def _unit_matrix(x: torch.Tensor, key: str, units: Sequence[int] | None) -> tuple[
        torch.Tensor, torch.Tensor]:
    """(N, C, *S) -> (C', N·∏S) float64 rows for the selected units, and their indices."""
    if x.dim() < 2:
        shape = tuple(x.shape)
        raise ValueError(f"layer {key!r} gives a tensor of shape {shape}; need (N, C, ...)")
    channels = x.shape[1]
    values = x.detach().double().movedim(1, 0).reshape(channels, -1)  # (C, N·∏S)
    if units is None:
        return values, torch.arange(channels, device=values.device)
    chosen = units.tolist() if isinstance(units, (torch.Tensor, np.ndarray)) else list(units)
    # checked on the host, before anything moves to the device
    if not chosen or not all(_is_index(u) and 0 <= u < channels for u in chosen):
        raise ValueError(f"units for layer {key!r} must be indices in [0, {channels}), got {units}")
    idx = _passes.device_tensor([int(u) for u in chosen], torch.int64, values.device)
    return values[idx], idx


def _is_index(u: object) -> bool:
    return isinstance(u, (int, np.integer)) and not isinstance(u, bool)


def _percentiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """(C, M), (P,) -> (C, P) by linear interpolation between order statistics."""
    ordered = values.sort(dim=1).values
    pos = levels / 100.0 * (values.shape[1] - 1)  # (P,)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = pos - lo.to(pos)
    low, high = ordered[:, lo], ordered[:, hi]  # (C, P)
    return low + (high - low) * frac


def _summarize(values: torch.Tensor, idx: torch.Tensor, levels: torch.Tensor,
               bins: int | Sequence[float]) -> dict[str, torch.Tensor]:
    """One layer's statistics as device tensors (the caller moves them to the host once)."""
    edges = _hist.edges(values, bins)
    return {
        "units": idx,
        "mean": values.mean(dim=1),
        "std": values.std(dim=1, correction=0),
        "percentiles": _percentiles(values, levels),
        "edges": edges,
        "hist": _hist.histogram(values, edges, uniform=isinstance(bins, int)),
    }


def activation_stats(
    model: nn.Module,
    batch: Any,
    layers: Sequence[Layer],
    *,
    percentiles: Sequence[float] = (15, 50, 85),
    where: str = "pre",
    bins: int | Sequence[float] = 30,
    bn_mode: str = "train",
    units: Units = None,
) -> dict[str, ActivationStats]:
    """Per-unit statistics of activations at the given layers, from one forward pass.

    Args:
        model: any ``nn.Module``; left exactly as found (parameters, buffers, ``.grad``,
            RNG and noise streams, training flags).
        batch: ``(inputs, targets)`` or the inputs alone.
        layers: module names (``str``) or 1-based norm-site indices (``int``, the site's
            norm module), see :func:`bnlab.layers.resolve_module`.
        percentiles: levels in [0, 100].
        where: ``"pre"``, the module's input (for a norm: the normalized quantity), or
            ``"post"``, its output (for a norm before a sigmoid: the sigmoid's input).
        bins: the number of histogram bins over the layer's range, or explicit edges
            (fixed edges make histograms comparable across steps).
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        units: unit indices to keep, for every layer or as ``{layer: indices}``.

    Returns:
        ``{str(layer): ActivationStats}`` (numpy arrays, float64).

    Raises:
        ValueError: for an unknown layer, bad ``where``, ``bn_mode``, levels, bins or units.
    """
    model = _passes.unwrap(model)
    levels = _checked(percentiles, where)
    resolved = dict(resolve_module(model, item) for item in layers)
    captured = _capture(model, _inputs_of(batch), resolved, where, bn_mode)
    return _stats_of(captured, layers, levels, bins, units)


def _checked(percentiles: Sequence[float], where: str) -> tuple[float, ...]:
    """Validate ``where`` and return the percentile levels."""
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    values = [float(q) for q in percentiles]  # checked as Python numbers
    if not values or not all(0 <= q <= 100 for q in values):
        raise ValueError(f"percentiles must be levels in [0, 100], got {percentiles}")
    return tuple(values)


def _stats_of(captured: dict[str, torch.Tensor], layers: Sequence[Layer],
              levels: tuple[float, ...], bins: int | Sequence[float],
              units: Units) -> dict[str, ActivationStats]:
    summaries = {}
    on_device: dict[torch.device, torch.Tensor] = {}
    for item in layers:
        key = str(item)
        values, idx = _unit_matrix(captured[key], key, _units_for(units, key, item))
        if values.device not in on_device:
            on_device[values.device] = _passes.device_tensor(levels, torch.float64, values.device)
        stats = _summarize(values, idx, on_device[values.device], bins)
        summaries[key] = (stats, values.shape[1])
    host = _passes.to_host({k: s for k, (s, _) in summaries.items()})  # the one transfer
    level_array = np.array(levels, dtype=np.float64)
    return {k: ActivationStats(**host[k], levels=level_array.copy(), count=int(m))
            for k, (_, m) in summaries.items()}


class ActivationStatsProbe(Probe):
    """Log :func:`activation_stats` on a schedule, plus the moment drift between calls.

    At each due step, for each layer ``L`` it logs the arrays ``{prefix}/L/mean``,
    ``/std``, ``/percentiles``, ``/hist`` and ``/edges``; from its second call on also
    ``/mean_drift`` = |μ_t − μ_{t'}| and ``/var_drift`` = |σ²_t − σ²_{t'}|, with t' its
    previous call (Santurkar et al. 2018, Fig. 8a, between successive measured steps).

    Cost: one forward pass per due step. The previous moments are part of
    :meth:`state_dict`, so a resumed run logs the same drift.

    Args:
        layers: module names or norm-site indices.
        units: unit indices per layer (see :func:`activation_stats`).
        batch: a fixed batch to measure on (e.g. 1,000 test images); ``None`` uses each
            step's training batch.
        percentiles: levels in [0, 100].
        where: ``"pre"`` or ``"post"``.
        bins: histogram bins or edges.
        bn_mode: ``"train"`` or ``"eval"``.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        prefix: the first part of every logged name.
    """

    name = "activations"

    def __init__(self, layers: Sequence[Layer], units: Units = None, *, batch: Any = None,
                 percentiles: Sequence[float] = (15, 50, 85), where: str = "pre",
                 bins: int | Sequence[float] = 30, bn_mode: str = "train",
                 schedule: Schedule | int = 1, prefix: str = "act") -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.layers = tuple(layers)
        self.options: dict[str, Any] = dict(
            percentiles=tuple(percentiles), where=where, bins=bins, bn_mode=bn_mode, units=units
        )
        self.batch, self.prefix = batch, prefix
        self._levels = _checked(percentiles, where)
        self._prev: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (mean, var)
        self._seen: dict[str, torch.Tensor] | None = None  # captured in the training pass

    @contextmanager
    def _watch(self, modules: dict[str, nn.Module]) -> Iterator[None]:
        seen: dict[str, torch.Tensor] = {}
        handles = _capture_hooks(modules, self.options["where"], seen, stop_when_done=False,
                                 problems={})
        try:
            yield
        finally:
            for h in handles:
                h.remove()
        self._seen = seen if len(seen) == len(modules) else None

    def watch_forward(self, model: nn.Module) -> AbstractContextManager[None] | None:
        """Capture from the step's own forward pass when that is what would be measured.

        That is the case for the training batch (``batch=None``) in ``bn_mode="train"``
        with every norm module training: the training pass computes exactly the
        activations an extra forward would, so the probe costs only the statistics.
        """
        if self.batch is not None or self.options["bn_mode"] != "train":
            return None
        if _passes.unwrap(model, quiet=True) is not model:
            return None  # compiled: hooks would recompile it; on_step measures the original
        if not all(m.training for m in model.modules() if is_norm_module(m)):
            return None
        return self._watch(dict(resolve_module(model, item) for item in self.layers))

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure and log the statistics and the drift since the previous call."""
        if self._seen is not None:
            seen, self._seen = self._seen, None
            opts = self.options
            stats = _stats_of(seen, self.layers, self._levels, opts["bins"], opts["units"])
        else:
            batch = ctx.batch if self.batch is None else self.batch
            stats = activation_stats(ctx.model, batch, self.layers, **self.options)
        for key, s in stats.items():
            name = f"{self.prefix}/{key}"
            for field in ("mean", "std", "percentiles", "hist", "edges"):
                ctx.log(f"{name}/{field}", getattr(s, field))
            var = s.std**2
            if key in self._prev:
                prev_mean, prev_var = self._prev[key]
                ctx.log(f"{name}/mean_drift", np.abs(s.mean - prev_mean))
                ctx.log(f"{name}/var_drift", np.abs(var - prev_var))
            self._prev[key] = (s.mean, var)

    def state_dict(self) -> dict[str, Any]:
        """The previous call's moments, as tensors (``weights_only``-safe)."""
        return {
            key: {"mean": torch.from_numpy(m.copy()), "var": torch.from_numpy(v.copy())}
            for key, (m, v) in self._prev.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._prev = {k: (s["mean"].numpy(), s["var"].numpy()) for k, s in state.items()}
