"""The small vocabularies every part of bnlab shares, defined once (no imports).

Example:
    >>> from bnlab.names import SCALES
    >>> SCALES
    ('smoke', 'quick', 'paper')
"""

from __future__ import annotations

__all__ = ["DATA", "DEVICES", "EXECUTION_FIELDS", "EXECUTORS", "MAX_WORKERS", "SCALES"]

#: Recipe scales, smallest first (DESIGN.md, "Scales and data").
SCALES: tuple[str, ...] = ("smoke", "quick", "paper")
#: Values of ``--data``: the embedded MNIST-1D adaptation or the paper's dataset.
DATA: tuple[str, ...] = ("mnist1d", "paper")
#: Values of ``--device``.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Values of ``--executor``.
EXECUTORS: tuple[str, ...] = ("serial", "process", "ray")
#: The most worker processes one sweep may start (each holds its own torch, ~0.5 GB).
MAX_WORKERS = 256
#: Config fields that say how a run is executed, not what it computes: never in a run key.
EXECUTION_FIELDS: frozenset[str] = frozenset({"out", "executor", "workers", "progress"})
