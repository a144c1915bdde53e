"""The store's guards: output folders that cannot be one, SQLite failures as one-line
StoreErrors, a database deleted or cut from its WAL noticed, orphaned WAL files dropped,
workers that never create a database, row counts below a step."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from bnlab.errors import UserError
from bnlab.results import Store, StoreError, StoreLostError, StorePathError
from bnlab.results.store import prepare_out_dir


def _run_with_rows(store, key="k", steps=range(5)):
    rid = store.register_run(key, "r", {"lr": 0.1}, 0)
    store.start_run(rid, resumed_from=None, provenance={})
    store.log_metrics(rid, [(s, "loss", 1.0) for s in steps])
    return rid


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_an_output_folder_that_is_a_file_is_bad_input(where, tmp_path):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "sub" / "deeper"
    with pytest.raises(StorePathError, match="is a file") as err:
        Store(out)
    assert isinstance(err.value, UserError) and isinstance(err.value, OSError)


def test_a_database_path_that_is_a_folder_is_bad_input(tmp_path):
    (tmp_path / "bnlab.db").mkdir()
    with pytest.raises(StorePathError, match="not a file"):
        Store(tmp_path)


def test_garbage_is_not_a_database_and_damage_is_the_environment(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bnlab.db").write_bytes(os.urandom(8192))
    with pytest.raises(StorePathError, match=r"not a database.*another --out"):
        Store(tmp_path / "a")
    with Store(tmp_path / "b") as store:
        for i in range(40):
            _run_with_rows(store, f"k{i}", range(50))
        store.sync()
    with open(tmp_path / "b" / "bnlab.db", "r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096 * 3)
    with pytest.raises(StoreError, match=r"malformed.*damaged") as err:
        with Store(tmp_path / "b") as store:
            store.metrics()
    assert not isinstance(err.value, UserError)


def test_row_counts_below_a_step(tmp_path):
    with Store(tmp_path) as store:
        rid = _run_with_rows(store)
        store.log_arrays(rid, [(1, "a", __import__("numpy").zeros(2))])
        assert store.row_counts(rid) == (5, 1)
        assert store.row_counts(rid, 3) == (3, 1) and store.row_counts(rid, 1).arrays == 0


@pytest.mark.parametrize("what", ["bnlab.db", "bnlab.db-wal"])
def test_a_deleted_database_or_wal_is_noticed(what, tmp_path):
    with Store(tmp_path) as store:
        rid = _run_with_rows(store)
        store.check_intact(rid)
        os.unlink(tmp_path / what)
        store.log_metrics(rid, [(9, "loss", 1.0)])  # the connection writes on, unaware
        with pytest.raises(StoreLostError, match="run the same command again"):
            store.check_intact(rid)
        with pytest.raises(StoreLostError):
            store.check_intact()


def test_a_replaced_database_is_noticed(tmp_path):
    with Store(tmp_path) as store:
        rid = _run_with_rows(store)
        shutil.copy(tmp_path / "bnlab.db", tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", tmp_path / "bnlab.db")
        with pytest.raises(StoreLostError):
            store.check_intact(rid)


def test_workers_never_create_a_database(tmp_path):
    with pytest.raises(StoreError, match="unable to open"):
        Store(tmp_path, create=False)
    assert not (tmp_path / "bnlab.db").exists()


def test_the_wal_of_a_deleted_database_is_dropped_not_replayed(tmp_path):
    """SQLite discards a WAL whose database is empty: a re-run starts clean (a guarantee
    the repair-by-re-running of a deleted database relies on)."""
    old = Store(tmp_path)
    _run_with_rows(old, "old-run")
    keep_wal = (tmp_path / "bnlab.db-wal").read_bytes()
    os.unlink(tmp_path / "bnlab.db")  # deleted while open; the WAL stays behind
    old.close()
    (tmp_path / "bnlab.db-wal").write_bytes(keep_wal)  # as a killed process leaves it
    with Store(tmp_path) as store:
        assert store.runs().empty
        _run_with_rows(store, "new-run")
    con = sqlite3.connect(tmp_path / "bnlab.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT key FROM runs").fetchall() == [("new-run",)]


def test_sync_copies_the_wal_into_the_main_file(tmp_path):
    with Store(tmp_path) as store:
        rid = _run_with_rows(store, steps=range(200))
        store.sync()
        snapshot = (tmp_path / "bnlab.db").read_bytes()
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "bnlab.db").write_bytes(snapshot)  # the main file, no WAL
    with Store(tmp_path / "alone") as store:
        assert store.row_counts(rid) == (200, 0)


def test_prepare_out_dir_creates_nested_folders(tmp_path):
    assert prepare_out_dir(tmp_path / "a" / "b").is_dir()
