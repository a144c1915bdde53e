"""Claims of Ioffe & Szegedy 2015 (PAPERS.md §8, claims 1–6), one module per recipe.

* :mod:`~bnlab.claims.ioffe2015.mnist`: c01, c02 (Fig. 1);
* :mod:`~bnlab.claims.ioffe2015.acceleration`: c03 (§4.2.1, Figs. 2–3);
* :mod:`~bnlab.claims.ioffe2015.sigmoid`: c04 (BN-x5-Sigmoid);
* :mod:`~bnlab.claims.ioffe2015.properties`: c05 (Alg. 2), c06 (§3.3).
"""

from bnlab.claims.ioffe2015 import acceleration, mnist, properties, sigmoid

__all__ = ["acceleration", "mnist", "properties", "sigmoid"]
