"""Bjorck, Gomes, Selman & Weinberger 2018, "Understanding Batch Normalization".

One module per recipe (PAPERS.md §3): :mod:`~.lr` (Fig. 1), :mod:`~.gradients` (Figs. 2
and 6), :mod:`~.divergence` (Figs. 3 and 4), :mod:`~.depth` (Fig. 5), :mod:`~.rmt` (§4,
Fig. 7) and :mod:`~.noise_scale` (the §3 bound); :mod:`~.common` holds the networks and
data preparation they share. ``bnlab reproduce bjorck2018`` runs them all.

The paper's full text was not available when these recipes were specified: the setup
details are tagged in each config as [SEEN] (from the figures and quoted sentences),
[RECALLED] (unverified memory of the paper), [INFERRED] or NOT STATED.
"""

from bnlab.experiments.bjorck2018 import depth, divergence, gradients, lr, noise_scale, rmt

__all__ = ["depth", "divergence", "gradients", "lr", "noise_scale", "rmt"]
