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

from bnlab.layers.sites import norm_sites, resolve_module
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
    if t.dim() < 2:
        raise ValueError(f"need a tensor of shape (N, C, ...), got shape {tuple(t.shape)}")
    flat = t.detach().transpose(0, 1).reshape(t.shape[1], -1)  # (C, N·H·W)
    var, mean = torch.var_mean(flat, dim=1, correction=0)
    return mean, var


def _resolve_sites(
    model: nn.Module, sites: Sequence[str | int] | None
) -> list[tuple[str, nn.Module]]:
    """(key, norm module) for the requested norm sites; ints are site indices."""
    if sites is None:
        return [(str(s.index), s.norm) for s in norm_sites(model)]
    return [resolve_module(model, item) for item in sites]


def _pre_norm_hook(key: str, stats: Stats) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[object, ...]) -> None:
        del module
        if key in stats:
            raise ValueError(f"site {key!r} ran twice in one forward; pick sites used once")
        stats[key] = _channel_mean_var(args[0])  # type: ignore[arg-type]

    return hook


@contextmanager
def _capture(
    model: nn.Module, sites: list[tuple[str, nn.Module]], where: str, stats: Stats
) -> Iterator[None]:
    """Register the hooks that fill ``stats[key] = (mean, var)`` during one forward."""
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    if where == "pre_norm":
        handles = [m.register_forward_pre_hook(_pre_norm_hook(k, stats)) for k, m in sites]
    else:
        handles = _block_output_hooks(model, sites, stats)
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _block_output_hooks(
    model: nn.Module, sites: list[tuple[str, nn.Module]], stats: Stats
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks measuring, for each site, the input of the next consumer fed from it.

    Every module output is stamped with the order in which it was produced. Each norm marks
    its site as pending; the next consumer whose input was produced *after* the norm
    ran (so not a shortcut branch fed by the block's input) measures that input for the
    pending site. If the input *is* the untouched norm output (the norm feeds a layer
    directly), the measurement would be 0/1 by construction, so it is refused.
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
                pending.append((keys[id(module)], out, out._version, clock[0]))

    def before_layer(module: nn.Module, args: tuple[object, ...]) -> None:
        del module
        x = args[0]
        if not isinstance(x, torch.Tensor):
            return
        born = produced.get(id(x), (x, clock[0] + 1))[1]
        for item in [p for p in pending if born >= p[3]]:
            key, out, version, _ = item
            if x is out and x._version == version:
                raise ValueError(
                    f"at site {key!r} the norm's output feeds the next layer directly, so the "
                    "block output is the norm's output; use where='pre_norm'"
                )
            if key in stats:
                raise ValueError(f"site {key!r} ran twice in one forward; pick sites used once")
            stats[key] = _channel_mean_var(x)
            pending.remove(item)

    handles = [m.register_forward_hook(stamp) for m in model.modules() if m is not model]
    layers = [m for m in model.modules() if isinstance(m, _CONSUMERS)]
    handles += [m.register_forward_pre_hook(before_layer) for m in layers]
    # Sites after the last consumer: the model's output is their block output.
    handles.append(model.register_forward_hook(lambda mod, a, out: before_layer(mod, (out,))))
    return handles


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
    for site in norm_sites(model):
        if site.name == key:
            return site.index
    raise ValueError(f"{key!r} is not a norm site of this model; depth needs norm sites")


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

    Cost: 1 forward pass, no backward.

    Args:
        model: any ``nn.Module``; left exactly as found.
        batch: ``(inputs, targets)``; only the inputs are used.
        where: ``"block_output"`` or ``"pre_norm"``.
        sites: norm-site indices or norm module names; default every site.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).

    Returns:
        ``{"sites": [keys], "depth": (S,), "channel_mean": [(C_s,)], "channel_std":
        [(C_s,)], "log10_std": (S,), "log10_std_sd": (S,), "log10_abs_mean": (S,),
        "log10_abs_mean_sd": (S,), "slope": float, "r2": float}`` with numpy arrays.

    Example:
        >>> prof = depth_profile(create_model("vgg16", norm="none", ...), (x, y))
        >>> prof["slope"], prof["r2"]
    """
    chosen = _resolve_sites(model, sites)
    stats: Stats = {}
    with no_trace(model) as replay, _bn_mode(model, bn_mode), torch.no_grad():
        with _capture(model, chosen, where, stats):
            replay()
            model(batch[0])
    keys = [k for k, _ in chosen]
    if missing := [k for k in keys if k not in stats]:
        raise ValueError(f"sites {missing} were not measured (did they run in the forward?)")
    means = [stats[k][0].double().cpu().numpy() for k in keys]
    stds = [np.sqrt(stats[k][1].double().cpu().numpy()) for k in keys]
    log_std = np.array([_log10_moments(s) for s in stds])  # (S, 2): mean, sd over channels
    log_mean = np.array([_log10_moments(np.abs(m)) for m in means])
    depth = np.array([_site_depth(model, k) for k in keys], dtype=float)
    ok = np.isfinite(log_std[:, 0])
    slope, r2 = _fit_line(depth[ok], log_std[ok, 0])
    return {
        "sites": keys, "depth": depth, "channel_mean": means, "channel_std": stds,
        "log10_std": log_std[:, 0], "log10_std_sd": log_std[:, 1],
        "log10_abs_mean": log_mean[:, 0], "log10_abs_mean_sd": log_mean[:, 1],
        "slope": slope, "r2": r2,
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


def _check_update(model: nn.Module, update: Mapping[str, torch.Tensor]) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    unknown = sorted(set(update) - set(params))
    if unknown:
        raise ValueError(f"update names {unknown} are not parameters; e.g. {list(params)[:5]}")
    for name, delta in update.items():
        if delta.shape != params[name].shape:
            raise ValueError(
                f"update[{name!r}] has shape {tuple(delta.shape)}, "
                f"the parameter {tuple(params[name].shape)}"
            )
    return {name: params[name] for name in update}


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
    ``"block_output"`` measures after the nonlinearity.

    Cost: ``steps`` forward passes, no backward. Every pass sees the same dropout masks
    and noisy-BN noise.

    Args:
        model: any ``nn.Module``; left exactly as found.
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
        "var": {key: (steps, C)}}`` as numpy arrays (variance biased, over batch×space).
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    moved = _check_update(model, update)
    chosen = _resolve_sites(model, sites)
    s_grid = np.linspace(0.0, 1.0, steps)
    rows: list[Stats] = []
    losses = []
    with no_trace(model) as replay, _bn_mode(model, bn_mode), torch.no_grad():
        start = {n: p.detach().clone() for n, p in moved.items()}
        for s in s_grid:
            for n, p in moved.items():
                p.copy_(start[n] + float(s) * update[n].to(p))
            stats: Stats = {}
            with _capture(model, chosen, where, stats):
                replay()
                losses.append(loss_fn(model(batch[0]), batch[1]).detach())
            rows.append(stats)
    keys = [k for k, _ in chosen]
    return {
        "s": s_grid,
        "loss": torch.stack(losses).double().cpu().numpy(),
        "mean": {k: torch.stack([r[k][0] for r in rows]).double().cpu().numpy() for k in keys},
        "var": {k: torch.stack([r[k][1] for r in rows]).double().cpu().numpy() for k in keys},
    }
