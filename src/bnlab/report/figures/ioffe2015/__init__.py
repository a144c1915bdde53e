"""Figures of Ioffe & Szegedy 2015, one module per recipe.

* :mod:`~bnlab.report.figures.ioffe2015.mnist`: Fig. 1a and Fig. 1b,c;
* :mod:`~bnlab.report.figures.ioffe2015.acceleration`: Fig. 2 (CIFAR-10 proxy);
* :mod:`~bnlab.report.figures.ioffe2015.sigmoid`: the deep sigmoid MLP (BN-x5-Sigmoid);
* :mod:`~bnlab.report.figures.ioffe2015.properties`: Alg. 2 and §3.3 along training.
"""

from bnlab.report.figures.ioffe2015 import acceleration, mnist, properties, sigmoid

__all__ = ["acceleration", "mnist", "properties", "sigmoid"]
