"""The synthesis: every registered claim under the explanation of BN it bears on.

For each group of :data:`bnlab.claims.core.EXPLANATIONS` (reduces internal covariate shift,
smooths the landscape, enables large learning rates, explodes gradients at initialization,
decouples length and direction, and the transform's own properties), the claims whose
``explanation`` names it, each with its verdict on the run set the report judges first
(the largest scale run, the paper's data preferred: :func:`bnlab.claims.select_runs`), one
line of what was measured, and links to its claim row and figures. A claim whose recipe has
no runs is "not run". Counts per group are over ``evidence`` claims only; ``identity``
claims (algebraic checks) are listed but not counted. Nothing here is written by hand: the
rows are verdicts and measured numbers.

Example:
    >>> from bnlab.report.synthesis import synthesis_table
    >>> print(synthesis_table(Store("bnlab_out")))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from bnlab.claims import Claim, RunSet, Verdict, evaluate, list_claims, select_runs
from bnlab.claims.core import EXPLANATIONS
from bnlab.report.style import slug
from bnlab.results import Store

__all__ = ["NOT_RUN", "Row", "anchor", "run_set_anchor", "synthesis_html", "synthesis_rows",
           "synthesis_table"]

NOT_RUN = "not run"
Judge = Callable[[Claim, RunSet], Verdict]


@dataclass(frozen=True)
class Row:
    """One claim in the synthesis.

    Attributes:
        claim: the claim.
        status: the verdict's status, or :data:`NOT_RUN`.
        where: ``"quick, paper"``: the scale and data judged ("" when not run).
        measured: one line: the seed mean ± std with its unit and the first detail.
        reason: the verdict's reason ("" when not run).
        run_set: the run set judged, or ``None``.
    """

    claim: Claim
    status: str
    where: str
    measured: str
    reason: str
    run_set: RunSet | None


def anchor(claim: Claim, run_set: RunSet, primary: bool) -> str:
    """The HTML id of a claim's row in a run set's table (the claim id in the first set)."""
    return claim.id if primary else f"{claim.id}--{slug(f'{run_set.scale}-{run_set.data}')}"


def run_set_anchor(run_set: RunSet) -> str:
    """The HTML id of a run set's section (its figures and claims)."""
    return slug(f"{run_set.recipe}--{run_set.scale}-{run_set.data}")


def _one_line(verdict: Verdict) -> str:
    m = verdict.measurement
    if m is None:
        return "not measured"
    std = "" if m.std != m.std else f" ± {m.std:.3g}"
    line = f"{m.mean:.4g}{std} {m.unit}".strip()
    if m.details:
        line += f"; {m.details[0].label}: {m.details[0].text}"
    return " ".join(line.split())


def _row(claim: Claim, store: Store, judge: Judge) -> Row:
    run_set = select_runs(store, claim.recipe)
    if run_set is None:
        return Row(claim, NOT_RUN, "", "", f"no runs of {claim.recipe} in this store", None)
    verdict = judge(claim, run_set)
    return Row(claim, verdict.status, f"{run_set.scale}, {run_set.data}", _one_line(verdict),
               verdict.reason, run_set)


def synthesis_rows(store: Store, judge: Judge | None = None) -> dict[str, list[Row]]:
    """Explanation key → its claims' rows, in :data:`EXPLANATIONS` and claim-id order.

    Args:
        store: the results store.
        judge: ``judge(claim, run_set) -> Verdict`` (default: :func:`evaluate` on that
            run set); the report passes a cached one so each verdict is computed once.
    """
    def evaluate_on(claim: Claim, run_set: RunSet) -> Verdict:
        return evaluate(claim, store, scale=run_set.scale, data=run_set.data)

    judge = judge or evaluate_on
    return {key: [_row(c, store, judge) for c in list_claims() if c.explanation == key]
            for key in EXPLANATIONS}


def _counts(rows: list[Row]) -> str:
    evidence = [r for r in rows if r.claim.kind == "evidence"]
    parts = [f"{sum(r.status == s for r in evidence)} {s}"
             for s in ("supported", "not supported", "inconclusive", NOT_RUN)]
    identities = len(rows) - len(evidence)
    tail = f"; {identities} identity check(s), not counted" if identities else ""
    return f"evidence: {', '.join(parts)}{tail}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell_links(row: Row) -> str:
    if row.run_set is None:
        return '<span class="muted">–</span>'
    return (f'<a href="#{_e(anchor(row.claim, row.run_set, True))}">claim row</a> · '
            f'<a href="#{_e(run_set_anchor(row.run_set))}">figures</a>')


def _badge(status: str) -> str:
    return f'<span class="badge {slug(status).replace("_", "-")} synth">{_e(status)}</span>'


def _html_row(row: Row) -> str:
    c = row.claim
    kind = "" if c.kind == "evidence" else ' <span class="muted">(identity, not counted)</span>'
    status = _badge(row.status)
    return (f'<tr class="synth"><td><b>{_e(c.id)}</b>{kind}<br><span class="muted">'
            f"{_e(c.paper)}, {_e(c.figure)}</span></td><td>{_e(c.statement)}</td>"
            f"<td>{status}<br><span class=\"muted\">{_e(row.where)}</span></td>"
            f"<td>{_e(row.measured)}</td><td>{_cell_links(row)}</td></tr>")


def synthesis_html(store: Store, judge: Judge | None = None) -> str:
    """The synthesis section of ``report.html`` (one table per explanation)."""
    head = ("<tr><th>claim</th><th>statement</th><th>verdict (scale, data)</th>"
            "<th>measured (mean ± std over seeds; first detail)</th><th>links</th></tr>")
    parts = ['<section class="synthesis" id="synthesis"><h2>Synthesis: the explanations '
             "of batch normalization and the verdicts that bear on them</h2>"
             '<p class="muted">Each claim under the explanation its measurement bears on, '
             "judged on the largest scale run (the paper's data preferred). Counts are over "
             "evidence claims; identity checks are listed but not counted.</p>"]
    for key, rows in synthesis_rows(store, judge).items():
        parts.append(f'<h3 id="explanation-{_e(key)}">{_e(EXPLANATIONS[key])}</h3>'
                     f'<p class="muted">{_e(_counts(rows))}</p>')
        body = "".join(_html_row(r) for r in rows)
        parts.append(f'<table class="synthesis">{head}{body}</table>' if body else
                     '<p class="muted">no claims registered</p>')
    parts.append("</section>")
    return "".join(parts)


def synthesis_table(store: Store) -> str:
    """The synthesis as Markdown: one table per explanation (for notes and the README)."""
    out = []
    for key, rows in synthesis_rows(store).items():
        out += [f"**{EXPLANATIONS[key]}** ({_counts(rows)})", "",
                "| claim | verdict | scale, data | measured |", "|---|---|---|---|"]
        for r in rows:
            kind = "" if r.claim.kind == "evidence" else " (identity)"
            cell = r.measured.replace("|", "\\|")
            out.append(f"| {r.claim.id}{kind} | **{r.status}** | {r.where} | {cell} |")
        out.append("")
    return "\n".join(out)
