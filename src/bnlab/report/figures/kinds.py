"""Generic figure kinds: plain arrays in, a :class:`DrawnFigure` out (no store access).

* :func:`curves_figure`: metric against steps, one panel per condition, several series per
  panel, each a mean over seeds with a min–max band.
* :func:`tracks_figure`: percentile tracks of one unit against steps, one panel per network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bnlab.report.style import DrawnFigure, band, new_figure, style

__all__ = ["Panel", "Series", "curves_figure", "tracks_figure"]

_PCT_STYLES = (":", "-", "--")  # lowest percentile dotted, median solid, highest dashed


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
                  caption: str, levels: Sequence[float], ylabel: str = "sigmoid input"
                  ) -> DrawnFigure:
    """Percentile tracks of one unit: the median solid, the outer percentiles dashed.

    Args:
        name: file stem of the figure.
        panels: ``(title, steps (T,), tracks (T, 3))`` per panel, three percentiles.
        caption: the caption shown in the report.
        levels: the three percentile levels, lowest first.
        ylabel: the y-axis label.
    """
    with style():
        fig, axes = new_figure(len(panels), ncols=2)
        for ax, (title, steps, tracks) in zip(axes, panels, strict=True):
            ax.fill_between(steps, tracks[:, 0], tracks[:, 2], color="0.6", alpha=0.2, lw=0)
            for j, pct in enumerate(levels):
                ax.plot(steps, tracks[:, j], color="k", linestyle=_PCT_STYLES[j],
                        label=f"{pct}th percentile")
            ax.set_title(title)
            ax.set_xlabel("training steps")
        axes[0].set_ylabel(ylabel)
        axes[0].legend(loc="upper right")
    return DrawnFigure(name, fig, caption)
