"""Figure of Ioffe & Szegedy 2015 §3.1 and §3.3 (recipe ``ioffe2015.properties``).

* ``ioffe_population_stats``: along training, the two inference networks' test accuracy
  (population statistics folded vs running statistics), the relative difference of their
  logits and of the statistics, and the largest scale-invariance error (float64 with
  ε → 0 and float32 with the trained ε).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.ioffe2015 import properties as claims
from bnlab.recipes.ioffe2015 import (
    ACC_POP,
    LOGIT_GAP,
    MEAN_GAP,
    PROPERTIES,
    SCALE_IN_GRAD,
    SCALE_IN_GRAD_EPS,
    SCALE_OUT,
    SCALE_OUT_EPS,
    SCALE_W_GRAD,
    SCALE_W_GRAD_EPS,
    TEST_ACC,
    VAR_GAP,
)
from bnlab.report.figures.registry import figure
from bnlab.report.style import DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = ["population_stats"]

_PANELS = (
    ("test accuracy", ((ACC_POP, "population statistics (Alg. 2)"),
                       (TEST_ACC, "running statistics (momentum)")), "linear"),
    ("differences", ((LOGIT_GAP, "logits, relative"), (MEAN_GAP, "means / std"),
                     (VAR_GAP, "|var ratio − 1|")), "log"),
    ("scale invariance, max relative change",
     ((SCALE_OUT, "output, float64 ε→0"), (SCALE_IN_GRAD, "∂L/∂x, float64 ε→0"),
      (SCALE_W_GRAD, "a·∂L/∂(aW), float64 ε→0"), (SCALE_OUT_EPS, "output, trained ε"),
      (SCALE_IN_GRAD_EPS, "∂L/∂x, trained ε"), (SCALE_W_GRAD_EPS, "a·∂L/∂(aW), trained ε")),
     "log"),
)


@figure(PROPERTIES, "ioffe_population_stats")
def population_stats(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Three panels along training: accuracies, differences, scale-invariance errors."""
    quantities = tuple(q for _, series, _ in _PANELS for q, _ in series)
    tables = claims.load_table(store, runs, quantities)
    steps = next(iter(tables.values())).index.to_numpy()
    with style():
        fig, axes = new_figure(len(_PANELS), sharey=False)
        for ax, (title, series, scale) in zip(axes, _PANELS, strict=True):
            for q, label in series:
                values = np.stack([t[q.name].to_numpy() for t in tables.values()])  # (S, T)
                band(ax, steps, np.maximum(values, 1e-18) if scale == "log" else values,
                     label=label, linestyle="--" if "trained" in label else "-")
            ax.set_yscale(scale)
            ax.set_title(title)
            ax.set_xlabel("training steps")
            ax.legend(loc="best", fontsize=6)
    caption = ("Ioffe & Szegedy Alg. 2 and §3.3 on the MNIST BN MLP along training: the "
               "network with BN folded from population statistics (100 training batches, "
               "weights frozen, unbiased variance) against the eval-mode network's running "
               "statistics (claim 5); and the largest relative change under W_k → a·W_k "
               "(a ∈ {0.1, 10}) in float64 with ε → 0 and in float32 with the trained ε "
               f"(claim 6). Mean over {len(tables)} seeds, band min to max.")
    return DrawnFigure("ioffe_population_stats", fig, caption)
