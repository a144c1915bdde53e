"""The no-side-effect contract of the measurements with a scheduled Probe class, bit for bit.

ICS, landscape, relative loss, gradient statistics and alignment, as functions and as Probes.

Models: registry ``bn`` + ``noisy_bn`` + dropout (Sequential), a non-Sequential conv
net with native ``BatchNorm2d(momentum=None)`` and ``BatchNorm2d(track_running_stats=False)``,
and two networks of ``_zoo`` (pre-activation and EfficientNet-style blocks). The fingerprint
includes autograd version counters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import ConvNet, assert_same, fingerprint, mlp_bn_noisy_dropout
from _zoo import EfficientNet, PreActNet

from bnlab.probes.alignment import AlignmentProbe, output_gradient_alignment
from bnlab.probes.base import ProbeContext, Schedule
from bnlab.probes.gradients import GradientStatsProbe, gradient_stats
from bnlab.probes.ics import ICSProbe, internal_covariate_shift
from bnlab.probes.landscape import LandscapeProbe, RelativeLossProbe, landscape, relative_loss

MODELS = {
    "mlp_bn_noisy_dropout": (mlp_bn_noisy_dropout, (10, 6), [1, 2], "4"),
    "conv_native_bn2d": (ConvNet, (6, 2, 4, 4), [1, "conv2"], "conv2"),
    # traced feeding layers, an in-place residual sum, modules registered but never called
    "preact_projection": (lambda: PreActNet(3), (6, 3, 8, 8), [2, "layer2.0.conv1"], 4),
    "efficientnet_se": (lambda: EfficientNet(3), (6, 3, 8, 8), [7, "layers.1.conv3"], 1),
}

CALLS = {
    "ics": lambda m, b, o, L, P, mode: internal_covariate_shift(
        m, F.cross_entropy, b, o, L, bn_mode=mode
    ),
    "landscape_vmap": lambda m, b, o, L, P, mode: landscape(
        m, F.cross_entropy, b, lr=0.1, bn_mode=mode, batched=True
    ),
    "landscape_loop": lambda m, b, o, L, P, mode: landscape(
        m, F.cross_entropy, b, lr=0.1, bn_mode=mode, batched=False
    ),
    "relative_loss": lambda m, b, o, L, P, mode: relative_loss(m, F.cross_entropy, b, bn_mode=mode),
    "gradient_stats": lambda m, b, o, L, P, mode: gradient_stats(
        m, F.cross_entropy, b, L, bn_mode=mode
    ),
    "alignment": lambda m, b, o, L, P, mode: output_gradient_alignment(
        m, F.cross_entropy, b, param=P, bn_mode=mode
    ),
}


def _setup(case: str):
    factory, shape, layers, param = MODELS[case]
    torch.manual_seed(0)
    model = factory().train()
    x, y = torch.randn(shape), torch.randint(0, 3, (shape[0],))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # running stats, num_batches_tracked and momentum buffers are non-trivial
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    next(model.parameters()).grad = None  # a None grad must stay None
    return model, (x, y), opt, layers, param


@pytest.mark.filterwarnings("ignore:bn_mode='eval'")  # ConvNet's bn2 keeps no running stats
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("case", list(MODELS))
def test_no_side_effects(case: str, call: str, mode: str) -> None:
    model, batch, opt, layers, param = _setup(case)
    before = fingerprint(model, opt)
    CALLS[call](model, batch, opt, layers, param, mode)
    assert_same(before, fingerprint(model, opt))


@pytest.mark.parametrize("case", list(MODELS))
def test_repeated_calls_agree(case: str) -> None:
    """Replayed noise and dropout: the same call twice gives the same numbers."""
    model, batch, opt, layers, _ = _setup(case)
    first = landscape(model, F.cross_entropy, batch, lr=0.1)
    assert first == landscape(model, F.cross_entropy, batch, lr=0.1)
    ics = internal_covariate_shift(model, F.cross_entropy, batch, opt, layers)
    assert ics == internal_covariate_shift(model, F.cross_entropy, batch, opt, layers)


@pytest.mark.parametrize("case", list(MODELS))
def test_scheduled_probes_log_and_leave_no_trace(case: str) -> None:
    model, batch, opt, layers, param = _setup(case)
    logged: dict[str, object] = {}
    ctx = ProbeContext(model, F.cross_entropy, batch, opt, 0.1, 3, logged.__setitem__)
    probes = [
        ICSProbe(layers, schedule=3), LandscapeProbe(schedule=Schedule(start=3)),
        RelativeLossProbe(schedule=Schedule(steps={3})), GradientStatsProbe(layers),
        AlignmentProbe(param),
    ]
    before = fingerprint(model, opt)
    for probe in probes:
        assert probe.due(3)
        probe.on_step(ctx)
    assert_same(before, fingerprint(model, opt))
    key = str(layers[0])
    assert f"ics/{key}/l2" in logged and f"grad/{key}/kurtosis" in logged
    assert logged["landscape/loss"].shape == (4,)
    assert logged["relative_loss"].shape == (17,)
    assert logged["align/dlogits"].shape == (batch[0].shape[0], 3)
    for name, value in logged.items():
        assert isinstance(value, (float, np.ndarray)), name


@pytest.mark.parametrize(
    "call", ["ics", "landscape_loop", "gradient_stats", "alignment"]
)
def test_unknown_bn_mode_is_a_clear_error(call: str) -> None:
    model, batch, opt, layers, param = _setup("conv_native_bn2d")
    before = fingerprint(model, opt)
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        CALLS[call](model, batch, opt, layers, param, "inference")
    assert_same(before, fingerprint(model, opt))
