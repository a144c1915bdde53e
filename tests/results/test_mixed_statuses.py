"""A store mid-sweep holds runs in every status; every reader must cope (pandas 3 made a
NULL provenance NaN, which crashed ``Store.runs`` and everything built on it)."""

from __future__ import annotations

import pytest

from bnlab.cli import main
from bnlab.results import Store, status_text


@pytest.fixture
def mixed(tmp_path):
    with Store(tmp_path) as store:
        for i, status in enumerate(("pending", "running", "finished", "diverged", "failed")):
            config = {"norm": "bn", "lr": 0.1 * (i + 1), "scale": "quick", "data": "mnist1d"}
            run = store.register_run(f"key{i}", "ioffe2015.mnist", config, 0)
            if status == "pending":
                continue  # never started: provenance, started and error are NULL
            store.start_run(run, resumed_from=None, provenance={"device": "cpu"})
            store.log_metrics(run, [(0, "train_loss", 2.3)])
            if status != "running":
                store.finish_run(run, status, error=None if status == "finished" else "boom")
    return tmp_path


def test_runs_reads_every_status(mixed):
    with Store(mixed) as store:
        runs = store.runs()
    assert list(runs["status"]) == ["pending", "running", "finished", "diverged", "failed"]
    assert runs["provenance"][0] == {} and runs["provenance"][2] == {"device": "cpu"}
    assert all(isinstance(c, dict) for c in runs["config"])
    assert list(runs["cfg.lr"]) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_status_text_lists_every_status(mixed):
    text = status_text(mixed)
    for status in ("pending 1", "running 1", "finished 1", "diverged 1", "failed 1"):
        assert status in text


@pytest.mark.parametrize("argv", [["status"], ["report"],
                                  ["export", "--format", "csv", "--dest", "{out}/x.csv"]],
                         ids=["status", "report", "export"])
def test_cli_readers_exit_0_mid_sweep(mixed, argv, capsys):
    argv = [a.format(out=mixed) for a in argv]
    assert main([*argv, "--out", str(mixed)]) == 0
    assert "Traceback" not in capsys.readouterr().err
