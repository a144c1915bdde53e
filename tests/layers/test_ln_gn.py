"""``ln`` and ``gn`` against a float64 per-sample reference and torch's GroupNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab.layers import create_norm
from bnlab.layers.groupnorm import default_num_groups


@pytest.mark.parametrize("channels,groups", [(1, 1), (7, 7), (48, 24), (64, 32), (66, 22)])
def test_default_groups_is_largest_divisor_up_to_32(channels, groups):
    assert default_num_groups(channels) == groups
    assert create_norm("gn", channels).num_groups == groups


def _per_sample_reference(x, groups, eps):
    xg = x.double().reshape(x.shape[0], groups, -1)
    mu = xg.mean(-1, keepdim=True)
    var = ((xg - mu) ** 2).mean(-1, keepdim=True)
    return ((xg - mu) / torch.sqrt(var + eps)).reshape(x.shape)


@pytest.mark.parametrize(
    "shape", [(3, 6), (2, 6, 5), (2, 6, 3, 4)], ids=["rank2", "rank3", "rank4"]
)
@pytest.mark.parametrize("name,groups", [("ln", 1), ("gn", 6)])
def test_matches_per_sample_reference(name, groups, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    norm = create_norm(name, 6, dtype=torch.float64)
    torch.testing.assert_close(norm(x), _per_sample_reference(x, groups, 1e-5))


def test_gn_matches_torch_with_affine():
    torch.manual_seed(1)
    ours, ref = create_norm("gn", 8, num_groups=4), nn.GroupNorm(4, 8)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
        ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 5)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("spatial", [(), (1,), (1, 1)], ids=["NC", "NCL", "NCHW"])
@pytest.mark.parametrize("name,channels", [("ln", 1), ("gn", 3)])
def test_one_value_per_group_gives_beta(name, channels, spatial, train):
    # One sample, one value per group (ln on one channel, gn with a group per channel):
    # x = μ, so y = β and dL/dx = 0. torch's F.group_norm raised "when training" here,
    # in eval mode too.
    shape = (1, channels, *spatial)
    norm = create_norm(name, channels, dtype=torch.float64).train(train)
    with torch.no_grad():
        norm.bias.uniform_(-1, 1)
    x = (torch.randn(*shape, dtype=torch.float64) * 5).requires_grad_()
    y = norm(x)
    beta = norm.bias.detach().view(1, channels, *spatial)
    torch.testing.assert_close(_per_sample_reference(x.detach(), channels, 1e-5), 0 * x.detach())
    torch.testing.assert_close(y.detach(), beta)
    y.sum().backward()
    assert (x.grad == 0).all()


def test_gn_rejects_non_divisor():
    with pytest.raises(ValueError, match="num_groups must divide"):
        create_norm("gn", 6, num_groups=4)
