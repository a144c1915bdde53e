"""No host read inside a measurement except the one transfer of its result (issue 15).

A probe that reads a number from the device (``.item()``, ``float(t)``, ``bool(t)``, a
blocking ``.cpu()``) makes the host wait for everything queued before it. Measurements keep
their numbers as tensors and move them once, through ``bnlab.probes._passes.to_host``.

On the CPU the test counts every call of a reading method of ``torch.Tensor`` made outside
that transfer; with CUDA it also runs the measurements under
``torch.cuda.set_sync_debug_mode("error")``, which raises at any synchronizing call.
The Hessian measurements are not covered here (their module is being reworked).
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _zoo import batch, make

import bnlab.probes._passes as passes
from bnlab.probes import (
    activation_stats,
    depth_profile,
    gradient_explosion_rate,
    gradient_stats,
    internal_covariate_shift,
    interpolated_step_stats,
    landscape,
    output_gradient_alignment,
    relative_loss,
)
from bnlab.probes.theorems import bn_gradient_identity

CE = F.cross_entropy
READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")


def _update(model):
    return {n: 0.01 * torch.ones_like(p) for n, p in model.named_parameters()}


CALLS = {
    "activation_stats": lambda m, b, o: activation_stats(m, b, [1, 2], bins=[-1.0, 0.0, 1.0],
                                                         units=[0, 2]),
    "activation_stats_auto_bins": lambda m, b, o: activation_stats(m, b, [1, 4], where="post"),
    "depth_profile": lambda m, b, o: depth_profile(m, b, where="pre_norm"),
    "interpolated_step": lambda m, b, o: interpolated_step_stats(m, CE, b, _update(m), steps=3),
    "explosion_rate": lambda m, b, o: gradient_explosion_rate(m, CE, b),
    "gradient_stats": lambda m, b, o: gradient_stats(m, CE, b, [2, "layer2.0.conv2"]),
    "ics": lambda m, b, o: internal_covariate_shift(m, CE, b, o, [2, "layer2.0.conv1"]),
    "landscape_loop": lambda m, b, o: landscape(m, CE, b, lr=0.1, batched=False),
    "landscape_vmap": lambda m, b, o: landscape(m, CE, b, lr=0.1, batched=True),
    "relative_loss": lambda m, b, o: relative_loss(m, CE, b),
    "alignment": lambda m, b, o: output_gradient_alignment(m, CE, b, param=2),
    "bn_identity": lambda m, b, o: bn_gradient_identity(m, CE, b, 2),
}


@contextmanager
def counting_reads(monkeypatch):
    """Record every reading Tensor method called outside ``_passes._move_grouped``."""
    calls: list[str] = []
    inside = [0]
    for name in READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            if not inside[0]:
                calls.append(f"{_name}: {traceback.format_stack(limit=3)[0].strip()}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    move = getattr(passes, "_move_grouped", None)

    def allowed(leaves):
        inside[0] += 1
        try:
            return move(leaves)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(passes, "_move_grouped", allowed, raising=False)
    yield calls
    monkeypatch.undo()


def _setup(device="cpu"):
    model = make("preact").to(device)
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, (x.to(device), y.to(device)), opt


@pytest.mark.parametrize("name", list(CALLS))
def test_no_tensor_is_read_outside_the_final_transfer(name, monkeypatch):
    model, b, opt = _setup()
    with counting_reads(monkeypatch) as calls:
        CALLS[name](model, b, opt)
    assert calls == []


def test_the_counter_sees_a_read(monkeypatch):
    """Guard against a vacuous check: a float() of a tensor is counted."""
    with counting_reads(monkeypatch) as calls:
        float(torch.ones(()) * 2)
    assert len(calls) == 1 and calls[0].startswith("__float__")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(CALLS))
def test_no_device_sync_on_cuda(name, monkeypatch):
    model, b, opt = _setup("cuda")
    CALLS[name](model, b, opt)  # warm-up: lazy initialization may synchronize once
    move = passes._move_grouped

    def allowed(leaves):
        torch.cuda.set_sync_debug_mode(0)
        try:
            return move(leaves)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(passes, "_move_grouped", allowed)
    torch.cuda.set_sync_debug_mode("error")
    try:
        CALLS[name](model, b, opt)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_to_host_keeps_the_structure_values_and_dtypes():
    tree = {"a": torch.arange(6.0).reshape(2, 3), "b": [torch.tensor(3), (torch.ones(0), 7)],
            "c": "text", "d": {"e": torch.tensor([True, False])}}
    host = passes.to_host(tree)
    np.testing.assert_array_equal(host["a"], np.arange(6.0).reshape(2, 3))
    assert host["b"][0].shape == () and int(host["b"][0]) == 3
    assert isinstance(host["b"][1], tuple) and host["b"][1][0].shape == (0,)
    assert host["b"][1][1] == 7 and host["c"] == "text"
    assert host["d"]["e"].dtype == np.bool_ and host["d"]["e"].tolist() == [True, False]


def test_one_copy_splits_a_group_back_into_its_tensors():
    """The accelerator path: one concatenation per dtype, split back by shape."""
    tensors = [torch.arange(6.0).reshape(3, 2), torch.tensor(5.0), torch.ones(0, 4),
               torch.full((2, 1, 2), -1.5)]
    arrays = passes._one_copy(tensors)
    for t, a in zip(tensors, arrays, strict=True):
        assert a.shape == tuple(t.shape)
        np.testing.assert_array_equal(a, t.numpy())
