"""Sweeps: keys, skip/resume/retry semantics, failures, divergence, executors, the lock."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pytest
from sweep_fakes import bad_status, calls, control_path, fake_train, loss_at

from bnlab.results import Store
from bnlab.sweep import (
    RunContext,
    RunSpec,
    SweepLockedError,
    dir_lock,
    execute,
    latest_step,
    run_key,
)

STEPS, EVERY = 12, 5


def _specs(n_seeds=2, **extra):
    return [RunSpec("fake.recipe", {"steps": STEPS, "ckpt_every": EVERY, **extra}, seed=s)
            for s in range(n_seeds)]


def _go(specs, out, **kw):
    return execute(specs, out, fake_train, progress=False, **kw)


def _control(out, key, what, text):
    path = control_path(out, key, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _table(out, spec):
    """(step, name) -> value of one run, and its arrays, for comparing two stores."""
    with Store(out) as store:
        rid = store.run(spec.key)["id"]
        m = store.metrics(runs=rid)
        arrays = [(s, a.tolist()) for s, a in store.arrays(rid, "act")]
    assert not m.duplicated(["step", "name"]).any()
    rows = zip(m["step"], m["name"], m["value"], strict=True)
    return {(int(s), n): v for s, n, v in rows}, arrays


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep: what every resumed run must end up equal to."""
    out = tmp_path_factory.mktemp("reference")
    _go(_specs(), out)
    return out


# -- keys ---------------------------------------------------------------------------------


def test_run_key_is_sha256_of_canonical_json():
    want = hashlib.sha256(b'{"a":[1,2],"b":{"c":0.5,"d":"x"}}').hexdigest()
    assert run_key({"b": {"d": "x", "c": 0.5}, "a": (1, 2)}) == want


@pytest.mark.parametrize(
    "other",
    [{"lr": 0.2, "norm": "bn"}, {"lr": 0.1, "norm": "none"}, {"lr": 0.1, "norm": "bn", "x": 0},
     {"lr": 0.1}, {"lr": 1, "norm": "bn"}, {"lr": 0.1, "norm": "bn", "nested": {"a": 2}}],
    ids=["value", "choice", "added_field", "removed_field", "int_vs_float", "nested"],
)
def test_any_real_change_changes_the_key(other):
    base = {"lr": 0.1, "norm": "bn"}
    if "nested" in other:
        base = {**base, "nested": {"a": 1}}
    if other == {"lr": 1, "norm": "bn"}:
        base = {"lr": 1.0, "norm": "bn"}
    assert run_key(base) != run_key(other)


def test_execution_only_fields_and_order_do_not_change_the_key():
    cfg = {"lr": 0.1, "norm": "bn", "threads": 1}
    noisy = {"threads": 1, "out": "/x", "executor": "process", "workers": 8, "progress": True,
             "norm": "bn", "lr": 0.1}
    assert run_key(cfg) == run_key(noisy) == run_key(dict(reversed(list(cfg.items()))))
    assert run_key(cfg) != run_key({**cfg, "threads": 2})  # threads are part of a run


def test_run_spec_key_includes_seed_and_rejects_disagreement():
    a, b = RunSpec("r", {"lr": 0.1}, seed=0), RunSpec("r", {"lr": 0.1}, seed=1)
    assert a.key != b.key
    assert a.key == RunSpec("other.recipe", {"lr": 0.1, "seed": 0}, seed=0).key
    with pytest.raises(ValueError, match="disagrees"):
        RunSpec("r", {"seed": 3}, seed=0)


@pytest.mark.parametrize("bad,err", [({"lr": float("nan")}, ValueError),
                                     ({"f": object()}, TypeError)], ids=["nan", "object"])
def test_run_key_rejects_unhashable_configs(bad, err):
    with pytest.raises(err):
        run_key(bad)


# -- serial sweeps: skip, fail, retry, resume -------------------------------------------------


def test_fresh_sweep_then_rerun_executes_nothing(tmp_path, reference):
    specs = _specs()
    first = _go(specs, tmp_path)
    assert first.executed == 2 and first.counts["finished"] == 2 and first.steps_run == 2 * STEPS
    for spec in specs:
        assert _table(tmp_path, spec) == _table(reference, spec)
        values, _ = _table(tmp_path, spec)
        assert values[(3, "loss")] == pytest.approx(loss_at(spec.seed, 3), rel=1e-12)
    n_calls = len(calls(tmp_path))
    again = _go(specs, tmp_path)
    assert again.executed == 0 and again.skipped == 2 and again.steps_run == 0
    assert len(calls(tmp_path)) == n_calls


def test_failed_run_stores_traceback_and_sweep_goes_on(tmp_path, reference):
    specs = _specs()
    _control(tmp_path, specs[0].key, "crash_at", "7")
    summary = _go(specs, tmp_path)
    assert summary.counts["failed"] == 1 and summary.counts["finished"] == 1
    assert summary.failures == [(specs[0].key, "RuntimeError: boom at step 7")]
    with Store(tmp_path) as store:
        run = store.run(specs[0].key)
        assert run["status"] == "failed" and run["error"].startswith("Traceback")
        assert "boom at step 7" in run["error"] and run["finished"]
        # rows logged before the crash were kept (steps 0..6, the flush on failure)
        assert store.metrics(runs=run["id"], names="loss")["step"].max() == 6
    skipped = _go(specs, tmp_path)
    assert skipped.executed == 0 and skipped.counts["failed"] == 1
    retried = _go(specs, tmp_path, retry_failed=True)
    assert retried.executed == 1 and retried.steps_run == STEPS - 5
    assert Store(tmp_path).run(specs[0].key)["resumed_from"] == 5
    assert calls(tmp_path)[-1] == (specs[0].key, 5)
    assert _table(tmp_path, specs[0]) == _table(reference, specs[0])


def test_killed_run_resumes_from_checkpoint_and_drops_later_rows(tmp_path, reference):
    spec = _specs(1)[0]
    with Store(tmp_path) as store:  # what a SIGKILL at step 8 leaves behind
        rid = store.register_run(spec.key, spec.recipe, {**spec.config, "seed": 0}, 0)
        store.start_run(rid, resumed_from=None, provenance={})
        store.log_metrics(rid, [(s, "loss", loss_at(0, s)) for s in range(8)])
        store.log_metrics(rid, [(5, "ghost", 1.0), (9, "ghost", 1.0), (4, "kept", 4.0)])
        store.log_arrays(rid, [(s, "act", np.full(3, s, np.float32)) for s in (0, 2, 4)])
        store.log_arrays(rid, [(6, "act", np.zeros(3, np.float32))])  # wrong: re-measured
    ckpt = _control(tmp_path, spec.key, "latest.json", json.dumps({"step": 5, "file": "c5"}))
    assert latest_step(ckpt.parent) == 5
    summary = _go([spec], tmp_path)
    assert summary.executed == 1 and summary.steps_run == STEPS - 5
    values, arrays = _table(tmp_path, spec)
    ref_values, ref_arrays = _table(reference, spec)
    assert values.pop((4, "kept")) == 4.0  # before the checkpoint: kept
    assert values == ref_values and arrays == ref_arrays  # ghosts at steps >= 5: gone
    assert Store(tmp_path).run(spec.key)["resumed_from"] == 5


def test_keyboard_interrupt_leaves_run_resumable_and_reraises(tmp_path, reference):
    specs = _specs()
    _control(tmp_path, specs[0].key, "interrupt_at", "11")
    with pytest.raises(KeyboardInterrupt):
        _go(specs, tmp_path)
    with Store(tmp_path) as store:
        assert store.run(specs[0].key)["status"] == "pending"
        assert store.run(specs[1].key)["status"] == "pending"  # never started
    summary = _go(specs, tmp_path)
    assert summary.executed == 2 and summary.counts["finished"] == 2
    assert summary.steps_run == (STEPS - 10) + STEPS
    for spec in specs:
        assert _table(tmp_path, spec) == _table(reference, spec)


def test_diverged_run_stores_step_and_one_line_reason(tmp_path):
    spec = _specs(1, diverge_at=4)[0]
    summary = _go([spec], tmp_path)
    assert summary.counts["diverged"] == 1
    with Store(tmp_path) as store:
        run = store.run(spec.key)
        assert run["status"] == "diverged" and "\n" not in run["error"] and "4" in run["error"]
        d = store.metrics(runs=run["id"], names="diverged_step")
        assert d[["step", "value"]].to_numpy().tolist() == [[4, 4.0]]
    assert _go([spec], tmp_path).executed == 0


def test_invalid_outcome_is_a_failed_run(tmp_path):
    summary = execute(_specs(1), tmp_path, bad_status, progress=False)
    assert summary.counts["failed"] == 1 and "'done'" in summary.failures[0][1]


def test_corrupt_latest_json_fails_the_run_with_advice(tmp_path):
    spec = _specs(1)[0]
    _control(tmp_path, spec.key, "latest.json", "{not json")
    summary = _go([spec], tmp_path)
    assert summary.counts["failed"] == 1 and "delete" in summary.failures[0][1]


def test_duplicate_specs_run_once(tmp_path):
    spec = _specs(1)[0]
    summary = _go([spec, RunSpec("another.recipe", dict(spec.config), 0)], tmp_path)
    assert summary.total == 1 and len(calls(tmp_path)) == 1


# -- the process executor ----------------------------------------------------------------------


def test_process_executor_matches_serial(tmp_path, reference):
    specs = _specs()
    _control(tmp_path, specs[1].key, "crash_at", "3")
    summary = _go(specs, tmp_path, executor="process", workers=2)
    assert summary.counts["finished"] == 1 and summary.counts["failed"] == 1
    assert _table(tmp_path, specs[0]) == _table(reference, specs[0])
    assert "boom at step 3" in Store(tmp_path).run(specs[1].key)["error"]


@pytest.mark.parametrize(
    "kw,match",
    [({"executor": "dask"}, "valid executors: serial, process, packed, ray"),
     ({"workers": 0}, "workers"),
     ({"executor": "process", "workers": 2, "run_fn": lambda s, c: None}, "module-level")],
    ids=["executor", "workers", "lambda"],
)
def test_bad_arguments(tmp_path, kw, match):
    fn = kw.pop("run_fn", fake_train)
    with pytest.raises(ValueError, match=match):
        execute(_specs(1), tmp_path, fn, progress=False, **kw)


# -- the lock and progress ------------------------------------------------------------------


def test_second_sweep_is_refused_naming_the_holder(tmp_path):
    with dir_lock(tmp_path):
        with pytest.raises(SweepLockedError, match=r"pid \d+") as err:
            _go(_specs(1), tmp_path)
    assert str(tmp_path) in str(err.value) and "another bnlab sweep" in str(err.value)
    assert calls(tmp_path) == []


def test_second_sweep_waits_for_the_lock(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder():
        with dir_lock(tmp_path):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    t0 = time.monotonic()
    summary = _go(_specs(1), tmp_path, lock_timeout=10)
    t.join()
    assert summary.counts["finished"] == 1 and time.monotonic() - t0 >= 0.25


def test_progress_bar_only_when_asked(tmp_path, capsys):
    execute(_specs(1), tmp_path / "a", fake_train, progress=False)
    assert capsys.readouterr().err == ""
    execute(_specs(1), tmp_path / "b", fake_train, progress=True)
    assert "sweep" in capsys.readouterr().err
    execute(_specs(1), tmp_path / "c", fake_train)  # stderr is captured, not a terminal
    assert capsys.readouterr().err == ""


# -- the run context ----------------------------------------------------------------------------


def test_run_context_buffers_until_flush_and_copies_arrays(tmp_path):
    with Store(tmp_path) as store:
        rid = store.register_run("k", "r", {}, 0)
        ctx = RunContext(store, rid, "k" * 64, tmp_path / "checkpoints" / "k", None)
        arr = np.ones(2)
        ctx.log_metrics(0, {"loss": np.float32(0.5), "lr": 1})
        ctx.log_array(0, "a", arr)
        arr[:] = 7  # the caller reuses its buffer
        assert store.metrics().empty and ctx.pending_rows == 3
        ctx.flush()
        assert ctx.pending_rows == 0 and ctx.checkpoint_dir.is_dir()
        assert sorted(store.metrics()["name"]) == ["loss", "lr"]
        np.testing.assert_array_equal(store.arrays(rid, "a")[0][1], np.ones(2))


def test_sweep_and_results_import_no_torch():
    import subprocess
    import sys

    code = "import sys, bnlab.sweep, bnlab.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
