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
                   *, stop_when_done: bool) -> list[Any]:
    """Forward hooks copying each module's first input (pre) or output (post) into ``seen``.

    With ``stop_when_done`` the last capture ends the forward pass (see :func:`_capture`).
    """

    def hook_for(key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if key not in seen:  # a module called twice: its first call counts
                seen[key] = (args[0] if where == "pre" else out).detach().clone()
            if stop_when_done and len(seen) == len(modules):
                # Everything asked for is captured: skip the rest of the network.
                raise _Captured

        return hook

    return [m.register_forward_hook(hook_for(k)) for k, m in modules.items()]


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
        raise ValueError(f"layers {missing} were not called in the forward pass; pick others")
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
    idx = torch.arange(channels) if units is None else torch.as_tensor(list(units))
    if idx.numel() == 0 or idx.min() < 0 or idx.max() >= channels:
        raise ValueError(f"units for layer {key!r} must be indices in [0, {channels}), got {units}")
    return values[idx.to(values.device)], idx


def _percentiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """(C, M), (P,) -> (C, P) by linear interpolation between order statistics."""
    ordered = values.sort(dim=1).values
    pos = levels.to(values) / 100.0 * (values.shape[1] - 1)  # (P,)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = pos - lo.to(pos)
    low, high = ordered[:, lo], ordered[:, hi]  # (C, P)
    return low + (high - low) * frac


def _edges(values: torch.Tensor, bins: int | Sequence[float]) -> torch.Tensor:
    if not isinstance(bins, int):
        edges = torch.as_tensor(list(bins), dtype=torch.float64, device=values.device)
        if edges.numel() < 2 or bool((edges[1:] <= edges[:-1]).any()):
            raise ValueError("bins as edges must be at least two strictly increasing numbers")
        return edges
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    finite = values[torch.isfinite(values)]
    lo, hi = (finite.min().item(), finite.max().item()) if finite.numel() else (0.0, 1.0)
    if lo == hi:  # numpy's convention for a constant input
        lo, hi = lo - 0.5, hi + 0.5
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=values.device)


def _histogram(values: torch.Tensor, edges: torch.Tensor, uniform: bool) -> torch.Tensor:
    """(C, M), (B+1,) -> (C, B) counts with numpy's bin convention.

    Bin i holds e_i <= v < e_{i+1}; the last bin also holds e_B. Uniform edges take numpy's
    own fast path: the index is computed arithmetically, then moved by one where rounding
    put a value on the wrong side of its edge, so the counts equal ``np.histogram``'s.
    """
    nbins = edges.numel() - 1
    if uniform:
        lo, hi = edges[0], edges[-1]
        idx = ((values - lo) * (nbins / (hi - lo))).floor().clamp_(-1, nbins).long()
        idx = torch.where(values == hi, nbins - 1, idx)  # the last bin is closed
        safe = idx.clamp(0, nbins - 1)
        idx = idx - (values < edges[safe]).long()  # rounded up past the lower edge
        idx = idx + ((values >= edges[safe + 1]) & (safe != nbins - 1)).long()
    else:
        idx = torch.searchsorted(edges, values.contiguous(), right=True) - 1  # (C, M)
        idx = torch.where(values == edges[-1], nbins - 1, idx)  # the last bin is closed
    inside = (idx >= 0) & (idx < nbins) & ~torch.isnan(values)
    counts = torch.zeros(values.shape[0], nbins + 1, dtype=torch.int64, device=values.device)
    counts.scatter_add_(1, torch.where(inside, idx, nbins), torch.ones_like(idx))
    return counts[:, :nbins]


def _summarize(values: torch.Tensor, idx: torch.Tensor, levels: torch.Tensor,
               bins: int | Sequence[float]) -> ActivationStats:
    edges = _edges(values, bins)
    return ActivationStats(
        units=idx.cpu().numpy(),
        mean=values.mean(dim=1).cpu().numpy(),
        std=values.std(dim=1, correction=0).cpu().numpy(),
        levels=levels.cpu().numpy(),
        percentiles=_percentiles(values, levels).cpu().numpy(),
        edges=edges.cpu().numpy(),
        hist=_histogram(values, edges, uniform=isinstance(bins, int)).cpu().numpy(),
        count=int(values.shape[1]),
    )


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
    levels = _checked(percentiles, where)
    resolved = dict(resolve_module(model, item) for item in layers)
    captured = _capture(model, _inputs_of(batch), resolved, where, bn_mode)
    return _stats_of(captured, layers, levels, bins, units)


def _checked(percentiles: Sequence[float], where: str) -> torch.Tensor:
    """Validate ``where`` and return the percentile levels as a float64 tensor."""
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    levels = torch.as_tensor(list(percentiles), dtype=torch.float64)
    if levels.numel() == 0 or bool(((levels < 0) | (levels > 100)).any()):
        raise ValueError(f"percentiles must be levels in [0, 100], got {percentiles}")
    return levels


def _stats_of(captured: dict[str, torch.Tensor], layers: Sequence[Layer], levels: torch.Tensor,
              bins: int | Sequence[float], units: Units) -> dict[str, ActivationStats]:
    out = {}
    for item in layers:
        key = str(item)
        values, idx = _unit_matrix(captured[key], key, _units_for(units, key, item))
        out[key] = _summarize(values, idx, levels, bins)
    return out


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
        handles = _capture_hooks(modules, self.options["where"], seen, stop_when_done=False)
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
