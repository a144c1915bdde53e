"""Ioffe & Szegedy 2015's experiments (PAPERS.md §1), one module per recipe.

* :mod:`~bnlab.experiments.ioffe2015.mnist`: Fig. 1, the sigmoid MNIST MLP;
* :mod:`~bnlab.experiments.ioffe2015.acceleration`: §4.2.1, Figs. 2–3, a CIFAR-10 proxy
  of the accelerated BN-Inception networks;
* :mod:`~bnlab.experiments.ioffe2015.sigmoid`: BN-x5-Sigmoid, a deep sigmoid MLP;
* :mod:`~bnlab.experiments.ioffe2015.properties`: Alg. 2 (inference) and §3.3 (scale
  invariance) on a trained network.
"""

from bnlab.experiments.ioffe2015 import acceleration, mnist, properties, sigmoid

__all__ = ["acceleration", "mnist", "properties", "sigmoid"]
