"""Cards of Santurkar et al. 2018, "How Does Batch Normalization Help Optimization?".

PAPERS.md §2. :mod:`.common` holds what every VGG recipe stores; :mod:`.vgg` the cards of
the training experiments (Figs. 1, 2/8, 5a/6); :mod:`.measures` those of the measurement
experiments (ICS, landscape, the deep linear network).
"""

from bnlab.recipes.santurkar2018 import common, measures, vgg

__all__ = ["common", "measures", "vgg"]
