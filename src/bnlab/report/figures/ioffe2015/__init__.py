"""Figures of Ioffe & Szegedy 2015, one module per recipe.

* :mod:`~bnlab.report.figures.ioffe2015.mnist`: Fig. 1a and Fig. 1b,c;
"""

from bnlab.report.figures.ioffe2015 import mnist

__all__ = ["mnist"]
