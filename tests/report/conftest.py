"""Fixtures for report tests: synthetic Ioffe runs written through the real Store."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_FAKE = Path(__file__).resolve().parents[1] / "claims" / "ioffe_fake.py"


def _load_fake():
    spec = importlib.util.spec_from_file_location("bnlab_tests_ioffe_fake", _FAKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fake():
    """The synthetic-run writer shared with tests/claims (tests/claims/ioffe_fake.py)."""
    return _load_fake()


EVIL = "<script>alert('x')</script>"  # also spelled out in test_report.py


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory, fake):
    """A store with 3 seeds x 2 LRs x 2 norms, a hostile config string and a failed and a
    diverged run in another recipe, plus its written report (built once per session)."""
    from bnlab.report import write_report

    out = tmp_path_factory.mktemp("report")
    store = fake.write_runs(out, extra_config={"note": EVIL})
    for i, status in enumerate(("failed", "diverged")):
        run = store.register_run(f"k{i}", "other<b>recipe", {"name": f"run{i}&{EVIL}"}, i)
        store.start_run(run, resumed_from=None, provenance={"git_sha": "1" * 40})
        store.finish_run(run, status, error=f"ValueError: bad value {EVIL}")
    store.close()
    write_report(out)
    return out
