"""The ``bnlab`` command end to end: errors, smoke reproduction, resume after a kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnlab.cli import main

RECIPE = "ioffe2015.mnist"


def _bnlab(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bnlab", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(["run", RECIPE, "--set", "lrr=0.1"], "lrr", id="unknown-key"),
        pytest.param(["run", RECIPE, "--set", "steps=many"], "steps", id="bad-type"),
        pytest.param(["run", "nosuch.recipe"], RECIPE, id="unknown-recipe-lists-valid"),
        pytest.param(["run", RECIPE, "--seeds", "x,y"], "--seeds", id="bad-seeds"),
        pytest.param(["run", RECIPE, "--set", "scale=paper"], "--scale", id="scale-is-a-label"),
        pytest.param(["run", RECIPE, "--set", "data=paper"], "--data", id="data-is-a-label"),
        pytest.param(["run", RECIPE, "--set", "steps=-5"], "int >= 1", id="negative-steps"),
        pytest.param(["run", RECIPE, "--set", "lr="], "at least one value", id="empty-axis"),
        pytest.param(["run", RECIPE, "--set", "norm=bn,ln"], "one of bn, none",
                     id="axis-value-not-a-choice"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    code = main([*argv, "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_user_error(tmp_path, capsys):
    code = main(["run", RECIPE, "--device", "cuda", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--device cpu" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bnlab.db").exists()  # nothing ran


def test_bad_yaml_key_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("nosuchfield: 3\n")
    code = main(["run", RECIPE, "--config", str(cfg), "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "nosuchfield" in capsys.readouterr().err


def test_list_names_every_recipe(capsys):
    assert main(["list"]) == 0
    assert RECIPE in capsys.readouterr().out


def test_smoke_reproduce_writes_store_and_report(tmp_path):
    out = tmp_path / "out"
    res = _bnlab("reproduce", "--scale", "smoke", "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert (out / "report.html").is_file()
    statuses = _rows(out / "bnlab.db", "SELECT status FROM runs")
    assert statuses and all(s == "finished" for (s,) in statuses)
    # Re-running the same command executes nothing new.
    before = _rows(out / "bnlab.db", "SELECT COUNT(*) FROM metrics")
    res2 = _bnlab("run", RECIPE, "--scale", "smoke", "--out", str(out), "--no-progress")
    assert res2.returncode == 0, res2.stderr
    assert _rows(out / "bnlab.db", "SELECT COUNT(*) FROM metrics") == before
    resumed = "SELECT COUNT(*) FROM runs WHERE resumed_from IS NOT NULL"
    assert _rows(out / "bnlab.db", resumed) == [(0,)]
    assert not (out / "checkpoints").exists()  # finished runs leave no empty folders
    provs = _rows(out / "bnlab.db", "SELECT provenance FROM runs")
    assert all('"device": "cpu"' in p and '"threads": 1' in p for (p,) in provs)


def test_killed_run_resumes_and_matches_uninterrupted(tmp_path):
    """Kill a run mid-way, re-run the command: it resumes from its checkpoint and stores
    exactly what an uninterrupted run stores, with no duplicate rows."""
    common = ["--scale", "smoke", "--seeds", "1", "--no-progress",
              "--set", "lr=0.5", "--set", "norm=bn", "--set", "steps=3000",
              "--set", "checkpoint_every=200", "--set", "eval_every=500",
              "--set", "pct_every=1000"]
    ref = tmp_path / "ref"
    assert _bnlab("run", RECIPE, "--out", str(ref), *common).returncode == 0

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bnlab", "run", RECIPE, "--out", str(out), *common]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_root = out / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpt_root.glob("*/latest.json")):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _rows(out / "bnlab.db", "SELECT status FROM runs") == [("running",)]

    res = _bnlab("run", RECIPE, "--out", str(out), *common)
    assert res.returncode == 0, res.stderr
    (resumed_from,) = _rows(out / "bnlab.db", "SELECT resumed_from FROM runs")[0]
    assert resumed_from is not None and 0 < resumed_from < 3000
    q = "SELECT step, name, value FROM metrics ORDER BY step, name"
    assert _rows(out / "bnlab.db", q) == _rows(ref / "bnlab.db", q)
    qa = "SELECT step, name, npy FROM arrays ORDER BY step, name"
    assert _rows(out / "bnlab.db", qa) == _rows(ref / "bnlab.db", qa)


def test_report_without_results_is_a_clear_error(tmp_path, capsys):
    code = main(["report", "--out", str(tmp_path / "nothing")])
    assert code == 2
    assert "no results" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_bench_prints_a_ratio_table(capsys):
    assert main(["bench", "layers", "--device", "cpu", "--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "BatchNorm2d" in out and "threads" in out and "ghost_bn" in out
