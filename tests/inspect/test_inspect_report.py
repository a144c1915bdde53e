"""The panel in the report: every inspect figure drawn from real runs, side by side, and the
page renders in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch.nn.functional as F

import bnlab
from bnlab.claims import MissingDataError
from bnlab.data import Loader
from bnlab.recipes.inspect import INSPECT
from bnlab.report import FIGURES, write_report
from bnlab.results import Store

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report(zoo, data, tmp_path_factory):
    """A DenseNet trained 4 steps with and without BN, test split included, then reported."""
    out = tmp_path_factory.mktemp("inspect_report")
    (x, y), test = data
    bnlab.inspect(zoo.make("densenet"), F.cross_entropy, Loader(x.double(), y, 16, seed=0),
                  steps=4, compare="none", out=out, test=(test[0].double(), test[1]),
                  probes="all")
    return out, write_report(out).read_text()


def test_every_panel_figure_is_drawn(report):
    _, html = report
    section = html[html.index('<section class="recipe" id="inspect">'):]
    assert "not drawn" not in section
    drawn = re.findall(r'<img alt="([^"]+)"', section)
    assert drawn == list(INSPECT.figures)
    assert "act/{layer}/percentiles" in section and "cost/{probe}" in section


def test_figures_show_both_variants(report):
    out, _ = report
    with Store(out) as store:
        runs = store.runs(recipe="inspect")
        for name in INSPECT.figures:
            drawn = FIGURES.get(name).draw(store, runs)
            labels = {t.get_text() for ax in drawn.figure.axes if ax.get_legend()
                      for t in ax.get_legend().get_texts()}
            titles = " ".join(ax.get_title() for ax in drawn.figure.axes)
            assert any("BN→none" in s for s in labels | {titles}), name
            assert drawn.caption


def test_a_probe_not_run_is_missing_data_with_the_reason(zoo, data, tmp_path):
    (x, y), _ = data
    bnlab.inspect(zoo.make("preact"), F.cross_entropy, Loader(x.double(), y, 16), steps=0,
                  out=tmp_path, probes=["activations"])
    with Store(tmp_path) as store:
        runs = store.runs(recipe="inspect")
        assert FIGURES.get("inspect_activations").draw(store, runs).caption
        for name in ("inspect_loss", "inspect_ics", "inspect_hessian", "inspect_explosion"):
            with pytest.raises(MissingDataError, match=r"no .* stored"):
                FIGURES.get(name).draw(store, runs)


@pytest.mark.browser
def test_the_report_renders_in_chromium(report):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        if os.environ.get("CI") == "true":
            pytest.fail("browser test required under CI=true: playwright or Chromium missing")
        pytest.skip("playwright or Chromium missing")
    out, _ = report
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto((out / "report.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "#inspect img", "els => els.map(i => [i.complete, i.naturalWidth])")
        finally:
            browser.close()
    assert errors == []
    assert len(images) == len(INSPECT.figures)
    assert all(complete and width > 0 for complete, width in images)
