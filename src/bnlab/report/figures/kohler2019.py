"""Figures of Kohler et al. 2019 (recipe ``kohler2019.decoupling``).

* ``kohler_convergence``: f(w_t) − f* against iterations for the three optimizers, one
  panel per task and κ (log scale; mean over seeds of the log, band min to max).
* ``kohler_rates``: the fitted linear rate per iteration against κ (log-log), one panel
  per task, with a 1/κ guide: the comparison claim 28 makes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.claims import kohler2019 as claims
from bnlab.claims.core import MissingDataError
from bnlab.claims.helpers import load_track
from bnlab.recipes.kohler2019 import DECOUPLING, METHODS, SUBOPT
from bnlab.report.figures.registry import figure
from bnlab.report.style import DrawnFigure, new_figure, style
from bnlab.results import Store

__all__ = ["convergence", "rates"]

_COLORS = {"gd": "#d62728", "gd_line_search": "#ff7f0e", "decoupled": "#1f77b4"}
_TASKS = ("least_squares", "halfspace")
_TINY = 1e-300  # an exact zero drawn on a log axis


def _runs_by_panel(runs: pd.DataFrame) -> list[tuple[str, float, pd.DataFrame]]:
    if runs.empty or "cfg.task" not in runs.columns:
        raise MissingDataError("no finished kohler2019.decoupling runs")
    panels = []
    for task in _TASKS:
        chosen = runs[runs["cfg.task"] == task]
        panels += [(task, float(k), grp) for k, grp in chosen.groupby("cfg.kappa")]
    return panels


@figure(DECOUPLING, "kohler_convergence")
def convergence(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Suboptimality per iteration, each optimizer, one panel per (task, κ)."""
    panels = _runs_by_panel(runs)
    with style():
        fig, axes = new_figure(len(panels), ncols=4, sharey=False)
        for ax, (task, kappa, grp) in zip(axes, panels, strict=True):
            for method in METHODS:
                traces = np.stack([load_track(store, int(r), SUBOPT.key(method=method))[1][0]
                                   for r in grp["id"]])  # (S, T)
                logs = np.log10(np.maximum(traces, _TINY))
                t = np.arange(traces.shape[1])
                ax.plot(t, 10 ** np.nanmean(logs, axis=0), color=_COLORS[method], label=method)
                ax.fill_between(t, 10 ** np.nanmin(logs, axis=0), 10 ** np.nanmax(logs, axis=0),
                                color=_COLORS[method], alpha=0.2, lw=0)
            ax.set_yscale("log")
            ax.set_title(f"{task.replace('_', ' ')}, κ = {kappa:g}")
            ax.set_xlabel("iteration")
        axes[0].set_ylabel("f(w_t) − f*")
        axes[0].legend(loc="lower left")
    caption = ("Suboptimality per iteration of plain GD (step 2/(μ+L)), GD with exact line "
               "search and the decoupled parameterization (line search on the length, a "
               "gradient step on the direction), from the same start. Lines: geometric mean "
               f"over {runs['seed'].nunique()} seeds; bands: min to max. Iterations cost "
               "different numbers of oracle calls (see the claim's per-call rates).")
    return DrawnFigure("kohler_convergence", fig, caption)


@figure(DECOUPLING, "kohler_rates")
def rates(store: Store, runs: pd.DataFrame) -> DrawnFigure:
    """Fitted rate per iteration against κ, per optimizer, one panel per task."""
    tasks = [t for t in _TASKS if "cfg.task" in runs.columns and (runs["cfg.task"] == t).any()]
    if not tasks:
        raise MissingDataError("no finished kohler2019.decoupling runs")
    with style():
        fig, axes = new_figure(len(tasks), ncols=2, sharey=False)
        for ax, task in zip(axes, tasks, strict=True):
            per_seed = claims.load_rates(store, runs, task)
            kappas = np.array(sorted(next(iter(per_seed.values()))["gd"]))
            for method in METHODS:
                rho = np.array([[per_seed[s][method][k][0] for k in kappas]
                                for s in sorted(per_seed)])  # (S, K)
                ax.plot(kappas, rho.mean(0), "o-", color=_COLORS[method], label=method)
                ax.fill_between(kappas, rho.min(0), rho.max(0), color=_COLORS[method],
                                alpha=0.2, lw=0)
                if method == "gd":
                    guide = rho.mean(0)[0] * kappas[0] / kappas
            ax.plot(kappas, guide, ":", color="0.5", label="∝ 1/κ (through GD's first)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(task.replace("_", " "))
            ax.set_xlabel("condition number κ")
        axes[0].set_ylabel("linear rate ρ per iteration")
        axes[0].legend(loc="lower left")
    caption = ("Fitted linear rate ρ = −d log(f − f*)/dt (tail of the linear phase) against "
               "the condition number κ of the input covariance. A rate independent of κ is a "
               "flat line (claim 28); plain GD follows 1/κ (dotted). Mean over seeds, band "
               "min to max.")
    return DrawnFigure("kohler_rates", fig, caption)
