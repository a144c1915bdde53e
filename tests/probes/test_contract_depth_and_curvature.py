"""The no-side-effect contract of depth, explosion, Hessian and theorem measurements.

Parameters, buffers, gradients (and their absence), requires_grad, every module's training
flag, the global RNG streams and every noise_state must be bit-identical after a call, in
both BN modes, also when the measurement raises.
"""

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.layers import create_norm
from bnlab.probes.depth import depth_profile, interpolated_step_stats
from bnlab.probes.explosion import gradient_explosion_rate
from bnlab.probes.hessian import (
    activation_hvp,
    hessian_eigs,
    hessian_top_eigenvalues,
    hessian_trace,
)
from bnlab.probes.theorems import bn_gradient_identity


def model_with_every_kind_of_state():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), create_norm("bn", 8), nn.ReLU(inplace=True), nn.Dropout(0.3),
        nn.Linear(8, 8), create_norm("noisy_bn", 8), nn.ReLU(), nn.Linear(8, 3),
    ).double()
    model.train()
    model[1].eval()  # a norm left in eval mode: bn_mode must flip it and put it back
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model[0].bias.requires_grad_(False)  # a frozen parameter
    for i, p in enumerate(model.parameters()):
        if i % 2 == 0:  # some grads present (as mid-step in a loop), some None
            p.grad = torch.randn_like(p)
    return model


def fingerprint(model):
    """Everything the contract covers, cloned (tensor identities as ids, with versions)."""
    params = {n: (id(p), p.detach().clone(), p.requires_grad, p._version)
              for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else (id(p.grad), p.grad.clone(), p.grad._version)
             for n, p in model.named_parameters()}
    buffers = {n: (id(b), b.clone(), b._version) for n, b in model.named_buffers()}
    noise = {n: m.noise_state() for n, m in model.named_modules() if hasattr(m, "noise_state")}
    return {
        "params": params, "grads": grads, "buffers": buffers,
        "training": {n: m.training for n, m in model.named_modules()},
        "torch_rng": torch.get_rng_state().clone(), "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(), "noise": noise,
    }


def assert_same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, path
        assert torch.equal(a, b), f"{path} changed"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"{path} changed"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def batch():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, 3, (16,), generator=gen)


def update_for(model):
    return {n: 0.1 * torch.ones_like(p) for n, p in model.named_parameters()}


MEASUREMENTS = {
    "depth_profile_block": lambda m, mode: depth_profile(m, batch(), bn_mode=mode),
    "depth_profile_pre": lambda m, mode: depth_profile(m, batch(), where="pre_norm",
                                                      bn_mode=mode),
    "interpolated_step": lambda m, mode: interpolated_step_stats(
        m, F.cross_entropy, batch(), update_for(m), steps=3, bn_mode=mode),
    "explosion_rate": lambda m, mode: gradient_explosion_rate(
        m, F.cross_entropy, batch(), bn_mode=mode),
    "top_eigenvalues": lambda m, mode: hessian_top_eigenvalues(
        m, F.cross_entropy, batch(), k=2, max_iter=8, bn_mode=mode),
    "eigs_layer": lambda m, mode: hessian_eigs(
        m, F.cross_entropy, batch(), layer="4", max_iter=5, bn_mode=mode).values,
    "trace": lambda m, mode: hessian_trace(m, F.cross_entropy, batch(), samples=3,
                                           bn_mode=mode),
    "activation_hvp": lambda m, mode: activation_hvp(
        m, F.cross_entropy, batch(), 2, torch.ones(16, 8, dtype=torch.float64), bn_mode=mode),
    "bn_identity": lambda m, mode: bn_gradient_identity(m, F.cross_entropy, batch(), 1),
}


def as_comparable(result):
    if isinstance(result, dict):
        return {k: as_comparable(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [as_comparable(v) for v in result]
    if isinstance(result, torch.Tensor):
        return result.detach().clone()
    return result


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", list(MEASUREMENTS))
def test_leaves_no_trace_and_is_repeatable(name, mode):
    model = model_with_every_kind_of_state()
    before = fingerprint(model)
    first = as_comparable(MEASUREMENTS[name](model, mode))
    assert_same(before, fingerprint(model))
    second = as_comparable(MEASUREMENTS[name](model, mode))
    assert_same(first, second, "result")  # same noise, same dropout masks, same state


def test_state_is_restored_when_a_measurement_raises():
    model = model_with_every_kind_of_state()
    before = fingerprint(model)
    with pytest.raises(ValueError):
        activation_hvp(model, F.cross_entropy, batch(), 1, torch.ones(3, 3))  # wrong shape
    assert_same(before, fingerprint(model))


def test_the_fingerprint_can_fail():
    """Guard against a vacuous contract: a bare train-mode forward is caught."""
    model = model_with_every_kind_of_state()
    before = fingerprint(model)
    model[1].train()
    model(batch()[0])
    with pytest.raises(AssertionError):
        assert_same(before, fingerprint(model))
