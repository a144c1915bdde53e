"""The SQLite results store: one file per output directory, ``<out>/bnlab.db``.

Saved results are the only interface between running and reporting (DESIGN.md,
"Contracts"): the training side writes runs, scalar metrics and numpy arrays here, and
claims, figures and ``bnlab export`` read them back. This module never imports torch.

Schema (version :data:`SCHEMA_VERSION`, recorded in the ``meta`` table)::

    runs(id INTEGER PRIMARY KEY, key TEXT UNIQUE, recipe, config JSON, seed, status,
         resumed_from, started, finished, error, provenance JSON)
    metrics(run, step, name, value,   PRIMARY KEY (run, step, name))
    arrays (run, step, name, npy BLOB, PRIMARY KEY (run, step, name))

``status`` is one of ``pending, running, finished, diverged, failed``. ``step`` is the
number of optimizer updates completed when the quantity was measured (docs/internals.md,
"Steps"). Arrays are stored as ``.npy`` bytes (``np.save``) and loaded with
``allow_pickle=False``. SQLite stores a NaN metric as NULL, so it reads back as NaN.

Several processes may write at once: the database runs in WAL mode with a busy timeout,
and every write is one ``BEGIN IMMEDIATE`` transaction, so a process killed mid-write
leaves no half-written row. :meth:`Store.sync` copies the WAL into the main file (the
sweep calls it at every run checkpoint); :meth:`Store.check_intact` notices a database
deleted, replaced or cut from its WAL while it was open, so a run whose rows were lost is
never reported ``finished``.

Errors: :class:`StorePathError` (also a :class:`~bnlab.errors.UserError`: the output
folder or file given cannot hold a store, exit status 2); :class:`StoreError` for the
environment (permissions, a full disk, a damaged file: exit status 1), its message naming
the file and the fix; :class:`StoreLostError` when the open database vanished.

Example:
    >>> store = Store("bnlab_out")                                  # doctest: +SKIP
    >>> rid = store.register_run("ab12...", "demo", {"lr": 0.1}, seed=0)  # doctest: +SKIP
    >>> store.start_run(rid, resumed_from=None, provenance={})      # doctest: +SKIP
    >>> store.log_metrics(rid, [(0, "train_loss", 2.3)])            # doctest: +SKIP
    >>> store.finish_run(rid, "finished")                           # doctest: +SKIP
    >>> store.metrics(names="train_loss")                           # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnlab.errors import UserError

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "RowCounts",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreLostError",
    "StorePathError",
    "prepare_out_dir",
]

DB_NAME = "bnlab.db"
SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "finished", "diverged", "failed")
_ENDED = ("finished", "diverged", "failed")
_BUSY_TIMEOUT_MS = 60_000  # writers wait this long for each other before giving up

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    recipe TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {STATUSES!r}),
    resumed_from INTEGER,
    started TEXT,
    finished TEXT,
    error TEXT,
    provenance TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run, step, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arrays (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    npy BLOB NOT NULL,
    PRIMARY KEY (run, step, name)
);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics(name, run);
CREATE INDEX IF NOT EXISTS runs_by_recipe ON runs(recipe);
"""

_RUN_COLUMNS = (
    "id", "key", "recipe", "config", "seed", "status", "resumed_from",
    "started", "finished", "error", "provenance",
)


class StoreError(OSError):
    """A results store cannot be opened, read or written (the message names file and fix).

    An ``OSError``: like one, it is the environment's failure (disk, permissions, a
    damaged file), printed by the CLI as one line with exit status 1.
    """


class StorePathError(StoreError, UserError):
    """The output folder or database given cannot hold a store (bad input: exit status 2)."""


class SchemaError(StorePathError):
    """The database was written by another (newer or unknown) schema version."""


class StoreLostError(StoreError):
    """The open database was deleted, replaced or cut from its WAL by someone else."""


class RowCounts(tuple[int, int]):
    """``(metrics, arrays)``: how many rows of one run a store holds."""

    @property
    def metrics(self) -> int:
        """Metric rows."""
        return self[0]

    @property
    def arrays(self) -> int:
        """Array rows."""
        return self[1]


# What to do about an SQLite failure, by a phrase of its message (sqlite3 has no codes
# before Python 3.11's sqlite_errorname, and the phrases are stable across versions).
_ADVICE = (
    ("disk is full", "free some disk space, then run the same command again"),
    ("disk i/o error", "the disk or a file size limit refused a write; free some space or "
                       "check the folder, then run the same command again"),
    ("readonly", "the folder or database is read-only; make it writable or use another --out"),
    ("unable to open", "check that the folder exists and is writable, or use another --out"),
    ("malformed", "the database file is damaged; restore it from a copy or move it away "
                  "(its runs are then run again)"),
    ("not a database", "move it away or use another --out"),
    ("locked", "another process holds the database; wait for it or use another --out"),
)


# These mean a bug in bnlab (a constraint broken, bad SQL) and keep their traceback; every
# other DatabaseError is the file's or the machine's (full disk, I/O, damage, permissions).
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.NotSupportedError,
         sqlite3.DataError)


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """Turn the SQLite failures of the environment into a :class:`StoreError`."""
    try:
        yield
    except _BUGS:
        raise
    except sqlite3.DatabaseError as exc:
        raise _store_error(path, exc) from exc


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The :class:`StoreError` for an SQLite failure: what happened to which file, the fix.

    A file that is not a database is the user's input (:class:`StorePathError`).
    """
    text = str(exc) or type(exc).__name__
    fix = next((f for phrase, f in _ADVICE if phrase in text.lower()), "see the message above")
    kind = StorePathError if "not a database" in text else StoreError
    return kind(f"results database {path}: {text}; {fix}")


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder if needed; say plainly why it cannot be one.

    Raises:
        StorePathError: ``out_dir`` (or a folder above it) is a file.
        StoreError: the folder cannot be created (permissions, a full disk).
    """
    out = Path(out_dir)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            what = "is a file" if parent == out else f"is under {parent}, which is a file"
            raise StorePathError(f"output folder {out} {what}; pass a folder with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create output folder {out}: {exc.strerror or exc}; "
                         "use a writable place for --out") from exc
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _to_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _from_npy(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _json_or_empty(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _as_list(value: Any, kind: type) -> list | None:
    """``None`` -> ``None``; a single ``kind`` -> ``[value]``; an iterable -> a list."""
    if value is None:
        return None
    if isinstance(value, kind):
        return [value]
    return list(value)


class Store:
    """The results store of one output directory.

    Args:
        out_dir: the output directory; created if missing. The database is
            ``<out_dir>/bnlab.db``.
        create: create the database if it is missing (SQLite then discards a ``-wal``
            file a deleted database left behind); ``False`` (pool workers) refuses
            instead, so a worker never starts a new database beside a sweep's lost one.

    Raises:
        SchemaError: if the database has a schema version this bnlab does not know.
        StorePathError: if ``out_dir`` is (under) a file or the file is not a bnlab
            database.
        StoreError: if the database cannot be opened or written (permissions, disk).

    A ``Store`` holds one SQLite connection: use one per process (and per thread) and
    close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, out_dir: str | Path, *, create: bool = True) -> None:
        self.out_dir = prepare_out_dir(out_dir)
        self.path = self.out_dir / DB_NAME
        if self.path.exists() and not self.path.is_file():
            raise StorePathError(f"{self.path} is not a file; move it away or use another --out")
        mode = "rwc" if create else "rw"
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode={mode}"
        try:
            # isolation_level=None: we open every transaction ourselves with BEGIN
            # IMMEDIATE, which takes the write lock up front so concurrent writers queue on
            # busy_timeout instead of failing with "database is locked" at commit time.
            self._con = sqlite3.connect(
                uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc) from exc
        try:
            self._configure()
            self._migrate()
            self._identity = _file_id(self.path)
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise _store_error(self.path, exc) from exc
        except BaseException:
            self._con.close()
            raise

    # -- connection and schema ---------------------------------------------------------

    def _configure(self) -> None:
        self._con.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL is durable enough
        self._con.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        with self._tx() as con:
            has_meta = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            if has_meta:
                row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                self._check_version(row[0] if row else None)
                return
            others = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if others:
                raise SchemaError(
                    f"{self.path} holds tables but no bnlab schema version; "
                    "it was not written by bnlab: choose another output directory"
                )
            # one statement at a time: executescript() would COMMIT our transaction first
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _check_version(self, found: str | None) -> None:
        if found != str(SCHEMA_VERSION):
            raise SchemaError(
                f"{self.path} has results schema version {found!r}, but this bnlab reads "
                f"version {SCHEMA_VERSION}; upgrade bnlab or use another output directory"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception.

        SQLite failures (a full disk, a read-only or damaged file) become a
        :class:`StoreError` naming the file and the fix; SQLite may already have rolled
        the transaction back itself (an I/O error does), so the rollback is conditional.
        """
        with _sqlite_errors(self.path):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        """All rows of one read; SQLite failures become a :class:`StoreError`."""
        with _sqlite_errors(self.path):
            return self._con.execute(sql, tuple(args)).fetchall()

    def sync(self) -> None:
        """Copy the WAL into the main database file (a passive checkpoint: never blocks).

        Called at every run checkpoint, so the main file holds every row a checkpoint
        counts even if the ``-wal`` file is lost later.
        """
        self._query("PRAGMA wal_checkpoint(PASSIVE)")

    def check_intact(self, run_id: int | None = None) -> None:
        """Raise unless the database this store opened is still the one at :attr:`path`.

        Checks that the file was not deleted or replaced, and that a fresh connection sees
        what this one sees (the run's status and row counts, or every run's status): a
        deleted ``-wal`` file leaves this connection writing into a file no one else reads.

        Raises:
            StoreLostError: naming what happened and that a re-run repairs it.
        """
        lost = (f"results database {self.path} was deleted, replaced or cut from its WAL "
                "while this sweep was writing to it")
        fix = "nothing was reported finished; run the same command again to redo the lost runs"
        try:
            same = _file_id(self.path) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreLostError(f"{lost}; {fix}")
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=rw"
        try:
            fresh = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
            try:
                theirs = _fingerprint(fresh, run_id)
            finally:
                fresh.close()
        except sqlite3.DatabaseError as exc:
            raise StoreLostError(f"{lost} ({exc}); {fix}") from exc
        with _sqlite_errors(self.path):
            mine = _fingerprint(self._con, run_id)
        if theirs != mine:
            raise StoreLostError(f"{lost} (another reader sees other rows); {fix}")

    def row_counts(self, run_id: int, before_step: int | None = None) -> RowCounts:
        """How many metric and array rows run ``run_id`` has (with ``step < before_step``)."""
        with _sqlite_errors(self.path):
            return _counts(self._con, run_id, before_step)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.out_dir)!r})"

    # -- writing -----------------------------------------------------------------------

    def register_run(self, key: str, recipe: str, config: Mapping[str, Any], seed: int) -> int:
        """Insert a ``pending`` run, or return the id of the run that has this key.

        Args:
            key: the run key (:func:`bnlab.sweep.run_key`): the same experiment has the
                same key, so it is stored once even when several recipes ask for it.
            recipe: the recipe that first registered it, e.g. ``"ioffe2015.mnist"``.
            config: the run's configuration, stored as JSON.
            seed: the run's seed.

        Returns:
            The run id.
        """
        cfg = json.dumps(dict(config), sort_keys=True)
        with self._tx() as con:
            con.execute(
                "INSERT INTO runs(key, recipe, config, seed, status) VALUES (?, ?, ?, ?, 'pending')"
                " ON CONFLICT(key) DO NOTHING",
                (key, recipe, cfg, int(seed)),
            )
            return int(con.execute("SELECT id FROM runs WHERE key = ?", (key,)).fetchone()[0])

    def start_run(
        self, run_id: int, *, resumed_from: int | None, provenance: Mapping[str, Any]
    ) -> None:
        """Mark a run ``running`` and drop the rows it will measure again, atomically.

        A run resumed from the checkpoint at step N re-measures every step ``>= N``
        (docs/internals.md, "Steps"), so those metric and array rows are deleted in the
        same transaction; ``resumed_from=None`` (a fresh start) deletes all the run's rows.

        Raises:
            StoreError: if there is no run ``run_id`` or ``resumed_from < 0``.
        """
        if resumed_from is not None and int(resumed_from) < 0:
            raise StoreError(f"resumed_from must be a step >= 0 or None, got {resumed_from!r}")
        first = 0 if resumed_from is None else int(resumed_from)
        with self._tx() as con:
            self._require_run(con, run_id)
            for table in ("metrics", "arrays"):
                con.execute(f"DELETE FROM {table} WHERE run = ? AND step >= ?", (run_id, first))
            con.execute(
                "UPDATE runs SET status='running', resumed_from=?, started=?, finished=NULL,"
                " error=NULL, provenance=? WHERE id=?",
                (resumed_from, _now(), json.dumps(dict(provenance), sort_keys=True, default=str),
                 run_id),
            )

    def add_provenance(self, run_id: int, **fields: Any) -> None:
        """Merge ``fields`` (e.g. ``device``, ``threads``) into a run's provenance.

        The sweep records what the driver knows when a run starts; the run itself adds what
        only it knows (the device it trains on, the threads it set).
        """
        with self._tx() as con:
            self._require_run(con, run_id)
            (raw,) = con.execute("SELECT provenance FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = {**(json.loads(raw) if raw else {}), **fields}
            con.execute("UPDATE runs SET provenance=? WHERE id=?",
                        (json.dumps(merged, sort_keys=True, default=str), run_id))

    def finish_run(self, run_id: int, status: str, *, error: str | None = None) -> None:
        """Record how a run ended.

        Args:
            run_id: the run.
            status: ``finished``, ``diverged`` or ``failed``; or ``pending`` to hand an
                interrupted run back so the next sweep resumes it.
            error: the traceback of a failed run, the one-line reason of a diverged one.

        Raises:
            StoreError: for another status or an unknown run.
        """
        if status not in (*_ENDED, "pending"):
            raise StoreError(
                f"cannot finish a run with status {status!r}; "
                f"valid: {', '.join((*_ENDED, 'pending'))}"
            )
        ended = _now() if status in _ENDED else None
        with self._tx() as con:
            self._require_run(con, run_id)
            con.execute(
                "UPDATE runs SET status=?, finished=?, error=? WHERE id=?",
                (status, ended, error, run_id),
            )

    def log_metrics(self, run_id: int, rows: Iterable[tuple[int, str, float]]) -> int:
        """Store scalar metrics ``(step, name, value)``; a repeated key replaces the value.

        Returns:
            The number of rows written.
        """
        data = [(run_id, int(s), str(n), None if v is None else float(v)) for s, n, v in rows]
        if data:
            with self._tx() as con:
                con.executemany(
                    "INSERT OR REPLACE INTO metrics(run, step, name, value) VALUES (?,?,?,?)", data
                )
        return len(data)

    def log_arrays(self, run_id: int, rows: Iterable[tuple[int, str, np.ndarray]]) -> int:
        """Store numpy arrays ``(step, name, array)`` as ``.npy`` bytes.

        Raises:
            ValueError: for an object array (it would need pickle).

        Returns:
            The number of rows written.
        """
        data = [(run_id, int(s), str(n), _to_npy(a)) for s, n, a in rows]
        if data:
            with self._tx() as con:
                con.executemany(
                    "INSERT OR REPLACE INTO arrays(run, step, name, npy) VALUES (?,?,?,?)", data
                )
        return len(data)

    def _require_run(self, con: sqlite3.Connection, run_id: int) -> None:
        if con.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
            raise StoreError(f"no run with id {run_id!r} in {self.path}")

    # -- reading -----------------------------------------------------------------------

    def runs(self, recipe: str | None = None) -> pd.DataFrame:
        """One row per run, ordered by id.

        Columns: ``id, key, recipe, config, seed, status, resumed_from, started, finished,
        error, provenance`` (``config`` and ``provenance`` as dicts), plus one
        ``cfg.<field>`` column per top-level config field.
        """
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        args: tuple = ()
        if recipe is not None:
            sql, args = sql + " WHERE recipe = ?", (recipe,)
        rows = self._query(sql + " ORDER BY id", args)
        # JSON is parsed before pandas sees it: a NULL provenance (a pending run) would
        # become NaN in a text column, which json cannot read.
        parsed = {col: [_json_or_empty(r[_RUN_COLUMNS.index(col)]) for r in rows]
                  for col in ("config", "provenance")}
        df = pd.DataFrame(rows, columns=list(_RUN_COLUMNS), dtype=object)
        for col, values in parsed.items():
            df[col] = pd.Series(values, index=df.index, dtype=object)
        for col in ("id", "seed"):
            df[col] = df[col].astype("int64")
        fields = sorted({k for cfg in df["config"] for k in cfg})
        flat = pd.DataFrame(
            {f"cfg.{f}": [cfg.get(f) for cfg in df["config"]] for f in fields}, index=df.index
        )
        return pd.concat([df, flat], axis=1)

    def metrics(
        self,
        runs: int | Iterable[int] | None = None,
        names: str | Iterable[str] | None = None,
        recipe: str | None = None,
    ) -> pd.DataFrame:
        """Scalar metrics as a long table ``[run, step, name, value]``.

        Args:
            runs: a run id or ids to keep (default: all).
            names: a metric name or names to keep (default: all).
            recipe: keep only runs registered by this recipe.

        Returns:
            A DataFrame ordered by run, name, step; ``value`` is float (NaN for NULL).
        """
        where, args = [], []
        for column, values in (("m.run", _as_list(runs, int)), ("m.name", _as_list(names, str))):
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args += values
        if recipe is not None:
            where.append("r.recipe = ?")
            args.append(recipe)
        sql = "SELECT m.run, m.step, m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY m.run, m.name, m.step", args)
        df = pd.DataFrame(rows, columns=["run", "step", "name", "value"])
        return df.astype({"run": "int64", "step": "int64", "value": "float64"})

    def arrays(self, run: int, name: str) -> list[tuple[int, np.ndarray]]:
        """The arrays ``name`` of run ``run`` as ``[(step, array), ...]`` ordered by step."""
        rows = self._query(
            "SELECT step, npy FROM arrays WHERE run=? AND name=? ORDER BY step", (run, name))
        return [(int(step), _from_npy(blob)) for step, blob in rows]

    def array_names(self, run: int) -> list[str]:
        """The distinct array names run ``run`` stored, sorted (no data is read)."""
        rows = self._query("SELECT DISTINCT name FROM arrays WHERE run=? ORDER BY name", (run,))
        return [name for (name,) in rows]

    def array_index(self) -> pd.DataFrame:
        """A summary of the stored arrays: ``[run, step, name, dtype, shape]``, no data."""
        rows = self._query("SELECT run, step, name, npy FROM arrays ORDER BY run, name, step")
        out = []
        for run, step, name, blob in rows:
            arr = _from_npy(blob)
            out.append((run, step, name, str(arr.dtype), "x".join(map(str, arr.shape))))
        return pd.DataFrame(out, columns=["run", "step", "name", "dtype", "shape"])

    def run(self, id_or_key: int | str) -> dict[str, Any] | None:
        """The run with this id (an int) or key (a str) as a dict, or ``None``."""
        column = "key" if isinstance(id_or_key, str) else "id"
        rows = self._query(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {column} = ?", (id_or_key,))
        if not rows:
            return None
        out = dict(zip(_RUN_COLUMNS, rows[0], strict=True))
        for col in ("config", "provenance"):
            out[col] = json.loads(out[col]) if out[col] else {}
        return out

    def status_counts(self) -> dict[str, int]:
        """The number of runs in each status (every status present, zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._query("SELECT status, count(*) FROM runs GROUP BY status"):
            counts[status] = int(n)
        return counts


def _fingerprint(con: sqlite3.Connection, run_id: int | None) -> tuple:
    """What two connections to one intact database agree on: statuses, the run's rows."""
    if run_id is None:
        return tuple(con.execute("SELECT id, status FROM runs ORDER BY id").fetchall())
    status = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchall()
    return tuple(status), _counts(con, run_id, None)


def _file_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _counts(con: sqlite3.Connection, run_id: int, before_step: int | None) -> RowCounts:
    limit = 2**63 - 1 if before_step is None else int(before_step)
    found = [con.execute(f"SELECT count(*) FROM {table} WHERE run = ? AND step < ?",
                         (run_id, limit)).fetchone()[0] for table in ("metrics", "arrays")]
    return RowCounts(found)
