"""Export a results store to flat files for tools that do not read SQLite.

``bnlab export`` calls :func:`export`. It writes three tables: ``runs`` (the run table,
with ``config`` and ``provenance`` as JSON text and the flattened ``cfg.<field>``
columns), ``metrics`` (the long table ``run, step, name, value``) and ``arrays`` (a
summary, ``run, step, name, dtype, shape``: the array data stay in the database).
``--format tensorboard`` writes event files instead (:mod:`bnlab.results.tensorboard`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bnlab.errors import UserError
from bnlab.results.store import DB_NAME, Store
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
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def export(out_dir: str | Path, format: str = "csv", dest: str | Path | None = None) -> list[Path]:
    """Write the runs, metrics and arrays-summary tables of ``<out_dir>/bnlab.db``.

    With ``format="tensorboard"``, write one TensorBoard run folder per run instead
    (:func:`bnlab.results.tensorboard.write_tensorboard`) and return those folders.

    Args:
        out_dir: the output directory holding ``bnlab.db``.
        format: ``"csv"``, ``"parquet"`` or ``"tensorboard"``.
        dest: the directory to write ``runs.<ext>``, ``metrics.<ext>`` and
            ``arrays.<ext>`` into (created if missing); default ``<out_dir>/export``.

    Returns:
        The written paths, in the order runs, metrics, arrays.

    Raises:
        UserError: for an unknown format.
        FileNotFoundError: if ``out_dir`` holds no results database.

    Example:
        >>> export("bnlab_out", "parquet", "tables")  # doctest: +SKIP
        [PosixPath('tables/runs.parquet'), ...]
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    db = Path(out_dir) / DB_NAME
    if not db.is_file():
        raise FileNotFoundError(f"no results database at {db}; run a sweep with --out {out_dir}")
    target = Path(dest) if dest is not None else Path(out_dir) / "export"
    target.mkdir(parents=True, exist_ok=True)
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
