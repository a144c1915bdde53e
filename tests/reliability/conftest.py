"""Fixtures of the reliability suite: the counts (short in CI, full with ``--long``), one
MNIST-1D cache for every subprocess, and the store of an uninterrupted sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from _reliability_helpers import SWEEP, bnlab, dump, env_for


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether ``pytest --long`` asked for the full counts."""
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``XDG_CACHE_HOME`` of every subprocess: MNIST-1D is generated once per session."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, cache: Path):
    """The smoke sweep run once without interruption: what every other store must equal."""
    out = tmp_path_factory.mktemp("reference")
    res = bnlab([*SWEEP, "--out", str(out)], env_for(cache))
    assert res.returncode == 0, res.stderr
    ref = dump(out / "bnlab.db")
    assert set(ref.runs.values()) == {"finished"} and len(ref.runs) == 4
    return ref
