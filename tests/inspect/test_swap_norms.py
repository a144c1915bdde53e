"""swap_norms: torch's batch norms replaced by bnlab norms, with signature, state, mode,
device and dtype carried over (checked against the native model as the oracle)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlab.layers import BatchNorm, NoNorm, create_norm, swap_norms
from bnlab.registry import UnknownNameError


def _native(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5, eps=1e-3, affine=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 16, 6), nn.BatchNorm1d(6, track_running_stats=False),
        nn.Linear(6, 3),
    ).to(dtype)


def _trained(model, steps=3):
    """Move the affine parameters and running statistics away from their initial values."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x = torch.randn(8, 3, 4, 4, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def test_swap_to_bn_computes_what_the_native_model_computed():
    native = _trained(_native())
    swapped = swap_norms(copy.deepcopy(native), "bn")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in swapped.modules())
    assert sum(isinstance(m, BatchNorm) for m in swapped.modules()) == 3
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for mode in ("train", "eval"):
        native.train(mode == "train")
        swapped.train(mode == "train")
        for m in (native, swapped):
            m.zero_grad()
            F.cross_entropy(m(x), y).backward()
        torch.testing.assert_close(swapped(x), native(x), rtol=1e-12, atol=1e-12)
        for (name, p), q in zip(native.named_parameters(), swapped.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
    # the running statistics moved on identically in train mode
    torch.testing.assert_close(swapped[1].running_mean, native[1].running_mean)
    assert int(swapped[1].num_batches_tracked) == int(native[1].num_batches_tracked) == 5


def test_signature_and_state_are_carried_over():
    native = _trained(_native())
    swapped = swap_norms(copy.deepcopy(native), "bn")
    bn1, bn2, bn3 = swapped[1], swapped[4], swapped[8]
    assert (bn1.momentum, bn1.eps, bn1.affine) == (0.3, 1e-5, True)
    assert (bn2.eps, bn2.affine, bn2.weight) == (1e-3, False, None)
    assert bn3.track_running_stats is False and bn3.running_mean is None
    torch.testing.assert_close(bn1.weight, native[1].weight)
    torch.testing.assert_close(bn1.running_var, native[1].running_var)
    torch.testing.assert_close(bn2.running_mean, native[4].running_mean)
    assert bn1.weight is not native[1].weight  # a copy: the native model is untouched


def test_dtype_device_and_training_mode_follow_each_module():
    native = _native(torch.float64)
    native[4].eval()  # one norm in eval mode, the rest training
    swapped = swap_norms(native, "bn")
    assert swapped[1].weight.dtype == swapped[4].running_mean.dtype == torch.float64
    assert [swapped[i].training for i in (1, 4, 8)] == [True, False, True]
    with torch.device("meta"):
        meta = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert swap_norms(meta, "bn")[1].weight.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_swapped_norms_stay_on_the_gpu():
    native = _native(torch.float32).cuda()
    swapped = swap_norms(copy.deepcopy(native), "bn")
    assert swapped[1].running_mean.is_cuda and swapped[1].weight.is_cuda
    x = torch.randn(4, 3, 4, 4, device="cuda")
    torch.testing.assert_close(swapped(x), native(x))


def test_swap_to_none_is_the_identity_at_every_site():
    native = _native()
    plain = swap_norms(copy.deepcopy(native), "none")
    assert [type(plain[i]) for i in (1, 4, 8)] == [NoNorm] * 3
    x = torch.randn(4, 3, 4, 4, dtype=torch.float64)
    ref = native[7](native[6](F.relu(native[3](F.relu(native[0](x))))))  # BNs left out
    torch.testing.assert_close(plain(x), native[9](ref))


def test_shared_norms_stay_shared_and_a_norm_root_is_replaced():
    bn = nn.BatchNorm1d(4)
    net = nn.Sequential(nn.Linear(4, 4), bn, nn.Linear(4, 4), bn)
    swapped = swap_norms(net, "bn")
    assert swapped[1] is swapped[3] and isinstance(swapped[1], BatchNorm)
    root = swap_norms(nn.BatchNorm2d(3), "none")
    assert isinstance(root, NoNorm) and root.num_features == 3


def test_options_kinds_and_errors():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    assert swap_norms(copy.deepcopy(net), "bn", momentum=None)[1].momentum is None
    bnlab_net = nn.Sequential(nn.Linear(4, 4), create_norm("bn", 4))
    assert isinstance(swap_norms(bnlab_net, "none", kinds=(BatchNorm,))[1], NoNorm)
    with pytest.raises(UnknownNameError, match="none"):
        swap_norms(copy.deepcopy(net), "batchnorm9")
    lazy = nn.Sequential(nn.Linear(4, 4), nn.LazyBatchNorm1d())
    with pytest.raises(ValueError, match="lazy"):
        swap_norms(lazy, "none")
