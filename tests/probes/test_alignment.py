"""output_gradient_alignment against per-sample summands computed plainly in float64."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import assert_same, fingerprint
from torch import nn

from bnlab.probes.alignment import output_gradient_alignment


def _conv_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 3 * 3, 4),
    ).double()


def _twin_summands(model: nn.Module, x, y, layer: int) -> tuple[np.ndarray, torch.Tensor]:
    """dlogits and every (sample, position) summand of the layer's weight gradient, by loops."""
    m = copy.deepcopy(model)
    store = {}
    m[layer].register_forward_hook(lambda mod, i, o: store.update(u=i[0], out=o))
    logits = m(x)
    logits.retain_grad()
    store["out"].retain_grad()
    F.cross_entropy(logits, y).backward()
    u, d, conv = store["u"].detach(), store["out"].grad, m[layer]
    summands = []
    if isinstance(conv, nn.Linear):
        for b in range(u.shape[0]):
            summands.append(torch.outer(d[b], u[b]))
    else:
        up = F.pad(u, (1, 1, 1, 1))
        for b in range(u.shape[0]):
            for i in range(d.shape[2]):
                for j in range(d.shape[3]):
                    patch = up[b, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]  # (C, 3, 3)
                    summands.append(d[b, :, i, j][:, None, None, None] * patch[None])
    S = torch.stack(summands)  # (S, *weight.shape)
    assert torch.allclose(S.sum(0), conv.weight.grad, atol=1e-12)  # the twin is right
    return logits.grad.numpy(), S


@pytest.mark.parametrize("layer,param", [(0, "0"), (4, "4.weight")], ids=["conv", "linear"])
def test_matches_per_sample_summands(layer: int, param: str) -> None:
    torch.manual_seed(0)
    model = _conv_model().train()
    x, y = torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.randint(0, 4, (5,))
    before = fingerprint(model)
    got = output_gradient_alignment(model, F.cross_entropy, (x, y), param=param)
    assert_same(before, fingerprint(model))
    dlogits, S = _twin_summands(model, x, y, layer)
    assert np.allclose(got["dlogits"], dlogits, rtol=1e-12, atol=1e-15)
    A = (S.sum(0).abs() / S.abs().sum(0)).flatten()
    assert got["param_alignment"]["mean"] == pytest.approx(float(A.mean()), rel=1e-10)
    assert got["param_alignment"]["median"] == pytest.approx(float(A.median()), rel=1e-10)
    agg = float(S.sum(0).abs().sum() / S.abs().sum())
    assert got["param_alignment"]["aggregate"] == pytest.approx(agg, rel=1e-10)
    logit_a = np.abs(dlogits.sum(0)) / np.abs(dlogits).sum(0)
    assert np.allclose(got["logit_alignment"], logit_a, rtol=1e-12)
    assert got["param"] == f"{layer}.weight"


def test_mode_fraction_and_aligned_gradients() -> None:
    """A constant network predicts one class for all: the logit gradients are aligned."""
    model = nn.Sequential(nn.Linear(3, 4)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([0.0, 2.0, 0.0, 0.0]))
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.zeros(10, dtype=torch.long)
    got = output_gradient_alignment(model, F.cross_entropy, (x, y))
    assert got["mode_class"] == 1 and got["mode_fraction"] == 1.0
    assert np.allclose(got["logit_alignment"], 1.0)  # every sample pushes the same way
    assert "param_alignment" not in got


def test_unsupported_parameter_is_a_clear_error() -> None:
    model = _conv_model()
    x, y = torch.randn(2, 2, 6, 6, dtype=torch.float64), torch.randint(0, 4, (2,))
    with pytest.raises(ValueError, match=r"nn\.Linear or a groups=1"):
        output_gradient_alignment(model, F.cross_entropy, (x, y), param="1.weight")


def test_conv1d_with_padding_matches_per_sample_summands() -> None:
    """A Conv1d is read as a Conv2d of height 1: no padding may leak into that height."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4, 4)).double().train()
    x, y = torch.randn(5, 2, 8, dtype=torch.float64), torch.randint(0, 4, (5,))
    got = output_gradient_alignment(model, F.cross_entropy, (x, y), param="0")
    m = copy.deepcopy(model)
    store = {}
    m[0].register_forward_hook(lambda mod, i, o: store.update(u=i[0], out=o))
    logits = m(x)
    store["out"].retain_grad()
    F.cross_entropy(logits, y).backward()
    up, d = F.pad(store["u"].detach(), (1, 1)), store["out"].grad  # (5, 2, 10), (5, 3, 4)
    S = torch.stack([d[b, :, i][:, None, None] * up[b, :, 2 * i : 2 * i + 3][None]
                     for b in range(5) for i in range(4)])  # (20, 3, 2, 3)
    assert torch.allclose(S.sum(0), m[0].weight.grad, atol=1e-12)  # the twin is right
    agg = float(S.sum(0).abs().sum() / S.abs().sum())
    assert got["param_alignment"]["aggregate"] == pytest.approx(agg, rel=1e-10)
    A = (S.sum(0).abs() / S.abs().sum(0)).flatten()
    assert got["param_alignment"]["median"] == pytest.approx(float(A.median()), rel=1e-10)
