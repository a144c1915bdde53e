"""gradient_stats against plain autograd and numpy/scipy moments."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import assert_same, fingerprint
from scipy import stats
from torch import nn

from bnlab.probes.gradients import gradient_stats


def _model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).double()


def test_stats_match_autograd_and_scipy() -> None:
    torch.manual_seed(0)
    model = _model().train()
    x, y = torch.randn(6, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (6,))
    before = fingerprint(model)
    got = gradient_stats(model, F.cross_entropy, (x, y), [1, "4"], bins=7)
    assert_same(before, fingerprint(model))
    twin = copy.deepcopy(model)
    F.cross_entropy(twin(x), y).backward()
    for key, grad in [("1", twin[0].weight.grad), ("4", twin[4].weight.grad)]:
        v = grad.flatten().numpy()
        assert got[key]["norm"] == pytest.approx(float(np.linalg.norm(v)), rel=1e-12)
        assert got[key]["std"] == pytest.approx(float(np.std(v)), rel=1e-10)
        assert got[key]["kurtosis"] == pytest.approx(float(stats.kurtosis(v)), rel=1e-8)
        counts, edges = np.histogram(v, bins=7)
        assert np.array_equal(got[key]["hist"], counts)
        assert np.allclose(got[key]["bin_edges"], edges, rtol=1e-12)


def test_kurtosis_of_gaussian_and_heavy_tails() -> None:
    """Sanity of the summary Bjorck's histograms need: ≈0 for Gaussian, > 0 heavy-tailed."""
    from bnlab.probes.gradients import _moments

    g = torch.Generator().manual_seed(1)
    gauss = torch.randn(200_000, generator=g, dtype=torch.float64)
    heavy = gauss * torch.randn(200_000, generator=g, dtype=torch.float64).exp()
    assert abs(_moments(gauss, 10)["kurtosis"]) < 0.05
    assert _moments(heavy, 10)["kurtosis"] > 5
