"""The README's verdicts agree with the verdict tables generated from the stores.

The README's table of what the data say is prose around verdicts; the verdicts themselves
must be the computed ones. ``docs/verdicts/*.md`` are outputs of ``bnlab report --summary``
(never edited): ``quick_mnist1d.md`` from the store ``make reproduce`` writes, and
``quick_real.md`` from the quick-scale stores on real data (``--out`` and ``--also`` for
each store, MNIST-1D rows dropped). This test compares the README with them, so a verdict
typed by hand that differs, a claim left out, or a stale table fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnlab.claims import CLAIMS

ROOT = Path(__file__).resolve().parents[1]
VERDICT = r"(supported|not supported|inconclusive)"


def _generated(name: str) -> dict[str, str]:
    """{claim id: verdict} from a generated table (the first row of each claim)."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "verdicts" / name).read_text(encoding="utf-8").splitlines():
        m = re.match(rf"\| (c\d\d) \| [^|]+ \| [^|]+ \| \*\*{VERDICT}\*\* \|", line)
        if m:
            rows.setdefault(m.group(1), m.group(2))
    return rows


def _readme_columns() -> dict[str, tuple[str, str]]:
    """{claim id: (MNIST-1D verdict, real-data verdict)} from the README's verdict table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### What the data say so far", 1)[1].split("\n## ", 1)[0]
    cols: dict[str, tuple[str, str]] = {}
    for line in section.replace("\\|", "¦").splitlines():  # an escaped pipe is text
        m = re.match(r"\| (c\d\d) [^|]*\| ([^|]*)\| ([^|]*)\|", line)
        if m:
            first, second = (re.match(VERDICT, c.strip()) for c in m.group(2, 3))
            assert first and second, f"README row {m.group(1)} does not open with a verdict"
            cols[m.group(1)] = (first.group(1), second.group(1))
    return cols


def test_readme_lists_every_registered_claim_once():
    assert sorted(_readme_columns()) == sorted(CLAIMS.names())


@pytest.mark.parametrize(("column", "table"), [(0, "quick_mnist1d.md"), (1, "quick_real.md")])
def test_readme_verdicts_are_the_generated_ones(column, table):
    generated = _generated(table)
    readme = {cid: cols[column] for cid, cols in _readme_columns().items()}
    assert sorted(generated) == sorted(CLAIMS.names()), f"{table} misses claims"
    assert {c: v for c, v in readme.items() if v != generated[c]} == {}


def test_the_parser_reads_verdicts_not_prose():
    assert re.match(VERDICT, "not supported (ratio 0.67)").group(1) == "not supported"
    line = "| c07 | `santurkar2018.noise` | quick, paper | **not supported** | -6.9 | r |"
    m = re.match(rf"\| (c\d\d) \| [^|]+ \| [^|]+ \| \*\*{VERDICT}\*\* \|", line)
    assert m and m.group(2) == "not supported"
