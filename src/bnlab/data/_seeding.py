"""Derive independent generator seeds from tuples of integers (pure functions)."""

from __future__ import annotations

import numpy as np
import torch

_STREAMS = {"train": 1, "test": 2}


def derive_seed(*keys: int) -> int:
    """Map integer keys to a 63-bit seed; distinct key tuples give unrelated streams."""
    # SeedSequence hashes its entropy so (0, 1) and (1, 0) are unrelated, unlike seed + e.
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFFFFFFFFFF for k in keys]).generate_state(
        2, dtype=np.uint32
    )
    return (int(state[0]) << 31) ^ int(state[1])


def generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a torch generator on ``device`` seeded from ``keys``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*keys))
    return gen


def split_stream(split: str) -> int:
    """Return the stream number of a split name; the caller validates the name first."""
    return _STREAMS[split]
