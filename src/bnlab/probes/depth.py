"""Channel statistics against depth, and along one (diverging) update.

Bjorck et al. 2018 (PAPERS.md §3.7–3.8) show that without BN the channel means and stds
grow exponentially with depth at initialization (Fig. 5), and that a diverging step blows
up the later layers' activations by orders of magnitude (Fig. 4). Both are measured at
norm sites, so that a network with BN and its ``norm="none"`` twin are compared at the same
places, but **never at a norm's own output**, which is 0/1 by construction:

* ``"pre_norm"``: the tensor entering the norm module (the feeding layer's output);
* ``"block_output"``: the tensor the next conv/linear, pooling or flatten module consumes
  after the norm, i.e. the block's output after its nonlinearity and residual addition,
  before any pooling (modules fed from the block's input, such as a projection shortcut,
  are skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bnlab.layers.sites import norm_sites, resolve_module, strip_compiled_prefix
from bnlab.probes import _passes
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = ["WHERE", "depth_profile", "interpolated_step_stats"]

WHERE = ("block_output", "pre_norm")
# The modules whose input is a block output: the next weighted layer, or the pooling or
# flattening in front of it (so a site's channels are measured before they are mixed).
_CONSUMERS = (
    nn.Linear, nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.Flatten,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _channel_mean_var(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over every dim but 1: (N, C, ...) -> (C,), (C,)."""
    flat = t.detach().transpose(0, 1).reshape(t.shape[1], -1)  # (C, N·H·W)
    var, mean = torch.var_mean(flat, dim=1, correction=0)
    return mean, var


def _measurable(t: object) -> str:
    """Why ``t`` cannot give channel statistics ("" when it can)."""
    if not isinstance(t, torch.Tensor):
        return f"gives a {type(t).__name__}, not a tensor"
    if t.dim() < 2:
        return f"gives shape {tuple(t.shape)}; need (N, C, ...)"
    return ""


class _Capture:
    """What one forward pass measured: ``stats[key] = (mean, var)``, or ``problems[key]``."""

    def __init__(self) -> None:
        self.stats: Stats = {}
        self.problems: dict[str, str] = {}

    def record(self, key: str, t: object) -> None:
        if key in self.stats or key in self.problems:
            self.problems[key] = "ran more than once in one forward pass (a shared module)"
        elif why := _measurable(t):
            self.problems[key] = why
        else:
            self.stats[key] = _channel_mean_var(t)  # type: ignore[arg-type]


def _resolve_sites(
    model: nn.Module, sites: Sequence[str | int] | None
) -> list[tuple[str, nn.Module]]:
    """(key, norm module) for the requested norm sites; ints are site indices."""
    if sites is None:
        return [(str(s.index), s.norm) for s in norm_sites(model)]
    return [resolve_module(model, item) for item in sites]


@contextmanager
def _capture(
    model: nn.Module, sites: list[tuple[str, nn.Module]], where: str, cap: _Capture
) -> Iterator[None]:
    """Register the hooks that fill ``cap`` during one forward."""
    if where == "pre_norm":
        handles = [
            m.register_forward_pre_hook(lambda mod, args, k=k: cap.record(k, args[0] if args
                                                                          else None))
            for k, m in sites
        ]
    else:
        handles = _block_output_hooks(model, sites, cap)
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _block_output_hooks(
    model: nn.Module, sites: list[tuple[str, nn.Module]], cap: _Capture
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks measuring, for each site, the input of the next consumer fed from it.

    Every module output is stamped with the order in which it was produced. Each norm marks
    its site as pending; the next consumer whose input was produced *after* the norm
    ran (so not a shortcut branch fed by the block's input) measures that input for the
    pending site. If the input *is* the untouched norm output (the norm feeds a layer
    directly, as the linear bottleneck of a MobileNetV2 block does), the measurement would
    be 0/1 by construction, so the site is refused with that reason.
    """
    clock = [0]
    produced: dict[int, tuple[torch.Tensor, int]] = {}  # id -> (tensor kept alive, stamp)
    pending: list[tuple[str, torch.Tensor, int, int]] = []  # key, out, version, stamp
    keys = {id(m): k for k, m in sites}

    def stamp(module: nn.Module, args: tuple[object, ...], out: object) -> None:
        del args
        clock[0] += 1
        if isinstance(out, torch.Tensor):
            produced[id(out)] = (out, clock[0])
        if id(module) in keys:
            if not isinstance(out, torch.Tensor):
                cap.record(keys[id(module)], out)  # refused: not a tensor
            else:
                pending.append((keys[id(module)], out, out._version, clock[0]))

    def before_layer(module: nn.Module, args: tuple[object, ...]) -> None:
        del module
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor):
            return
        born = produced.get(id(x), (x, clock[0] + 1))[1]
        for item in [p for p in pending if born >= p[3]]:
            key, out, version, _ = item
            pending.remove(item)
            if x is out and x._version == version:
                cap.problems[key] = (
                    "its output feeds the next layer directly, so the block output is the "
                    "norm's own output (0/1 by construction); use where='pre_norm'"
                )
            else:
                cap.record(key, x)

    handles = [m.register_forward_hook(stamp) for m in model.modules() if m is not model]
    layers = [m for m in model.modules() if isinstance(m, _CONSUMERS)]
    handles += [m.register_forward_pre_hook(before_layer) for m in layers]
    # Sites after the last consumer: the model's output is their block output.
    handles.append(model.register_forward_hook(lambda mod, a, out: before_layer(mod, (out,))))
    return handles


def _settle(
    what: str, chosen: list[tuple[str, nn.Module]], caps: Sequence[_Capture], explicit: bool
) -> tuple[list[str], dict[str, str]]:
    """The keys measured in every pass, and ``{key: reason}`` for the others.

    Sites the user named are measured or refused with an error; sites of the default list
    (every norm site) that cannot be measured are skipped, reported and warned about.
    """
    skipped: dict[str, str] = {}
    for key, _ in chosen:
        for cap in caps:
            if key in cap.problems:
                skipped[key] = cap.problems[key]
            elif key not in cap.stats:
                skipped[key] = "was not called in the forward pass"
            if key in skipped:
                break
    if skipped and explicit:
        detail = "; ".join(f"site {k!r} {why}" for k, why in skipped.items())
        raise ValueError(f"{what}: {detail}; pick other sites")
    _passes.warn_skipped(what, skipped, len(chosen))
    return [k for k, _ in chosen if k not in skipped], skipped


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and the R² of the fit (NaN with < 2 points)."""
    if len(x) < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return float(slope), (1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def _site_depth(model: nn.Module, key: str) -> int:
    """The 1-based depth of a site key: its norm-site index (names are looked up)."""
    if key.isdigit():
        return int(key)
    name = strip_compiled_prefix(key, dict(model.named_modules()))
    for site in norm_sites(model):
        if site.name == name:
            return site.index
    raise ValueError(f"{key!r} is not a norm site of this model; depth needs norm sites")


def _check_where(where: str) -> None:
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")


def depth_profile(
    model: nn.Module,
    batch: Batch,
    *,
    where: str = "block_output",
    sites: Sequence[str | int] | None = None,
    bn_mode: str = "train",
) -> dict[str, object]:
    """Channel means and stds per norm site, and the growth of log10 std with depth.

    For each site (depth d = its norm-site index) the per-channel mean ``μ_c`` and std
    ``s_c`` over batch×space are measured at ``where`` (see the module docstring). Per site,
    ``log10_std = mean_c log10 s_c`` and ``log10_abs_mean = mean_c log10 |μ_c|`` with
    their std over channels (Bjorck Fig. 5's error bars), over the channels where the
    value is nonzero (dead ReLU channels are left out); ``slope`` and ``r2`` fit
    ``log10_std`` against d by least squares (exponential growth = a positive slope).

    With the default ``sites`` (every norm site) a site that cannot be measured is skipped
    and named in ``skipped`` with the reason (and a warning): a norm registered but never
    called, one called twice, or, for ``"block_output"``, a norm whose output feeds the
    next layer directly. Sites named in ``sites`` are measured or refused with an error.

    Cost: 1 forward pass, no backward.

    Args:
        model: any ``nn.Module``; left exactly as found (a ``torch.compile``'d one is
            measured through its original module, with a warning).
        batch: ``(inputs, targets)``; only the inputs are used.
        where: ``"block_output"`` or ``"pre_norm"``.
        sites: norm-site indices or norm module names; default every site.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``{"sites": [keys measured], "depth": (S,), "channel_mean": [(C_s,)],
        "channel_std": [(C_s,)], "log10_std": (S,), "log10_std_sd": (S,),
        "log10_abs_mean": (S,), "log10_abs_mean_sd": (S,), "slope": float, "r2": float,
        "skipped": {key: reason}}`` with numpy arrays.

    Raises:
        ValueError: for a bad ``where`` or ``bn_mode``, or a site named in ``sites`` that
            cannot be measured.

    Example:
        >>> prof = depth_profile(create_model("vgg16", norm="none", ...), (x, y))
        >>> prof["slope"], prof["r2"]
    """
    model = _passes.unwrap(model)
    _check_where(where)
    chosen = _resolve_sites(model, sites)
    cap = _Capture()
    with no_trace(model) as replay, _bn_mode(model, bn_mode), torch.no_grad():
        with _capture(model, chosen, where, cap):
            replay()
            model(batch[0])
    keys, skipped = _settle("depth_profile", chosen, [cap], sites is not None)
    host = _passes.to_host({k: cap.stats[k] for k in keys})  # the one transfer
    means = [host[k][0].astype(np.float64) for k in keys]
    stds = [np.sqrt(host[k][1].astype(np.float64)) for k in keys]
    log_std = np.array([_log10_moments(s) for s in stds]).reshape(-1, 2)  # (S, 2): mean, sd
    log_mean = np.array([_log10_moments(np.abs(m)) for m in means]).reshape(-1, 2)
    depth = np.array([_site_depth(model, k) for k in keys], dtype=float)
    ok = np.isfinite(log_std[:, 0])
    slope, r2 = _fit_line(depth[ok], log_std[ok, 0])
    return {
        "sites": keys, "depth": depth, "channel_mean": means, "channel_std": stds,
        "log10_std": log_std[:, 0], "log10_std_sd": log_std[:, 1],
        "log10_abs_mean": log_mean[:, 0], "log10_abs_mean_sd": log_mean[:, 1],
        "slope": slope, "r2": r2, "skipped": skipped,
    }


def _log10_moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and std over channels of log10(values), leaving out zeros (dead channels).

    A ReLU channel that is 0 on the whole batch has std 0 and log10 = -inf; it carries no
    magnitude information, so it is dropped rather than allowed to turn the average into
    -inf (NaN when no channel is left).
    """
    logs = np.log10(values[values > 0])
    if logs.size == 0:
        return float("nan"), float("nan")
    return float(logs.mean()), float(logs.std())


def _check_update(
    model: nn.Module, update: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``update`` keyed by ``named_parameters()`` names (a compiled model's prefix removed)."""
    params = dict(model.named_parameters())
    named = {strip_compiled_prefix(n, params): d for n, d in update.items()}
    unknown = sorted(set(named) - set(params))
    if unknown:
        raise ValueError(f"update names {unknown} are not parameters; e.g. {list(params)[:5]}")
    for name, delta in named.items():
        if delta.shape != params[name].shape:
            raise ValueError(
                f"update[{name!r}] has shape {tuple(delta.shape)}, "
                f"the parameter {tuple(params[name].shape)}"
            )
    return named


def interpolated_step_stats(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    update: Mapping[str, torch.Tensor],
    *,
    steps: int = 21,
    sites: Sequence[str | int] | None = None,
    where: str = "pre_norm",
    bn_mode: str = "train",
) -> dict[str, object]:
    """Channel means and variances, and the loss, at ``w + s·Δw`` for s in [0, 1].

    Bjorck et al. 2018, Fig. 4 (PAPERS.md §3.7): how one diverging update inflates the
    activations layer by layer. The default ``where="pre_norm"`` is the feeding layer's
    output (the signed conv activations of the figure, which has means of both signs);
    ``"block_output"`` measures after the nonlinearity. The shifted weights are passed to
    ``torch.func.functional_call``; the model's own parameters are never written.

    With the default ``sites`` (every norm site) a site that cannot be measured is skipped
    and named in ``skipped`` with the reason (and a warning), as in :func:`depth_profile`.

    Cost: ``steps`` forward passes, no backward. Every pass sees the same dropout masks
    and noisy-BN noise.

    Args:
        model: any ``nn.Module``; left exactly as found (a ``torch.compile``'d one is
            measured through its original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)``.
        update: ``Δw`` keyed by ``named_parameters()`` names (absent names do not move),
            e.g. ``{n: -lr * p.grad for n, p in model.named_parameters()}``.
        steps: the number of points ``s = 0, 1/(steps-1), …, 1``.
        sites: norm-site indices or module names; default every norm site.
        where: ``"pre_norm"`` or ``"block_output"``.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``{"s": (steps,), "loss": (steps,), "mean": {key: (steps, C)},
        "var": {key: (steps, C)}, "skipped": {key: reason}}`` as numpy arrays (variance
        biased, over batch×space).

    Raises:
        ValueError: for bad ``steps``, ``update``, ``where`` or ``bn_mode``, or a site
            named in ``sites`` that cannot be measured.
    """
    model = _passes.unwrap(model)
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    _check_where(where)
    update = _check_update(model, update)
    chosen = _resolve_sites(model, sites)
    s_grid = np.linspace(0.0, 1.0, steps)
    caps: list[_Capture] = []
    losses = []
    with no_trace(model) as replay, _bn_mode(model, bn_mode), torch.no_grad():
        params = dict(model.named_parameters())
        for s in s_grid:
            point = {n: params[n] + float(s) * d.to(params[n]) for n, d in update.items()}
            caps.append(_Capture())
            with _capture(model, chosen, where, caps[-1]):
                replay()
                out = functional_call(model, point, (batch[0],))
                losses.append(loss_fn(out, batch[1]).detach())
    keys, skipped = _settle("interpolated_step_stats", chosen, caps, sites is not None)
    host = _passes.to_host({
        "loss": torch.stack(losses),
        "mean": {k: torch.stack([c.stats[k][0] for c in caps]) for k in keys},
        "var": {k: torch.stack([c.stats[k][1] for c in caps]) for k in keys},
    })
    return {
        "s": s_grid,
        "loss": host["loss"].astype(np.float64),
        "mean": {k: v.astype(np.float64) for k, v in host["mean"].items()},
        "var": {k: v.astype(np.float64) for k, v in host["var"].items()},
        "skipped": skipped,
    }
