"""The batched ghost BN / batch renorm / ℓp paths against float64 references, on both the
CPU's and the CUDA's choice of reductions (``_grouped.MOMENTS_BY_DEVICE``), forced on CPU."""

from __future__ import annotations

from types import MappingProxyType

import pytest
import torch
from torch import nn

from bnlab.layers import _grouped, create_norm

IMPLS = ["two_pass", "welford"]


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    """Run the test with the CPU's moments (two_pass) or the CUDA's (welford)."""
    monkeypatch.setattr(_grouped, "MOMENTS_BY_DEVICE", MappingProxyType({"cpu": request.param}))
    return request.param


def _moments_loop(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 mean and biased variance per (group, channel), one group at a time."""
    means, variances = [], []
    for chunk in x.double().chunk(groups):
        cols = chunk.transpose(0, 1).reshape(chunk.shape[1], -1)  # (C, M)
        mu = cols.mean(1)
        means.append(mu)
        variances.append(((cols - mu[:, None]) ** 2).mean(1))
    return torch.stack(means), torch.stack(variances)


@pytest.mark.parametrize("impl_name", IMPLS)
@pytest.mark.parametrize(
    "shape,groups",
    [((8, 3), 2), ((12, 4, 5), 3), ((8, 2, 6, 7), 4), ((8, 2, 6, 7), 1)],
    ids=["NC", "NCL", "NCHW", "NCHW_one_group"],
)
@pytest.mark.parametrize("offset", [0.0, 50.0], ids=["mean0", "mean50"])
def test_moments_match_float64_loop(impl_name, shape, groups, offset, monkeypatch):
    monkeypatch.setattr(_grouped, "_SLICE_BYTES", 64)  # many slices in the two-pass loop
    torch.manual_seed(0)
    x = torch.randn(*shape) * 0.5 + offset
    mean, var = _grouped.moments(_grouped.grouped(x, groups), impl=impl_name)
    want_mean, want_var = _moments_loop(x, groups)
    torch.testing.assert_close(mean.double(), want_mean, rtol=1e-6, atol=1e-5)
    # two-pass and Welford both avoid E[x²] − μ²: at mean 50 that would lose ~4 digits
    torch.testing.assert_close(var.double(), want_var, rtol=1e-4, atol=1e-6)


def test_grouped_is_a_view_in_both_standard_layouts():
    contiguous = torch.zeros(4, 3, 2, 5)
    for x in (contiguous, contiguous.clone().to(memory_format=torch.channels_last)):
        v = _grouped.grouped(x, 2)
        assert v.shape == (2, 2, 3, 10)
        v.fill_(1.0)
        assert bool((x == 1).all())


def _ghost_reference(x, g, size, weight, bias, eps):
    """float64 BN on each virtual batch with plain autograd; returns y, dx, dγ, dβ."""
    xd = x.double().requires_grad_()
    w = weight.double().requires_grad_()
    b = bias.double().requires_grad_()
    outs = []
    for chunk in xd.split(size):
        dims = [0, *range(2, x.dim())]
        mu = chunk.mean(dims, keepdim=True)
        var = ((chunk - mu) ** 2).mean(dims, keepdim=True)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        outs.append((chunk - mu) / torch.sqrt(var + eps) * w.view(shape) + b.view(shape))
    y = torch.cat(outs)
    grads = torch.autograd.grad(y, (xd, w, b), g.double())
    return (y.detach(), *grads)


@pytest.mark.parametrize(
    "n,size,layout",
    [(32, 8, "contiguous"), (30, 8, "contiguous"), (30, 8, "channels_last"), (5, 8, "contiguous")],
    ids=["equal_batches", "remainder", "remainder_channels_last", "one_small_batch"],
)
def test_ghost_matches_float64_reference(impl, n, size, layout):
    torch.manual_seed(1)
    x = torch.randn(n, 3, 4, 4) * 2 + 3
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn(n, 3, 4, 4)
    norm = create_norm("ghost_bn", 3, virtual_batch_size=size, momentum=1.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    leaf = x.detach().requires_grad_()
    y = norm(leaf)
    y.backward(g)
    want = _ghost_reference(x, g, size, norm.weight.detach(), norm.bias.detach(), norm.eps)
    got = (y.detach(), leaf.grad, norm.weight.grad, norm.bias.grad)
    for name, a, b in zip(("y", "dx", "dgamma", "dbeta"), got, want, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5, msg=name)
    # momentum 1: the running stats are the size-weighted chunk means / unbiased variances
    chunks = x.double().split(size)
    m = [c.numel() // 3 for c in chunks]
    means = [c.mean((0, 2, 3)) for c in chunks]
    unb = [c.transpose(0, 1).reshape(3, -1).var(1) for c in chunks]
    w = [c.shape[0] / n for c in chunks]
    assert all(mi > 1 for mi in m)
    want_mean = sum(a * b for a, b in zip(w, means, strict=True))
    want_var = sum(a * b for a, b in zip(w, unb, strict=True))
    torch.testing.assert_close(norm.running_mean.double(), want_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var.double(), want_var, rtol=1e-5, atol=1e-6)


def test_ghost_gradcheck_on_both_paths(impl):
    torch.manual_seed(2)
    norm = create_norm("ghost_bn", 2, virtual_batch_size=3, dtype=torch.float64)
    x = torch.randn(7, 2, 3, dtype=torch.float64, requires_grad=True)  # batches 3, 3, 1·3 values
    assert torch.autograd.gradcheck(lambda t: norm(t), (x,), atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 30.0], ids=["mean0", "mean30"])
def test_batch_renorm_matches_float64_twin(impl, offset):
    torch.manual_seed(3)
    x = torch.randn(16, 3, 5, 5) * 2 + offset
    g = torch.randn(16, 3, 5, 5)
    ours = create_norm("batch_renorm", 3, r_max=2.0, d_max=1.0)
    twin = create_norm("batch_renorm", 3, r_max=2.0, d_max=1.0, dtype=torch.float64)
    for norm in (ours, twin):
        with torch.no_grad():
            norm.running_mean.copy_(torch.tensor([offset + 0.5, offset - 3.0, offset]))
            norm.running_var.copy_(torch.tensor([1.0, 9.0, 4.0]))
    grads = []
    for norm, inp in ((ours, x), (twin, x.double())):
        leaf = inp.detach().requires_grad_()
        y = norm(leaf)
        y.backward(g.to(inp.dtype))
        grads.append((y.detach().double(), leaf.grad.double(), norm.weight.grad.double()))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.running_var.double(), twin.running_var, rtol=1e-5, atol=1e-5)


def test_batch_renorm_uses_the_running_stats_before_this_step():
    """r and d come from the running buffers as they were *before* this batch moved them."""
    x = torch.tensor([[0.0], [4.0]])  # μ_B 2, σ_B 2
    norm = create_norm("batch_renorm", 1, eps=1e-12, momentum=0.5)
    y = norm(x)  # running (0, 1) before: r = 2, d = 2 -> y = x̂·2 + 2 = [0, 4]
    torch.testing.assert_close(y, torch.tensor([[0.0], [4.0]]))
    bn = nn.BatchNorm1d(1, eps=1e-12, momentum=0.5)
    bn(x)
    torch.testing.assert_close(norm.running_mean, bn.running_mean)
    torch.testing.assert_close(norm.running_var, bn.running_var)
