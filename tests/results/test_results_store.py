"""The results store: schema, round trips, status rules, concurrency, export."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from bnlab.errors import UserError
from bnlab.results import (
    SCHEMA_VERSION,
    STATUSES,
    SchemaError,
    Store,
    StoreError,
    export,
    provenance,
)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path) as s:
        yield s


def _started(store, key="k1", config=None, seed=0):
    rid = store.register_run(key, "demo.recipe", config or {"lr": 0.1, "depth": 3}, seed)
    store.start_run(rid, resumed_from=None, provenance={"who": "test"})
    return rid


def test_schema_tables_columns_and_wal(store, tmp_path):
    con = sqlite3.connect(tmp_path / "bnlab.db")
    tables = ("runs", "metrics", "arrays")
    cols = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    assert cols["runs"] == ["id", "key", "recipe", "config", "seed", "status", "resumed_from",
                            "started", "finished", "error", "provenance"]
    assert cols["metrics"] == ["run", "step", "name", "value"]
    assert cols["arrays"] == ["run", "step", "name", "npy"]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    info = sorted(con.execute("PRAGMA table_info(metrics)"), key=lambda r: r[5])
    pk = [r[1] for r in info if r[5]]
    assert pk == ["run", "step", "name"]
    con.close()


@pytest.mark.parametrize("bad", ["running_late", "done", ""], ids=["typo", "other", "empty"])
def test_status_constraint_rejects_unknown_status(store, tmp_path, bad):
    rid = _started(store)
    con = sqlite3.connect(tmp_path / "bnlab.db")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("UPDATE runs SET status=? WHERE id=?", (bad, rid))
    con.close()
    with pytest.raises(StoreError, match="valid: finished"):
        store.finish_run(rid, bad)


def test_newer_schema_version_is_a_clear_error(tmp_path):
    Store(tmp_path).close()
    con = sqlite3.connect(tmp_path / "bnlab.db")
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match=r"version '99'.*upgrade bnlab"):
        Store(tmp_path)


def test_foreign_database_is_refused(tmp_path):
    con = sqlite3.connect(tmp_path / "bnlab.db")
    con.execute("CREATE TABLE something(x)")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="not written by bnlab"):
        Store(tmp_path)


def test_register_is_idempotent_per_key(store):
    a = store.register_run("same", "r1", {"lr": 1.0}, 0)
    b = store.register_run("same", "r2", {"lr": 1.0}, 0)
    c = store.register_run("other", "r1", {"lr": 2.0}, 0)
    assert a == b != c
    run = store.run("same")
    assert run["status"] == "pending" and run["recipe"] == "r1" and run["config"] == {"lr": 1.0}
    assert store.run(a)["key"] == "same"
    assert store.run("missing") is None and store.run(999) is None


def test_metric_round_trip_including_nan_and_inf(store):
    rid = _started(store)
    rows = [(s, "loss", 1.0 / (s + 1)) for s in range(5)]
    rows += [(5, "loss", float("inf")), (6, "loss", float("nan")), (0, "acc", 0.5)]
    assert store.log_metrics(rid, rows) == len(rows)
    df = store.metrics(runs=rid, names="loss")
    assert list(df.columns) == ["run", "step", "name", "value"]
    assert df["step"].tolist() == list(range(7))
    np.testing.assert_allclose(df["value"].to_numpy()[:5], [1 / (s + 1) for s in range(5)], rtol=0)
    assert np.isinf(df["value"].iloc[5]) and np.isnan(df["value"].iloc[6])
    assert set(store.metrics()["name"]) == {"loss", "acc"}
    # a repeated (run, step, name) replaces, it never duplicates
    store.log_metrics(rid, [(0, "acc", 0.75)])
    acc = store.metrics(names=["acc"])
    assert acc["value"].tolist() == [0.75]


def test_metrics_filter_by_recipe_and_runs(store):
    r1 = store.register_run("a", "rec.one", {"x": 1}, 0)
    r2 = store.register_run("b", "rec.two", {"x": 2}, 0)
    store.log_metrics(r1, [(0, "m", 1.0)])
    store.log_metrics(r2, [(0, "m", 2.0)])
    assert store.metrics(recipe="rec.two")["run"].tolist() == [r2]
    assert store.metrics(runs=[r1, r2])["value"].tolist() == [1.0, 2.0]
    assert store.metrics(runs=[]).empty


@pytest.mark.parametrize(
    "array",
    [np.arange(60, dtype=np.float32).reshape(20, 3), np.array(3.5), np.zeros((0, 4)),
     np.arange(8, dtype=np.int64), np.asfortranarray(np.random.default_rng(0).normal(size=(3, 5)))],
    ids=["pct_20x3_f32", "scalar", "empty", "int64", "fortran_order"],
)
def test_array_round_trip(store, array):
    rid = _started(store)
    store.log_arrays(rid, [(10, "a", array), (0, "a", array + 1)])
    got = store.arrays(rid, "a")
    assert [s for s, _ in got] == [0, 10]
    for (_, back), want in zip(got, [array + 1, array], strict=True):
        assert back.dtype == want.dtype and back.shape == want.shape
        np.testing.assert_array_equal(back, want)


def test_object_arrays_are_refused(store):
    rid = _started(store)
    with pytest.raises(ValueError):
        store.log_arrays(rid, [(0, "bad", np.array([{"a": 1}], dtype=object))])
    assert store.arrays(rid, "bad") == []


def test_start_run_deletes_rows_at_and_after_resume_step_only(store):
    rid = _started(store)
    store.log_metrics(rid, [(s, "loss", float(s)) for s in range(10)])
    store.log_arrays(rid, [(s, "a", np.full(2, s)) for s in range(0, 10, 2)])
    other = _started(store, key="k2")
    store.log_metrics(other, [(s, "loss", float(s)) for s in range(10)])
    store.start_run(rid, resumed_from=6, provenance={})
    assert store.metrics(runs=rid)["step"].tolist() == [0, 1, 2, 3, 4, 5]
    assert [s for s, _ in store.arrays(rid, "a")] == [0, 2, 4]
    assert len(store.metrics(runs=other)) == 10  # another run is untouched
    assert store.run(rid)["resumed_from"] == 6 and store.run(rid)["status"] == "running"
    store.start_run(rid, resumed_from=None, provenance={})
    assert store.metrics(runs=rid).empty and store.arrays(rid, "a") == []


def test_start_run_rejects_unknown_run_and_negative_step(store):
    with pytest.raises(StoreError, match="no run with id 42"):
        store.start_run(42, resumed_from=None, provenance={})
    rid = _started(store)
    with pytest.raises(StoreError, match=">= 0"):
        store.start_run(rid, resumed_from=-1, provenance={})


def test_failed_run_keeps_traceback_and_timestamps(store):
    rid = _started(store)
    tb = "Traceback (most recent call last):\n  ...\nRuntimeError: boom"
    store.finish_run(rid, "failed", error=tb)
    run = store.run(rid)
    assert run["status"] == "failed" and run["error"] == tb
    assert run["started"] and run["finished"] >= run["started"]
    assert store.status_counts() == {**dict.fromkeys(STATUSES, 0), "failed": 1}


def test_runs_frame_flattens_config(store):
    store.register_run("a", "rec", {"lr": 0.1, "norm": "bn", "dims": [1, 2]}, 0)
    store.register_run("b", "rec", {"lr": 0.5, "norm": "none"}, 1)
    store.register_run("c", "other", {"lr": 0.5}, 1)
    df = store.runs(recipe="rec")
    assert df["key"].tolist() == ["a", "b"]
    assert df["cfg.lr"].tolist() == [0.1, 0.5] and df["cfg.norm"].tolist() == ["bn", "none"]
    assert df["cfg.dims"].iloc[0] == [1, 2] and df["cfg.dims"].iloc[1] is None
    assert isinstance(df["config"].iloc[0], dict)
    assert len(store.runs()) == 3


def test_transaction_rolls_back_on_error(store):
    rid = _started(store)
    with pytest.raises(TypeError):  # a bad row fails before anything is written
        store.log_metrics(rid, [(0, "ok", 1.0), (1, "bad", object())])
    # a failure inside the transaction leaves nothing behind
    with pytest.raises(sqlite3.IntegrityError):
        with store._tx() as con:
            con.execute("INSERT INTO metrics VALUES (?, 0, 'x', 1.0)", (rid,))
            con.execute("UPDATE runs SET status='bogus' WHERE id=?", (rid,))
    assert store.metrics(runs=rid).empty


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from bnlab.results import Store
    out, worker = sys.argv[1], int(sys.argv[2])
    with Store(out) as s:
        for r in range(3):
            rid = s.register_run(f"w{worker}-r{r}", "conc", {"w": worker, "r": r}, r)
            s.start_run(rid, resumed_from=None, provenance={"pid": worker})
            for chunk in range(10):
                rows = [(chunk * 10 + i, "m", float(worker * 1000 + i)) for i in range(10)]
                s.log_metrics(rid, rows)
            s.log_arrays(rid, [(0, "a", np.full(3, worker))])
            s.finish_run(rid, "finished")
    """
)


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    Store(tmp_path).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(w)],
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with Store(tmp_path) as s:
        runs = s.runs()
        assert len(runs) == 12 and set(runs["status"]) == {"finished"}
        m = s.metrics()
        assert len(m) == 12 * 100
        assert not m.duplicated(["run", "step", "name"]).any()
        for rid, cfg in zip(runs["id"], runs["config"], strict=True):
            (_step, arr), = s.arrays(int(rid), "a")
            np.testing.assert_array_equal(arr, np.full(3, cfg["w"]))


def test_provenance_has_versions_without_importing_torch():
    code = ("import sys, json; from bnlab.results import provenance;"
            "p = provenance(device='cpu', threads=2); print(json.dumps(p)); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line, imported = out.stdout.strip().splitlines()
    p = json.loads(line)
    assert imported == "False"
    assert p["packages"]["torch"] and p["packages"]["numpy"] == np.__version__
    assert p["device"] == "cpu" and p["threads"] == 2
    assert set(p) >= {"git_sha", "git_dirty", "python", "platform", "argv"}
    assert provenance(python="override")["python"] == "override"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip(tmp_path, fmt):
    out = tmp_path / "out"
    with Store(out) as s:
        rid = _started(s, config={"lr": 0.1, "dims": [1, 2]})
        s.log_metrics(rid, [(0, "loss", 2.5), (1, "loss", 1.5)])
        s.log_arrays(rid, [(0, "pct", np.zeros((20, 3), np.float32))])
        s.finish_run(rid, "finished")
    paths = export(out, fmt, tmp_path / "dest")
    assert [p.name for p in paths] == [f"runs.{fmt}", f"metrics.{fmt}", f"arrays.{fmt}"]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    runs, metrics, arrays = (read(p) for p in paths)
    assert runs["key"].tolist() == ["k1"] and runs["status"].tolist() == ["finished"]
    assert json.loads(runs["config"].iloc[0]) == {"lr": 0.1, "dims": [1, 2]}
    assert runs["cfg.lr"].tolist() == [0.1]
    assert metrics[["step", "value"]].to_numpy().tolist() == [[0, 2.5], [1, 1.5]]
    assert arrays[["name", "dtype", "shape"]].to_numpy().tolist() == [["pct", "float32", "20x3"]]


def test_export_errors(tmp_path):
    with pytest.raises(UserError, match="no results in"):
        export(tmp_path, "csv")
    Store(tmp_path).close()
    with pytest.raises(ValueError, match="valid formats: csv, parquet"):
        export(tmp_path, "xlsx")
