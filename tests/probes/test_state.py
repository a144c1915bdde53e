"""bnlab.probes._state: snapshot/restore is bit-exact; replay() rewinds noise; bn_mode."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _probe_helpers import (
    ConvNet,
    LocalNoisyBN,
    assert_same,
    fingerprint,
    mlp_bn_noisy_dropout,
)
from torch import nn

from bnlab.probes._state import bn_mode, no_trace, restore, snapshot


def _trained_state(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Give the model non-trivial grads, some None, a frozen param and mixed flags."""
    model.train()
    nn.functional.cross_entropy(model(x), y).backward()
    params = list(model.parameters())
    params[-1].grad = None  # a grad that is None must stay None
    params[0].requires_grad_(False)
    model[3].eval() if isinstance(model, nn.Sequential) else model.drop.eval()


def _disturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Everything a careless probe would do."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    nn.functional.cross_entropy(model(x), y).backward()  # updates running stats, grads
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.grad is None else None
    torch.rand(3)
    np.random.rand(3)
    random.random()
    model.eval()


CASES = {
    "mlp_bn_noisy_dropout": (mlp_bn_noisy_dropout, (10, 6)),
    "conv_native_bn2d": (ConvNet, (5, 2, 4, 4)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_restore_is_bit_exact(case: str) -> None:
    factory, shape = CASES[case]
    torch.manual_seed(0)
    model = factory()
    x, y = torch.randn(shape), torch.randint(0, 3, (shape[0],))
    _trained_state(model, x, y)
    before = fingerprint(model, versions=False)  # _disturb writes in place: versions move
    state = snapshot(model)
    _disturb(model, x, y)
    assert not torch.equal(before["torch_rng"], torch.get_rng_state())  # the disturbance is real
    restore(model, state)
    assert_same(before, fingerprint(model, versions=False))


@pytest.mark.parametrize("case", list(CASES))
def test_no_trace_restores_on_exception(case: str) -> None:
    factory, shape = CASES[case]
    torch.manual_seed(1)
    model = factory()
    x, y = torch.randn(shape), torch.randint(0, 3, (shape[0],))
    _trained_state(model, x, y)
    before = fingerprint(model, versions=False)
    with pytest.raises(RuntimeError, match="boom"), no_trace(model):
        _disturb(model, x, y)
        raise RuntimeError("boom")
    assert_same(before, fingerprint(model, versions=False))


def test_num_batches_tracked_and_running_stats_restored() -> None:
    bn = nn.BatchNorm1d(3, momentum=None)
    x = torch.randn(8, 3)
    with no_trace(bn):
        bn.train()
        bn(x)
        bn(x + 1)
        assert int(bn.num_batches_tracked) == 2
    assert int(bn.num_batches_tracked) == 0
    assert torch.equal(bn.running_mean, torch.zeros(3))
    assert torch.equal(bn.running_var, torch.ones(3))


def test_replay_gives_same_dropout_and_noise() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), LocalNoisyBN(6), nn.Dropout(0.5)).train()
    x = torch.randn(7, 4)
    with no_trace(model) as replay:
        replay()
        first = model(x)
        second = model(x)  # without replay: fresh noise and masks
        replay()
        third = model(x)
    assert not torch.equal(first, second)
    assert torch.equal(first, third)
    # after the block the streams are where they were: the next draw equals the first
    assert torch.equal(model(x), first)


def test_tensor_identity_kept() -> None:
    """Optimizers hold the parameter objects: restore must not swap them."""
    model = nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().backward()
    ids = [id(p) for p in model.parameters()] + [id(p.grad) for p in model.parameters()]
    with no_trace(model):
        for p in model.parameters():
            p.grad = None
            p.data = p.data * 2
    assert ids == [id(p) for p in model.parameters()] + [id(p.grad) for p in model.parameters()]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bn_mode_switches_only_norms(mode: str) -> None:
    model = mlp_bn_noisy_dropout()
    model.train()
    model[3].eval()  # dropout keeps its own flag
    flags = {n: m.training for n, m in model.named_modules()}
    with bn_mode(model, mode):
        assert model[1].training == (mode == "train")
        assert model[5].training == (mode == "train")
        assert model[3].training is False
        assert model.training is True
    assert flags == {n: m.training for n, m in model.named_modules()}


def test_bn_mode_eval_uses_running_stats() -> None:
    bn = nn.BatchNorm1d(2)
    bn.running_mean.fill_(3.0)
    bn.train()
    x = torch.randn(5, 2)
    with bn_mode(bn, "eval"):
        out = bn(x)
    assert torch.allclose(out, (x - 3.0) / torch.sqrt(torch.tensor(1.0 + 1e-5)))


@pytest.mark.parametrize("bad", ["Train", "inference", ""])
def test_bn_mode_rejects_unknown(bad: str) -> None:
    with pytest.raises(ValueError, match="'train', 'eval'"):
        with bn_mode(nn.BatchNorm1d(2), bad):
            pass
