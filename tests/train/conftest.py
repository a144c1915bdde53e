"""Fixtures of the training-loop tests (helpers live in _train_helpers.py)."""

import pytest
from _train_helpers import TinyLoader, make_data
from torch import nn


@pytest.fixture
def loader():
    x, y = make_data()
    return TinyLoader(x, y, batch_size=8, seed=3)


@pytest.fixture
def evaluate():
    x, y = make_data(30, seed=1)

    def evaluate(model):
        logits = model(x)
        return {
            "test_loss": nn.functional.cross_entropy(logits, y).item(),
            "test_acc": (logits.argmax(1) == y).float().mean().item(),
        }

    return evaluate
