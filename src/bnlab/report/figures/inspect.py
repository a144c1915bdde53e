"""Figures of the instrument panel (``bnlab inspect``): the variants side by side.

Every figure reads the finished ``inspect`` runs of one run set (one number of steps, one
data label): each run is one variant of a user's model (the model as given, its BNs
swapped for another norm, a second model), drawn in its own colour in every figure.
Per-site quantities are keyed by the 1-based norm-site index, the same place in every
variant. A figure whose probe was not run raises :class:`MissingDataError`, which the
report shows as "not drawn" with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from bnlab.claims import MissingDataError
from bnlab.recipes.card import TRAIN_LOSS
from bnlab.recipes.inspect import (
    ACT_PCT,
    COST,
    DEPTH_LOG10_STD,
    DEPTH_SITES,
    EXPLOSION_MEAN,
    EXPLOSION_RATIOS,
    EXPLOSION_SITES,
    GRAD_KURTOSIS,
    GRAD_NORM,
    HESSIAN_HVPS,
    HESSIAN_TOP,
    ICS_L2,
    INSPECT,
    LANDSCAPE_BETA,
    PROBES,
    RELATIVE_LOSS,
    STEP_SECONDS,
    TEST_ACC,
)
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure, new_figure, style
from bnlab.results import Store

__all__ = ["Variant", "variants"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_LEVEL_STYLES = (":", "-", "--")  # lowest percentile dotted, median solid, highest dashed
_WIDE = (6.4, 3.4)  # inches: the size of a one-panel figure


@dataclass(frozen=True, eq=False)  # hashed by identity: a dict key per run
class Variant:
    """One run of the set: its id, legend label, colour and config."""

    run: int
    label: str
    color: str
    config: dict


def variants(runs: pd.DataFrame) -> list[Variant]:
    """The runs as variants, in run order; labels name the model when the set holds several."""
    if runs.empty:
        raise MissingDataError("no finished inspect run in this set")
    rows = runs.sort_values("id")
    models = {c.get("model") for c in rows["config"]}
    out = []
    for i, (run, cfg) in enumerate(zip(rows["id"], rows["config"], strict=True)):
        variant = str(cfg.get("variant", "?"))
        label = variant if len(models) == 1 else f"{cfg.get('model')} [{variant}]"
        color = (COLORS["bn"] if variant == "as given" and len(models) == 1
                 else COLORS["none"] if variant == "BN→none" else _PALETTE[i % len(_PALETTE)])
        out.append(Variant(int(run), label, color, dict(cfg)))
    return out


def _metric(store: Store, v: Variant, name: str) -> pd.Series:
    """One metric of one run as a series indexed by step (empty when absent)."""
    df = store.metrics(runs=[v.run], names=[name])
    return df.set_index("step")["value"].sort_index()


def _need(found: bool, what: str) -> None:
    if not found:
        raise MissingDataError(f"no {what} stored (probe not in the panel, or no measurable site)")


def _sites_with(store: Store, v: Variant, pattern: str) -> list[int]:
    """The site indices ``k`` for which the run stores ``pattern.format(k)``-named arrays."""
    prefix, _, suffix = pattern.partition("{layer}")
    sites = []
    for name in store.array_names(v.run):
        if name.startswith(prefix) and name.endswith(suffix):
            middle = name[len(prefix):len(name) - len(suffix)]
            if middle.isdigit():
                sites.append(int(middle))
    return sorted(sites)


def _spread(items: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` items spread evenly over ``items`` (first and last included)."""
    if len(items) <= count:
        return list(items)
    return sorted({items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)})


def _finish(name: str, fig: object, caption: str) -> DrawnFigure:
    return DrawnFigure(name, fig, caption)  # type: ignore[arg-type]


def _legend(axes: Sequence[Axes]) -> None:
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
            return


def _panel_figure(name: str, n: int, draw: Callable[[list[Axes]], str], *, ncols: int = 3
                  ) -> DrawnFigure:
    """A figure of ``n`` panels (y not shared); ``draw(axes)`` returns the caption."""
    with style():
        fig, axes = new_figure(n, ncols=ncols, sharey=False)
        if n == 1:
            fig.set_size_inches(*_WIDE)  # one panel at the default size is too small to read
        caption = draw(axes)
    return _finish(name, fig, caption)


def _site_axis(ax: Axes) -> None:
    """Integer ticks on an axis of norm-site indices."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


@figure(INSPECT, "inspect_loss")
def loss_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Training loss (and test accuracy when stored) against steps, per variant."""
    vs = variants(runs)
    losses = {v: _metric(store, v, TRAIN_LOSS.name) for v in vs}
    accs = {v: _metric(store, v, TEST_ACC.name) for v in vs}
    _need(any(len(s) for s in losses.values()), "training loss (the runs took no step)")
    with_acc = any(len(s) for s in accs.values())

    def draw(axes: list[Axes]) -> str:
        for v in vs:
            axes[0].plot(losses[v].index, losses[v].values, color=v.color, label=v.label)
            if with_acc:
                axes[1].plot(accs[v].index, accs[v].values, "o-", color=v.color, label=v.label)
        axes[0].set(title="training loss", xlabel="training steps", ylabel="loss")
        if with_acc:
            axes[1].set(title="test accuracy", xlabel="training steps", ylabel="accuracy")
        _legend(axes)
        return ("Training loss (mean over each log interval) against steps"
                + (", and accuracy on the held-out split" if with_acc else "")
                + ", one line per variant, same initial weights and batches.")

    return _panel_figure("inspect_loss", 2 if with_acc else 1, draw)


def _median_tracks(store: Store, v: Variant, site: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps (T,) and the median over channels of each percentile level, (T, P)."""
    rows = store.arrays(v.run, ACT_PCT.key(layer=site))
    steps = np.array([s for s, _ in rows])
    return steps, np.stack([np.median(a, axis=0) for _, a in rows])


@figure(INSPECT, "inspect_activations")
def activations_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Percentile tracks of the norms' inputs over training: sites across, variants down."""
    vs = variants(runs)
    sites = _spread(_sites_with(store, vs[0], "act/{layer}/percentiles"), 4)
    _need(bool(sites), "activation statistics")
    levels = vs[0].config.get("percentiles", (15, 50, 85))

    def draw(axes: list[Axes]) -> str:
        for row, v in enumerate(vs):
            for col, site in enumerate(sites):
                ax = axes[row * len(sites) + col]
                if site not in _sites_with(store, v, "act/{layer}/percentiles"):
                    ax.set_title(f"{v.label}, site {site}: not measured")
                    continue
                steps, tracks = _median_tracks(store, v, site)
                for j, level in enumerate(levels):
                    ax.plot(steps, tracks[:, j], color=v.color,
                            linestyle=_LEVEL_STYLES[j % 3], label=f"{level:g}th percentile")
                ax.set(title=f"{v.label}: site {site} ({_site_name(v, site)})",
                       xlabel="training steps")
        axes[0].set_ylabel("norm input")
        _legend(axes)
        return ("The input of each norm (what BN normalizes; the same tensor in a variant "
                "without BN) on the training batch over training: for each channel its "
                f"{'/'.join(f'{q:g}' for q in levels)}th percentiles, then the median of each "
                "over the site's channels (Ioffe & Szegedy Fig. 1b,c per site). Columns: norm "
                "sites spread over depth; rows: variants.")

    return _panel_figure("inspect_activations", len(vs) * len(sites), draw, ncols=len(sites))


def _site_name(v: Variant, site: int) -> str:
    return str(v.config.get("sites", {}).get(str(site), "?"))


def _layer_hist(store: Store, v: Variant, site: int, which: int) -> tuple[int, np.ndarray,
                                                                           np.ndarray]:
    """Step, density (B,) and edges (B+1,) of a site's histogram summed over channels."""
    hists = store.arrays(v.run, f"act/{site}/hist")
    edges = store.arrays(v.run, f"act/{site}/edges")
    step, counts = hists[which]
    total = counts.sum(axis=0).astype(np.float64)  # (C, B) -> (B,)
    e = edges[which][1]
    width = np.diff(e)
    density = total / max(total.sum(), 1.0) / np.where(width > 0, width, 1.0)
    return int(step), density, e


@figure(INSPECT, "inspect_histograms")
def histograms_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Histograms of the norms' inputs at the first and last measured step."""
    vs = variants(runs)
    sites = _spread(_sites_with(store, vs[0], "act/{layer}/hist"), 3)
    _need(bool(sites), "activation histograms")

    def draw(axes: list[Axes]) -> str:
        for row, v in enumerate(vs):
            for col, site in enumerate(sites):
                ax = axes[row * len(sites) + col]
                if site not in _sites_with(store, v, "act/{layer}/hist"):
                    continue
                for which, ls in ((0, ":"), (-1, "-")):
                    step, density, edges = _layer_hist(store, v, site, which)
                    ax.stairs(density, edges, color=v.color, linestyle=ls, label=f"step {step}")
                ax.set(title=f"{v.label}: site {site}", xlabel="norm input")
        axes[0].set_ylabel("density")
        _legend(axes)
        return ("Histogram of each norm's input over the measured channels of the training "
                "batch (counts summed over channels, as a density), at the first measured "
                "step (dotted) and the last (solid) (Santurkar et al. Fig. 2's view). "
                "Columns: sites; rows: variants.")

    return _panel_figure("inspect_histograms", len(vs) * len(sites), draw, ncols=len(sites))


def _series_by_site(store: Store, v: Variant, quantity_name: str) -> dict[int, pd.Series]:
    """``{site: metric series}`` for a per-site metric name like ``ics/{layer}/l2``."""
    prefix, _, suffix = quantity_name.partition("{layer}")
    df = store.metrics(runs=[v.run])
    df = df[df["name"].str.startswith(prefix) & df["name"].str.endswith(suffix)]
    out = {}
    for name, g in df.groupby("name"):
        middle = name[len(prefix):len(name) - len(suffix)]
        if middle.isdigit():
            out[int(middle)] = g.set_index("step")["value"].sort_index()
    return dict(sorted(out.items()))


@figure(INSPECT, "inspect_ics")
def ics_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Santurkar's ICS per measured site against steps, variants in one panel per site."""
    vs = variants(runs)
    by_variant = {v: _series_by_site(store, v, ICS_L2.name) for v in vs}
    sites = sorted({s for d in by_variant.values() for s in d})
    _need(bool(sites), "ICS")

    def draw(axes: list[Axes]) -> str:
        for ax, site in zip(axes, sites, strict=True):
            for v in vs:
                s = by_variant[v].get(site)
                if s is not None:
                    ax.plot(s.index, s.values, "o-", color=v.color, label=v.label)
            ax.set(title=f"site {site} ({_site_name(vs[0], site)})", xlabel="training steps",
                   yscale="log")
        axes[0].set_ylabel("ICS ‖G − G'‖₂")
        _legend(axes)
        return ("Internal covariate shift as Santurkar et al. define it (Def. 2.1): the change "
                "of the gradient of the weight feeding each norm when the earlier layers take "
                "the optimizer's real step first, against steps (log scale). Sites without a "
                "single feeding layer (after a residual sum or a concatenation) are not "
                "measured; the runs' config lists them with the reason.")

    return _panel_figure("inspect_ics", len(sites), draw)


@figure(INSPECT, "inspect_landscape")
def landscape_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """The loss band along the gradient per variant, β of every variant, the relative loss."""
    vs = variants(runs)
    lows = {v: _metric(store, v, "landscape/loss_min") for v in vs}
    relative = {v: store.arrays(v.run, RELATIVE_LOSS.name) for v in vs}
    has_band = any(len(s) for s in lows.values())
    has_relative = any(relative.values())
    _need(has_band or has_relative, "landscape")

    def draw(axes: list[Axes]) -> str:
        caption = []
        if has_band:
            _draw_bands(store, vs, lows, axes)
            mults = vs[0].config.get("multipliers", ())
            caption.append(
                "Santurkar et al. §3.2 (Figs. 4, 11): from the weights at each step, the loss "
                f"L(w − ηg) for η = {', '.join(f'{m:g}' for m in mults)} × lr on the same batch "
                "(band: lowest to highest), and β = max_η ‖g − ∇L(w − ηg)‖ / ‖ηg‖ (log scale).")
        if has_relative:
            _draw_relative(vs, relative, axes[-1])
            caption.append("Bjorck et al. Fig. 3: the relative loss L(w − ηg) / L(w) against η "
                           "at the first measured step (solid) and the last (dashed).")
        return " ".join(caption)

    n = (len(vs) + 1 if has_band else 0) + (1 if has_relative else 0)
    return _panel_figure("inspect_landscape", n, draw)


def _draw_bands(store: Store, vs: list[Variant], lows: dict[Variant, pd.Series],
                axes: list[Axes]) -> None:
    for ax, v in zip(axes, vs, strict=False):
        low, high = lows[v], _metric(store, v, "landscape/loss_max")
        ax.fill_between(low.index, low.values, high.reindex(low.index).values,
                        color=v.color, alpha=0.3, linewidth=0)
        ax.plot(low.index, low.values, color=v.color, label=v.label)
        ax.set(title=f"loss band, {v.label}", xlabel="training steps", ylabel="loss")
    beta_ax = axes[len(vs)]
    for v in vs:
        beta = _metric(store, v, LANDSCAPE_BETA.name)
        beta_ax.plot(beta.index, beta.values, "o-", color=v.color, label=v.label)
    beta_ax.set(title="effective β-smoothness", xlabel="training steps", ylabel="β",
                yscale="log")
    beta_ax.legend(loc="best")


def _draw_relative(vs: list[Variant], relative: dict[Variant, list], ax: Axes) -> None:
    for v in vs:
        etas = v.config.get("etas") or []
        for which, ls in ((0, "-"), (-1, "--")):
            if relative[v] and len(etas) == len(relative[v][which][1]):
                step, values = relative[v][which]
                ax.plot(etas, values, ls, color=v.color, label=f"{v.label}, step {step}")
    ax.set(title="relative loss along −g", xlabel="η", ylabel="L(w − ηg) / L(w)", xscale="log")
    low, high = ax.get_ylim()
    if low > 0 and high / low > 10:  # Bjorck's divergence (> 1e3) needs a log scale
        ax.set_yscale("log")
    ax.legend(loc="best")


def _at(series_by_site: dict[int, pd.Series], which: int) -> tuple[list[int], list[float], int]:
    sites = list(series_by_site)
    values = [float(series_by_site[s].iloc[which]) for s in sites]
    step = int(series_by_site[sites[0]].index[which])
    return sites, values, step


@figure(INSPECT, "inspect_gradients")
def gradients_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Gradient norm and kurtosis per site at the first and last point, per variant."""
    vs = variants(runs)
    norms = {v: _series_by_site(store, v, GRAD_NORM.name) for v in vs}
    kurts = {v: _series_by_site(store, v, GRAD_KURTOSIS.name) for v in vs}
    _need(any(norms.values()), "gradient statistics")

    def draw(axes: list[Axes]) -> str:
        for v in vs:
            if not norms[v]:
                continue
            for which, ls in ((0, "-"), (-1, "--")):
                for ax, series in ((axes[0], norms[v]), (axes[1], kurts[v])):
                    sites, values, step = _at(series, which)
                    ax.plot(sites, values, "o" + ls, color=v.color, label=f"{v.label}, step {step}")
        axes[0].set(title="‖∂L/∂W‖₂ of the feeding layer", xlabel="norm site", yscale="log")
        axes[1].set(title="excess kurtosis of ∂L/∂W entries", xlabel="norm site")
        axes[1].axhline(0.0, color="0.5", linewidth=0.8)
        for ax in axes:
            _site_axis(ax)
        axes[0].legend(loc="best")
        return ("Bjorck et al. §3.5 (Fig. 2): the gradient of the weight feeding each norm, its "
                "norm (log scale) and the excess kurtosis of its entries (0 for a Gaussian; "
                "heavy tails > 0), at the first measured step (solid) and the last (dashed).")

    return _panel_figure("inspect_gradients", 2, draw, ncols=2)


@figure(INSPECT, "inspect_explosion")
def explosion_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Per-pair gradient growth ratios at the first measured point, per variant."""
    vs = variants(runs)
    data = {v: (store.arrays(v.run, EXPLOSION_RATIOS.name),
                store.arrays(v.run, EXPLOSION_SITES.name)) for v in vs}
    _need(any(r for r, _ in data.values()), "gradient-explosion rate")

    def draw(axes: list[Axes]) -> str:
        ax = axes[0]
        for v in vs:
            ratios, sites = data[v]
            if not ratios:
                continue
            step, r = ratios[0]
            mean = _metric(store, v, EXPLOSION_MEAN.name)
            ax.plot(sites[0][1][1:], r, "o-", color=v.color,
                    label=f"{v.label} (step {step}, mean {float(mean.iloc[0]):.3g})")
        ax.axhline(1.0, color="0.5", linewidth=0.8)
        _site_axis(ax)
        ax.set(title="gradient growth per layer, towards the input", xlabel="norm site l+1",
               ylabel="‖∂L/∂h_l‖² / ‖∂L/∂h_{l+1}‖²", yscale="log")
        ax.legend(loc="best")
        return ("Yang et al. 2019: the ratio of squared gradient norms with respect to the "
                "outputs of consecutive norm sites (> 1: the gradient grows towards the "
                "input), at the first measured step; the legend gives the mean over the middle "
                "half of the pairs (π/(π−1) ≈ 1.47 for a wide BN-ReLU MLP at init).")

    return _panel_figure("inspect_explosion", 1, draw)


@figure(INSPECT, "inspect_depth")
def depth_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """log10 of the channel std at each site's block output, first and last point."""
    vs = variants(runs)
    data = {v: (store.arrays(v.run, DEPTH_LOG10_STD.name), store.arrays(v.run, DEPTH_SITES.name))
            for v in vs}
    _need(any(s for s, _ in data.values()), "depth profile")

    def draw(axes: list[Axes]) -> str:
        ax = axes[0]
        for v in vs:
            stds, sites = data[v]
            for which, ls in ((0, "-"), (-1, "--")):
                if not stds or (which == -1 and len(stds) < 2):
                    continue
                step, values = stds[which]
                ax.plot(sites[which][1], values, "o" + ls, color=v.color,
                        label=f"{v.label}, step {step}")
        _site_axis(ax)
        ax.set(title="activation scale against depth", xlabel="norm site",
               ylabel="mean log10 channel std")
        ax.legend(loc="best")
        return ("Bjorck et al. Fig. 5: the mean over channels of log10 of each channel's std at "
                "each norm site's block output (after the nonlinearity and any residual sum), "
                "at the first measured step (solid) and the last (dashed); a rising line means "
                "activations grow exponentially with depth.")

    return _panel_figure("inspect_depth", 1, draw)


@figure(INSPECT, "inspect_hessian")
def hessian_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """The top Hessian eigenvalue of the batch loss against steps, per variant."""
    vs = variants(runs)
    tops = {v: _metric(store, v, HESSIAN_TOP.name) for v in vs}
    _need(any(len(s) for s in tops.values()), "Hessian eigenvalue")

    def draw(axes: list[Axes]) -> str:
        ax = axes[0]
        spent = []
        for v in vs:
            ax.plot(tops[v].index, tops[v].values, "-", color=v.color, label=v.label)
            done = _metric(store, v, "hessian/converged").reindex(tops[v].index) > 0
            ax.plot(tops[v].index[done], tops[v].values[done], "o", color=v.color)
            ax.plot(tops[v].index[~done], tops[v].values[~done], "o", mfc="white", color=v.color)
            counts = _metric(store, v, HESSIAN_HVPS.name)
            residual = _metric(store, v, "hessian/accuracy")
            pairs = zip(counts.values, residual.values, strict=False)
            spent.append(f"{v.label}: " + ", ".join(f"{int(c)} ({r:.0e})" for c, r in pairs))
        if all((s > 0).all() for s in tops.values() if len(s)):
            ax.set_yscale("log")
        ax.set(title="top Hessian eigenvalue", xlabel="training steps", ylabel="λ_max")
        ax.legend(loc="best")
        return ("The largest eigenvalue of the Hessian of the batch loss (Lanczos on "
                "Hessian-vector products, in the panel's BN mode) at the measured steps; a "
                "hollow marker did not meet the tolerance within the budget of products. "
                "Products spent per point (relative Ritz residual, an eigenvalue lies within "
                f"that fraction): {'; '.join(spent)}.")

    return _panel_figure("inspect_hessian", 1, draw)


@figure(INSPECT, "inspect_cost")
def cost_figure(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Each probe's measured cost per call, in training steps of its own variant."""
    vs = variants(runs)
    costs = {v: {p: _metric(store, v, COST.key(probe=p)) for p in PROBES} for v in vs}
    probes = [p for p in PROBES if any(len(c[p]) for c in costs.values())]
    _need(bool(probes), "probe cost")

    def draw(axes: list[Axes]) -> str:
        ax = axes[0]
        height = 0.8 / len(vs)
        y = np.arange(len(probes))
        seconds = []
        for i, v in enumerate(vs):
            means = [float(costs[v][p].mean()) if len(costs[v][p]) else 0.0 for p in probes]
            calls = [len(costs[v][p]) for p in probes]
            bars = ax.barh(y + i * height, means, height, color=v.color, label=v.label)
            for bar, n, m in zip(bars, calls, means, strict=True):
                if n:
                    ax.annotate(f" {n}×{m:.2g}", (bar.get_width(), bar.get_y() + height / 2),
                                va="center", fontsize=7)
            total = sum(n * m for n, m in zip(calls, means, strict=True))
            step = _metric(store, v, STEP_SECONDS.name)
            seconds.append(f"{v.label}: one step {float(step.iloc[0]) * 1e3:.3g} ms, "
                           f"panel {total:.3g} steps in all")
        ax.set_yticks(y + 0.4 - height / 2, probes)
        ax.invert_yaxis()
        ax.set(title="probe cost per call", xlabel="training steps", xscale="log")
        ax.set_xlim(right=ax.get_xlim()[1] * 4)  # room for the labels
        ax.legend(loc="upper right")
        return ("Each probe's wall time per call divided by the time of one bare training "
                "step (forward, backward, optimizer step) of the same variant, timed in the "
                "same process; labels: calls × mean cost. " + "; ".join(seconds) + ".")

    return _panel_figure("inspect_cost", 1, draw)
