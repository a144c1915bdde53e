"""Hand-computed tiny cases: ``l1``/``l2``/``linf`` (I1, I2), ``ghost_bn``, ``batch_renorm``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnlab.layers import create_norm

# One channel, values 1, 2, 3, 6: mean 3, centred -2, -1, 0, 3.
X = torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64).view(4, 1)
CENTRED = torch.tensor([-2.0, -1.0, 0.0, 3.0], dtype=torch.float64).view(4, 1)
EPS = 1e-12
# scale s by hand: I1 from |1|, |2|, |3|, |6|; I2 from |-2|, |-1|, |0|, |3|
LP_SCALES = {
    ("l1", False): 12 / 4, ("l2", False): math.sqrt(50 / 4), ("linf", False): 6.0,
    ("l1", True): 6 / 4, ("l2", True): math.sqrt(14 / 4), ("linf", True): 3.0,
}  # fmt: skip


@pytest.mark.parametrize(
    "name,centered", list(LP_SCALES), ids=[f"{n}-{'I2' if c else 'I1'}" for n, c in LP_SCALES]
)
def test_lp_hand_computed(name, centered):
    norm = create_norm(name, 1, centered=centered, eps=EPS, momentum=1.0, dtype=torch.float64)
    s = LP_SCALES[(name, centered)]
    torch.testing.assert_close(norm(X), CENTRED / s, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(norm.running_mean, torch.tensor([3.0], dtype=torch.float64))
    torch.testing.assert_close(norm.running_var, torch.tensor([s * s], dtype=torch.float64))
    torch.testing.assert_close(norm.eval()(X), CENTRED / s, rtol=1e-10, atol=1e-10)
    assert norm.absorbs_bias is centered


def _lp_autograd_reference(x, p, centered, eps):
    """Plain autograd of the definition, per channel over every dim but 1."""
    dims = [0, *range(2, x.dim())]
    mu = x.mean(dims, keepdim=True)
    z = x - mu if centered else x
    if math.isinf(p):
        s = z.abs().amax(dims, keepdim=True)
    else:
        s = z.abs().pow(p).mean(dims, keepdim=True) ** (1 / p)
    return (x - mu) / torch.sqrt(s * s + eps)


@pytest.mark.parametrize("centered", [False, True], ids=["I1", "I2"])
@pytest.mark.parametrize("name,p", [("l1", 1.0), ("l2", 2.0), ("linf", math.inf)])
def test_lp_closed_form_backward_matches_autograd(name, p, centered):
    torch.manual_seed(0)
    x = (torch.randn(5, 3, 4, dtype=torch.float64) + 0.7).requires_grad_()
    g = torch.randn(5, 3, 4, dtype=torch.float64)
    norm = create_norm(name, 3, centered=centered, affine=False, dtype=torch.float64)
    (ours,) = torch.autograd.grad(norm(x), x, g)
    (ref,) = torch.autograd.grad(_lp_autograd_reference(x, p, centered, 1e-5), x, g)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("centered", [False, True], ids=["I1", "I2"])
@pytest.mark.parametrize("name,p", [("l1", 1.0), ("l2", 2.0), ("linf", math.inf)])
def test_lp_in_half_precision_matches_float64_for_values_near_a_thousand(name, p, centered, dtype):
    # s ~ 1e3: s² (and for l2 Σz²) overflows float16 (65504); the old code formed them in
    # the input dtype and returned 0. Output, dL/dx (fast and create_graph backward) and
    # dL/dγ, dL/dβ against the float64 definition on the same rounded input.
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(8, 3, 5, generator=gen) * 1e3 + 1e3).to(dtype)
    g = torch.randn(8, 3, 5, generator=gen)
    norm = create_norm(name, 3, centered=centered, dtype=dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    w64, b64 = (t.detach().double().requires_grad_() for t in (norm.weight, norm.bias))
    x64 = x.double().requires_grad_()
    y64 = _lp_autograd_reference(x64, p, centered, norm.eps) * w64.view(1, 3, 1) + b64.view(
        1, 3, 1
    )
    ref = torch.autograd.grad(y64, (x64, w64, b64), g.double())
    xh = x.detach().requires_grad_()
    y = norm(xh)
    tol = {"atol": 3e-2, "rtol": 3e-2} if dtype == torch.float16 else {"atol": 1e-1, "rtol": 1e-1}
    torch.testing.assert_close(y.double(), y64.detach(), **tol)
    for create_graph in (False, True):
        grads = torch.autograd.grad(y, (xh, norm.weight, norm.bias), g.to(dtype),
                                    retain_graph=True, create_graph=create_graph)  # fmt: skip
        for ours, theirs in zip(grads, ref, strict=True):
            assert ours.dtype == dtype
            # dL/dx is O(1/s) = 1e-3: compare relative to its largest entry
            scale = float(theirs.abs().max())
            torch.testing.assert_close(ours.double() / scale, theirs / scale, **tol)


def test_l2_centred_equals_bn():
    torch.manual_seed(1)
    x = torch.randn(6, 3, 5)
    l2, bn = create_norm("l2", 3, centered=True), nn.BatchNorm1d(3)
    torch.testing.assert_close(l2(x), bn(x))


def test_l1_uncentred_is_not_shift_invariant():
    x = torch.randn(8, 2)
    l1 = create_norm("l1", 2)
    assert not torch.allclose(l1(x), l1(x + 5.0))


# -- ghost_bn -------------------------------------------------------------------------------


def test_ghost_hand_computed():
    # chunks [0, 2] (mean 1, var 1, unbiased 2) and [10, 14] (mean 12, var 4, unbiased 8)
    x = torch.tensor([0.0, 2.0, 10.0, 14.0], dtype=torch.float64).view(4, 1)
    norm = create_norm(
        "ghost_bn", 1, virtual_batch_size=2, eps=EPS, momentum=1.0, dtype=torch.float64
    )
    expected = torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64).view(4, 1)
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm.running_mean, torch.tensor([6.5], dtype=torch.float64))
    torch.testing.assert_close(norm.running_var, torch.tensor([5.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ghost_in_half_precision_matches_float64_on_a_constant_channel(dtype):
    # Virtual batches of 4 (and a remainder of 2), channel 1 constant at 15: in half
    # precision the old backward's Σg·x − μΣg kept its rounding error, times 1/eps, and
    # the gradient was NaN. Reference: torch's float64 batch norm per virtual batch.
    gen = torch.Generator().manual_seed(1)
    x = ((torch.rand(10, 3, 4, generator=gen, dtype=torch.float64) * 2 - 1) * 15).to(dtype)
    x[:, 1] = 15.0
    g = torch.rand(10, 3, 4, generator=gen, dtype=torch.float64) * 2 - 1
    norm = create_norm("ghost_bn", 3, virtual_batch_size=4, dtype=dtype)
    xh = x.detach().requires_grad_()
    y = norm(xh)
    y.backward(g.to(dtype))
    x64 = x.double().requires_grad_()
    y64 = torch.cat([nn.functional.batch_norm(c, None, None, training=True, eps=norm.eps)
                     for c in x64.split(4)])  # fmt: skip
    y64.backward(g)
    tol = {"atol": 3e-2, "rtol": 3e-2} if dtype == torch.float16 else {"atol": 1e-1, "rtol": 1e-1}
    assert y.dtype == xh.grad.dtype == dtype
    torch.testing.assert_close(y.double(), y64.detach(), **tol)
    torch.testing.assert_close(xh.grad.double(), x64.grad, **tol)


@pytest.mark.parametrize("n", [5, 32, 70], ids=["smaller_than_chunk", "one_chunk", "remainder"])
def test_ghost_equals_bn_per_chunk(n):
    torch.manual_seed(2)
    x = torch.randn(n, 3, 2, requires_grad=True)
    g = torch.randn(n, 3, 2)
    ghost = create_norm("ghost_bn", 3, momentum=None)
    y = ghost(x)
    (grad,) = torch.autograd.grad(y, x, g)
    chunks = x.detach().split(32)
    ref_bn = [nn.BatchNorm1d(3) for _ in chunks]
    xs = [c.clone().requires_grad_() for c in chunks]
    ys = [bn(c) for bn, c in zip(ref_bn, xs, strict=True)]
    torch.autograd.backward(ys, list(g.split(32)))
    torch.testing.assert_close(y, torch.cat(ys))
    torch.testing.assert_close(grad, torch.cat([c.grad for c in xs]))
    w = torch.tensor([c.shape[0] / n for c in chunks])
    mean = sum(wi * bn.running_mean / 0.1 for wi, bn in zip(w, ref_bn, strict=True))
    torch.testing.assert_close(ghost.running_mean, mean)  # momentum None: first batch is kept
    assert ghost.num_batches_tracked.item() == 1


def test_ghost_single_value_chunk_is_an_error():
    with pytest.raises(ValueError, match="virtual_batch_size"):
        create_norm("ghost_bn", 3, virtual_batch_size=2)(torch.randn(5, 3))


# -- batch_renorm ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values,expected",
    [
        # mu_B 2, sigma_B 2 vs running (0, 1): r = 2, d = 2, x_hat = (x-2)/2*2 + 2
        ([0.0, 4.0], [0.0, 4.0]),
        # mu_B 10, sigma_B 10: r = 10 -> 3, d = 10 -> 5, x_hat = [-1, 1]*3 + 5
        ([0.0, 20.0], [2.0, 8.0]),
    ],
    ids=["unclipped", "clipped"],
)
def test_batch_renorm_hand_computed(values, expected):
    x = torch.tensor(values, dtype=torch.float64).view(2, 1)
    norm = create_norm("batch_renorm", 1, eps=EPS, dtype=torch.float64)
    out = norm(x)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64).view(2, 1))
    bn = nn.BatchNorm1d(1, eps=EPS, dtype=torch.float64)
    bn(x)  # running statistics move exactly as in BN
    torch.testing.assert_close(norm.running_mean, bn.running_mean)
    torch.testing.assert_close(norm.running_var, bn.running_var)


def test_batch_renorm_gradient_treats_r_and_d_as_constants():
    torch.manual_seed(3)
    x = (torch.randn(6, 2, 3, dtype=torch.float64) * 2 + 1).requires_grad_()
    g = torch.randn(6, 2, 3, dtype=torch.float64)
    norm = create_norm("batch_renorm", 2, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0]))
        norm.running_mean.copy_(torch.tensor([0.3, -0.2]))
        norm.running_var.copy_(torch.tensor([2.0, 0.8]))
    rm, rv = norm.running_mean.clone().view(1, 2, 1), norm.running_var.clone().view(1, 2, 1)
    ours = torch.autograd.grad(norm(x), (x, norm.weight, norm.bias), g)
    var, mu = torch.var_mean(x, (0, 2), correction=0, keepdim=True)
    sigma_b, sigma = torch.sqrt(var + 1e-5), torch.sqrt(rv + 1e-5)
    r = (sigma_b / sigma).clamp(1 / 3, 3).detach()
    d = ((mu - rm) / sigma).clamp(-5, 5).detach()
    w, b = norm.weight.view(1, 2, 1), norm.bias.view(1, 2, 1)
    ref_out = w * ((x - mu) / sigma_b * r + d) + b
    ref = torch.autograd.grad(ref_out, (x, norm.weight, norm.bias), g)
    for a, e in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-10)


def test_batch_renorm_without_running_stats_is_bn():
    torch.manual_seed(4)
    x = torch.randn(6, 3, 4) * 3 + 1
    norm = create_norm("batch_renorm", 3, track_running_stats=False)
    torch.testing.assert_close(norm(x), nn.BatchNorm1d(3, track_running_stats=False)(x))
