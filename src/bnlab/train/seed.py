"""Seeding: one call makes a CPU run deterministic."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything"]


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs and fix torch's thread count.

    On CPU a run is bit-reproducible for a given ``(seed, threads)``: reductions split
    their work by thread, so a different thread count may change the last bits. That is
    why the thread count is part of a run's key (DESIGN.md, Contracts: Runs).

    Args:
        seed: a non-negative integer.
        threads: the number of intra-op threads, at least 1.

    Raises:
        ValueError: for a negative seed or fewer than one thread.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
