"""The sink a run writes its measurements through.

The training loop logs through ``log_metrics`` / ``log_array`` / ``flush``
(docs/internals.md, "train"). :class:`RunContext` buffers those rows in memory and writes
them in one transaction per flush, so the store is touched once per checkpoint interval
rather than once per step. The loop flushes before each checkpoint, so every row with
``step < N`` is stored when checkpoint N exists; rows buffered after it may be lost in a
crash, and are re-measured on resume.

At each checkpoint the loop also asks :meth:`RunContext.checkpoint_meta` what to write
into ``latest.json``: how many rows of the run the store holds below step N. A resume
compares that with the store, so a database lost or replaced since then makes the run
start again from scratch instead of resuming with a hole in its rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bnlab.results import Store

__all__ = ["RunContext"]

# Flush on our own past this many buffered values, to bound memory on long runs.
_MAX_BUFFERED_METRICS = 50_000
_MAX_BUFFERED_ARRAY_BYTES = 64 * 2**20


class RunContext:
    """What ``run_fn(spec, ctx)`` gets: a buffered sink into the store and a checkpoint dir.

    Attributes:
        run_id: the run's id in the store.
        key: the run key.
        checkpoint_dir: ``<out>/checkpoints/<key[:16]>``, created; the training loop keeps
            its checkpoints and ``latest.json`` here.
        resumed_from: the checkpoint step this attempt resumes from, or ``None``.
        progress: whether the run may draw its own progress bar (serial sweeps on a
            terminal only).

    Example:
        >>> ctx.log_metrics(100, {"train_loss": 0.31, "lr": 0.1})   # doctest: +SKIP
        >>> ctx.log_array(100, "sigmoid_input_pct", pct)             # doctest: +SKIP
        >>> ctx.flush()                                              # doctest: +SKIP
    """

    def __init__(
        self, store: Store, run_id: int, key: str, checkpoint_dir: Path, resumed_from: int | None
    ) -> None:
        self.run_id = run_id
        self.key = key
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.resumed_from = resumed_from
        self.progress = False
        self._store = store
        self._metrics: list[tuple[int, str, float]] = []
        self._arrays: list[tuple[int, str, np.ndarray]] = []
        self._array_bytes = 0

    def add_provenance(self, **fields: Any) -> None:
        """Record facts only the run knows (device, threads) in its provenance."""
        self._store.add_provenance(self.run_id, **fields)

    def log_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        """Buffer scalar metrics measured at ``step`` (``name -> float``).

        Values may be anything ``float()`` accepts (Python or numpy scalars, 0-d tensors).
        """
        step = int(step)
        self._metrics.extend((step, str(name), float(v)) for name, v in values.items())
        if len(self._metrics) >= _MAX_BUFFERED_METRICS:
            self.flush()

    def log_array(self, step: int, name: str, array: Any) -> None:
        """Buffer a copy of ``array`` (anything ``np.asarray`` accepts) measured at ``step``."""
        copy = np.array(array, copy=True)
        self._arrays.append((int(step), str(name), copy))
        self._array_bytes += copy.nbytes
        if self._array_bytes >= _MAX_BUFFERED_ARRAY_BYTES:
            self.flush()

    def checkpoint_meta(self, step: int) -> dict[str, Any]:
        """The store's side of checkpoint ``step``, for ``latest.json``.

        Flushes, copies the WAL into the main database file (so rows counted here survive
        the loss of the ``-wal`` file), checks that the database is still the one this run
        opened, and counts the run's rows with ``step < step``.

        Raises:
            bnlab.results.StoreLostError: the database was deleted or replaced meanwhile.
        """
        self.flush()
        self._store.sync()
        self._store.check_intact(self.run_id)
        counts = self._store.row_counts(self.run_id, step)
        return {"stored": {"metrics": counts.metrics, "arrays": counts.arrays}}

    def flush(self) -> None:
        """Write the buffered rows to the store (one transaction per table)."""
        if self._metrics:
            self._store.log_metrics(self.run_id, self._metrics)
            self._metrics = []
        if self._arrays:
            self._store.log_arrays(self.run_id, self._arrays)
            self._arrays, self._array_bytes = [], 0

    @property
    def pending_rows(self) -> int:
        """The number of buffered rows not yet written."""
        return len(self._metrics) + len(self._arrays)
