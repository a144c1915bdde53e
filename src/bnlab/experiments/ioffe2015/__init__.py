"""Ioffe & Szegedy 2015's experiments (PAPERS.md §1), one module per recipe.

* :mod:`~bnlab.experiments.ioffe2015.mnist`: Fig. 1, the sigmoid MNIST MLP;
"""

from bnlab.experiments.ioffe2015 import mnist

__all__ = ["mnist"]
