"""The synthesis section: first in the report, verdicts from evaluate, 'not run', counts, links."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from bnlab.claims import evaluate, get_claim, list_claims
from bnlab.claims.core import EXPLANATIONS
from bnlab.recipes.ioffe2015 import (
    ACC_POP,
    AGREEMENT,
    BIASED_GAP,
    FOLD_ERR,
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
    TEST_N,
    VAR_GAP,
)
from bnlab.report import write_report
from bnlab.report.synthesis import NOT_RUN, synthesis_rows, synthesis_table
from bnlab.results import Store


@pytest.fixture(scope="module")
def page(report_dir):
    return (report_dir / "report.html").read_text(encoding="utf-8")


def _synthesis(page):
    start = page.index('<section class="synthesis"')
    return page[start:page.index("</section>", start)]


def test_synthesis_comes_first_and_has_every_group(page):
    assert page.index('<section class="synthesis"') < page.index('<section class="recipe"')
    part = _synthesis(page)
    for title in EXPLANATIONS.values():
        assert title in part


def test_each_claim_once_with_the_verdict_evaluate_gives(page, report_dir):
    rows = re.findall(r'<tr class="synth"><td><b>(c\d\d)</b>(.*?)</tr>', _synthesis(page),
                      flags=re.S)
    assert sorted(cid for cid, _ in rows) == sorted(c.id for c in list_claims())
    with Store(report_dir) as store:
        for cid, row in rows:
            claim = get_claim(cid)
            if claim.recipe == "ioffe2015.mnist":  # the only recipe with runs here
                expected = evaluate(claim, store).status
                assert f'<span class="badge {expected.replace(" ", "-")} synth">' in row
                assert "quick, mnist1d" in row
            else:
                assert f'<span class="badge not-run synth">{NOT_RUN}</span>' in row


def test_links_point_at_elements_of_the_page(page):
    targets = set(re.findall(r'href="#([^"]+)"', _synthesis(page)))
    assert {"c01", "c02", "ioffe2015.mnist--quick-mnist1d"} <= targets
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert targets <= ids


def test_ics_group_counts_its_evidence(page):
    part = _synthesis(page)
    ics = part[part.index(EXPLANATIONS["ics"]):part.index(EXPLANATIONS["smoothness"])]
    n_ics = len([c for c in list_claims() if c.explanation == "ics"])
    assert f"evidence: 2 supported, 0 not supported, 0 inconclusive, {n_ics - 2} not run" in ics


def _key(config):
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _write_properties(store, scale="quick"):
    """Three seeds of ioffe2015.properties: the fold matches, the identity holds."""
    values = {TEST_ACC: 0.95, ACC_POP: 0.951, TEST_N: 10_000, AGREEMENT: 0.998,
              LOGIT_GAP: 0.01, BIASED_GAP: 0.012, FOLD_ERR: 1e-7, MEAN_GAP: 0.02, VAR_GAP: 0.03,
              SCALE_OUT: 1e-15, SCALE_IN_GRAD: 2e-15, SCALE_W_GRAD: 3e-15, SCALE_OUT_EPS: 1e-3,
              SCALE_IN_GRAD_EPS: 1e-3, SCALE_W_GRAD_EPS: 1e-2}
    for seed in (0, 1, 2):
        config = {"scale": scale, "data": "paper", "steps": 100, "seed": seed}
        run = store.register_run(_key(config), PROPERTIES.name, config, seed)
        store.start_run(run, resumed_from=None, provenance={})
        store.log_metrics(run, [(100, q.name, v) for q, v in values.items()])
        store.finish_run(run, "finished")


def test_identity_claims_are_listed_not_counted(tmp_path):
    with Store(tmp_path) as store:
        _write_properties(store)
        rows = synthesis_rows(store)
        c06 = next(r for r in rows["decoupling"] if r.claim.id == "c06")
        assert c06.status == "supported" and c06.where == "quick, paper"
        assert c06.measured.startswith("3e-15 ± 0 max relative change")
        c05 = next(r for r in rows["transform"] if r.claim.id == "c05")
        assert c05.status == "supported"
        table = synthesis_table(store)
    decoupling = table[table.index(EXPLANATIONS["decoupling"]):]
    assert "evidence: 0 supported, 0 not supported, 0 inconclusive, 1 not run; 1 identity" \
        in decoupling.splitlines()[0]
    assert "| c06 (identity) | **supported** | quick, paper |" in table
    assert "| c28 | **not run** |  |  |" in table


def test_synthesis_judges_the_largest_scale_and_links_the_primary_rows(tmp_path):
    with Store(tmp_path) as store:
        _write_properties(store, scale="smoke")
        _write_properties(store, scale="quick")
        text = write_report(tmp_path, store=store).read_text(encoding="utf-8")
        assert next(r for r in synthesis_rows(store)["transform"]).where == "quick, paper"
    row_ids = re.findall(r'<tr class="claim" id="([^"]+)"', text)
    assert len(row_ids) == len(set(row_ids)) == 4  # c05, c06 at two scales
    assert {"c05", "c06", "c05--smoke-paper", "c06--smoke-paper"} == set(row_ids)
    assert 'href="#ioffe2015.properties--quick-paper"' in _synthesis(text)


def test_an_empty_store_has_no_synthesis(tmp_path):
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert 'class="synthesis"' not in text
