"""Every layer's forward and backward on each device against a float64 CPU reference.

The reference is independent of bnlab's kernels: the definition written with plain torch
ops in float64 on the CPU, differentiated by autograd. Noisy layers draw their noise on
the device; it is recovered there by replay (the ``noise`` layer with the same state gives
f(0) = m and f(1) = s + m) and applied to the reference as constants.
"""

from __future__ import annotations

import math

import pytest
import torch
from _devices import DEVICES

from bnlab.layers import create_norm, list_norms

C = 3
EPS = 1e-5
KWARGS = {"ghost_bn": {"virtual_batch_size": 4}, "gn": {"num_groups": 3}}
TOL = {"rtol": 2e-4, "atol": 2e-4}


def _dims(x):
    return [0, *range(2, x.dim())]


def _ch(t, x):
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _bn(x, eps=EPS):
    d = _dims(x)
    mu = x.mean(d, keepdim=True)
    var = ((x - mu) ** 2).mean(d, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def _lp(x, p, eps=EPS):
    d = _dims(x)
    mu = x.mean(d, keepdim=True)
    if math.isinf(p):
        s = x.abs().amax(d, keepdim=True)
    else:
        s = x.abs().pow(p).mean(d, keepdim=True) ** (1 / p)
    return (x - mu) / torch.sqrt(s * s + eps)


def _renorm(x, rm, rv, eps=EPS, r_max=3.0, d_max=5.0):
    d = _dims(x)
    mu = x.mean(d, keepdim=True)
    var = ((x - mu) ** 2).mean(d, keepdim=True)
    sigma = torch.sqrt(_ch(rv, x) + eps)
    r = (torch.sqrt(var + eps) / sigma).clamp(1 / r_max, r_max).detach()
    dd = ((mu - _ch(rm, x)) / sigma).clamp(-d_max, d_max).detach()
    return _bn(x) * r + dd


def _groups(x, g, eps=EPS):
    n = x.shape[0]
    xg = x.reshape(n, g, -1)
    mu = xg.mean(-1, keepdim=True)
    var = ((xg - mu) ** 2).mean(-1, keepdim=True)
    return ((xg - mu) / torch.sqrt(var + eps)).reshape(x.shape)


def reference(name, x, w, b, norm, noise):
    """The training-mode output of norm ``name`` in float64 (x, w, b on the CPU)."""
    rm, rv = (None if t is None else t.detach().double().cpu()
              for t in (getattr(norm, "running_mean", None), getattr(norm, "running_var", None)))
    core = {
        "bn": lambda: _bn(x), "bn_reference": lambda: _bn(x), "noisy_bn": lambda: _bn(x),
        "ghost_bn": lambda: torch.cat([_bn(c) for c in x.split(4)]),
        "batch_renorm": lambda: _renorm(x, rm, rv),
        "l1": lambda: _lp(x, 1.0), "l2": lambda: _lp(x, 2.0), "linf": lambda: _lp(x, math.inf),
        "ln": lambda: _groups(x, 1), "gn": lambda: _groups(x, 3),
        "none": lambda: x, "noise": lambda: x,
    }[name]()
    y = core if w is None else core * _ch(w, x) + _ch(b, x)
    if noise is not None:
        s, m = noise
        y = s * y + m
    return y


def _recover_noise(norm, x):
    """The (s, m) the norm's next training forward draws, recovered on its device."""
    state = norm.noise_state()
    probe = create_norm("noise", C).to(x.device)
    probe.set_noise_state(state)
    m = probe(torch.zeros_like(x))
    probe.set_noise_state(state)
    s = probe(torch.ones_like(x)) - m
    norm.set_noise_state(state)
    return s.double().cpu(), m.double().cpu()


@pytest.mark.parametrize("shape", [(10, C), (10, C, 4, 5)], ids=["NC", "NCHW"])
@pytest.mark.parametrize("name", list_norms())
@pytest.mark.parametrize("device", DEVICES)
def test_layer_matches_float64_cpu_reference(device, name, shape):
    torch.manual_seed(0)
    norm = create_norm(name, C, momentum=0.5, **KWARGS.get(name, {})).to(device)
    with torch.no_grad():
        for p in norm.parameters():
            p.uniform_(0.5, 1.5)
        if getattr(norm, "running_var", None) is not None:
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    x = (torch.randn(*shape) * 2 + 0.5).to(device).requires_grad_()
    g = torch.randn(*shape).to(device)
    noise = _recover_noise(norm, x.detach()) if hasattr(norm, "noise_state") else None
    xr = x.detach().double().cpu().requires_grad_()
    params = [p.detach().double().cpu().requires_grad_() for p in norm.parameters()]
    w, b = ([*params, None, None])[:2]
    y_ref = reference(name, xr, w, b, norm, noise)
    grads_ref = torch.autograd.grad(y_ref, [xr, *params], g.double().cpu())
    old = None
    if getattr(norm, "running_mean", None) is not None:
        old = (norm.running_mean.detach().double().cpu().clone(), xr.detach())

    y = norm(x)
    grads = torch.autograd.grad(y, [x, *norm.parameters()], g)

    assert y.device.type == device and y.dtype == torch.float32
    torch.testing.assert_close(y.detach().double().cpu(), y_ref.detach(), **TOL)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got.double().cpu(), want, **TOL)
    if old is not None:  # momentum 0.5 towards the batch mean (ghost: of the chunk means)
        prev, xd = old
        chunks = xd.split(4) if name == "ghost_bn" else [xd]
        batch_mean = sum(c.mean(_dims(c)) * len(c) for c in chunks) / len(xd)
        torch.testing.assert_close(norm.running_mean.double().cpu(), 0.5 * prev + 0.5 * batch_mean,
                                   **TOL)  # fmt: skip


@pytest.mark.parametrize("name", list_norms())
@pytest.mark.parametrize("device", DEVICES)
def test_eval_mode_matches_the_running_statistics_map(device, name):
    torch.manual_seed(1)
    norm = create_norm(name, C, **KWARGS.get(name, {})).to(device)
    norm(torch.randn(8, C, 2, device=device) * 2 + 1)
    norm.eval()
    x = torch.randn(6, C, 2).to(device).requires_grad_()
    y = norm(x)
    (gx,) = torch.autograd.grad(y.sum(), x)
    cpu = norm.to("cpu").double()
    xr = x.detach().double().cpu().requires_grad_()
    y_ref = cpu(xr)
    (gx_ref,) = torch.autograd.grad(y_ref.sum(), xr)
    torch.testing.assert_close(y.detach().double().cpu(), y_ref.detach(), **TOL)
    torch.testing.assert_close(gx.double().cpu(), gx_ref, **TOL)
