"""The verdict table as Markdown, generated from one or more stores (for the README and notes).

``bnlab report --summary --out DIR [--also DIR ...]`` prints it. The README's verdicts are
checked against such tables committed under ``docs/verdicts/`` (``tests/test_readme.py``),
so the README cannot drift from what the stores say.

Example:
    >>> print(verdict_table(Store("bnlab_out")))  # doctest: +SKIP
    | claim | recipe | scale, data | verdict | measured (mean ± std) | rule |
"""

from __future__ import annotations

from bnlab.claims import Claim, Verdict, evaluate, list_claims, run_sets
from bnlab.results import Store

__all__ = ["verdict_table"]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def verdict_table(*stores: Store) -> str:
    """One row per claim and stored run set (scale, data) of its recipe, largest scale first.

    With several stores (measurements made into separate folders), a claim's run set is
    judged on the first store that holds a measurement of it, else on the first that holds
    its runs. Claims whose recipe has no runs in any store are left out.
    """
    head = ("| claim | recipe | scale, data | verdict | measured (mean ± std over seeds) "
            "| rule |\n|---|---|---|---|---|---|")
    rows = []
    for claim in list_claims():
        chosen: dict[tuple[object, object], str] = {}
        measured_in: set[tuple[object, object]] = set()
        for store in stores:
            for run_set in run_sets(store, claim.recipe):
                key = (run_set.scale, run_set.data)
                if key in measured_in:
                    continue
                v = evaluate(claim, store, scale=run_set.scale, data=run_set.data)
                if v.measurement is None and key in chosen:
                    continue
                chosen[key] = _row(claim, run_set.scale, run_set.data, v)
                if v.measurement is not None:
                    measured_in.add(key)
        rows += list(chosen.values())
    return "\n".join([head, *rows]) + "\n"


def _row(claim: Claim, scale: object, data: object, v: Verdict) -> str:
    m = v.measurement
    if m is None:
        measured = "not measured"
    else:
        std = "" if m.std != m.std else f" ± {m.std:.3g}"
        measured = f"{m.mean:.4g}{std} {m.unit}".strip()
    return (f"| {claim.id} | `{claim.recipe}` | {scale}, {data} | **{v.status}** "
            f"| {_cell(measured)} | {_cell(claim.rule.text)} |")
