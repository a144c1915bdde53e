"""``bn`` and ``bn_reference`` against ``torch.nn.BatchNorm1d/2d`` and Ioffe & Szegedy §3.3."""

from __future__ import annotations

import pytest
import torch
from _layers_helpers import bn_reference_loop
from torch import nn

from bnlab.layers import create_norm

CASES = {
    "bn1d_NC": (nn.BatchNorm1d, (16, 5)),
    "bn1d_NCL": (nn.BatchNorm1d, (8, 5, 7)),
    "bn2d_NCHW": (nn.BatchNorm2d, (4, 5, 3, 6)),
}
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _pair(name, torch_cls, momentum):
    torch.manual_seed(0)
    ours = create_norm(name, 5, momentum=momentum)
    ref = torch_cls(5, momentum=momentum)
    with torch.no_grad():
        for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
            p.uniform_(0.5, 1.5)
            q.copy_(p)
    return ours, ref


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum0.1", "momentum_None"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("name", ["bn", "bn_reference"])
def test_matches_torch_batchnorm(name, case, momentum):
    torch_cls, shape = case
    ours, ref = _pair(name, torch_cls, momentum)
    for step in range(3):
        x = (torch.randn(*shape) * (step + 1) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        g = torch.randn(*shape)
        y, y_ref = ours(x), ref(x_ref)
        torch.testing.assert_close(y, y_ref, **TOL)
        y.backward(g)
        y_ref.backward(g)
        torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **TOL)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **TOL)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, **TOL)
    torch.testing.assert_close(ours.running_var, ref.running_var, **TOL)
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 3
    x = torch.randn(*shape)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), **TOL)


@pytest.mark.parametrize("name", ["bn", "bn_reference"])
def test_float64_loop_reference_and_unbiased_running_var(name):
    torch.manual_seed(1)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    norm = create_norm(name, 3, momentum=1.0, dtype=torch.float64)
    torch.testing.assert_close(norm(x), bn_reference_loop(x, 1e-5), rtol=1e-12, atol=1e-12)
    cols = x.transpose(0, 1).reshape(3, -1)
    m = cols.shape[1]
    unbiased = ((cols - cols.mean(1, keepdim=True)) ** 2).sum(1) / (m - 1)
    torch.testing.assert_close(norm.running_var, unbiased, rtol=1e-12, atol=1e-12)


def test_reference_backward_matches_bn_in_float64():
    torch.manual_seed(2)
    x = torch.randn(6, 4, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 4, 3, dtype=torch.float64)
    grads = []
    for name in ["bn", "bn_reference"]:
        norm = create_norm(name, 4, dtype=torch.float64)
        with torch.no_grad():
            norm.weight.copy_(torch.linspace(0.5, 2.0, 4))
        grads.append(torch.autograd.grad(norm(x), (x, norm.weight, norm.bias), g))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scale", [0.1, 7.0], ids=["a0.1", "a7"])
@pytest.mark.parametrize("name", ["bn", "bn_reference"])
def test_scale_invariance_and_inverse_gradient_scaling(name, scale):
    """Ioffe & Szegedy §3.3: BN((aW)u) = BN(Wu), d/du equal, d/d(aW) = (1/a) d/dW."""
    torch.manual_seed(3)
    u = torch.randn(32, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6, dtype=torch.float64)
    norm = create_norm(name, 4, dtype=torch.float64, eps=1e-14)  # ~0: exact invariance
    g = torch.randn(32, 4, dtype=torch.float64)
    outs, grads = [], []
    for weight in (w.clone().requires_grad_(), (scale * w).requires_grad_()):
        y = norm(u @ weight.T)
        outs.append(y)
        grads.append(torch.autograd.grad(y, (u, weight), g))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(grads[1][1], grads[0][1] / scale, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_in_half_precision_matches_float64_on_small_and_large_variance(dtype):
    # A constant channel (σ² = 0: the §3 backward's (σ² + eps)^(-3/2) = 3.2e7 overflows
    # float16) and a channel of std 150 (squares (x − μ)² up to ~2e5 > 65504): both need float32
    # statistics. The reference: torch's float64 batch norm on the same rounded input.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, generator=gen, dtype=torch.float64)
    x[:, 0] = 2.0
    x[:, 2] = x[:, 2] * 150 + 100
    x = x.to(dtype)
    g = torch.randn(8, 3, 5, generator=gen, dtype=torch.float64)
    norm = create_norm("bn_reference", 3, dtype=dtype)
    xh = x.detach().requires_grad_()
    y = norm(xh)
    y.backward(g.to(dtype))
    x64 = x.double().requires_grad_()
    y64 = torch.nn.functional.batch_norm(x64, None, None, training=True, eps=norm.eps)
    y64.backward(g)
    assert y.dtype == dtype
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.float16 else {"atol": 1e-1, "rtol": 1e-1}
    torch.testing.assert_close(y.double(), y64, **tol)
    torch.testing.assert_close(xh.grad.double(), x64.grad, **tol)
    torch.testing.assert_close(norm.running_var.double(), 0.9 + 0.1 * x64.var((0, 2)), **tol)
