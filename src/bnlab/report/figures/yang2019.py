"""Figures of Yang et al. 2019 (recipes ``yang2019.explosion``, ``yang2019.trainability``).

* ``yang_rate_vs_batch``: the explosion rate λ against the batch size, one line per
  activation with BN and the unnormalized ReLU control, with π/(π−1) and 1 marked.
* ``yang_depth_profile``: log10 of the squared gradient norm against the layer (relative
  to the last), one panel per activation, one line per batch size.
* ``yang_trainability``: final test accuracy against depth at each network's best learning
  rate, with and without skip connections, and at every learning rate without skips.
* ``yang_grad_range``: every hidden layer's weight-gradient norm at step 0 and step 1 for
  each depth without skips at its best learning rate (first seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims import yang2019 as claims
from bnlab.claims.core import MissingDataError
from bnlab.claims.helpers import load_curves, load_track
from bnlab.recipes.yang2019 import EXPLOSION, GRAD, PROFILE, RATE, TRAINABILITY
from bnlab.report.figures.registry import figure
from bnlab.report.style import COLORS, DrawnFigure, band, new_figure, style
from bnlab.results import Store

__all__ = ["depth_profile", "grad_range", "rate_vs_batch", "trainability"]

_ACT_COLORS = {"relu": "#1f77b4", "tanh": "#2ca02c", "linear": "#9467bd"}


@figure(EXPLOSION, "yang_rate_vs_batch")
def rate_vs_batch(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """λ against batch size per activation (BN) and for the unnormalized ReLU control."""
    rate = load_curves(store, runs, RATE, claims.EXPLOSION_BY)
    with style():
        fig, (ax,) = new_figure(1)
        for norm, activation in sorted({(c[0], c[1]) for c in rate.values}):
            batches = rate.levels("batch_size", norm=norm, activation=activation)
            values = np.stack([rate.get(norm=norm, activation=activation, batch_size=b)[:, -1]
                               for b in batches], axis=1)  # (S, B)
            label = f"{activation}, {'BN' if norm == 'bn' else 'no BN'}"
            band(ax, np.array(batches, dtype=float), values, label=label,
                 color=_ACT_COLORS[activation] if norm == "bn" else COLORS["none"],
                 linestyle="-" if norm == "bn" else "--")
        ax.axhline(claims.YANG, color="0.4", linestyle=":", label="π/(π−1)")
        ax.axhline(1.0, color="0.7", linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("explosion rate λ per layer")
        ax.legend(loc="upper right")
    caption = ("Ratio λ of squared gradient norms of consecutive layers at initialization "
               "(middle half of the layers, mean over random batches) against the batch "
               f"size. Lines: mean over {len(rate.seeds)} seeds; bands: min to max. Dotted: "
               "π/(π−1), Yang et al.'s large-batch ReLU rate, and 1.")
    return DrawnFigure("yang_rate_vs_batch", fig, caption)


@figure(EXPLOSION, "yang_depth_profile")
def depth_profile(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """log10 squared gradient norm by layer, per activation (BN), a line per batch size."""
    rate = load_curves(store, runs, RATE, claims.EXPLOSION_BY)
    activations = [a for a in claims.ACTIVATIONS if rate.levels("batch_size", norm="bn",
                                                                  activation=a)]
    if not activations:
        raise MissingDataError("no BN explosion runs")
    with style():
        fig, axes = new_figure(len(activations))
        for ax, activation in zip(axes, activations, strict=True):
            for b in rate.levels("batch_size", norm="bn", activation=activation):
                ids = rate.ids(norm="bn", activation=activation, batch_size=b)
                profiles = np.stack([load_track(store, r, PROFILE.name)[1][0] for r in ids])
                band(ax, np.arange(1, profiles.shape[1] + 1), profiles, label=f"B={b}")
            ax.set_title(f"{activation}, BN")
            ax.set_xlabel("layer l")
        axes[0].set_ylabel("log10 ‖∂L/∂h_l‖² / ‖∂L/∂h_L‖²")
        axes[0].legend(loc="upper right")
    caption = ("Squared gradient norm w.r.t. each norm site's output at initialization, "
               "relative to the last layer (log10; mean over random batches), by batch size. "
               "A straight line of slope −log10 λ is exponential explosion towards the input.")
    return DrawnFigure("yang_depth_profile", fig, caption)


@figure(TRAINABILITY, "yang_trainability")
def trainability(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Final test accuracy against depth: best LR with/without skips; each LR without."""
    table = claims.final_accuracies(store, runs)
    best = claims.best_accuracies(table)
    with style():
        fig, axes = new_figure(2, ncols=2)
        for skip, color, label in ((False, COLORS["none"], "no skips"),
                                   (True, COLORS["bn"], "skips")):
            depths = sorted(d for d, s in best if s == skip)
            if depths:
                accs = np.stack([best[(d, skip)][1]["acc"].to_numpy() for d in depths], axis=1)
                band(axes[0], np.array(depths, dtype=float), accs, label=label, color=color)
        plain = table[~table["skip"]]
        for lr, grp in plain.groupby("lr"):
            depths = sorted(grp["depth"].unique())
            accs = np.stack([grp[grp["depth"] == d].sort_values("seed")["acc"].to_numpy()
                             for d in depths], axis=1)
            band(axes[1], np.array(depths, dtype=float), accs, label=f"lr {lr:g}")
        for ax, title in zip(axes, ("best learning rate", "no skips, each learning rate"),
                             strict=True):
            ax.axhline(claims.CHANCE, color="0.6", linestyle=":")
            ax.set_xscale("log")
            ax.set_title(title)
            ax.set_xlabel("depth (hidden layers)")
            ax.legend(loc="lower left")
        axes[0].set_ylabel("final test accuracy")
    caption = ("Final test accuracy of BN-ReLU MLPs against depth (Yang et al.'s "
               "trainability): left, each network at its best learning rate with and without "
               "residual connections; right, every learning rate without them. Diverged runs "
               "count at chance (dotted). Mean over seeds, band min to max.")
    return DrawnFigure("yang_trainability", fig, caption)


def _profile(store: Store, run: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Layers (L,) and their weight-gradient norms (L,) of one run at ``step``."""
    names = {int(n.split("/")[1]): n for n in store.metrics(runs=[run])["name"].unique()
             if GRAD.matches(n)}
    if not names:
        raise MissingDataError(f"run {run} stored no {GRAD.name!r}")
    layers = np.array(sorted(names))
    m = store.metrics(runs=[run], names=[names[k] for k in layers])
    at = m[m["step"] == step].set_index("name")["value"]
    return layers, np.array([at.get(names[k], np.nan) for k in layers])


@figure(TRAINABILITY, "yang_grad_range")
def grad_range(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Weight-gradient norm by layer at steps 0 and 1, each depth without skips."""
    best = claims.best_accuracies(claims.final_accuracies(store, runs))
    nets = sorted((d, lr, rows) for (d, s), (lr, rows) in best.items() if not s)
    if not nets:
        raise MissingDataError("no runs without skips")
    with style():
        fig, axes = new_figure(len(nets), ncols=4, sharey=False)
        for ax, (depth, lr, rows) in zip(axes, nets, strict=True):
            run = int(rows["id"].iloc[0])
            for step, style_ in ((0, "-"), (1, "--")):
                layers, norms = _profile(store, run, step)
                ax.plot(layers, norms, style_, color="k", label=f"step {step}")
            ax.set_yscale("log")
            ax.set_title(f"depth {depth}, lr {lr:g}")
            ax.set_xlabel("hidden layer")
        axes[0].set_ylabel("‖∂L/∂W_l‖")
        axes[0].legend(loc="upper right")
    caption = ("Weight-gradient norm of every hidden layer before the first update (solid) "
               "and before the second (dashed), on each step's training batch, for each "
               "depth without skips at its best learning rate (first seed): Yang et al.'s "
               "collapse of the dynamic range after one step (claim 27).")
    return DrawnFigure("yang_grad_range", fig, caption)

