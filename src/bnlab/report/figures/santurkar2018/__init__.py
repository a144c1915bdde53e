"""Figures of Santurkar et al. 2018: :mod:`.vgg` (Figs. 1, 2, 5a, 6, 8) and the
measurement figures (importing a module registers its figures).
"""

from bnlab.report.figures.santurkar2018 import measures, vgg

__all__ = ["measures", "vgg"]
