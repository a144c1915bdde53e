"""Figures of Bjorck et al. 2018, drawn like the paper's Figs. 1–7 from stored runs.

* ``bjorck_fig1``: train and test accuracy against % of training (Fig. 1); no-BN runs that
  diverged are named in the caption.
* ``bjorck_fig2``: histograms of layer 55's kernel gradient with and without BN (Fig. 2).
* ``bjorck_fig3``: relative loss against step size on mini-batches 1, 4, 7 (Fig. 3).
* ``bjorck_fig4``: channel means and variances of layers 8, 44, 80 along the diverging
  update, as heat maps (Fig. 4).
* ``bjorck_fig5``: log10 channel mean and std against depth (Fig. 5).
* ``bjorck_fig6``: the output-gradient heat map, images × classes (Fig. 6).
* ``bjorck_fig7``: singular-value histograms of random-matrix products (Fig. 7).
* ``bjorck_noise``: the SGD noise estimate against the bound α²C/|B| (§3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, SymLogNorm

from bnlab.claims.bjorck2018 import runs_by
from bnlab.claims.helpers import load_curves, load_track
from bnlab.recipes.bjorck2018 import (
    DEPTH,
    DEPTH_LAYER,
    DEPTH_LOG_MEAN,
    DEPTH_LOG_MEAN_SD,
    DEPTH_LOG_STD,
    DEPTH_LOG_STD_SD,
    DIVERGENCE,
    DLOGITS,
    GRAD_EDGES,
    GRAD_HIST,
    GRAD_KURTOSIS,
    GRAD_STD,
    GRADIENTS,
    INTERP_LAYERS,
    INTERP_MEAN,
    INTERP_VAR,
    LR,
    MODE_FRACTION,
    NOISE_BOUND,
    NOISE_ESTIMATE,
    NOISE_SCALE,
    REL_LOSS,
    RMT,
    SAMPLINGS,
    SV,
    SV_EDGE,
    TEST_ACC,
    TRAIN_ACC,
    eta_grid,
)
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = ["fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "noise"]

_NAMES = {"bn": "with BN", "none": "without BN"}
_LINES = {0.1: "-", 0.003: "--", 0.0001: ":"}


def _first(ids: dict[int, int]) -> tuple[int, int]:
    seed = min(ids)
    return seed, ids[seed]


def _last(store: Store, run: int, name: str) -> np.ndarray:
    return load_track(store, run, name)[1][-1]


def _metric(store: Store, run: int, name: str) -> float:
    table = store.metrics(runs=run, names=name)
    return float(table["value"].iloc[-1]) if not table.empty else float("nan")


def _norm_ids(runs: pd.DataFrame) -> dict[str, dict[int, int]]:
    return {str(k): v for k, v in runs_by(runs, "norm").items()}


# -- Fig. 1 --------------------------------------------------------------------------------


def _complete_conditions(runs: pd.DataFrame) -> list[tuple[str, float]]:
    """(norm, lr) conditions whose every seed finished, BN first, larger LR first."""
    seeds = set(runs["seed"].astype(int))
    groups = runs.groupby(["cfg.norm", "cfg.lr"])["seed"].apply(lambda s: set(s.astype(int)))
    done = [(str(n), float(lr)) for (n, lr), s in groups.items() if s == seeds]
    return sorted(done, key=lambda c: (c[0] != "bn", -c[1]))


def _diverged_text(store: Store, seeds: set[int]) -> str:
    every = store.runs(recipe=LR.name)
    div = every[(every["status"] == "diverged") & every["seed"].astype(int).isin(seeds)]
    if div.empty:
        return "No run diverged."
    counts = div.groupby(["cfg.norm", "cfg.lr"]).size()
    named = "; ".join(f"{_NAMES.get(n, n)} at LR {lr:g} ({c} seed{'s' * (c > 1)})"
                      for (n, lr), c in counts.items())
    return f"Diverged and not drawn: {named}."


@figure(LR, "bjorck_fig1")
def fig1(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Train and test accuracy against % of training, one line per network and LR."""
    conditions = _complete_conditions(runs)
    with style():
        fig, axes = new_figure(2, ncols=2)
        for ax, q, title in ((axes[0], TRAIN_ACC, "train"), (axes[1], TEST_ACC, "test")):
            for norm, lr in conditions:
                chosen = runs[(runs["cfg.norm"] == norm) & np.isclose(runs["cfg.lr"], lr)]
                curves = load_curves(store, chosen, q, ("norm", "lr"))
                pct = 100.0 * curves.steps / curves.steps[-1]
                band(ax, pct, curves.get(norm=norm, lr=lr), color=COLORS.get(norm),
                     label=f"LR {lr:g} {_NAMES.get(norm, norm)}",
                     linestyle=_LINES.get(round(lr, 4), "-."))
            ax.set_title(f"{title} accuracy")
            ax.set_xlabel("% of training")
        axes[0].set_ylabel("accuracy")
        axes[1].legend(loc="lower right")
    seeds = set(runs["seed"].astype(int))
    caption = (f"Train (fixed subset, eval mode) and test accuracy against % of training "
               f"(Bjorck et al. Fig. 1). Lines: mean over {len(seeds)} seeds; bands: min to "
               f"max. {_diverged_text(store, seeds)}")
    return DrawnFigure("bjorck_fig1", fig, caption)


# -- Fig. 2 and Fig. 6 ---------------------------------------------------------------------


@figure(GRADIENTS, "bjorck_fig2")
def fig2(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Histogram of layer 55's kernel gradient, with BN and without (first seed)."""
    ids = _norm_ids(runs)
    with style():
        fig, axes = new_figure(2, ncols=2, sharey=False)
        for ax, norm in zip(axes, ("bn", "none"), strict=True):
            seed, run = _first(ids[norm])
            counts, edges = _last(store, run, GRAD_HIST.name), _last(store, run, GRAD_EDGES.name)
            ax.stairs(counts, edges, fill=True, color=COLORS[norm], alpha=0.8)
            ax.set_yscale("log")
            ax.set_title(f"{_NAMES[norm]}: std {_metric(store, run, GRAD_STD.name):.3g}, "
                         f"excess kurtosis {_metric(store, run, GRAD_KURTOSIS.name):.3g}")
            ax.set_xlabel("gradient entry")
        axes[0].set_ylabel("count")
    caption = ("Gradients of the conv kernel of layer 55 of ResNet-110 at initialization, one "
               "batch, with and without BN (Bjorck et al. Fig. 2); counts on a log scale, "
               f"seed {seed}. Note the x ranges.")
    return DrawnFigure("bjorck_fig2", fig, caption)


@figure(GRADIENTS, "bjorck_fig6")
def fig6(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """∂L/∂logits, images × classes, with BN and without (first seed)."""
    ids = _norm_ids(runs)
    with style():
        fig, axes = new_figure(2, ncols=2, sharey=False)
        for ax, norm in zip(axes, ("bn", "none"), strict=True):
            seed, run = _first(ids[norm])
            d = _last(store, run, DLOGITS.name)  # (batch, 10)
            scale = float(np.nanmax(np.abs(d))) or 1.0
            image = ax.imshow(d, aspect="auto", cmap="coolwarm", vmin=-scale, vmax=scale,
                              interpolation="nearest")
            fig.colorbar(image, ax=ax)
            ax.set_title(f"{_NAMES[norm]}: mode fraction "
                         f"{_metric(store, run, MODE_FRACTION.name):.2f}")
            ax.set_xlabel("class")
            ax.grid(False)
        axes[0].set_ylabel("image")
    caption = ("∂L/∂logits of a batch at initialization, one row per image (Bjorck et al. "
               f"Fig. 6), seed {seed}; L is the batch-mean cross-entropy. Without BN one "
               "column has the same sign for almost every image.")
    return DrawnFigure("bjorck_fig6", fig, caption)


# -- Fig. 3 and Fig. 4 ---------------------------------------------------------------------


def _rel_curves(store: Store, ids: dict[int, int]) -> dict[int, np.ndarray]:
    """Step → (S, k) log10 relative loss over seeds (non-finite drawn at the top)."""
    rows: dict[int, list[np.ndarray]] = {}
    for run in ids.values():
        for step, v in store.arrays(run, REL_LOSS.name):
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log10(np.where(np.isfinite(v), v, np.nan))
            rows.setdefault(step, []).append(logs)
    return {step: np.stack(r) for step, r in sorted(rows.items())}


@figure(DIVERGENCE, "bjorck_fig3")
def fig3(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """log10 relative loss against η: BN on top, no BN below, one column per batch."""
    lo, hi = runs["cfg.eta_range"].iloc[0]
    etas = np.array(eta_grid(float(lo), float(hi), int(runs["cfg.eta_points"].iloc[0])))
    ids = _norm_ids(runs)
    curves = {norm: _rel_curves(store, ids[norm]) for norm in ("bn", "none")}
    steps = sorted(curves["bn"])
    with style():
        fig, axes = new_figure(2 * len(steps), ncols=len(steps), sharey=False)
        for row, norm in enumerate(("bn", "none")):
            for col, step in enumerate(steps):
                ax = axes[row * len(steps) + col]
                band(ax, etas, curves[norm][step], label=_NAMES[norm], color=COLORS[norm])
                ax.set_xscale("log")
                ax.axhline(0.0, color="0.5", lw=0.8)
                ax.set_title(f"{_NAMES[norm]}, mini-batch {step + 1}")
                ax.set_xlabel("step size η")
            axes[row * len(steps)].set_ylabel("log10 relative loss")
    caption = ("Relative loss L(w − ηg)/L(w) along the gradient of the current mini-batch "
               "(Bjorck et al. Fig. 3), during training at LR 0.1 with BN and 1e-4 without. "
               f"Lines: mean of log10 over {len(ids['bn'])} seeds; bands: min to max. A loss "
               "that is no longer finite is not drawn (the curve stops).")
    return DrawnFigure("bjorck_fig3", fig, caption)


def _heat(ax: Axes, values: np.ndarray, title: str, *, log: bool) -> None:
    """A (points, C) heat map over % of step (rows) and channels; log or symlog colours."""
    finite = values[np.isfinite(values)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    norm = (LogNorm(vmin=max(top * 1e-12, 1e-12), vmax=max(top, 1e-12)) if log
            else SymLogNorm(linthresh=max(top * 1e-6, 1e-12), vmin=-top, vmax=top))
    image = ax.imshow(np.where(np.isfinite(values), values, np.nan), aspect="auto",
                      origin="lower", norm=norm, cmap="viridis" if log else "coolwarm",
                      extent=(-0.5, values.shape[1] - 0.5, 0.0, 100.0))
    ax.figure.colorbar(image, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("channel")
    ax.grid(False)


@figure(DIVERGENCE, "bjorck_fig4")
def fig4(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Channel means (top) and variances (bottom) of layers 8, 44, 80 along the update."""
    seed, run = _first(_norm_ids(runs)["none"])
    with style():
        fig, axes = new_figure(2 * len(INTERP_LAYERS), ncols=len(INTERP_LAYERS), sharey=False)
        for col, layer in enumerate(INTERP_LAYERS):
            mean = _last(store, run, INTERP_MEAN[layer].name)  # (points, C)
            var = _last(store, run, INTERP_VAR[layer].name)
            _heat(axes[col], mean, f"layer {layer}: channel means", log=False)
            _heat(axes[len(INTERP_LAYERS) + col], var, f"layer {layer}: channel variances",
                  log=True)
        for ax in (axes[0], axes[len(INTERP_LAYERS)]):
            ax.set_ylabel("% of step")
    caption = ("One diverging gradient update of ResNet-110 without BN (η = "
               f"{float(runs['cfg.diverge_eta'].iloc[0]):g}, first batch at initialization), "
               "interpolated from 0% to 100% of the step (Bjorck et al. Fig. 4): per-channel "
               "means (symmetric log colour scale) and variances (log scale) of the conv "
               f"outputs of layers 8, 44 and 80; seed {seed}.")
    return DrawnFigure("bjorck_fig4", fig, caption)


# -- Fig. 5 and Fig. 7 ---------------------------------------------------------------------


@figure(DEPTH, "bjorck_fig5")
def fig5(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """log10 |channel mean| and log10 channel std against the layer number."""
    ids = _norm_ids(runs)
    with style():
        fig, axes = new_figure(2, ncols=2)
        for ax, q, sd, title in ((axes[0], DEPTH_LOG_MEAN, DEPTH_LOG_MEAN_SD, "channel means"),
                                 (axes[1], DEPTH_LOG_STD, DEPTH_LOG_STD_SD, "channel stds")):
            for norm in ("none", "bn"):
                runs_ = list(ids[norm].values())
                layer = _last(store, runs_[0], DEPTH_LAYER.name)
                value = np.mean([_last(store, r, q.name) for r in runs_], axis=0)
                err = np.mean([_last(store, r, sd.name) for r in runs_], axis=0)
                ax.errorbar(layer, value, yerr=err, marker="o", ms=3, capsize=2,
                            color=COLORS[norm], label=_NAMES[norm])
            ax.set_title(f"log10 magnitude of {title}")
            ax.set_xlabel("layer")
        axes[0].set_ylabel("log10")
        axes[0].legend(loc="upper left")
    caption = ("Channel means (|mean|) and standard deviations at initialization against the "
               "layer number, on a log10 scale (Bjorck et al. Fig. 5); the last point is the "
               f"read-out (logits). Points: mean over {len(ids['bn'])} seeds; error bars: the "
               "spread over channels (mean over seeds).")
    return DrawnFigure("bjorck_fig5", fig, caption)


@figure(RMT, "bjorck_fig7")
def fig7(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Histograms of the singular values of products of M random matrices (first seed)."""
    run = int(runs.sort_values("seed")["id"].iloc[0])
    names = sorted((n for n in store.array_names(run) if SV.matches(n)),
                   key=lambda n: int(n.split("/")[1]))
    with style():
        fig, axes = new_figure(len(names), ncols=len(names), sharey=False)
        for ax, name in zip(axes, names, strict=True):
            m = int(name.split("/")[1])
            sv = _last(store, run, name)
            ax.hist(sv, bins=50, color="0.4")
            ax.axvline(_metric(store, run, SV_EDGE.key(m=m)), color=COLORS["none"], lw=1,
                       label="N → ∞ edge")
            ax.set_title(f"product of {m} matri{'x' if m == 1 else 'ces'}")
            ax.set_xlabel("singular value")
        axes[0].set_ylabel("count")
        axes[0].legend(loc="upper right")
    caption = (f"Singular values of products of random N×N Gaussian matrices, N = "
               f"{int(runs['cfg.matrix_size'].iloc[0])}, entries N(0, 1/N) (Bjorck et al. "
               "§4, Fig. 7), one draw; the line marks the edge (M+1)^((M+1)/2)/M^(M/2).")
    return DrawnFigure("bjorck_fig7", fig, caption)


# -- the §3 bound --------------------------------------------------------------------------


@figure(NOISE_SCALE, "bjorck_noise")
def noise(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Estimated SGD noise against α²C/|B|, one panel per sampling, every seed a point."""
    ids = runs.sort_values("seed")["id"].astype(int).tolist()
    est = np.stack([_last(store, r, NOISE_ESTIMATE.name) for r in ids])  # (S, 2, |B|, |α|)
    bound = np.stack([_last(store, r, NOISE_BOUND.name) for r in ids])
    with style():
        fig, axes = new_figure(2, ncols=2)
        for s, (ax, sampling) in enumerate(zip(axes, SAMPLINGS, strict=True)):
            x, y = bound[:, s].ravel(), est[:, s].ravel()
            ax.loglog(x, y, "o", ms=4, color=COLORS["bn"], label="estimate")
            span = np.array([x.min(), x.max()])
            ax.loglog(span, span, color="0.5", lw=1, label="= α²C/|B|")
            ax.set_title(sampling.replace("_", " "))
            ax.set_xlabel("α²C/|B|")
        axes[0].set_ylabel("E‖α∇ℓ − α∇_SGD‖² (Monte Carlo)")
        axes[0].legend(loc="upper left")
    caption = ("The SGD noise of one update against Bjorck et al.'s bound α²C/|B| (§3), for "
               f"every |B|, α and seed ({len(ids)} seeds). With replacement the points lie on "
               "the line; without, at or below it.")
    return DrawnFigure("bjorck_noise", fig, caption)
