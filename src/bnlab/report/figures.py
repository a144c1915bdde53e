"""Figures drawn from stored results: one function per figure kind.

Generic kinds take plain arrays:

* :func:`curves_figure`: metric against steps, one panel per condition, several series per
  panel, each a mean over seeds with a min–max band.
* :func:`tracks_figure`: percentile tracks of one unit against steps, one panel per network.

Recipe figures read a run set from the store and call a generic kind; they are listed in
:data:`FIGURES` under the names that :class:`bnlab.claims.RecipeInfo` refers to:

* ``ioffe_fig1a``: Ioffe & Szegedy Fig. 1a, test accuracy vs steps with and without BN, at
  each learning rate and at each network's best learning rate.
* ``ioffe_fig1bc``: Fig. 1b,c, the 15/50/85th percentiles of the sigmoid input of one
  typical last-hidden-layer unit, without and with BN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnlab.claims import ioffe2015
from bnlab.report.style import COLORS, DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = [
    "FIGURES",
    "Panel",
    "Series",
    "curves_figure",
    "ioffe_fig1a",
    "ioffe_fig1bc",
    "tracks_figure",
]

PERCENTILES = (15, 50, 85)
_PCT_STYLES = (":", "-", "--")  # 15th dotted, median solid, 85th dashed


@dataclass(frozen=True)
class Series:
    """One line of a panel: ``values`` has shape (S, T) over ``x`` of shape (T,)."""

    label: str
    x: np.ndarray
    values: np.ndarray
    color: str | None = None


@dataclass(frozen=True)
class Panel:
    """One panel: a title and its series."""

    title: str
    series: Sequence[Series]


def curves_figure(name: str, panels: Sequence[Panel], *, ylabel: str, caption: str,
                  xlabel: str = "training steps") -> DrawnFigure:
    """Curves against steps: per series the mean over seeds and a min–max band.

    Args:
        name: file stem of the figure.
        panels: one panel per condition, drawn left to right, three per row.
        ylabel: the y-axis label of every panel.
        caption: the caption shown in the report.
        xlabel: the x-axis label.
    """
    with style():
        fig, axes = new_figure(len(panels))
        for ax, panel in zip(axes, panels, strict=True):
            for s in panel.series:
                band(ax, s.x, s.values, label=s.label, color=s.color)
            ax.set_title(panel.title)
            ax.set_xlabel(xlabel)
        axes[0].set_ylabel(ylabel)
        # The last panel may label its series differently (e.g. each network's best LR).
        for ax in {id(a): a for a in (axes[0], axes[-1])}.values():
            ax.legend(loc="lower right")
    return DrawnFigure(name, fig, caption)


def tracks_figure(name: str, panels: Sequence[tuple[str, np.ndarray, np.ndarray]], *,
                  caption: str, ylabel: str = "sigmoid input") -> DrawnFigure:
    """Percentile tracks of one unit: the median solid, the outer percentiles dashed.

    Args:
        name: file stem of the figure.
        panels: ``(title, steps (T,), tracks (T, 3))`` per panel, 15/50/85th percentiles.
        caption: the caption shown in the report.
        ylabel: the y-axis label.
    """
    with style():
        fig, axes = new_figure(len(panels), ncols=2)
        for ax, (title, steps, tracks) in zip(axes, panels, strict=True):
            ax.fill_between(steps, tracks[:, 0], tracks[:, 2], color="0.6", alpha=0.2, lw=0)
            for j, pct in enumerate(PERCENTILES):
                ax.plot(steps, tracks[:, j], color="k", linestyle=_PCT_STYLES[j],
                        label=f"{pct}th percentile")
            ax.set_title(title)
            ax.set_xlabel("training steps")
        axes[0].set_ylabel(ylabel)
        axes[0].legend(loc="upper right")
    return DrawnFigure(name, fig, caption)


def _acc_series(curves: ioffe2015.AccuracyCurves, bn_lr: float, none_lr: float,
                suffix: bool) -> list[Series]:
    out = []
    for norm, lr in (("bn", bn_lr), ("none", none_lr)):
        label = ("with BN" if norm == "bn" else "without BN") + (f" (lr {lr:g})" if suffix else "")
        out.append(Series(label, curves.steps, curves.acc[(norm, lr)], COLORS[norm]))
    return out


def ioffe_fig1a(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Ioffe & Szegedy Fig. 1a: test accuracy vs steps, with and without BN.

    One panel per learning rate run for both networks, then one with each network at its
    best learning rate (highest seed-mean final accuracy).

    Raises:
        bnlab.claims.MissingDataError: if the runs lack a network or ``test_acc``.
    """
    curves = ioffe2015.load_accuracy(store, runs)
    shared = sorted(set(curves.lrs("bn")) & set(curves.lrs("none")))
    panels = [Panel(f"lr = {lr:g}", _acc_series(curves, lr, lr, False)) for lr in shared]
    bn_lr, none_lr = curves.best_lr("bn"), curves.best_lr("none")
    panels.append(Panel("each network at its best lr", _acc_series(curves, bn_lr, none_lr, True)))
    caption = (f"Test accuracy against training steps (Ioffe & Szegedy Fig. 1a). Lines: mean "
               f"over {len(curves.seeds)} seeds; bands: min to max over seeds.")
    return curves_figure("ioffe_fig1a", panels, ylabel="test accuracy", caption=caption)


def ioffe_fig1bc(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Ioffe & Szegedy Fig. 1b,c: sigmoid-input percentiles of one typical unit.

    Each network at its best learning rate, first seed. The unit shown is the one whose
    total variation is the median of the 20 recorded units (a typical unit, as in the
    paper). No band over seeds: unit *k* of different seeds is a different neuron.

    Raises:
        bnlab.claims.MissingDataError: if the runs lack a network or the percentile arrays.
    """
    curves = ioffe2015.load_accuracy(store, runs)
    panels = []
    for norm, title in (("none", "(b) without BN"), ("bn", "(c) with BN")):
        lr = curves.best_lr(norm)
        steps, tracks = ioffe2015.load_tracks(store, curves.run_ids[(norm, lr)][0])  # (T,U,3)
        unit = ioffe2015.typical_unit(tracks)
        panels.append((f"{title}, lr {lr:g}, unit {unit}", steps, tracks[:, unit, :]))
    caption = ("The 15th, 50th and 85th percentiles of the sigmoid input of one typical unit of "
               "the last hidden layer over training (Ioffe & Szegedy Fig. 1b,c); each network "
               f"at its best learning rate, seed {curves.seeds[0]}, over a fixed test batch.")
    return tracks_figure("ioffe_fig1bc", panels, caption=caption)


#: Recipe figures by name: ``draw(store, runs) -> DrawnFigure``.
FIGURES: dict[str, Callable[[Store, pd.DataFrame], DrawnFigure]] = {
    "ioffe_fig1a": ioffe_fig1a,
    "ioffe_fig1bc": ioffe_fig1bc,
}
