"""The devices a device-parity test runs on: the CPU always, CUDA when torch sees one.

A CUDA case carries the ``cuda`` marker (``pytest -m cuda`` selects exactly them) and is
skipped with the reason where there is no GPU, as in CI.
"""

from __future__ import annotations

import pytest
import torch

NO_CUDA = "needs a CUDA GPU: torch.cuda.is_available() is False (run on a GPU machine)"

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)],
    ),
]
