"""Figures of Santurkar et al. 2018 on VGG (recipes ``santurkar2018.vgg``, ``.noise``, ``.lp``).

* ``santurkar_fig1_acc``: Fig. 1a,b, training and test accuracy of Standard and +BN at
  LR 0.1 and 0.5.
* ``santurkar_fig1_hist``: Fig. 1c, histograms over time of one sampled unit at layers #3
  and #11, Standard vs +BN at LR 0.1.
* ``santurkar_fig2_acc`` / ``santurkar_fig2_hist``: Fig. 2, training accuracy of Standard,
  +BN, +noisy BN and Standard + noise; histograms over time at layers #2, #9, #13.
* ``santurkar_fig8``: Fig. 8, |μ_{t+1} − μ_t| and |σ²_{t+1} − σ²_t| (mean over sampled
  units) and μ_t, σ²_t of one unit, at layers #2, #9, #13.
* ``santurkar_fig5a`` / ``santurkar_fig6``: Figs. 5a and 6, training accuracy of the ℓp
  variants (I1 and I2 panels) and their layer #11 histograms over time.

Histograms over time are drawn as ridges (TensorBoard's "offset" view): one curve per
snapshot, later snapshots darker and higher up, each over its own stored bin edges and
scaled to its own peak, so the shape is comparable across steps even when the range
grows by orders of magnitude (the x-axis is shared within a panel). Accuracy curves are
seed means with a min–max band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bnlab.claims.core import MissingDataError
from bnlab.claims.helpers import find_array, load_track
from bnlab.claims.santurkar2018 import vgg as claims
from bnlab.recipes import Quantity
from bnlab.recipes.santurkar2018.common import SITE_MAP, TEST_ACC, TRAIN_ACC
from bnlab.recipes.santurkar2018.vgg import (
    FIG1_LAYERS,
    FIG2_LAYERS,
    FIG6_LAYERS,
    HIST,
    LP,
    MOMENTS,
    NOISE,
    VGG,
)
from bnlab.report.figures.kinds import Panel, Series, curves_figure
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure, new_figure, style
from bnlab.results import Store

__all__ = ["Ridge", "fig1_acc", "fig1_hist", "fig2_acc", "fig2_hist", "fig5a", "fig6",
           "fig8", "ridge_figure"]

_COLORS = {**COLORS, "noisy_bn": "#2ca02c", "noise": "#ff7f0e", "l1": "#9467bd",
           "l2": "#8c564b", "linf": "#e377c2"}
_MAX_RIDGES = 12  # snapshots drawn per panel (evenly spaced over the stored ones)
_HIST_COUNTS, _HIST_EDGES = (next(q for q in HIST if q.name.endswith(f"/{f}"))
                             for f in ("hist", "edges"))


def _field(quantities: Sequence[Quantity], field: str) -> Quantity:
    return next(q for q in quantities if q.name.endswith(f"/{field}"))


# -- accuracy curves ---------------------------------------------------------------------------


def _series(store: Store, runs: pd.DataFrame, quantity: Quantity, by: Sequence[str],
            label: str, cond: dict[str, Any], color: str | None) -> Series | None:
    """The seed curves of one condition, or ``None`` if it has no finished runs."""
    try:
        curves = claims.load_condition_curves(store, runs, quantity, by, **cond)
    except MissingDataError:
        return None
    return Series(label, curves.steps, curves.get(**cond), color)


def _panel(store: Store, runs: pd.DataFrame, quantity: Quantity, by: Sequence[str],
           title: str, conditions: Sequence[tuple[str, dict[str, Any], str | None]]) -> Panel:
    found = [_series(store, runs, quantity, by, *c) for c in conditions]
    series = [s for s in found if s is not None]
    if not series:
        raise MissingDataError(f"no finished runs for the panel {title!r}")
    return Panel(title, series)


def _seed_count(runs: pd.DataFrame) -> int:
    return int(runs["seed"].nunique())


@figure(VGG, "santurkar_fig1_acc")
def fig1_acc(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Training (a) and test (b) accuracy, Standard vs +BN, one panel per LR."""
    lrs = sorted({float(v) for v in runs["cfg.lr"]})
    panels = []
    for quantity, what in ((TRAIN_ACC, "(a) training"), (TEST_ACC, "(b) test")):
        for lr in lrs:
            conds = [(name, {"norm": norm, "lr": lr}, _COLORS[norm])
                     for norm, name in (("none", "Standard"), ("bn", "+BN"))]
            panels.append(_panel(store, runs, quantity, claims.VGG_BY,
                                 f"{what} accuracy, lr {lr:g}", conds))
    caption = ("Training accuracy (on a fixed training sample, the network as it trains) and "
               "test accuracy against steps, Standard vs +BN VGG-16 (Santurkar Fig. 1a,b). "
               f"Lines: mean over {_seed_count(runs)} seeds; bands: min to max.")
    return curves_figure("santurkar_fig1_acc", panels, ylabel="accuracy", caption=caption)


@figure(NOISE, "santurkar_fig2_acc")
def fig2_acc(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Training accuracy of the three VGGs and Standard + noise."""
    conds = [(label, {"norm": norm}, _COLORS[norm]) for norm, label in claims.NOISE_LABELS.items()]
    panels = [_panel(store, runs, TRAIN_ACC, claims.NOISE_BY, "training accuracy", conds),
              _panel(store, runs, TEST_ACC, claims.NOISE_BY, "test accuracy", conds)]
    caption = ("Training accuracy (the network as it trains: noise drawn) and test accuracy "
               "(eval mode, no noise) of Standard, +BN, +noisy BN and Standard + the same "
               f"noise (Santurkar Fig. 2). Lines: mean over {_seed_count(runs)} seeds; "
               "bands: min to max.")
    return curves_figure("santurkar_fig2_acc", panels, ylabel="accuracy", caption=caption)


def _lp_conditions(centered: bool) -> list[tuple[str, dict[str, Any], str | None]]:
    tag = "I2" if centered else "I1"
    out: list[tuple[str, dict[str, Any], str | None]] = [
        ("Standard", {"norm": "none", "centered": False}, _COLORS["none"]),
        ("+BN", {"norm": "bn", "centered": False}, _COLORS["bn"])]
    out += [(f"+{label} ({tag})", {"norm": norm, "centered": centered}, _COLORS[norm])
            for norm, label in claims.LP_LABELS.items()]
    return out


@figure(LP, "santurkar_fig5a")
def fig5a(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Training accuracy of Standard, +BN and the ℓp variants: I1 panel, I2 panel."""
    panels = [_panel(store, runs, TRAIN_ACC, claims.LP_BY, title, _lp_conditions(centered))
              for title, centered in (("ℓp as I1 (uncentred scale)", False),
                                      ("ℓp as I2 (centred scale; ℓ2 = BN)", True))]
    caption = ("Training accuracy against steps of Standard, +BN and +ℓ1/ℓ2/ℓ∞ normalization "
               "(Santurkar Fig. 5a); left the I1 reading of the ℓp formula (the claim's), "
               f"right I2. Lines: mean over {_seed_count(runs)} seeds; bands: min to max.")
    return curves_figure("santurkar_fig5a", panels, ylabel="training accuracy",
                         caption=caption)


# -- histograms over time ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ridge:
    """One ridge panel: snapshot steps (T,), bin edges (T, B+1), counts (T, B) of one unit."""

    title: str
    steps: np.ndarray
    edges: np.ndarray
    counts: np.ndarray


def _ridge_rows(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, _MAX_RIDGES)).round().astype(int))


def ridge_figure(name: str, ridges: Sequence[Ridge], *, caption: str, ncols: int = 3,
                 xlabel: str = "activation (norm output)") -> DrawnFigure:
    """Histograms over time, one panel per :class:`Ridge` (later snapshots higher, darker)."""
    with style():
        fig, axes = new_figure(len(ridges), ncols=ncols, sharey=False)
        for ax, ridge in zip(axes, ridges, strict=True):
            rows = _ridge_rows(len(ridge.steps))
            shades = np.linspace(0.25, 1.0, rows.size)
            for k, (i, shade) in enumerate(zip(rows, shades, strict=True)):
                centers = 0.5 * (ridge.edges[i, 1:] + ridge.edges[i, :-1])  # (B,)
                peak = ridge.counts[i].max()
                height = ridge.counts[i] / peak if peak > 0 else ridge.counts[i] * 0.0
                ax.plot(centers, k + 0.9 * height, color=(0.1, 0.2, 0.5, shade), lw=1.0)
            ax.set_yticks([0, rows.size - 1], [f"step {ridge.steps[rows[0]]:g}",
                                               f"step {ridge.steps[rows[-1]]:g}"])
            ax.set_title(ridge.title)
            ax.set_xlabel(xlabel)
    return DrawnFigure(name, fig, caption)


def _ridge(store: Store, run_id: int, layer: int, title: str, unit: int = 0) -> Ridge:
    """One sampled unit's histograms at ``layer`` of one run."""
    names = {q.name: q.key(layer=layer) for q in (_HIST_COUNTS, _HIST_EDGES)}
    for quantity in (_HIST_COUNTS, _HIST_EDGES):
        if names[quantity.name] not in find_array(store, run_id, quantity):
            raise MissingDataError(f"run {run_id} stored no {names[quantity.name]!r}")
    steps, counts = load_track(store, run_id, names[_HIST_COUNTS.name])  # (T, U, B)
    _, edges = load_track(store, run_id, names[_HIST_EDGES.name])  # (T, B+1)
    return Ridge(title, steps, edges, counts[:, unit, :])


def _first_run(store: Store, runs: pd.DataFrame, by: Sequence[str], cond: dict[str, Any]) -> int:
    curves = claims.load_condition_curves(store, runs, TRAIN_ACC, by, **cond)
    return curves.ids(**cond)[0]


def _hist_caption(what: str, runs: pd.DataFrame) -> str:
    seed = int(runs["seed"].min())
    return (f"{what}: histograms over time of one randomly sampled unit (a conv channel over "
            "batch × H × W) at the norm site's output on the training batch, training mode, "
            f"seed {seed}; each curve is one snapshot scaled to its own peak, later ones "
            "higher and darker. Layer #k is vgg16 norm site k "
            f"(#{FIG2_LAYERS[0]} = {SITE_MAP[FIG2_LAYERS[0]]}).")


@figure(VGG, "santurkar_fig1_hist")
def fig1_hist(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Layers #3 and #11, Standard vs +BN, at LR 0.1 (the paper's default)."""
    lr = 0.1 if 0.1 in {float(v) for v in runs["cfg.lr"]} else float(runs["cfg.lr"].min())
    ridges = []
    for layer in FIG1_LAYERS:
        for norm, label in (("none", "Standard"), ("bn", "+BN")):
            run = _first_run(store, runs, claims.VGG_BY, {"norm": norm, "lr": lr})
            ridges.append(_ridge(store, run, layer, f"{label}, layer #{layer}, lr {lr:g}"))
    return ridge_figure("santurkar_fig1_hist", ridges, ncols=2,
                        caption=_hist_caption("Santurkar Fig. 1c", runs))


@figure(NOISE, "santurkar_fig2_hist")
def fig2_hist(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Layers #2, #9, #13 for Standard, +BN and +noisy BN (columns: layers)."""
    ridges = []
    for norm in ("none", "bn", "noisy_bn"):
        run = _first_run(store, runs, claims.NOISE_BY, {"norm": norm})
        ridges += [_ridge(store, run, layer, f"{claims.NOISE_LABELS[norm]}, layer #{layer}")
                   for layer in FIG2_LAYERS]
    return ridge_figure("santurkar_fig2_hist", ridges,
                        caption=_hist_caption("Santurkar Fig. 2 (right)", runs))


@figure(LP, "santurkar_fig6")
def fig6(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Layer #11 for every network of the ℓp recipe."""
    ridges = []
    for label, cond, _ in [*_lp_conditions(False), *_lp_conditions(True)[2:]]:
        try:
            run = _first_run(store, runs, claims.LP_BY, cond)
        except MissingDataError:
            continue
        ridges += [_ridge(store, run, layer, f"{label}, layer #{layer}") for layer in FIG6_LAYERS]
    if not ridges:
        raise MissingDataError("no finished ℓp runs to draw")
    return ridge_figure("santurkar_fig6", ridges, ncols=4,
                        caption=_hist_caption("Santurkar Fig. 6", runs))


# -- Fig. 8: moment drift -----------------------------------------------------------------------

_FIG8_ROWS = (("mean_drift", "|μ_{t+1} − μ_t|", "mean"), ("var_drift", "|σ²_{t+1} − σ²_t|", "mean"),
              ("mean", "μ_t", "unit"), ("std", "σ²_t", "unit"))


def _moment_track(store: Store, run_id: int, layer: int, field: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    quantity = _field(MOMENTS, field)
    name = quantity.key(layer=layer)
    if name not in find_array(store, run_id, quantity):
        raise MissingDataError(f"run {run_id} stored no {name!r}")
    return load_track(store, run_id, name)  # (T,), (T, units)


@figure(NOISE, "santurkar_fig8")
def fig8(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Rows: |Δμ|, |Δσ²| (mean over units), μ_t, σ²_t (one unit); columns: #2, #9, #13."""
    ids = {norm: _first_run(store, runs, claims.NOISE_BY, {"norm": norm})
           for norm in ("none", "bn", "noisy_bn")}
    with style():
        fig, axes = new_figure(len(_FIG8_ROWS) * len(FIG2_LAYERS), ncols=len(FIG2_LAYERS),
                               sharey=False)
        for r, (field, ylabel, how) in enumerate(_FIG8_ROWS):
            for c, layer in enumerate(FIG2_LAYERS):
                ax = axes[r * len(FIG2_LAYERS) + c]
                for norm, run in ids.items():
                    steps, values = _moment_track(store, run, layer, field)
                    y = values.mean(axis=1) if how == "mean" else values[:, 0]
                    y = y**2 if field == "std" else y
                    ax.plot(steps, y, color=_COLORS[norm], lw=0.8,
                            label=claims.NOISE_LABELS[norm])
                if how == "mean":
                    ax.set_yscale("log")
                ax.set_title(f"{ylabel}, layer #{layer}")
                ax.set_xlabel("training steps")
        axes[0].legend(loc="upper right")
    seed = int(runs["seed"].min())
    caption = ("Santurkar Fig. 8: (top rows) the change of each sampled unit's mean and "
               "variance between successive measurements, averaged over the sampled units "
               "(log scale); (bottom rows) μ_t and σ²_t of one sampled unit. At the norm "
               "site's output (noise included) on the training batch in training mode; "
               f"conv units pool batch × H × W; seed {seed}.")
    return DrawnFigure("santurkar_fig8", fig, caption)
