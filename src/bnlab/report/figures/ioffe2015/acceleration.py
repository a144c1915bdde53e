"""Figure of Ioffe & Szegedy 2015 §4.2.1 (recipe ``ioffe2015.acceleration``).

* ``ioffe_fig2``: Fig. 2's held-out accuracy against training steps for the five
  variants, with the baseline's best accuracy (Fig. 3's target) marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.ioffe2015 import acceleration as claims
from bnlab.recipes.ioffe2015 import ACCELERATION
from bnlab.report.figures.registry import figure
from bnlab.report.style import DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = ["fig2"]

_COLORS = {"inception": "#d62728", "inception_x5": "#ff9896", "bn_baseline": "#1f77b4",
           "bn_x5": "#2ca02c", "bn_x30": "#9467bd"}


@figure(ACCELERATION, "ioffe_fig2")
def fig2(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Held-out accuracy against steps per variant; the target is the baseline's best."""
    steps, data = claims.load_variants(store, runs)
    with style():
        fig, (ax,) = new_figure(1)
        for variant, name in claims.VARIANT_NAMES.items():
            curves = np.stack([d[variant][0] for d in data.values()])  # (S, T)
            if np.isnan(curves).all():
                ax.plot([], [], color=_COLORS[variant], label=f"{name} (diverged)")
                continue
            band(ax, steps, curves, label=name, color=_COLORS[variant],
                 linestyle="--" if variant == "inception_x5" else "-")
        target = np.nanmean([np.nanmax(d["inception"][0]) for d in data.values()])
        ax.axhline(target, color="0.5", linestyle=":", label="Inception's best")
        ax.set_xlabel("training steps")
        ax.set_ylabel("held-out accuracy")
        ax.legend(loc="lower right")
    caption = ("Held-out (single-crop) accuracy against training steps, CIFAR-10 proxy of "
               "Ioffe & Szegedy Fig. 2: the unnormalized baseline at η0 and at 5·η0, BN at "
               "η0, and BN at 5·η0 and 30·η0 with the paper's accompanying changes. Lines: "
               f"mean over {len(data)} seeds; bands: min to max; a diverged run's curve "
               "stops. Dotted: the baseline's best accuracy (seed mean), Fig. 3's target.")
    return DrawnFigure("ioffe_fig2", fig, caption)
