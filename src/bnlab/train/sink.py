"""Sinks: where the training loop writes its metrics and arrays.

A sink has ``log_metrics(step, values)``, ``log_array(step, name, array)`` and ``flush()``
(docs/internals.md, train). A sink may also have ``checkpoint_meta(step) -> dict``: the
loop calls it after the flush of each checkpoint and writes what it returns into
``latest.json`` (the sweep's sink records how many rows it holds there). The results
store provides the real sink; :class:`MemorySink` keeps everything in lists, for notebooks
and tests.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["MemorySink", "NullSink", "Sink"]


class Sink(Protocol):
    """What the loop writes to. ``flush()`` is called before every checkpoint."""

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Store float metrics measured at ``step``."""

    def log_array(self, step: int, name: str, array: np.ndarray) -> None:
        """Store one array measured at ``step``."""

    def flush(self) -> None:
        """Make everything logged so far durable."""


class NullSink:
    """Discard everything (the default when no sink is given)."""

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Discard."""

    def log_array(self, step: int, name: str, array: np.ndarray) -> None:
        """Discard."""

    def flush(self) -> None:
        """Nothing to flush."""


class MemorySink:
    """Keep every row in memory.

    Attributes:
        metrics: ``(step, name, value)`` rows in logging order.
        arrays: ``(step, name, array)`` rows in logging order.
        flushes: how many times :meth:`flush` was called.
    """

    def __init__(self) -> None:
        self.metrics: list[tuple[int, str, float]] = []
        self.arrays: list[tuple[int, str, np.ndarray]] = []
        self.flushes = 0

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Append one row per value."""
        self.metrics.extend((int(step), name, float(v)) for name, v in values.items())

    def log_array(self, step: int, name: str, array: np.ndarray) -> None:
        """Append a copy of ``array``."""
        self.arrays.append((int(step), name, np.array(array, copy=True)))

    def flush(self) -> None:
        """Count the call."""
        self.flushes += 1

    def drop_from(self, step: int) -> None:
        """Delete rows with ``step >= step``, as the store does when a run resumes."""
        self.metrics = [r for r in self.metrics if r[0] < step]
        self.arrays = [r for r in self.arrays if r[0] < step]
