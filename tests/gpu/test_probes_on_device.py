"""Every probe on each device leaves no trace: parameters, buffers, grads, flags, RNG streams
(CPU and CUDA) and noise states are bit-identical afterwards, and repeated calls agree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _devices import DEVICES
from torch import nn

from bnlab.layers import create_norm
from bnlab.probes.activations import activation_stats
from bnlab.probes.alignment import output_gradient_alignment
from bnlab.probes.depth import depth_profile, interpolated_step_stats
from bnlab.probes.explosion import gradient_explosion_rate
from bnlab.probes.gradients import gradient_stats
from bnlab.probes.hessian import activation_hvp, hessian_eigs, hessian_trace
from bnlab.probes.ics import internal_covariate_shift
from bnlab.probes.landscape import landscape, relative_loss
from bnlab.probes.theorems import bn_gradient_identity


def _model(device):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), create_norm("bn", 8), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(8, 8), create_norm("noisy_bn", 8), nn.ReLU(), nn.Linear(8, 3),
    ).to(device)  # fmt: skip
    x = torch.randn(16, 6, device=device)
    y = torch.randint(0, 3, (16,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # non-trivial running stats and momentum buffers
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    next(model.parameters()).grad = None  # a None grad must stay None
    return model, (x, y), opt


def _fingerprint(model):
    state = {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "grads": {n: None if p.grad is None else p.grad.clone()
                  for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "training": {n: m.training for n, m in model.named_modules()},
        "cpu_rng": torch.get_rng_state(),
        "noise": {n: m.noise_state()["rng"].clone()
                  for n, m in model.named_modules() if hasattr(m, "noise_state")},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def _same(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), path
    else:
        assert a == b, path


PROBES = {
    "activation_stats": lambda m, b, o: activation_stats(m, b, [1, 2]),
    "ics": lambda m, b, o: internal_covariate_shift(m, F.cross_entropy, b, o, [1, 2]),
    "landscape_loop": lambda m, b, o: landscape(m, F.cross_entropy, b, lr=0.1, batched=False),
    "landscape_vmap": lambda m, b, o: landscape(m, F.cross_entropy, b, lr=0.1, batched=True),
    "relative_loss": lambda m, b, o: relative_loss(m, F.cross_entropy, b),
    "gradient_stats": lambda m, b, o: gradient_stats(m, F.cross_entropy, b, [1, 2]),
    "alignment": lambda m, b, o: output_gradient_alignment(m, F.cross_entropy, b, param=2),
    "depth_profile": lambda m, b, o: depth_profile(m, b),
    "interpolated_step": lambda m, b, o: interpolated_step_stats(
        m, F.cross_entropy, b, {n: 0.1 * torch.ones_like(p) for n, p in m.named_parameters()},
        steps=3),
    "explosion_rate": lambda m, b, o: gradient_explosion_rate(m, F.cross_entropy, b),
    "hessian_eigs": lambda m, b, o: hessian_eigs(m, F.cross_entropy, b, k=2, max_iter=8).values,
    "hessian_trace": lambda m, b, o: hessian_trace(m, F.cross_entropy, b, samples=3),
    "activation_hvp": lambda m, b, o: activation_hvp(
        m, F.cross_entropy, b, 2, torch.ones(16, 8, device=b[0].device)),
    "bn_identity": lambda m, b, o: bn_gradient_identity(m, F.cross_entropy, b, 1),
}


def _comparable(result):
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return _comparable(dataclasses.asdict(result))
    if isinstance(result, dict):
        return {k: _comparable(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [_comparable(v) for v in result]
    if isinstance(result, torch.Tensor):
        return result.detach().cpu().clone()
    return result


@pytest.mark.parametrize("name", list(PROBES))
@pytest.mark.parametrize("device", DEVICES)
def test_probe_leaves_no_trace_and_repeats(device, name):
    model, batch, opt = _model(device)
    before = _fingerprint(model)
    first = _comparable(PROBES[name](model, batch, opt))
    _same(before, _fingerprint(model))
    second = _comparable(PROBES[name](model, batch, opt))
    _same({"r": first}, {"r": second}, "result")


@pytest.mark.parametrize("device", DEVICES)
def test_the_fingerprint_can_fail(device):
    model, batch, _ = _model(device)
    before = _fingerprint(model)
    model(batch[0])  # a bare train-mode forward moves running stats and the noise stream
    with pytest.raises(AssertionError):
        _same(before, _fingerprint(model))
