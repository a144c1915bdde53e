"""The verdict table as Markdown, generated from a store (for the README and notes).

``bnlab report --summary`` prints it; the README's verdict table is this output pasted
between the ``verdicts`` markers, never typed by hand.

Example:
    >>> print(verdict_table(Store("bnlab_out")))  # doctest: +SKIP
    | claim | recipe | scale, data | verdict | measured (mean ± std) | rule |
"""

from __future__ import annotations

from bnlab.claims import evaluate, list_claims, run_sets
from bnlab.results import Store

__all__ = ["verdict_table"]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def verdict_table(store: Store) -> str:
    """One row per claim and stored run set (scale, data) of its recipe, largest scale first.

    Claims whose recipe has no runs in the store are left out.
    """
    head = ("| claim | recipe | scale, data | verdict | measured (mean ± std over seeds) "
            "| rule |\n|---|---|---|---|---|---|")
    rows = []
    for claim in list_claims():
        for run_set in run_sets(store, claim.recipe):
            v = evaluate(claim, store, scale=run_set.scale, data=run_set.data)
            m = v.measurement
            if m is None:
                measured = "not measured"
            else:
                std = "" if m.std != m.std else f" ± {m.std:.3g}"
                measured = f"{m.mean:.4g}{std} {m.unit}".strip()
            rows.append(f"| {claim.id} | `{claim.recipe}` | {run_set.scale}, {run_set.data} "
                        f"| **{v.status}** | {_cell(measured)} | {_cell(claim.rule.text)} |")
    return "\n".join([head, *rows]) + "\n"
