"""bnlab.report: figures and the HTML claims report, drawn from stored results (no torch).

Example:
    >>> from bnlab.report import write_report
    >>> path = write_report("bnlab_out")  # doctest: +SKIP
"""

from bnlab.report.figures import (
    FIGURES,
    Panel,
    RecipeFigure,
    Series,
    curves_figure,
    figure,
    tracks_figure,
)
from bnlab.report.html import REPORT_NAME, write_report
from bnlab.report.style import DrawnFigure, save_figure

__all__ = [
    "FIGURES",
    "REPORT_NAME",
    "DrawnFigure",
    "Panel",
    "RecipeFigure",
    "Series",
    "curves_figure",
    "figure",
    "save_figure",
    "tracks_figure",
    "write_report",
]
