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

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

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
    NOISE_SE,
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
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper")
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
            ax.set_xticks(range(d.shape[1]))
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


def _mark_not_finite(ax: Axes, etas: np.ndarray, logs: np.ndarray) -> None:
    """Crosses along the top of the panel at the η where some seed's loss was not finite."""
    bad = np.isnan(logs).any(axis=0)  # (k,)
    if bad.any():
        finite = logs[np.isfinite(logs)]
        top = float(finite.max()) if finite.size else 0.0
        ax.plot(etas[bad], np.full(bad.sum(), top), "x", color="k", label="loss not finite")
        ax.legend(loc="upper left")


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
                logs = curves[norm][step]  # (S, k), NaN where the loss was not finite
                band(ax, etas, logs, label=_NAMES[norm], color=COLORS[norm])
                _mark_not_finite(ax, etas, logs)
                ax.set_xscale("log")
                ax.axhline(0.0, color="0.5", lw=0.8)
                ax.set_title(f"{_NAMES[norm]}, mini-batch {step + 1}")
                ax.set_xlabel("step size η")
            axes[row * len(steps)].set_ylabel("log10 relative loss")
    caption = ("Relative loss L(w − ηg)/L(w) along the gradient of the current mini-batch "
               "(Bjorck et al. Fig. 3), during training at LR 0.1 with BN and 1e-4 without. "
               f"Lines: mean of log10 over {len(ids['bn'])} seeds; bands: min to max; crosses: "
               "step sizes where the loss after the step was not finite for some seed.")
    return DrawnFigure("bjorck_fig3", fig, caption)


def _signed_log(x: np.ndarray) -> np.ndarray:
    """sign(x)·log10(1 + |x|): readable over many decades, 0 at 0, NaN where x is not finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(np.isfinite(x), np.sign(x) * np.log10(1.0 + np.abs(x)), np.nan)


def _heat(ax: Axes, values: np.ndarray, title: str, *, diverging: bool) -> None:
    """A (points, C) heat map over % of step (rows) and channels; non-finite cells black."""
    finite = values[np.isfinite(values)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    low = -top if diverging else (float(finite.min()) if finite.size else 0.0)
    cmap = mpl.colormaps["coolwarm" if diverging else "viridis"].with_extremes(bad="black")
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", origin="lower", cmap=cmap,
                      vmin=low, vmax=top, interpolation="nearest",
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
            _heat(axes[col], _signed_log(mean), f"layer {layer}: mean, sign·log10(1+|m|)",
                  diverging=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_var = np.where(np.isfinite(var) & (var > 0), np.log10(var), np.nan)
            _heat(axes[len(INTERP_LAYERS) + col], log_var,
                  f"layer {layer}: log10 variance", diverging=False)
        for ax in (axes[0], axes[len(INTERP_LAYERS)]):
            ax.set_ylabel("% of step")
    caption = ("One diverging gradient update of ResNet-110 without BN (η = "
               f"{float(runs['cfg.diverge_eta'].iloc[0]):g}, first batch at initialization), "
               "interpolated from 0% to 100% of the step (Bjorck et al. Fig. 4): per-channel "
               "means, as sign·log10(1 + |mean|), and log10 variances of the conv outputs of "
               f"layers 8, 44 and 80; black: not finite (overflow); seed {seed}.")
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
    """Estimated SGD noise over α²C/|B| against |B|, one panel per sampling."""
    ordered = runs.sort_values("seed")
    ids = ordered["id"].astype(int).tolist()
    est = np.stack([_last(store, r, NOISE_ESTIMATE.name) for r in ids])  # (S, 2, |B|, |α|)
    se = np.stack([_last(store, r, NOISE_SE.name) for r in ids])
    bound = np.stack([_last(store, r, NOISE_BOUND.name) for r in ids])
    sizes = np.array([int(b) for b in ordered["cfg.batch_sizes"].iloc[0]], dtype=float)
    alphas = [float(a) for a in ordered["cfg.alphas"].iloc[0]]
    n = int(ordered["cfg.examples"].iloc[0])
    with style():
        fig, axes = new_figure(2, ncols=2)
        for s, (ax, sampling) in enumerate(zip(axes, SAMPLINGS, strict=True)):
            for a, alpha in enumerate(alphas):
                shift = 1.0 + 0.06 * (a - (len(alphas) - 1) / 2)  # side by side per α
                for k in range(len(ids)):
                    ax.errorbar(sizes * shift, est[k, s, :, a] / bound[k, s, :, a],
                                yerr=se[k, s, :, a] / bound[k, s, :, a], fmt="o", ms=3,
                                capsize=2, color=f"C{a}", label=f"α = {alpha:g}" if k == 0
                                else None)
            ax.axhline(1.0, color="0.5", lw=1, label="the bound α²C/|B|")
            if s == 1:
                grid = np.geomspace(sizes.min(), sizes.max(), 50)
                ax.plot(grid, (n - grid) / (n - 1), color="0.3", ls="--",
                        label="(N − |B|)/(N − 1)")
            ax.set_xscale("log")
            ax.set_title(sampling.replace("_", " "))
            ax.set_xlabel("batch size |B|")
            ax.legend(loc="lower left")
        axes[0].set_ylabel("E‖α∇ℓ − α∇_SGD‖² / (α²C/|B|)")
    caption = ("The SGD noise of one update over Bjorck et al.'s bound α²C/|B| (§3): Monte "
               f"Carlo estimates ± 1 standard error for every |B|, α and seed ({len(ids)} "
               "seeds). With replacement the ratio is 1; without replacement it is the "
               f"finite-population factor (N − |B|)/(N − 1), N = {n}.")
    return DrawnFigure("bjorck_noise", fig, caption)
