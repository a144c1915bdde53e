"""A probe called between the user's forward and backward leaves that backward working.

Issue 18, item 1: restoring parameters and buffers by ``detach().copy_()`` moved their
autograd version counters, and train-mode BN inside a probe updated the running statistics
in place, so the user's ``loss.backward()`` raised "modified by an inplace operation". The
twin is the same model, forward and backward without the probe: gradients and buffers must
be bit-identical.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import ConvNet
from _zoo import batch, make

from bnlab.probes import (
    activation_stats,
    depth_profile,
    gradient_explosion_rate,
    gradient_stats,
    hessian_top_eigenvalues,
    hessian_trace,
    internal_covariate_shift,
    interpolated_step_stats,
    landscape,
    output_gradient_alignment,
    relative_loss,
)
from bnlab.probes.theorems import bn_gradient_identity

CE = F.cross_entropy
LAYER = "layer1.0.conv1"  # a conv of the pre-activation net, by name


def _update(model):
    return {n: 0.01 * torch.ones_like(p) for n, p in model.named_parameters()}


MEASUREMENTS = {
    "activation_stats": lambda m, b, o, mode: activation_stats(m, b, [1, 4], bn_mode=mode),
    "depth_profile": lambda m, b, o, mode: depth_profile(m, b, where="pre_norm", bn_mode=mode),
    "interpolated_step": lambda m, b, o, mode: interpolated_step_stats(
        m, CE, b, _update(m), steps=3, bn_mode=mode),
    "explosion_rate": lambda m, b, o, mode: gradient_explosion_rate(m, CE, b, bn_mode=mode),
    "gradient_stats": lambda m, b, o, mode: gradient_stats(m, CE, b, [LAYER], bn_mode=mode),
    "ics": lambda m, b, o, mode: internal_covariate_shift(m, CE, b, o, [LAYER], bn_mode=mode),
    "landscape_loop": lambda m, b, o, mode: landscape(m, CE, b, lr=0.1, bn_mode=mode,
                                                      batched=False),
    "landscape_vmap": lambda m, b, o, mode: landscape(m, CE, b, lr=0.1, bn_mode=mode,
                                                      batched=True),
    "relative_loss": lambda m, b, o, mode: relative_loss(m, CE, b, etas=(0.1, 1.0),
                                                         bn_mode=mode),
    "alignment": lambda m, b, o, mode: output_gradient_alignment(m, CE, b, param=LAYER,
                                                                 bn_mode=mode),
    "hessian_top": lambda m, b, o, mode: hessian_top_eigenvalues(m, CE, b, k=1, max_iter=4,
                                                                  bn_mode=mode),
    "hessian_trace": lambda m, b, o, mode: hessian_trace(m, CE, b, samples=2, bn_mode=mode),
    "bn_identity": lambda m, b, o, mode: bn_gradient_identity(m, CE, b, 2),
}


def _grads_and_buffers(model):
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return grads, {n: b.clone() for n, b in model.named_buffers()}


def _assert_bit_identical(got, want):
    for part_got, part_want in zip(got, want, strict=True):
        assert part_got.keys() == part_want.keys()
        for name in part_want:
            assert torch.equal(part_got[name], part_want[name]), name


@pytest.mark.parametrize("probe_mode", ["train", "eval"])
@pytest.mark.parametrize("user_mode", ["train", "eval"], ids=["user-train", "user-eval"])
@pytest.mark.parametrize("name", list(MEASUREMENTS))
def test_backward_after_a_probe_matches_backward_without_it(name, user_mode, probe_mode):
    model = make("preact").train(user_mode == "train")
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = batch()
    loss = CE(model(x), y)  # the user's graph: BN saved its running statistics, convs weights
    MEASUREMENTS[name](model, (x, y), opt, probe_mode)
    loss.backward()  # raised "modified by an inplace operation" before the fix
    CE(twin(x), y).backward()
    _assert_bit_identical(_grads_and_buffers(model), _grads_and_buffers(twin))


def test_graph_survives_dropout_and_untracked_norms():
    """A second architecture: dropout, BN(momentum=None), BN(track_running_stats=False)."""
    torch.manual_seed(0)
    model = ConvNet().double().train()
    twin = copy.deepcopy(model)
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    rng = torch.get_rng_state()
    loss = CE(model(x), y)
    gradient_stats(model, CE, (x, y), ["conv2"])
    landscape(model, CE, (x, y), lr=0.1)
    loss.backward()
    torch.set_rng_state(rng)  # the twin draws the same dropout mask
    CE(twin(x), y).backward()
    _assert_bit_identical(_grads_and_buffers(model), _grads_and_buffers(twin))


def test_the_check_can_fail():
    """Guard: an in-place write to a saved parameter between forward and backward is caught."""
    model = make("preact")
    x, y = batch()
    loss = CE(model(x), y)
    with torch.no_grad():
        model.layer1[0].conv1.weight.detach().add_(0.0)  # value unchanged, version moved
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()
