"""The one plotting style of bnlab figures, and how figures are saved.

Figures are built on :class:`matplotlib.figure.Figure` directly (no ``pyplot``), so drawing
never touches a global backend or opens a window: PNG goes through Agg, SVG through
matplotlib's SVG backend. Every figure kind uses :func:`new_figure` and :func:`band` so
they read alike: a mean line over seeds and a shaded band from the seeds' minimum to
maximum.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["COLORS", "RC", "DrawnFigure", "band", "new_figure", "save_figure", "slug"]

#: Colours by norm name; anything else cycles through the default colours.
COLORS: dict[str, str] = {"bn": "#1f77b4", "none": "#d62728"}
#: Matplotlib settings shared by every figure.
RC: dict[str, object] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "svg.fonttype": "none",  # keep text as text in SVG
    "svg.hashsalt": "bnlab",  # deterministic SVG ids
}
PANEL_SIZE = (3.2, 2.5)  # inches per panel
DPI = 110


@dataclass(frozen=True)
class DrawnFigure:
    """A figure ready to save, with what the report says about it.

    Attributes:
        name: file stem, e.g. ``"ioffe_fig1a"``.
        figure: the matplotlib figure.
        caption: one or two sentences: what is plotted, the band, the seeds.
    """

    name: str
    figure: Figure
    caption: str


@contextmanager
def style() -> Iterator[None]:
    """Apply :data:`RC` for the figures built inside the block."""
    with mpl.rc_context(RC):
        yield


def new_figure(n_panels: int, *, ncols: int = 3, sharey: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure with ``n_panels`` panels in rows of ``ncols``; extra cells are hidden."""
    if n_panels < 1:
        raise ValueError(f"a figure needs at least one panel, got {n_panels}")
    ncols = min(ncols, n_panels)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def band(ax: Axes, x: np.ndarray, values: np.ndarray, *, label: str, color: str | None = None,
         linestyle: str = "-") -> None:
    """Draw the mean over seeds as a line and the min–max over seeds as a band.

    Args:
        ax: the axes to draw on.
        x: shape (T,).
        values: shape (S, T), one row per seed (a single row draws the line only).
        label: legend label.
        color: line and band colour.
        linestyle: line style of the mean.
    """
    values = np.atleast_2d(values)  # (S, T)
    (line,) = ax.plot(x, values.mean(axis=0), label=label, color=color, linestyle=linestyle)
    if values.shape[0] > 1:
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(),
                        alpha=0.2, linewidth=0)


def slug(text: str) -> str:
    """``text`` reduced to a safe file-name part (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def save_figure(drawn: DrawnFigure, directory: str | Path) -> tuple[Path, Path]:
    """Write ``<directory>/<name>.png`` and ``.svg``; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{slug(drawn.name)}.png", directory / f"{slug(drawn.name)}.svg"
    with style():
        drawn.figure.savefig(png, format="png")
        drawn.figure.savefig(svg, format="svg")
    return png, svg
