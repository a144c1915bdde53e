"""Santurkar et al. 2018, Figures 5b, 12 and 13: ℓp normalization on the DLN and landscape.

Standard, +BN, +ℓ1, +ℓ2 and +ℓ∞ (implementation I1, the ℓp layers' default: the batch
ℓp-average of the uncentred input, PAPERS.md §2.6) on both setups: the DLN's training loss
(Fig. 5b) and, for all five, the landscape metrics of Figs. 4 and 10 (Figs. 12, 13). The
config, presets and probes are :mod:`~bnlab.experiments.santurkar2018.landscape`'s, so its
Standard and +BN runs are this recipe's too: the store keeps a run once, under the recipe
that registered it first, and the claims and figures here find those runs by their config
(run ``santurkar2018.landscape`` first, as ``bnlab reproduce`` does, or this recipe alone).
The card is :data:`bnlab.recipes.santurkar2018.measures.LP_LANDSCAPE`; claim c31 (the DLN
part of PAPERS.md §8 claim 12) reads the DLN's final loss.

Command: ``bnlab run santurkar2018.lp_landscape --scale quick --data paper --executor
process --workers 2``.

Scales (2 nets × 5 norms × 3 seeds = 30 runs; at paper scale 18 new after
``santurkar2018.landscape``): as ``santurkar2018.landscape``, except that ``quick`` trains
the VGG runs for 300 steps (as ``santurkar2018.lp``) instead of 700 and probes them every 50
steps (the issue's quick setting) instead of 25, so that the recipe fits 8 minutes on 2
cores: with 700 steps its 18 new runs alone took 9 min 47 s on a quiet 2-core machine
(1,140 s of CPU), and with 300 steps probed every 25 the 30 runs took 8 min 11 s (946 s).
Its quick Standard and +BN runs are then runs of their own, not
``santurkar2018.landscape``'s. Claim c31 reads only the DLN, whose settings are unchanged.
Measured: :data:`QUICK_RUNTIME`.
"""

from __future__ import annotations

from dataclasses import replace

from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.common import LP_NORMS
from bnlab.experiments.santurkar2018.landscape import PAPER, QUICK, SMOKE, build, grid
from bnlab.recipes.santurkar2018.measures import LP_LANDSCAPE

__all__ = ["GRID", "PRESETS", "QUICK_LP", "QUICK_RUNTIME", "RECIPE"]

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 7 min 31 s wall on a quiet 2-core machine (822 s user + 38 s system CPU "
    "for the 30 runs); --data mnist1d: see the README (part of make reproduce)")

GRID = grid(("none", "bn", *LP_NORMS))  # paper: Fig. 5b, Standard, +BN, +L1, +L2, +L∞
#: Quick: 300 VGG steps probed every 50 (santurkar2018.landscape: 700, every 25) to fit 8
#: minutes on 2 cores.
QUICK_LP = replace(QUICK, steps=300, landscape_every=50)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK_LP, GRID),
           "smoke": Preset(SMOKE, GRID)}

RECIPE = register_recipe(Recipe(LP_LANDSCAPE, PRESETS, build))
