"""The real files under BNLAB_DATA, checked against the counts the data README states.

Skipped when BNLAB_DATA or the files are absent; never downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bnlab.data import load

pytestmark = pytest.mark.realdata

# Per-class counts of the official splits (MNIST: LeCun et al.; CIFAR-10: 5,000 / 1,000 each).
MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
CIFAR_COUNTS = {"train": [5000] * 10, "test": [1000] * 10}


def _data_dir(file: str) -> Path:
    root = os.environ.get("BNLAB_DATA")
    if not root or not (Path(root) / file).exists():
        pytest.skip(f"needs BNLAB_DATA with {file}")
    return Path(root)


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist(split):
    x, y = load("mnist", split, data_dir=_data_dir("mnist.npz"))
    assert x.shape == (sum(MNIST_COUNTS[split]), 1, 28, 28) and x.dtype == torch.float32
    assert torch.bincount(y, minlength=10).tolist() == MNIST_COUNTS[split]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    if split == "train":  # the well-known normalization constants 0.1307 / 0.3081
        assert abs(float(x.double().mean()) - 0.1307) < 5e-4
        assert abs(float(x.double().std()) - 0.3081) < 5e-4


def test_real_cifar10_test_split():
    x, y = load("cifar10", "test", data_dir=_data_dir("cifar10.npz"))
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.float32
    assert torch.bincount(y, minlength=10).tolist() == CIFAR_COUNTS["test"]
    # Channel means of the original test set, R > G > B (about 126.0, 123.7, 114.9 / 255).
    means = x.double().mean((0, 2, 3)) * 255
    torch.testing.assert_close(
        means, torch.tensor([126.0, 123.7, 114.9]).double(), atol=0.5, rtol=0
    )
