"""Figures of Santurkar et al. 2018's measurement recipes.

* ``santurkar_thm41``: Thm 4.1 per BN site: the 1/m identity's worst relative error and the
  fraction of channels where the printed 1/√m bound fails, untrained and trained.
* ``santurkar_thm42``: Thm 4.2 per case: the left side against the bound T1 − T2 and
  against T1 alone, cases meeting the assumptions highlighted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims.santurkar2018 import measures as claims
from bnlab.recipes.santurkar2018.measures import THEORY, THM41_PRINTED_FAIL, THM41_REL_ERR
from bnlab.report.figures.registry import figure
from bnlab.report.style import DrawnFigure, new_figure, style
from bnlab.results import Store

__all__ = ["thm41", "thm42"]

_MARKERS = ("o", "s", "^", "D")


def _per_site(store: Store, runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """One per-site metric of every run: columns net, seed, step, site, value."""
    prefix, suffix = name.split("{site}")
    table = store.metrics(runs=[int(r) for r in runs["id"]])
    table = table[table["name"].str.startswith(prefix) & table["name"].str.endswith(suffix)]
    table = table.assign(site=[int(n[len(prefix):len(n) - len(suffix)]) for n in table["name"]])
    info = runs.set_index("id")
    return table.assign(net=[str(info.at[r, "cfg.net"]) if "cfg.net" in info else "?"
                             for r in table["run"]],
                        seed=[int(info.at[r, "seed"]) for r in table["run"]])


@figure(THEORY, "santurkar_thm41")
def thm41(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Per network: the identity's error (log) and the printed bound's failures per site."""
    err = _per_site(store, runs, THM41_REL_ERR.name)
    fail = _per_site(store, runs, THM41_PRINTED_FAIL.name)
    nets = sorted(err["net"].unique())
    with style():
        fig, axes = new_figure(2 * len(nets), ncols=2, sharey=False)
        for i, net in enumerate(nets):
            for ax, table, title in ((axes[2 * i], err, "1/m identity: max rel. error"),
                                     (axes[2 * i + 1], fail, "printed 1/√m bound: fails")):
                part = table[table["net"] == net]
                for k, (step, grp) in enumerate(part.groupby("step")):
                    mean = grp.groupby("site")["value"].max()
                    ax.plot(mean.index, mean.to_numpy(), _MARKERS[k % 4], label=f"step {step}")
                ax.set_title(f"{net}: {title}")
                ax.set_xlabel("BN site")
            axes[2 * i].set_yscale("log")
            axes[2 * i].axhline(claims.FLOAT64_TOL, color="k", lw=0.8, ls="--")
            axes[2 * i + 1].set_ylim(-0.05, 1.05)
            axes[2 * i].legend(loc="upper right")
    caption = ("Santurkar Thm 4.1 at every BN site, before training and after it (float64): "
               "left, the worst relative error over channels and seeds of the corrected "
               "identity with 1/m (dashed: the 1e-9 threshold of c13); right, the fraction "
               "of channels (worst seed) where ‖∂L̂/∂y‖² exceeds the bound as printed, "
               "with 1/√m.")
    return DrawnFigure("santurkar_thm41", fig, caption)


@figure(THEORY, "santurkar_thm42")
def thm42(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Left side against T1 − T2 and against T1, every case of every seed."""
    cases = np.concatenate([claims.load_thm42_cases(store, r)
                            for r in claims.thm42_runs(store, runs)])  # (K, 6)
    lhs, t1, t2, _, g_yhat, _ = cases.T
    assumed = (t1 >= 0) & (g_yhat >= 0)
    with style():
        fig, axes = new_figure(2, ncols=2, sharey=True)
        for ax, rhs, label in ((axes[0], t1 - t2, "T1 − T2 (the bound)"),
                               (axes[1], t1, "T1 = (γ²/σ²) vᵀHv")):
            ax.scatter(rhs[~assumed], lhs[~assumed], s=6, color="0.7", label="assumptions fail")
            ax.scatter(rhs[assumed], lhs[assumed], s=6, color="#1f77b4",
                       label="H ⪰ 0 on v, ⟨ŷ, ĝ⟩ ≥ 0")
            lim = float(np.abs(np.concatenate([lhs, rhs])).max()) or 1.0
            ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8, ls="--")
            ax.set_xscale("symlog", linthresh=lim * 1e-3)
            ax.set_yscale("symlog", linthresh=lim * 1e-3)
            ax.set_xlabel(label)
        axes[0].set_ylabel("vᵀ (∂²L̂/∂y²) v")
        axes[0].legend(loc="upper left")
    caption = (f"Santurkar Thm 4.2 on the BN MLP: {len(cases)} cases (random batches and "
               "units, untrained and trained, all seeds). Points on or below the dashed "
               "diagonal satisfy the bound; blue cases meet the theorem's assumptions.")
    return DrawnFigure("santurkar_thm42", fig, caption)
