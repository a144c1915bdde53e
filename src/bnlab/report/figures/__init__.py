"""Figures drawn from stored results (no torch).

:mod:`~bnlab.report.figures.kinds` holds the generic kinds (plain arrays in);
:mod:`~bnlab.report.figures.registry` the registry and the :func:`figure` decorator; one
module per paper registers that paper's recipe figures on import.
"""

from bnlab.report.figures import inspect, ioffe2015, kohler2019, yang2019
from bnlab.report.figures.kinds import Panel, Series, curves_figure, tracks_figure
from bnlab.report.figures.registry import FIGURES, Draw, RecipeFigure, figure

__all__ = [
    "FIGURES",
    "Draw",
    "Panel",
    "RecipeFigure",
    "Series",
    "curves_figure",
    "figure",
    "inspect",
    "ioffe2015",
    "kohler2019",
    "tracks_figure",
    "yang2019",
]
