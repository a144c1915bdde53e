"""Figures of Santurkar et al. 2018's measurement recipes.

* ``santurkar_fig3``: Fig. 3, per net and learning rate: training accuracy (VGG) or loss
  (DLN), and the ℓ2 difference and cosine of G and G′ at the figure's two layers.
* ``santurkar_fig4`` / ``santurkar_fig10``: Figs. 4 and 10 (VGG, DLN): the loss band, the
  gradient-change band over η, and effective β, against steps, Standard vs +BN.
* ``santurkar_fig11``: Fig. 11: ‖g − ∇L(w − ηg)‖ against η at individual steps, coloured
  by time, per net and norm (first seed).
* ``santurkar_fig5b``: Fig. 5b: the DLN's training loss for the five norms.
* ``santurkar_fig12`` / ``santurkar_fig13``: Figs. 12, 13: the landscape metrics of Figs. 4
  and 10 for the five norms.
* ``santurkar_thm41``: Thm 4.1 per BN site: the 1/m identity's worst relative error and the
  fraction of channels where the printed 1/√m bound fails, untrained and trained.
* ``santurkar_obs43_lemma45``: Obs. 4.3 (BN with γ = σ̃, β = μ + b against the plain
  network) and Lemma 4.5 (both sides, and the loss change when W* → kW*) per site.
* ``santurkar_thm42``: Thm 4.2 per case: the left side against the bound T1 − T2 and
  against T1 alone, cases meeting the assumptions highlighted.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, MaxNLocator

from bnlab.claims.core import MissingDataError
from bnlab.claims.helpers import load_track
from bnlab.claims.santurkar2018 import measures as claims
from bnlab.claims.santurkar2018.vgg import load_condition_curves
from bnlab.recipes.santurkar2018.common import TRAIN_ACC
from bnlab.recipes.santurkar2018.measures import (
    DLN_LOSS,
    ICS,
    ICS_LAYERS_DLN,
    ICS_LAYERS_VGG,
    LANDSCAPE,
    LEMMA45,
    LP_LANDSCAPE,
    LS_BETA,
    LS_GC,
    LS_GC_MAX,
    LS_GC_MIN,
    LS_LOSS_MAX,
    LS_LOSS_MIN,
    OBS43,
    THEORY,
    THM41_PRINTED_FAIL,
    THM41_REL_ERR,
)
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = ["fig3", "fig4", "fig5b", "fig10", "fig11", "fig12", "fig13", "obs43_lemma45", "thm41",
           "thm42"]

LABELS = claims.LABELS
NORM_COLORS = {**COLORS, "l1": "#2ca02c", "l2": "#9467bd", "linf": "#ff7f0e"}
_LAYER_STYLES = ("-", "--")


def _nets(runs: pd.DataFrame) -> list[str]:
    return [n for n in ("vgg", "dln") if "cfg.net" in runs and (runs["cfg.net"] == n).any()]


@figure(ICS, "santurkar_fig3")
def fig3(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Per (net, LR): the training curve, ‖G − G′‖ (log) and cos∠(G, G′) at two layers."""
    rows = []
    for net in _nets(runs):
        layers = ICS_LAYERS_VGG if net == "vgg" else ICS_LAYERS_DLN
        cos, l2 = claims.ics_curves(store, runs, net, tuple(str(k) for k in layers))
        train = load_condition_curves(store, runs, TRAIN_ACC if net == "vgg" else DLN_LOSS,
                                      claims.ICS_BY, net=net)
        rows += [(net, lr, train, l2, cos) for lr in sorted(train.levels("lr"), reverse=True)]
    if not rows:
        raise MissingDataError("no ICS runs to draw")
    with style():
        fig, axes = new_figure(3 * len(rows), ncols=3, sharey=False)
        for i, (net, lr, train, l2, cos) in enumerate(rows):
            ax_t, ax_l, ax_c = axes[3 * i: 3 * i + 3]
            for norm in ("none", "bn"):
                band(ax_t, train.steps, train.get(norm=norm, lr=lr), label=LABELS[norm],
                     color=COLORS[norm])
                for (layer, c2), (_, cc), ls in zip(l2.items(), cos.items(), _LAYER_STYLES,
                                                    strict=False):
                    label = f"{LABELS[norm]}, layer #{layer}"
                    band(ax_l, c2.steps, c2.get(norm=norm, lr=lr), label=label,
                         color=COLORS[norm], linestyle=ls)
                    band(ax_c, cc.steps, cc.get(norm=norm, lr=lr), label=label,
                         color=COLORS[norm], linestyle=ls)
            ax_t.set_title(f"{net.upper()}, lr {lr:g}: training "
                           + ("accuracy" if net == "vgg" else "loss"))
            ax_l.set_title("‖G − G′‖₂")
            ax_c.set_title("cos∠(G, G′)")
            ax_l.set_yscale("log")
            if net == "dln":
                ax_t.set_yscale("log")
            for ax in (ax_t, ax_l, ax_c):
                ax.set_xlabel("training steps")
        axes[2].legend(loc="lower left")
    caption = ("Santurkar Fig. 3: internal covariate shift by Definition 2.1 (G: the layer's "
               "weight gradient; G′: the same after the layers below took this step's "
               "update), Standard vs +BN; solid and dashed lines are the figure's two layers "
               "(VGG #5, #10; DLN #9, #17). Lines: mean over seeds; bands: min to max.")
    return DrawnFigure("santurkar_fig3", fig, caption)

_MARKERS = ("o", "s", "^", "D")


def _per_site(store: Store, runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """One per-site metric of every run: columns net, seed, step, site, value."""
    prefix, suffix = name.split("{site}")
    table = store.metrics(runs=[int(r) for r in runs["id"]])
    table = table[table["name"].str.startswith(prefix) & table["name"].str.endswith(suffix)]
    table = table.assign(site=[int(n[len(prefix):len(n) - len(suffix)]) for n in table["name"]])
    info = runs.set_index("id")
    return table.assign(net=[str(info.at[r, "cfg.net"]) if "cfg.net" in info else "?"
                             for r in table["run"]],
                        seed=[int(info.at[r, "seed"]) for r in table["run"]])


@figure(THEORY, "santurkar_thm41")
def thm41(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Per network: the identity's error (log) and the printed bound's failures per site."""
    err = _per_site(store, runs, THM41_REL_ERR.name)
    fail = _per_site(store, runs, THM41_PRINTED_FAIL.name)
    nets = sorted(err["net"].unique())
    with style():
        fig, axes = new_figure(2 * len(nets), ncols=2, sharey=False)
        for i, net in enumerate(nets):
            for ax, table, title in ((axes[2 * i], err, "1/m identity: max rel. error"),
                                     (axes[2 * i + 1], fail, "printed 1/√m bound: fails")):
                part = table[table["net"] == net]
                for k, (step, grp) in enumerate(part.groupby("step")):
                    mean = grp.groupby("site")["value"].max()
                    ax.plot(mean.index, mean.to_numpy(), _MARKERS[k % 4], label=f"step {step}")
                ax.set_title(f"{net}: {title}")
                ax.set_xlabel("BN site")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[2 * i].set_yscale("log")
            axes[2 * i].axhline(claims.FLOAT64_TOL, color="k", lw=0.8, ls="--")
            axes[2 * i + 1].set_ylim(-0.05, 1.05)
            axes[2 * i].legend(loc="upper right")
    caption = ("Santurkar Thm 4.1 at every BN site, before training and after it (float64): "
               "left, the worst relative error over channels and seeds of the corrected "
               "identity with 1/m (dashed: the 1e-9 threshold of c13); right, the fraction "
               "of channels (worst seed) where ‖∂L̂/∂y‖² exceeds the bound as printed, "
               "with 1/√m.")
    return DrawnFigure("santurkar_thm41", fig, caption)


def _lemma_rows(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """Lemma 4.5 per run and site: net, site, gap |lhs − rhs|/|rhs|, loss change, cos."""
    rows = []
    for _, run in runs.iterrows():
        for name in claims.find_array(store, int(run["id"]), LEMMA45):
            for _, (cos, lhs, rhs, change) in store.arrays(int(run["id"]), name):
                rows.append({"net": str(run.get("cfg.net", "?")), "site": int(name.split("/")[1]),
                             "gap": abs(lhs - rhs) / abs(rhs) if rhs else 0.0,
                             "change": change, "cos": cos})
    return pd.DataFrame(rows, columns=["net", "site", "gap", "change", "cos"])


@figure(THEORY, "santurkar_obs43_lemma45")
def obs43_lemma45(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Obs. 4.3's output difference per net and check; Lemma 4.5's gap and invariance per site."""
    obs = store.metrics(runs=[int(r) for r in runs["id"]], names=OBS43.name)
    nets = runs.set_index("id")["cfg.net"] if "cfg.net" in runs else None
    lemma = _lemma_rows(store, runs)
    floor = 1e-18  # exact zeros drawn on the log axis
    with style():
        fig, axes = new_figure(2, ncols=2, sharey=False)
        for k, (step, grp) in enumerate(obs.groupby("step")):
            labels = [str(nets[r]) if nets is not None else "?" for r in grp["run"]]
            axes[0].plot(labels, np.maximum(grp["value"], floor), _MARKERS[k % 4],
                         label=f"step {step}")
        axes[0].set_title("Obs. 4.3: max |out_BN − out_plain| / max |out|")
        for k, (net, grp) in enumerate(lemma.groupby("net")):
            axes[1].plot(grp["site"], np.maximum(grp["gap"], floor), _MARKERS[k % 4],
                         label=f"{net}: |lhs − rhs| / rhs")
            axes[1].plot(grp["site"], np.maximum(grp["change"], floor), _MARKERS[(k + 2) % 4],
                         mfc="none", label=f"{net}: |L(kW*) − L(W*)| / L")
        axes[1].set_title("Lemma 4.5 (trained weights)")
        axes[1].set_xlabel("BN site")
        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes:
            ax.set_yscale("log")
            ax.axhline(claims.FLOAT64_TOL, color="k", lw=0.8, ls="--")
            ax.legend(loc="upper right")
    caption = ("Santurkar Obs. 4.3 and Lemma 4.5 as numbers (float64): left, BN with γ = σ̃ "
               "and β = μ + b reproduces the plain network with the same weights and random "
               "biases b; right, per site of the trained networks, the two sides of Lemma "
               "4.5 (it holds with equality: ‖W0 − kW*‖² = ‖W0‖² − ⟨W0, W*⟩²/‖W*‖² on both "
               f"sides) and the loss change when the weight is scaled by k > 0 (values of 0 "
               f"drawn at {floor:g}). Dashed: 1e-9.")
    return DrawnFigure("santurkar_obs43_lemma45", fig, caption)


def _symlog_ticks(lim: float) -> list[float]:
    """0 and ±one power of ten per two decades down to the linear region (readable labels)."""
    top = 10.0 ** np.floor(np.log10(lim))
    pos = [top / 100.0**k for k in range(2)]
    return sorted([0.0, *pos, *(-p for p in pos)])


@figure(THEORY, "santurkar_thm42")
def thm42(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Left side against T1 − T2 and against T1, every case of every seed."""
    cases = np.concatenate([claims.load_thm42_cases(store, r)
                            for r in claims.thm42_runs(store, runs)])  # (K, 6)
    lhs, t1, t2, _, g_yhat, _ = cases.T
    assumed = (t1 >= 0) & (g_yhat >= 0)
    with style():
        fig, axes = new_figure(2, ncols=2, sharey=True)
        for ax, rhs, label in ((axes[0], t1 - t2, "T1 − T2 (the bound)"),
                               (axes[1], t1, "T1 = (γ²/σ²) vᵀHv")):
            ax.scatter(rhs[~assumed], lhs[~assumed], s=6, color="0.7", label="assumptions fail")
            ax.scatter(rhs[assumed], lhs[assumed], s=6, color="#1f77b4",
                       label="H ⪰ 0 on v, ⟨ŷ, ĝ⟩ ≥ 0")
            lim = float(np.abs(np.concatenate([lhs, rhs])).max()) or 1.0
            ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8, ls="--")
            ticks = _symlog_ticks(lim)
            for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
                scale("symlog", linthresh=lim * 1e-3)
                axis.set_major_locator(FixedLocator(ticks))
            ax.set_xlabel(label)
        axes[0].set_ylabel("vᵀ (∂²L̂/∂y²) v")
        axes[0].legend(loc="upper left")
    caption = (f"Santurkar Thm 4.2 on the BN MLP: {len(cases)} cases (random batches and "
               "units, untrained and trained, all seeds). Points on or below the dashed "
               "diagonal satisfy the bound; blue cases meet the theorem's assumptions.")
    return DrawnFigure("santurkar_thm42", fig, caption)


# -- landscape -------------------------------------------------------------------------------


def _landscape_panels(store: Store, runs: pd.DataFrame, net: str, norms: tuple[str, ...],
                      name: str, caption: str) -> DrawnFigure:
    """Loss band, gradient-change band (seed-mean min to max over η) and β, by norm."""
    c = claims.landscape_curves(store, runs, net)
    gc_min = load_condition_curves(store, runs, LS_GC_MIN, claims.LANDSCAPE_BY, net=net)
    present = [n for n in norms if n in c[LS_BETA.name].levels("norm")]
    with style():
        fig, axes = new_figure(3, ncols=3, sharey=False)
        for norm in present:
            color = NORM_COLORS.get(norm)
            for ax, lo, hi in ((axes[0], c[LS_LOSS_MIN.name], c[LS_LOSS_MAX.name]),
                               (axes[1], gc_min, c[LS_GC_MAX.name])):
                low, high = lo.get(norm=norm).mean(0), hi.get(norm=norm).mean(0)
                ax.fill_between(lo.steps, low, high, color=color, alpha=0.35, lw=0,
                                label=LABELS[norm])
            beta = c[LS_BETA.name]
            band(axes[2], beta.steps, beta.get(norm=norm), label=LABELS[norm], color=color)
        for ax, title in zip(axes, ("(a) loss landscape L(w − ηg)",
                                    "(b) gradient predictiveness ‖g − ∇L(w − ηg)‖",
                                    "(c) effective β-smoothness"), strict=True):
            ax.set_title(title)
            ax.set_xlabel("training steps")
            ax.set_yscale("log")
        axes[0].legend(loc="upper right")
    return DrawnFigure(name, fig, caption)


_BANDS = ("Shaded: the seed-mean of the minimum and of the maximum over η at each probed "
          "step; β: mean over seeds with a min–max band.")


@figure(LANDSCAPE, "santurkar_fig4")
def fig4(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 4: VGG at LR 0.1, η ∈ {0.5, 1, 2, 4} × LR."""
    return _landscape_panels(store, runs, "vgg", ("none", "bn"), "santurkar_fig4",
                             "Santurkar Fig. 4: VGG, the landscape along −g at every probed "
                             "step, Standard vs +BN. " + _BANDS)


@figure(LANDSCAPE, "santurkar_fig10")
def fig10(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 10: the DLN at LR 1e-6, η ∈ [0.01, 30] × LR."""
    return _landscape_panels(store, runs, "dln", ("none", "bn"), "santurkar_fig10",
                             "Santurkar Fig. 10: the deep linear network, the landscape along "
                             "−g, Standard vs +BN. " + _BANDS)


def _first_run(runs: pd.DataFrame, net: str, norm: str) -> int | None:
    pick = runs[(runs.get("cfg.net") == net) & (runs.get("cfg.norm") == norm)]
    return None if pick.empty else int(pick.sort_values("seed")["id"].iloc[0])


@figure(LANDSCAPE, "santurkar_fig11")
def fig11(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 11: gradient change against η at each probed step (first seed), coloured by time."""
    cells = [(net, norm, _first_run(runs, net, norm)) for net in _nets(runs)
             for norm in ("none", "bn")]
    cells = [cell for cell in cells if cell[2] is not None]
    if not cells:
        raise MissingDataError("no landscape runs to draw")
    with style():
        fig, axes = new_figure(len(cells), ncols=2, sharey=False)
        for ax, (net, norm, run) in zip(axes, cells, strict=True):
            config = runs.set_index("id").at[run, "config"]
            lr, mult = float(config["lr"]), np.asarray(config["multipliers"], dtype=float)
            steps, gc = load_track(store, run, LS_GC.name)  # (T,), (T, k)
            colors = mpl.colormaps["coolwarm"](np.linspace(0, 1, len(steps)))
            for row, color in zip(gc, colors, strict=True):
                ax.plot(mult * lr, row, color=color, lw=1)
            ax.set_xscale("log" if net == "dln" else "linear")
            ax.set_yscale("log" if net == "dln" else "linear")
            ax.set_title(f"{net.upper()} {LABELS[norm]}: steps {steps[0]}–{steps[-1]}")
            ax.set_xlabel("step size η")
        axes[0].set_ylabel("‖g − ∇L(w − ηg)‖₂")
    caption = ("Santurkar Fig. 11: the gradient change along −g against the step size at "
               "each probed step of the first seed, blue (early) to red (late).")
    return DrawnFigure("santurkar_fig11", fig, caption)


_ALL_NORMS = ("none", "bn", "l1", "l2", "linf")


@figure(LP_LANDSCAPE, "santurkar_fig5b")
def fig5b(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 5b: the DLN's full-batch training loss for every norm (Standard and BN shared)."""
    curves, _ = claims.dln_finals(store, runs)
    with style():
        fig, axes = new_figure(1)
        for norm in [n for n in _ALL_NORMS if n in curves.levels("norm")]:
            band(axes[0], curves.steps, curves.get(norm=norm), label=LABELS[norm],
                 color=NORM_COLORS[norm])
        axes[0].set_yscale("log")
        axes[0].set_title("DLN, lr 1e-6: training loss")
        axes[0].set_xlabel("training steps")
        axes[0].legend(loc="upper right")
    caption = ("Santurkar Fig. 5b: the deep linear network's training loss (the full-batch "
               "objective) with each normalization (ℓp: implementation I1). Lines: mean over "
               "seeds; bands: min to max.")
    return DrawnFigure("santurkar_fig5b", fig, caption)


@figure(LP_LANDSCAPE, "santurkar_fig12")
def fig12(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 12: Fig. 4's metrics on VGG for the five norms."""
    return _landscape_panels(store, claims.shared_runs(store, runs), "vgg", _ALL_NORMS,
                             "santurkar_fig12", "Santurkar Fig. 12: VGG, the landscape along "
                             "−g for Standard, +BN and the ℓp normalizations. " + _BANDS)


@figure(LP_LANDSCAPE, "santurkar_fig13")
def fig13(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fig. 13: Fig. 10's metrics on the DLN for the five norms."""
    return _landscape_panels(store, claims.shared_runs(store, runs), "dln", _ALL_NORMS,
                             "santurkar_fig13", "Santurkar Fig. 13: the deep linear network, "
                             "the landscape along −g for Standard, +BN and the ℓp "
                             "normalizations. " + _BANDS)
