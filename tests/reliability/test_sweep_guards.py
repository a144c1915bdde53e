"""The sweep's guards, in process with the torch-free fake loop of tests/sweep: a resume
that checks the rows its checkpoint counted, the per-run lock, which failures a re-run
retries, a failing store that stops the sweep, and a lost database never reported
finished."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweep"))
from sweep_fakes import calls, control_path, fake_train, raise_for_seed

from bnlab.results import Store, StoreError, StoreLostError
from bnlab.sweep import RunSpec, execute
from bnlab.sweep.lock import RunBusyError, run_lock

execute_module = importlib.import_module("bnlab.sweep.execute")  # `execute` is the function

STEPS, EVERY = 12, 5


def _specs(n=2):
    return [RunSpec("fake.recipe", {"steps": STEPS, "ckpt_every": EVERY}, seed=s)
            for s in range(n)]


def _go(specs, out, fn=fake_train, **kw):
    return execute(specs, out, fn, progress=False, **kw)


def _rows(out, key):
    with Store(out) as store:
        rid = store.run(key)["id"]
        m = store.metrics(runs=rid)
        return sorted(zip(m["step"], m["name"], m["value"], strict=True))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    _go(_specs(), out)
    return {s.key: _rows(out, s.key) for s in _specs()}


def _crash(out, spec, step):
    path = control_path(out, spec.key, "crash_at")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(step))


def test_checkpoint_records_the_rows_stored_below_it(tmp_path):
    spec = _specs(1)[0]
    _crash(tmp_path, spec, 7)  # after the checkpoint at step 5
    _go([spec], tmp_path)
    latest = json.loads((control_path(tmp_path, spec.key, "latest.json")).read_text())
    with Store(tmp_path) as store:
        rid = store.run(spec.key)["id"]
        want = store.row_counts(rid, 5)
    assert latest["step"] == 5 and latest["stored"] == {"metrics": want.metrics,
                                                        "arrays": want.arrays}
    assert want.metrics == 5 and want.arrays == 3  # loss at 0..4, act at 0, 2, 4


def test_lost_database_makes_the_resume_restart_from_scratch(tmp_path, reference):
    """The issue's case: checkpoints survive, the database does not; the run must not be
    resumed (and marked finished) with every row before the checkpoint missing."""
    specs = _specs()
    _crash(tmp_path, specs[0], 7)
    _go(specs, tmp_path, retry_failed=True)
    for name in ("bnlab.db", "bnlab.db-wal", "bnlab.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    summary = _go(specs, tmp_path, retry_failed=True)
    assert summary.counts["finished"] == 2
    (key, note), = summary.notes
    assert key == specs[0].key and "restarted from scratch" in note and "step 5" in note
    assert calls(tmp_path)[-2:] in ([(specs[0].key, 0), (specs[1].key, 0)],
                                    [(specs[1].key, 0), (specs[0].key, 0)])
    for spec in specs:
        assert _rows(tmp_path, spec.key) == reference[spec.key]
    with Store(tmp_path) as store:
        run = store.run(specs[0].key)
        assert run["resumed_from"] is None and "restarted" in run["provenance"]


def test_resume_keeps_the_checkpoint_when_the_rows_are_there(tmp_path, reference):
    spec = _specs(1)[0]
    _crash(tmp_path, spec, 7)
    _go([spec], tmp_path)
    summary = _go([spec], tmp_path, retry_failed=True)
    assert summary.notes == [] and calls(tmp_path)[-1] == (spec.key, 5)
    assert _rows(tmp_path, spec.key) == reference[spec.key]


_HOLDER = textwrap.dedent("""
    import sys, time
    from bnlab.sweep.lock import run_lock
    with run_lock(sys.argv[1], sys.argv[2]):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_run_held_by_another_process_is_never_trained_twice(tmp_path, monkeypatch):
    """What an orphaned worker of a killed sweep looks like to the next sweep."""
    spec = _specs(1)[0]
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), spec.key],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(execute_module, "_RUN_LOCK_WAIT_S", 0.3)
        summary = _go([spec], tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert summary.lost == 1 and not summary.ok and calls(tmp_path) == []
    (key, why), = summary.not_done
    assert key == spec.key and f"pid {holder.pid}" in why and "another process" in why
    assert _go([spec], tmp_path).counts["finished"] == 1  # the holder is gone: it runs


def test_run_lock_is_exclusive_and_leaves_no_file(tmp_path):
    with run_lock(tmp_path, "k" * 64) as path:
        assert path.exists()
        with pytest.raises(RunBusyError, match=f"pid {os.getpid()}"):
            with run_lock(tmp_path, "k" * 64, timeout=0.1):
                pass
    assert not path.exists()


@pytest.mark.parametrize(("kind", "retried"), [("os", True), ("memory", True), ("data", True),
                                               ("bug", False)])
def test_a_plain_rerun_retries_failures_of_input_or_environment_only(kind, retried, tmp_path):
    spec = RunSpec("fake.recipe", {"raise": [kind]}, seed=0)
    first = _go([spec], tmp_path, raise_for_seed)
    assert first.counts["failed"] == 1 and not first.ok
    (tmp_path / "fixed").write_text("")  # e.g. the data file was put in place
    again = _go([spec], tmp_path, raise_for_seed)
    assert (again.executed, again.counts["finished"]) == ((1, 1) if retried else (0, 0))
    assert _go([spec], tmp_path, raise_for_seed, retry_failed=True).counts["finished"] == 1


def test_failure_kind_by_exception():
    kind = execute_module.failure_kind
    assert kind(OSError()) == kind(MemoryError()) == kind(StoreError("x")) == "environment"
    assert kind(ValueError("x")) == kind(RuntimeError("x")) == "error"
    from bnlab.errors import UserError

    assert kind(UserError("x")) == "input"
    assert kind(type("OutOfMemoryError", (RuntimeError,), {})()) == "environment"


def _store_fails(spec, ctx):
    ctx.log_metrics(0, {"loss": 1.0})
    raise StoreError("results database x: disk I/O error; free some space")


def test_a_failing_store_stops_the_sweep_and_leaves_the_run_resumable(tmp_path):
    specs = _specs()
    with pytest.raises(StoreError, match="disk I/O"):
        _go(specs, tmp_path, _store_fails)
    with Store(tmp_path) as store:
        assert [store.run(s.key)["status"] for s in specs] == ["running", "pending"]


def _delete_db_then_finish(spec, ctx):
    ctx.log_metrics(0, {"loss": 1.0})
    ctx.flush()
    os.unlink(ctx.checkpoint_dir.parent.parent / "bnlab.db")
    return {"status": "finished", "first_bad_step": None, "steps_run": 1}


def test_a_run_is_never_reported_finished_into_a_deleted_database(tmp_path):
    with pytest.raises(StoreLostError, match="run the same command again"):
        _go(_specs(1), tmp_path, _delete_db_then_finish)
