"""Figure of Ioffe & Szegedy 2015's BN-x5-Sigmoid (recipe ``ioffe2015.sigmoid``).

* ``ioffe_sigmoid``: test accuracy per epoch of the deep sigmoid MLP with and without BN,
  one panel per learning rate.
"""

from __future__ import annotations

import pandas as pd

from bnlab.claims.helpers import load_curves
from bnlab.recipes.ioffe2015 import SIGMOID, TEST_ACC
from bnlab.report.figures.kinds import Panel, Series, curves_figure
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure
from bnlab.results import Store

__all__ = ["sigmoid"]


@figure(SIGMOID, "ioffe_sigmoid")
def sigmoid(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Test accuracy against steps, with and without BN, a panel per learning rate."""
    acc = load_curves(store, runs, TEST_ACC, ("norm", "lr"))
    panels = [Panel(f"lr = {lr:g}", [Series("with BN" if n == "bn" else "without BN",
                                            acc.steps, acc.get(norm=n, lr=lr), COLORS[n])
                                     for n in ("bn", "none") if lr in acc.levels("lr", norm=n)])
              for lr in acc.levels("lr")]
    caption = ("Test accuracy of a 10-hidden-layer sigmoid MLP with and without BN after each "
               "epoch (Ioffe & Szegedy's BN-x5-Sigmoid, claim 4). Lines: mean over "
               f"{len(acc.seeds)} seeds; bands: min to max. Chance is 0.1.")
    return curves_figure("ioffe_sigmoid", panels, ylabel="test accuracy", caption=caption)
