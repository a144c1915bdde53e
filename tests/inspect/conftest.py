"""Fixtures for the inspect tests: the probe tests' zoo of users' blocks, small data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_ZOO = Path(__file__).resolve().parents[1] / "probes" / "_zoo.py"


def _load_zoo():
    spec = importlib.util.spec_from_file_location("bnlab_tests_inspect_zoo", _ZOO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def zoo():
    """tests/probes/_zoo.py: pre-activation, MobileNetV2, DenseNet, EfficientNet blocks."""
    return _load_zoo()


@pytest.fixture(scope="session")
def data():
    """64 inputs (3, 8, 8) with 4 classes, float32, and 32 held-out ones."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 8, 8, generator=gen)
    y = torch.randint(0, 4, (96,), generator=gen)
    return (x[:64], y[:64]), (x[64:], y[64:])


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread_in_module_fixtures():
    """One torch thread for the module-scoped runs too (the suite's autouse fixture is
    function-scoped, so it starts after them; two threads on a busy 2-core machine are
    many times slower than one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
