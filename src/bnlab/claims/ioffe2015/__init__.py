"""Claims of Ioffe & Szegedy 2015 (PAPERS.md §8, claims 1–6), one module per recipe.

* :mod:`~bnlab.claims.ioffe2015.mnist`: c01, c02 (Fig. 1);
"""

from bnlab.claims.ioffe2015 import mnist

__all__ = ["mnist"]
