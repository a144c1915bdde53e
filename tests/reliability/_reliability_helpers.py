"""Shared by the reliability tests: the sweep command, store dumps and orphan checks.

Everything here drives ``bnlab`` as a user would (a subprocess per command) and reads the
results database with plain ``sqlite3`` and numpy, never through bnlab, so these checks
also measure another checkout: ``BNLAB_RELIABILITY_SRC=/path/to/src`` puts that source
tree first on the subprocesses' ``PYTHONPATH`` (how the "before" counts of the closing
table were taken).
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INJECT = Path(__file__).resolve().parent / "_inject"
RECIPE = "ioffe2015.mnist"
# 2 norms x 2 seeds = 4 runs of 60 steps, a checkpoint every 20: every kind of point
# (step, checkpoint write, store write) is reached many times in seconds.
SWEEP = ("run", RECIPE, "--scale", "smoke", "--seeds", "2", "--no-progress")
POOL = ("--executor", "process", "--workers", "2")


@dataclass(frozen=True)
class Result:
    """How one command ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def env_for(cache: Path, fault: str | None = None, pids: Path | None = None) -> dict:
    paths = [str(INJECT)]
    if os.environ.get("BNLAB_RELIABILITY_SRC"):
        paths.insert(0, os.environ["BNLAB_RELIABILITY_SRC"])
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "XDG_CACHE_HOME": str(cache)}
    env.pop("BNLAB_FAULT_DRIVER", None)
    for name, value in (("BNLAB_FAULT", fault), ("BNLAB_FAULT_PIDS", pids)):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def bnlab(args: list[str] | tuple[str, ...], env: dict, *, timeout: float = 300,
          kill_after: float | None = None, preexec_fn=None) -> Result:
    """Run ``python -m bnlab ARGS``; with ``kill_after``, SIGKILL it after that many seconds.

    Output goes to files, not pipes: a process left behind by a killed command (the bug
    these tests look for) must not keep the test waiting for the end of a pipe.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bnlab", *args], env=env, text=True,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                preexec_fn=preexec_fn)
        try:
            proc.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)
            if kill_after is None:
                raise AssertionError(f"bnlab {' '.join(args)[:200]} hung for {timeout} s") from None
        out.seek(0)
        err.seek(0)
        return Result(proc.returncode, out.read(), err.read(), time.monotonic() - start)


# -- the store, read without bnlab ---------------------------------------------------------------


@dataclass(frozen=True)
class Dump:
    """A results database as plain data, runs identified by key."""

    runs: dict[str, str]  # key -> status
    metrics: dict[tuple[str, int, str], float | None]
    arrays: dict[tuple[str, int, str], bytes]

    def of_run(self, key: str) -> tuple[dict, dict]:
        return ({k: v for k, v in self.metrics.items() if k[0] == key},
                {k: v for k, v in self.arrays.items() if k[0] == key})


def dump(db: Path) -> Dump:
    """Every run, metric and array of ``db``; fails on duplicates or damage."""
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)  # recovers a WAL, as a sweep would
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        runs = dict(con.execute("SELECT id, key FROM runs").fetchall())
        status = dict(con.execute("SELECT key, status FROM runs").fetchall())
        metrics = con.execute("SELECT run, step, name, value FROM metrics").fetchall()
        arrays = con.execute("SELECT run, step, name, npy FROM arrays").fetchall()
    finally:
        con.close()
    m = {(runs[r], s, n): v for r, s, n, v in metrics}
    a = {(runs[r], s, n): bytes(b) for r, s, n, b in arrays}
    assert len(m) == len(metrics) and len(a) == len(arrays), "duplicate rows"
    for blob in a.values():  # every array is a whole .npy that loads without pickle
        np.load(io.BytesIO(blob), allow_pickle=False)
    return Dump(status, m, a)


def problems(db: Path, reference: Dump) -> list[str]:
    """What is wrong with a store left by an interrupted sweep (empty: nothing).

    Every stored row must equal the uninterrupted sweep's row (training is deterministic,
    so a row measured before or after a resume is the same number); a ``finished`` run
    must hold exactly the reference's rows; statuses must be valid.
    """
    if not db.exists():
        return []
    found = dump(db)
    out = []
    for key, status in found.runs.items():
        if key not in reference.runs:
            out.append(f"unknown run {key[:12]}")
        elif status not in ("pending", "running", "finished", "diverged", "failed"):
            out.append(f"run {key[:12]} has status {status!r}")
        elif status == "finished" and found.of_run(key) != reference.of_run(key):
            got, want = (len(found.of_run(key)[0]), len(reference.of_run(key)[0]))
            out.append(f"run {key[:12]} is finished with {got} of {want} metric rows")
    wrong = [k for k, v in found.metrics.items() if reference.metrics.get(k, "?") != v]
    wrong += [k for k, v in found.arrays.items() if reference.arrays.get(k) != v]
    out += [f"row {k[0][:12]} step {k[1]} {k[2]} differs from the reference" for k in wrong[:5]]
    return out


# -- processes, by PID --------------------------------------------------------------------------


def logged_processes(pids: Path) -> list[tuple[int, str]]:
    """``(pid, start time)`` of every Python process the injection hook saw start."""
    if not pids.exists():
        return []
    return [(int(p), t) for p, t in (ln.split() for ln in pids.read_text().splitlines())]


def alive(pid: int, start: str) -> bool:
    """Whether that process (not a later one with the same PID) still runs (zombies: no)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def orphans(pids: Path, wait_s: float = 10.0) -> list[int]:
    """The logged processes still alive after ``wait_s`` seconds (then killed, by PID)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = [(p, t) for p, t in logged_processes(pids) if alive(p, t)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)  # clean up what the test found, by PID only
        except ProcessLookupError:
            pass
    return [p for p, _ in left]
