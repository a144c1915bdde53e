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
and every write is one ``BEGIN IMMEDIATE`` transaction.

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
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DB_NAME", "SCHEMA_VERSION", "STATUSES", "SchemaError", "Store", "StoreError"]

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


class StoreError(RuntimeError):
    """A results store cannot be opened or a write is invalid."""


class SchemaError(StoreError):
    """The database was written by another (newer or unknown) schema version."""


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

    Raises:
        SchemaError: if the database has a schema version this bnlab does not know.
        StoreError: if the file is not a bnlab database.

    A ``Store`` holds one SQLite connection: use one per process (and per thread) and
    close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / DB_NAME
        # isolation_level=None: we open every transaction ourselves with BEGIN IMMEDIATE,
        # which takes the write lock up front so concurrent writers queue on busy_timeout
        # instead of failing with "database is locked" at commit time.
        self._con = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        try:
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise StoreError(f"{self.path} is not a bnlab results database: {exc}") from exc
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
        """One write transaction: committed on success, rolled back on any exception."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

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
        rows = self._con.execute(sql + " ORDER BY id", args).fetchall()
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
        rows = self._con.execute(sql + " ORDER BY m.run, m.name, m.step", args).fetchall()
        df = pd.DataFrame(rows, columns=["run", "step", "name", "value"])
        return df.astype({"run": "int64", "step": "int64", "value": "float64"})

    def arrays(self, run: int, name: str) -> list[tuple[int, np.ndarray]]:
        """The arrays ``name`` of run ``run`` as ``[(step, array), ...]`` ordered by step."""
        rows = self._con.execute(
            "SELECT step, npy FROM arrays WHERE run=? AND name=? ORDER BY step", (run, name)
        ).fetchall()
        return [(int(step), _from_npy(blob)) for step, blob in rows]

    def array_names(self, run: int) -> list[str]:
        """The distinct array names run ``run`` stored, sorted (no data is read)."""
        rows = self._con.execute(
            "SELECT DISTINCT name FROM arrays WHERE run=? ORDER BY name", (run,)).fetchall()
        return [name for (name,) in rows]

    def array_index(self) -> pd.DataFrame:
        """A summary of the stored arrays: ``[run, step, name, dtype, shape]``, no data."""
        rows = self._con.execute("SELECT run, step, name, npy FROM arrays ORDER BY run, name, step")
        out = []
        for run, step, name, blob in rows:
            arr = _from_npy(blob)
            out.append((run, step, name, str(arr.dtype), "x".join(map(str, arr.shape))))
        return pd.DataFrame(out, columns=["run", "step", "name", "dtype", "shape"])

    def run(self, id_or_key: int | str) -> dict[str, Any] | None:
        """The run with this id (an int) or key (a str) as a dict, or ``None``."""
        column = "key" if isinstance(id_or_key, str) else "id"
        row = self._con.execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {column} = ?", (id_or_key,)
        ).fetchone()
        if row is None:
            return None
        out = dict(zip(_RUN_COLUMNS, row, strict=True))
        for col in ("config", "provenance"):
            out[col] = json.loads(out[col]) if out[col] else {}
        return out

    def status_counts(self) -> dict[str, int]:
        """The number of runs in each status (every status present, zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._con.execute("SELECT status, count(*) FROM runs GROUP BY status"):
            counts[status] = int(n)
        return counts
