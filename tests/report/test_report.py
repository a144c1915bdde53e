"""The HTML report and the figures, checked without a browser."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bnlab.claims import evaluate, get_claim
from bnlab.report import Panel, Series, curves_figure, tracks_figure, write_report
from bnlab.results import Store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def page(report_dir):
    return (report_dir / "report.html").read_text(encoding="utf-8")


def test_hostile_strings_are_escaped(page):
    assert "<script" not in page.lower()
    assert "<b>recipe" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "other&lt;b&gt;recipe" in page
    assert "run0&amp;&lt;script&gt;" in page


def test_one_row_per_claim_with_the_verdicts_evaluate_gives(page, report_dir):
    rows = re.findall(r'<tr class="claim" id="(c\d\d)">(.*?)</tr>', page, flags=re.S)
    assert [cid for cid, _ in rows] == ["c01", "c02"]
    with Store(report_dir) as store:
        for cid, row in rows:
            expected = evaluate(get_claim(cid), store).status
            assert f">{expected}</span>" in row
            assert 'class="badge ' in row


def test_both_claims_supported_on_the_synthetic_runs(page):
    assert page.count('<span class="badge supported">supported</span>') == 2


def test_run_counts_by_status(page):
    counts = re.findall(r'<table class="counts">.*?</tr><tr>(.*?)</tr>', page, flags=re.S)
    parsed = [[int(c) for c in re.findall(r"<td>(\d+)</td>", row)] for row in counts]
    # pending, running, finished, diverged, failed: 12 Ioffe runs, then the other recipe.
    assert parsed == [[0, 0, 12, 0, 0], [0, 0, 0, 1, 1]]


def test_provenance_flags_a_different_sha(page):
    assert "runs from a different sha than HEAD</th><td><b>yes</b>: 000000000000" in page
    assert "numpy " + np.__version__ in page


def test_figures_are_inline_and_on_disk(page, report_dir):
    inline = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    files = sorted((report_dir / "figures").glob("*.png"))
    assert len(inline) == len(files) == 2
    assert sorted(base64.b64decode(d) for d in inline) == sorted(f.read_bytes() for f in files)
    for png in files:
        assert png.read_bytes().startswith(PNG_MAGIC)
        root = ET.parse(png.with_suffix(".svg")).getroot()
        assert root.tag.endswith("svg")


def test_recipe_without_runs_is_absent(tmp_path):
    path = write_report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert 'class="recipe"' not in text
    assert "No runs are stored here yet" in text


def test_missing_arrays_skip_the_figure_not_the_report(tmp_path, fake):
    store = fake.write_runs(tmp_path, arrays=False)
    text = write_report(tmp_path, store=store).read_text(encoding="utf-8")
    store.close()
    assert "Figure ioffe_fig1bc not drawn: run" in text
    assert text.count("data:image/png;base64,") == 1
    assert "missing data: run" in text  # c02 is inconclusive with the reason


def test_curves_figure_draws_mean_and_min_max_band():
    x = np.array([0.0, 1.0, 2.0])
    values = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]])  # (S=2, T=3)
    drawn = curves_figure("t", [Panel("p", [Series("a", x, values)])], ylabel="y", caption="c")
    ax = drawn.figure.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 2.0, 4.0])
    verts = ax.collections[0].get_paths()[0].vertices  # polygon: lower edge, then upper edge
    assert verts[:, 1].min() == 0.0 and verts[:, 1].max() == 6.0
    assert {tuple(v) for v in verts} >= {(0.0, 0.0), (2.0, 2.0), (0.0, 2.0), (2.0, 6.0)}


def test_tracks_figure_draws_each_percentile():
    steps = np.arange(4.0)
    tracks = np.stack([steps - 1, steps, steps + 1], axis=1)  # (T=4, 3)
    drawn = tracks_figure("t", [("a", steps, tracks)], caption="c", levels=(15, 50, 85))
    lines = drawn.figure.axes[0].lines
    for j in range(3):
        np.testing.assert_allclose(lines[j].get_ydata(), tracks[:, j])


def test_verdict_table_is_generated_from_the_store(report_dir, capsys):
    from bnlab.cli import main

    assert main(["report", "--summary", "--out", str(report_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| claim | recipe |")
    rows = [r for r in table[2:] if r.startswith("| c")]
    with Store(report_dir) as store:
        for cid in ("c01", "c02"):
            (row,) = [r for r in rows if r.startswith(f"| {cid} |")]
            assert f"**{evaluate(get_claim(cid), store).status}**" in row
            assert "quick, mnist1d" in row


def test_verdict_table_from_several_stores_takes_each_row_once(report_dir, tmp_path, capsys):
    from bnlab.cli import main

    def table(*argv: str) -> list[str]:
        assert main(["report", "--summary", *argv]) == 0
        return capsys.readouterr().out.splitlines()

    alone = table("--out", str(report_dir))
    Store(tmp_path / "empty").close()  # a store with no runs
    empty = str(tmp_path / "empty")
    assert table("--out", str(report_dir), "--also", str(report_dir)) == alone
    assert table("--out", str(report_dir), "--also", empty) == alone
    assert table("--out", empty, "--also", str(report_dir)) == alone  # the empty one defers


def test_also_needs_summary_and_a_store(report_dir, tmp_path, capsys):
    from bnlab.cli import main

    assert main(["report", "--out", str(report_dir), "--also", str(report_dir)]) == 2
    assert "--also applies to --summary" in capsys.readouterr().err
    assert main(["report", "--summary", "--out", str(report_dir), "--also",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--also" in err and len(err.strip().splitlines()) == 1
