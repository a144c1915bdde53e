"""The packed executor stores exactly what the serial executor stores, and survives stops.

Every comparison is bit for bit: the same runs, statuses, metric rows (step, name, value)
and arrays. The runs of ``packed_fakes`` draw from every random stream a run can use, so a
packed executor that let runs share a stream would fail these tests (the mutant test
below shows it does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from packed_fakes import assert_same_store, run_measure, run_tiny, specs
from sweep_fakes import fake_train

from bnlab.errors import UserError
from bnlab.results import Store
from bnlab.sweep import execute
from bnlab.sweep.packed import RunRNG

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    """The reference: the sweep run serially, uninterrupted."""
    out = tmp_path_factory.mktemp("serial")
    summary = execute(specs(), out, run_tiny, progress=False)
    assert summary.counts["finished"] == 4
    return out


def control(out: Path, key: str, what: str, step: int) -> None:
    folder = out / "checkpoints" / key[:16]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / what).write_text(str(step))


def statuses(out: Path) -> list[str]:
    with Store(out) as store:
        by_key = dict(zip(store.runs()["key"], store.runs()["status"], strict=True))
    return [by_key[s.key] for s in specs()]


def test_packed_sweep_stores_exactly_the_rows_of_a_serial_sweep(serial, tmp_path):
    # 3 at a time: the fourth run starts when the first three end
    summary = execute(specs(), tmp_path, run_tiny, executor="packed", workers=3, progress=False)
    assert (summary.counts["finished"], summary.executed, summary.steps_run) == (4, 4, 48)
    assert_same_store(tmp_path, serial)
    assert not (tmp_path / "checkpoints").exists()


def test_runs_sharing_the_global_streams_would_differ(serial, tmp_path, monkeypatch):
    monkeypatch.setattr(RunRNG, "active", lambda self: nullcontext())
    execute(specs(), tmp_path, run_tiny, executor="packed", workers=4, progress=False)
    with pytest.raises(AssertionError):
        assert_same_store(tmp_path, serial)


def test_ctrl_c_leaves_finished_runs_finished_and_the_rest_resumable(serial, tmp_path):
    sp = specs()
    # two at a time: runs 0 and 1 end, then 2 and 3 start; 2 is stopped at step 7, after
    # both took their checkpoint at step 4
    control(tmp_path, sp[2].key, "interrupt_at", 7)
    with pytest.raises(KeyboardInterrupt):
        execute(sp, tmp_path, run_tiny, executor="packed", workers=2, progress=False)
    assert statuses(tmp_path) == ["finished", "finished", "pending", "pending"]
    for s in sp[2:]:
        assert (tmp_path / "checkpoints" / s.key[:16] / "latest.json").is_file()
    summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=2, progress=False)
    assert (summary.skipped, summary.executed, summary.counts["finished"]) == (2, 2, 4)
    assert summary.steps_run == 2 * (12 - 4)  # both resumed from step 4
    assert_same_store(tmp_path, serial)


def test_a_killed_packed_sweep_resumes_to_the_serial_rows(serial, tmp_path):
    sp = specs()
    control(tmp_path, sp[2].key, "kill_at", 7)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from packed_fakes import *; "
              "from bnlab.sweep import execute; "
              "execute(specs(), sys.argv[2], run_tiny, executor='packed', workers=2, "
              "progress=False)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script, str(HERE), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert statuses(tmp_path) == ["finished", "finished", "running", "running"]
    summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=2, progress=False)
    assert summary.counts["finished"] == 4 and summary.executed == 2
    assert_same_store(tmp_path, serial)


def test_a_failing_run_does_not_stop_the_others(serial, tmp_path):
    sp = specs()
    control(tmp_path, sp[1].key, "crash_at", 5)
    summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=4, progress=False)
    assert statuses(tmp_path) == ["finished", "failed", "finished", "finished"]
    assert summary.failures and "boom at step 5" in summary.failures[0][1]
    summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=4, progress=False,
                      retry_failed=True)  # fmt: skip
    assert summary.executed == 1
    assert_same_store(tmp_path, serial)


def test_measure_only_runs_end_when_started(tmp_path):
    summary = execute(specs("measure"), tmp_path, run_measure, executor="packed", workers=2,
                      progress=False)  # fmt: skip
    assert summary.counts["finished"] == 4
    with Store(tmp_path) as store:
        assert sorted(store.metrics()["value"]) == [0.1, 0.3, 1.1, 1.3]


def test_a_run_fn_that_cannot_start_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"start\(spec, ctx\)"):
        execute(specs(), tmp_path, fake_train, executor="packed", workers=2, progress=False)


def test_a_run_another_process_holds_is_lost_and_stays_resumable(serial, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    from bnlab.sweep import packed
    from bnlab.sweep.lock import run_lock

    monkeypatch.setattr(packed, "_RUN_LOCK_WAIT_S", 0.1)
    sp = specs()
    with run_lock(tmp_path, sp[1].key):  # as a worker of an earlier sweep still would
        summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=4,
                          progress=False)  # fmt: skip
    assert (summary.lost, summary.counts["finished"]) == (1, 3)
    assert statuses(tmp_path)[1] in ("pending", "running")
    summary = execute(sp, tmp_path, run_tiny, executor="packed", workers=4, progress=False)
    assert summary.executed == 1 and summary.counts["finished"] == 4
    assert_same_store(tmp_path, serial)
