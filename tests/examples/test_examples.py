"""Execute the examples as tests: they must run and their own checks must pass."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_probes_in_a_plain_loop(capsys: pytest.CaptureFixture[str]) -> None:
    ns = runpy.run_path(str(EXAMPLES / "probes_in_a_plain_loop.py"))
    log = ns["main"]()
    out = capsys.readouterr().out
    assert "probed run identical to unprobed run: True" in out
    probed = [s for s, row in log.items() if "landscape/beta" in row]
    assert probed == [0, 10, 20]
    assert all(log[s]["ics/1/l2"] == 0.0 for s in probed)  # nothing comes before site 1
    assert all(log[s]["ics/2/l2"] > 0.0 for s in probed)
