"""Figures of Ioffe & Szegedy 2015 (recipe ``ioffe2015.mnist``).

* ``ioffe_fig1a``: Fig. 1a, test accuracy against steps with and without BN, at each
  learning rate and with each network at its best learning rate.
* ``ioffe_fig1bc``: Fig. 1b,c, the 15/50/85th percentiles of the sigmoid input of one
  typical last-hidden-layer unit (batch statistics of the probe set), without and with BN,
  at the unnormalized network's best learning rate (the comparison c02 makes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.helpers import Curves, load_curves, running_median, total_variation
from bnlab.claims.ioffe2015 import mnist as claims
from bnlab.recipes.ioffe2015 import MNIST, PERCENTILES, TEST_ACC
from bnlab.report.figures.kinds import Panel, Series, curves_figure, tracks_figure
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure
from bnlab.results import Store

__all__ = ["fig1a", "fig1bc", "typical_unit"]


def _acc_series(acc: Curves, bn_lr: float, none_lr: float, suffix: bool) -> list[Series]:
    out = []
    for norm, lr in (("bn", bn_lr), ("none", none_lr)):
        label = ("with BN" if norm == "bn" else "without BN") + (f" (lr {lr:g})" if suffix else "")
        out.append(Series(label, acc.steps, acc.get(norm=norm, lr=lr), COLORS[norm]))
    return out


@figure(MNIST, "ioffe_fig1a")
def fig1a(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Test accuracy vs steps: one panel per shared LR, then each network at its best LR."""
    acc = load_curves(store, runs, TEST_ACC, claims.BY)
    shared = sorted(set(acc.levels("lr", norm="bn")) & set(acc.levels("lr", norm="none")))
    panels = [Panel(f"lr = {lr:g}", _acc_series(acc, lr, lr, False)) for lr in shared]
    bn_lr, none_lr = acc.best("lr", norm="bn"), acc.best("lr", norm="none")
    panels.append(Panel("each network at its best lr", _acc_series(acc, bn_lr, none_lr, True)))
    caption = (f"Test accuracy against training steps (Ioffe & Szegedy Fig. 1a). Lines: mean "
               f"over {len(acc.seeds)} seeds; bands: min to max over seeds.")
    return curves_figure("ioffe_fig1a", panels, ylabel="test accuracy", caption=caption)


def typical_unit(tracks: np.ndarray) -> int:
    """The unit whose smoothed total variation is the median of the recorded units.

    Args:
        tracks: shape (T, U, P).
    """
    per_unit = total_variation(running_median(tracks, claims.SMOOTH)).mean(axis=1)  # (U,)
    return int(np.argsort(per_unit)[(per_unit.size - 1) // 2])


@figure(MNIST, "ioffe_fig1bc")
def fig1bc(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Percentile tracks of one typical unit, without and with BN, at none's best LR.

    First seed; no band over seeds: unit *k* of different seeds is a different neuron.
    """
    acc = load_curves(store, runs, TEST_ACC, claims.BY)
    lr = acc.best("lr", norm="none")
    panels = []
    for norm, title in (("none", "(b) without BN"), ("bn", "(c) with BN")):
        steps, tracks = claims.load_tracks(store, acc.ids(norm=norm, lr=lr)[0])  # (T, U, 3)
        unit = typical_unit(tracks)
        panels.append((f"{title}, lr {lr:g}, unit {unit}", steps, tracks[:, unit, :]))
    caption = ("The 15th, 50th and 85th percentiles of the sigmoid input of one typical unit of "
               "the last hidden layer over training (Ioffe & Szegedy Fig. 1b,c), as the sigmoid "
               "sees it in training (BN with the probe set's batch statistics), over a fixed "
               f"probe set of test inputs; both networks at lr {lr:g} (the unnormalized "
               f"network's best), seed {acc.seeds[0]}.")
    return tracks_figure("ioffe_fig1bc", panels, caption=caption, levels=PERCENTILES)
