"""The small vocabularies every part of bnlab shares, defined once (no imports).

Example:
    >>> from bnlab.names import SCALES
    >>> SCALES
    ('smoke', 'quick', 'paper')
"""

from __future__ import annotations

__all__ = [
    "COMPILE_MODES",
    "DATA",
    "DEVICES",
    "EXECUTION_FIELDS",
    "EXECUTORS",
    "MAX_WORKERS",
    "SCALES",
]

#: Recipe scales, smallest first (DESIGN.md, "Scales and data").
SCALES: tuple[str, ...] = ("smoke", "quick", "paper")
#: Values of ``--data``: the embedded MNIST-1D adaptation or the paper's dataset.
DATA: tuple[str, ...] = ("mnist1d", "paper")
#: Values of ``--device``.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Values of ``--executor``: one run at a time, a pool of processes, several runs
#: interleaved step by step in one process (sharing one GPU; bnlab.sweep.packed), or Ray
#: tasks (bnlab.sweep.ray_executor).
EXECUTORS: tuple[str, ...] = ("serial", "process", "packed", "ray")
#: Values of ``--compile``: eager steps, or each step replayed as a CUDA graph
#: (bnlab.train.graphs).
COMPILE_MODES: tuple[str, ...] = ("none", "graphs")
#: The most worker processes one sweep may start (each holds its own torch, ~0.5 GB).
MAX_WORKERS = 256
#: Config fields that say how a run is executed, not what it computes: never in a run key.
EXECUTION_FIELDS: frozenset[str] = frozenset({"out", "executor", "workers", "progress"})
