"""The self-contained HTML claims report: ``<out>/report.html``.

First the synthesis (:mod:`bnlab.report.synthesis`): every claim under the explanation of
BN it bears on, with its verdict and links to its row and figures below. Then per recipe
with stored runs, and per run set (scale and data source) of that recipe: the paper and
figure, the figures (PNG inlined as base64; PNG and SVG also written under
``<out>/figures/``), the claims table (id and statement, the paper's number, the measured
mean ± std over seeds, the rule with its threshold and source, the verdict and its
reason), the run counts by status, the runs themselves, and provenance (git sha and whether
it differs from the current HEAD, package versions, device, runtime). Every string that
comes from a config, a run name, a store path or an error is HTML-escaped. The page has no
scripts and loads nothing from outside the file.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bnlab import __version__
from bnlab.claims import (
    Claim,
    MissingDataError,
    RunSet,
    Verdict,
    evaluate,
    list_claims,
    run_sets,
)
from bnlab.recipes import Card, list_cards
from bnlab.report.figures import FIGURES
from bnlab.report.style import save_figure, slug
from bnlab.report.synthesis import anchor, run_set_anchor, synthesis_html
from bnlab.results import STATUSES, Store, git_info

__all__ = ["REPORT_NAME", "write_report"]

REPORT_NAME = "report.html"
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}h3{color:#444}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#f4f4f4}figure{margin:1em 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}.muted{color:#777;font-size:.85em}
.badge{display:inline-block;padding:.15em .55em;border-radius:.8em;font-weight:600;
color:#fff;white-space:nowrap}
.badge.supported{background:#2e7d32}.badge.not-supported{background:#c62828}
.badge.inconclusive{background:#9e9e9e}.badge.not-run{background:#e0e0e0;color:#555}
.holds{color:#2e7d32}.fails{color:#c62828}table.synthesis{width:100%;table-layout:fixed}
table.synthesis td:nth-child(2){font-size:.85em}table.synthesis th:nth-child(1){width:15%}
table.synthesis th:nth-child(2){width:37%}table.synthesis th:nth-child(3){width:12%}
table.synthesis th:nth-child(5){width:8%}
code{background:#f4f4f4;padding:0 .2em}ul.details{margin:.3em 0;padding-left:1.2em}
"""


def _e(value: object) -> str:
    """HTML-escape ``str(value)`` (quotes included, so it is safe in attributes too)."""
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge {slug(status).replace("_", "-")}">{_e(status)}</span>'


def _measured(verdict: Verdict) -> str:
    m = verdict.measurement
    if m is None:
        return '<span class="muted">not measured</span>'
    std = "" if m.std != m.std else f" ± {m.std:.4g}"  # NaN std: a single seed
    unit = f' <span class="muted">{_e(m.unit)}</span>' if m.unit else ""
    seeds = ", ".join(f"{s}: {v:.4g}" for s, v in sorted(m.per_seed.items()))
    items = "".join(
        f'<li class="{"holds" if d.holds else "fails" if d.holds is False else ""}">'
        f"<b>{_e(d.label)}</b>: {_e(d.text)}</li>"
        for d in m.details
    )
    return (f"{m.mean:.4g}{std}{unit}<br><span class=\"muted\">per seed {{{_e(seeds)}}}</span>"
            + (f'<ul class="details">{items}</ul>' if items else ""))


def _claim_row(verdict: Verdict, row_id: str) -> str:
    c = verdict.claim
    rule = (f"{_e(c.rule.text)}<br><span class=\"muted\">threshold: value {_e(c.rule.op)} "
            f"{c.rule.threshold:g}; source: {_e(c.rule.source)}</span>")
    paper = _e(c.paper_value) if c.paper_value else '<span class="muted">none given</span>'
    return (f'<tr class="claim" id="{_e(row_id)}"><td><b>{_e(c.id)}</b> '
            f'<span class="muted">{_e(c.figure)}, {_e(c.kind)}</span><br>{_e(c.statement)}</td>'
            f"<td>{paper}</td><td>{_measured(verdict)}</td><td>{rule}</td>"
            f"<td>{_badge(verdict.status)}</td><td>{_e(verdict.reason)}</td></tr>")


def _claims_table(verdicts: Iterable[tuple[Verdict, str]]) -> str:
    rows = "".join(_claim_row(v, row_id) for v, row_id in verdicts)
    if not rows:
        return '<p class="muted">No claims registered for this recipe.</p>'
    head = ("<tr><th>claim</th><th>paper's number</th><th>measured (mean ± std over seeds)</th>"
            "<th>rule</th><th>verdict</th><th>reason</th></tr>")
    return f'<table class="claims">{head}{rows}</table>'


def _counts_table(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    cells = "".join(f"<td>{int(counts.get(s, 0))}</td>" for s in STATUSES)
    head = "".join(f"<th>{_e(s)}</th>" for s in STATUSES)
    return f'<table class="counts"><tr>{head}</tr><tr>{cells}</tr></table>'


def _runs_table(runs: pd.DataFrame) -> str:
    rows = []
    for r in runs.itertuples():
        config = json.dumps(r.config, sort_keys=True, default=str)
        error = "" if r.error is None or r.error != r.error else str(r.error)
        rows.append(f"<tr><td>{int(r.id)}</td><td><code>{_e(config)}</code></td>"
                    f"<td>{_e(r.seed)}</td><td>{_e(r.status)}</td>"
                    f"<td><pre>{_e(error)}</pre></td></tr>")
    head = "<tr><th>id</th><th>config</th><th>seed</th><th>status</th><th>error</th></tr>"
    return (f"<details><summary>{len(rows)} runs</summary>"
            f'<table class="runs">{head}{"".join(rows)}</table></details>')


def _seconds(runs: pd.DataFrame) -> tuple[float, float]:
    """Summed run time and wall span (first start to last finish), in seconds."""
    started = pd.to_datetime(runs["started"], utc=True, errors="coerce")
    finished = pd.to_datetime(runs["finished"], utc=True, errors="coerce")
    total = (finished - started).dt.total_seconds().sum(min_count=1)
    span = (finished.max() - started.min()).total_seconds() if finished.notna().any() else 0.0
    return float(0.0 if total != total else total), float(0.0 if span != span else span)


def _values(provs: list[dict], key: str) -> list[str]:
    return sorted({str(p[key]) for p in provs if p.get(key) is not None})


def _provenance(runs: pd.DataFrame, head: str | None) -> str:
    provs = [p for p in runs["provenance"] if isinstance(p, dict) and p]
    shas = _values(provs, "git_sha")
    other = [s for s in shas if s != head]
    dirty = any(p.get("git_dirty") for p in provs)
    packages: dict[str, set[str]] = {}
    for p in provs:
        for name, version in (p.get("packages") or {}).items():
            packages.setdefault(str(name), set()).add(str(version))
    versions = "; ".join(f"{n} {'/'.join(sorted(v))}" for n, v in sorted(packages.items()))
    total, span = _seconds(runs)
    differs = ("<b>yes</b>: " + _e(", ".join(s[:12] for s in other))) if other else "no"
    items = [
        ("git sha of the runs", ", ".join(s[:12] for s in shas) or "not recorded"),
        ("current HEAD", (head or "unknown")[:12]),
        ("dirty working tree in a run", "yes" if dirty else "no"),
        ("device", ", ".join(_values(provs, "device")) or "not recorded"),
        ("threads", ", ".join(_values(provs, "threads")) or "not recorded"),
        ("package versions", versions or "not recorded"),
        ("runtime", f"{total:.0f} s summed over runs, {span:.0f} s from first start to last end"),
    ]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    rows += f"<tr><th>runs from a different sha than HEAD</th><td>{differs}</td></tr>"
    return f'<table class="provenance">{rows}</table>'


def _figures_html(store: Store, info: Card, run_set: RunSet, fig_dir: Path) -> str:
    finished = run_set.runs[run_set.runs["status"] == "finished"]
    parts = []
    for name in info.figures:
        try:
            drawn = FIGURES.get(name).draw(store, finished)
        except MissingDataError as err:
            parts.append(f'<p class="muted">Figure {_e(name)} not drawn: {_e(err)}</p>')
            continue
        stem = slug(f"{info.name}__{run_set.scale}_{run_set.data}__{drawn.name}")
        png, svg = save_figure(replace(drawn, name=stem), fig_dir)
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{_e(drawn.name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_e(drawn.caption)} "
                     f'<span class="muted">(files: figures/{_e(png.name)}, '
                     f"figures/{_e(svg.name)})</span></figcaption></figure>")
    return "".join(parts)


class _Judge:
    """Verdicts computed once per (claim, scale, data).

    The synthesis and the recipe sections share it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[tuple[str, str | None, str | None], Verdict] = {}

    def __call__(self, claim: Claim, run_set: RunSet) -> Verdict:
        key = (claim.id, run_set.scale, run_set.data)
        if key not in self.cache:
            self.cache[key] = evaluate(claim, self.store, scale=run_set.scale,
                                       data=run_set.data)
        return self.cache[key]


def _run_set_html(store: Store, info: Card | None, run_set: RunSet, fig_dir: Path,
                  judge: _Judge, primary: bool) -> str:
    parts = [f'<h3 id="{_e(run_set_anchor(run_set))}">{_e(run_set.label)}</h3>',
             "<h4>Runs by status</h4>", _counts_table(run_set.runs), _runs_table(run_set.runs)]
    if info is not None:
        parts.append(_figures_html(store, info, run_set, fig_dir))
        verdicts = [(judge(c, run_set), anchor(c, run_set, primary))
                    for c in list_claims(info.name)]
        parts += ["<h4>Claims</h4>", _claims_table(verdicts)]
    parts += ["<h4>Provenance</h4>", _provenance(run_set.runs, git_info().get("git_sha"))]
    return "".join(parts)


def _recipe_html(store: Store, name: str, info: Card | None, fig_dir: Path,
                 judge: _Judge) -> str:
    sets = run_sets(store, name)
    if not sets:
        return ""  # a recipe with no runs in the store is simply absent
    if info is None:
        title = f"{_e(name)} <span class=\"muted\">(no claims registered)</span>"
    else:
        title = f"{_e(info.paper)}, {_e(info.figure)}: {_e(info.summary)}"
    body = "".join(_run_set_html(store, info, rs, fig_dir, judge, i == 0)
                   for i, rs in enumerate(sets))
    return (f'<section class="recipe" id="{_e(slug(name))}"><h2>{title}</h2>'
            f'<p class="muted">recipe <code>{_e(name)}</code></p>'
            f"{_card_html(info) if info else ''}{body}</section>")


def _card_html(card: Card) -> str:
    """The recipe's data sources and what it stores, from its card."""
    data = (f"<b>--data paper</b>: {_e(card.data_paper)}; " if card.dataset else
            "<b>no dataset</b> (the runs record data=none); ")
    rows = "".join(
        f"<tr><td><code>{_e(q.name)}</code></td><td>{_e(q.kind)}</td>"
        f"<td>{_e('×'.join(map(str, q.shape)) or 'scalar')}</td><td>{_e(q.meaning)}</td>"
        f"<td>{_e(q.when)}</td></tr>" for q in card.all_stored)
    head = "<tr><th>name</th><th>kind</th><th>shape</th><th>meaning</th><th>stored</th></tr>"
    return (f'<p class="muted">{data}<b>--data mnist1d</b>: {_e(card.data_mnist1d)}</p>'
            f"<details><summary>What this recipe stores</summary>"
            f'<table class="stored">{head}{rows}</table></details>')


def _recipes(store: Store) -> list[tuple[str, Card | None]]:
    """Registered recipes, then any other recipe that has runs in the store."""
    infos = {card.name: card for card in list_cards()}
    stored = sorted(set(store.runs()["recipe"]))
    return [*infos.items(), *((n, None) for n in stored if n not in infos)]


def write_report(out_dir: str | Path, *, store: Store | None = None) -> Path:
    """Write ``<out_dir>/report.html`` (and ``<out_dir>/figures/``) from the results store.

    Args:
        out_dir: the output directory holding ``bnlab.db``; the report goes there too.
        store: an open store to read instead of opening ``<out_dir>/bnlab.db``.

    Returns:
        The path of ``report.html``.

    Example:
        >>> from bnlab.report import write_report
        >>> write_report("bnlab_out")  # doctest: +SKIP
        PosixPath('bnlab_out/report.html')
    """
    out = Path(out_dir)
    own = store is None
    store = Store(out) if store is None else store
    try:
        judge = _Judge(store)
        sections = "".join(_recipe_html(store, name, info, out / "figures", judge)
                           for name, info in _recipes(store))
        if sections:
            sections = synthesis_html(store, judge) + sections
    finally:
        if own:
            store.close()
    if not sections:
        sections = ('<p>No runs are stored here yet. Run <code>bnlab reproduce</code> '
                    "to fill the store.</p>")
    path = out / REPORT_NAME
    path.write_text(_page(out, sections), encoding="utf-8")
    return path


def _page(out: Path, sections: str) -> str:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    head = git_info().get("git_sha") or "unknown"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><title>bnlab claims report</title>'
            f"<style>{_CSS}</style></head><body><h1>bnlab claims report</h1>"
            f'<p class="muted">Written {_e(when)} by bnlab {_e(__version__)} from '
            f"<code>{_e(out.resolve() / 'bnlab.db')}</code>; HEAD {_e(head[:12])}. "
            "Verdicts are computed from the stored runs by each claim's rule: supported when "
            "the rule holds for the mean over seeds and every seed, not supported when it "
            "fails for all of them, inconclusive otherwise (with the reason).</p>"
            f"{sections}</body></html>")
