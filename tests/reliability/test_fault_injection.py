"""Fault injection: kill -9 a sweep again and again, Ctrl-C it, fill its disk, delete its
database or WAL. Whatever happens, re-running the same command must end with a store
equal row for row to an uninterrupted sweep's, and nothing may be left running.

Every fault is injected in a real ``bnlab run`` subprocess (the smoke sweep of
``ioffe2015.mnist``: 4 runs of 60 steps, a checkpoint every 20) through the hooks of
``_inject/sitecustomize.py``: at the n-th optimizer step, checkpoint write (half written)
or store transaction (before its COMMIT) of a process, or after a random delay. In a pool
sweep the hook in a worker kills the *driver*; the worker must then die with it.

Counts: CI runs 3 kills in a row per executor, one file-size limit (serial), the WAL
deleted under a serial sweep and the database under a pool sweep, and Ctrl-C of a pool
sweep; ``pytest --long`` runs 20 kills per executor, three limits per executor, each
deletion three times per executor, and Ctrl-C of both.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _reliability_helpers import (
    POOL,
    SWEEP,
    bnlab,
    dump,
    env_for,
    orphans,
    problems,
)

pytestmark = pytest.mark.slow

# point -> the range of n (the n-th hit in one process) or of the delay in seconds
KILL_POINTS = {"step": (1, 40), "ckpt": (1, 6), "store": (1, 15), "timer": (2.0, 9.0)}


def _long_only(long_run: bool, why: str) -> None:
    if not long_run:
        pytest.skip(f"{why}: run with --long")


def _args(out: Path, executor: str) -> list[str]:
    return [*SWEEP, "--out", str(out), *(POOL if executor == "process" else ())]


def _fault(rng: random.Random, executor: str) -> tuple[str, float | int]:
    point = rng.choice(sorted(KILL_POINTS))
    lo, hi = KILL_POINTS[point]
    if point == "timer":
        return point, round(rng.uniform(lo, hi), 2)
    if executor == "process":  # each worker counts its own hits: about half the work
        hi = max(lo, hi // 2)
    return point, rng.randint(lo, hi)


def _kill_once(out: Path, executor: str, cache: Path, pids: Path, fault: tuple) -> object:
    point, n = fault
    if point == "timer":
        return bnlab(_args(out, executor), env_for(cache, pids=pids), kill_after=n)
    return bnlab(_args(out, executor), env_for(cache, f"{point}:{n}:kill", pids))


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sigkill_again_and_again_then_rerun_equals_an_uninterrupted_sweep(
        executor, tmp_path, cache, reference, long_run):
    target = 20 if long_run else 3
    rng = random.Random(f"kill-{executor}")
    kills, rounds, trouble, log = 0, 0, [], []
    out = tmp_path / "round-0"
    for attempt in range(4 * target):
        if kills >= target:
            break
        fault, pids = _fault(rng, executor), tmp_path / f"pids-{attempt}"
        res = _kill_once(out, executor, cache, pids, fault)
        log.append(f"{fault[0]}:{fault[1]} -> {res.returncode}")
        left = orphans(pids)
        trouble += [f"{log[-1]}: processes {left} outlived the sweep"] if left else []
        trouble += [f"{log[-1]}: {p}" for p in problems(out / "bnlab.db", reference)]
        trouble += [f"{log[-1]}: traceback"] if "Traceback" in res.stderr else []
        if res.killed:
            kills += 1
        elif res.returncode == 0:  # the fault came after the last run: start a new round
            trouble += [] if dump(out / "bnlab.db") == reference else [f"{log[-1]}: != ref"]
            rounds += 1
            out = tmp_path / f"round-{rounds}"
        else:
            trouble.append(f"{log[-1]}: exit {res.returncode}: {res.stderr[-300:]}")
    final = bnlab(_args(out, executor), env_for(cache))
    print(f"{executor}: {kills} kills in {rounds + 1} rounds", *log, *trouble, sep="\n")
    assert final.returncode == 0, final.stderr
    assert kills == target, log
    assert trouble == [], trouble
    assert dump(out / "bnlab.db") == reference, log


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails (EFBIG), no signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_full_disk_is_one_clear_message_and_a_rerun_completes(
        executor, tmp_path, cache, reference, long_run):
    """RLIMIT_FSIZE in the child: every write past the limit fails as on a full disk."""
    if executor == "process":
        _long_only(long_run, "the pool variant")
    # Limits below the largest file an uninterrupted sweep writes (the database or its WAL),
    # so that each one is reached: fixed byte counts go stale as the store's layout changes.
    free = bnlab(_args(tmp_path / "unlimited", executor), env_for(cache))
    assert free.returncode == 0, free.stderr
    largest = max(f.stat().st_size for f in (tmp_path / "unlimited").rglob("*") if f.is_file())
    fractions = (0.25, 0.6, 0.85) if long_run else (0.6,)
    limits = [int(largest * f) for f in fractions]
    for limit in limits:
        out = tmp_path / f"limit-{limit}"
        res = bnlab(_args(out, executor), env_for(cache), preexec_fn=_limit_file_size(limit))
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1, (limit, res.returncode, res.stderr[-2000:])
        assert "Traceback" not in res.stderr and all(len(ln) < 300 for ln in lines), lines
        assert any("too large" in ln.lower() or "disk" in ln.lower() for ln in lines), lines
        assert problems(out / "bnlab.db", reference) == [], limit
        again = bnlab(_args(out, executor), env_for(cache))
        assert again.returncode == 0, (limit, again.stderr)
        assert dump(out / "bnlab.db") == reference, limit


@pytest.mark.parametrize("what", ["rmwal", "rmdb"])
@pytest.mark.parametrize("executor", ["serial", "process"])
def test_database_or_wal_deleted_mid_sweep_is_detected_then_repaired(
        what, executor, tmp_path, cache, reference, long_run):
    """Never reported finished with rows missing; the same command again repairs it."""
    if (executor, what) not in (("serial", "rmwal"), ("process", "rmdb")):
        _long_only(long_run, "this combination")
    rng = random.Random(f"{what}-{executor}")
    # each pool worker makes ~9 store transactions per run, the driver 5 in all; so n <= 9
    # is reached whichever way the runs are spread over the workers
    for n in rng.sample(range(3, 30 if executor == "serial" else 10), 3 if long_run else 1):
        out = tmp_path / f"at-{n}"
        res = bnlab(_args(out, executor), env_for(cache, f"store:{n}:{what}"))
        assert res.returncode == 1, (n, res.returncode, res.stderr[-2000:])
        assert "Traceback" not in res.stderr and "bnlab.db" in res.stderr, res.stderr[-2000:]
        assert problems(out / "bnlab.db", reference) == [], n
        again = bnlab(_args(out, executor), env_for(cache))
        assert again.returncode == 0, (n, again.stderr)
        assert dump(out / "bnlab.db") == reference, n


def _started_runs(db: Path) -> list[tuple[str, str | None]]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT status, started FROM runs ORDER BY id").fetchall()
    finally:
        con.close()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_ctrl_c_stops_promptly_and_no_queued_run_starts(executor, tmp_path, cache, long_run):
    if executor == "serial":
        _long_only(long_run, "the serial variant (tests/sweep covers it in process)")
    out, pids = tmp_path / "out", tmp_path / "pids"
    cmd = [sys.executable, "-m", "bnlab", *_args(out, executor), "--set", "steps=600"]
    # A foreground job's SIGINT disposition: a suite started in the background (nohup, `&`
    # without job control) runs with SIGINT ignored, which children would inherit, and a
    # process that starts with SIGINT ignored rightly keeps ignoring Ctrl-C.
    proc = subprocess.Popen(cmd, env=env_for(cache, pids=pids), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("checkpoints/*/latest.json"))) < (
            2 if executor == "process" else 1):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    # ~2 s on a quiet machine; the bound only guards against a sweep that goes on (a
    # queued run started after Ctrl-C trains for minutes at steps=600)
    assert time.monotonic() - t0 < 60, "Ctrl-C did not stop the sweep promptly"
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert orphans(pids) == []
    runs = _started_runs(out / "bnlab.db")
    in_flight = 2 if executor == "process" else 1
    assert [s for s, _ in runs] == ["pending"] * 4, runs  # handed back, resumable
    assert sum(started is not None for _, started in runs) == in_flight, runs  # none queued
