"""Export a results store to flat files for tools that do not read SQLite.

``bnlab export`` calls :func:`export`. It writes three tables: ``runs`` (the run table,
with ``config`` and ``provenance`` as JSON text and the flattened ``cfg.<field>``
columns), ``metrics`` (the long table ``run, step, name, value``) and ``arrays`` (a
summary, ``run, step, name, dtype, shape``: the array data stay in the database).
``--format tensorboard`` writes event files instead (:mod:`bnlab.results.tensorboard`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from bnlab.errors import UserError
from bnlab.results.store import DB_NAME, Store, StoreError, StorePathError
from bnlab.results.tensorboard import write_tensorboard

__all__ = ["FORMATS", "export"]

FORMATS = ("csv", "parquet", "tensorboard")


def _jsonable_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Columns holding dicts or lists become JSON text, so CSV and Parquet can hold them."""
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, dict | list | tuple)).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True, default=str))
    return out


def _write(df: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write one table to a temporary file and move it onto ``path`` (never half a table)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}; free some space or "
                         "choose another --dest") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _target(dest: Path) -> Path:
    """``dest`` as a folder to write into: created if missing, never a file."""
    for parent in (dest, *dest.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == dest else f"is under {parent}, which is a file"
            raise StorePathError(f"--dest {dest} {where}; give a folder to write the tables into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create --dest {dest}: {exc.strerror or exc}; "
                         "choose a writable place") from exc
    return dest


def export(out_dir: str | Path, format: str = "csv", dest: str | Path | None = None) -> list[Path]:
    """Write the runs, metrics and arrays-summary tables of ``<out_dir>/bnlab.db``.

    With ``format="tensorboard"``, write one TensorBoard run folder per run instead
    (:func:`bnlab.results.tensorboard.write_tensorboard`) and return those folders.

    Args:
        out_dir: the output directory holding ``bnlab.db``.
        format: ``"csv"``, ``"parquet"`` or ``"tensorboard"``.
        dest: the directory to write ``runs.<ext>``, ``metrics.<ext>`` and
            ``arrays.<ext>`` into (created if missing); default ``<out_dir>/export``.

    Each table is written to a temporary file and renamed, so an existing export in
    ``dest`` is replaced whole or left as it was.

    Returns:
        The written paths, in the order runs, metrics, arrays.

    Raises:
        UserError: for an unknown format, an ``out_dir`` without a results database, or a
            ``dest`` that is (under) a file.
        bnlab.results.StoreError: if the database cannot be read or ``dest`` written.

    Example:
        >>> export("bnlab_out", "parquet", "tables")  # doctest: +SKIP
        [PosixPath('tables/runs.parquet'), ...]
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    db = Path(out_dir) / DB_NAME
    if not db.is_file():
        raise UserError(f"no results in {out_dir} (no {DB_NAME}); run `bnlab run RECIPE "
                        f"--out {out_dir}` first or pass the right --out")
    target = _target(Path(dest) if dest is not None else Path(out_dir) / "export")
    with Store(out_dir) as store:
        if format == "tensorboard":
            return write_tensorboard(store, target)
        tables: dict[str, Any] = {
            "runs": _jsonable_columns(store.runs()),
            "metrics": store.metrics(),
            "arrays": store.array_index(),
        }
    written = []
    for name, df in tables.items():
        path = target / f"{name}.{format}"
        _write(df, path, format)
        written.append(path)
    return written
