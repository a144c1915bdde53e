"""Claims of Santurkar et al. 2018 (PAPERS.md §8): :mod:`.vgg` (c07, c12 VGG part, c15,
c29, c30) and the measurement claims (importing a module registers its claims).
"""

from bnlab.claims.santurkar2018 import measures, vgg

__all__ = ["measures", "vgg"]
