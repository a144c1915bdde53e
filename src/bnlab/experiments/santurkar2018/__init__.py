"""Santurkar et al. 2018, "How Does Batch Normalization Help Optimization?" (PAPERS.md §2).

:mod:`.common` is the VGG-on-CIFAR-10 setup every VGG recipe shares; each other module is
one recipe (importing it registers it).
"""

from bnlab.experiments.santurkar2018 import (
    common,
    ics,
    landscape,
    lp,
    lp_landscape,
    noise,
    theory,
    vgg,
)

__all__ = ["common", "ics", "landscape", "lp", "lp_landscape", "noise", "theory", "vgg"]
