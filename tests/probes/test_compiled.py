"""torch.compile'd models: measured through their original module, with a warning (item 4).

Compiled with ``backend="aot_eager"``, the CPU backend that needs no C compiler. Each
measurement on the compiled wrapper must equal, bit for bit, the same measurement on the
original module, accept names with and without the ``_orig_mod.`` prefix, and say that
it measured the original module.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _zoo import batch, make

from bnlab.layers import resolve_module
from bnlab.probes import (
    ActivationStatsProbe,
    GradientStatsProbe,
    ProbeContext,
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
PREFIX = "_orig_mod."


@pytest.fixture(scope="module")
def compiled():
    model = make("preact")
    cm = torch.compile(model, backend="aot_eager")
    x, y = batch()
    CE(cm(x), y).backward()  # really compiled and run, as in a user's loop
    model.zero_grad(set_to_none=True)
    return cm, model


def _update(model):
    return {n: 0.01 * torch.ones_like(p) for n, p in model.named_parameters()}


# (call, names): the call takes the model and a layer-name prefix ("" or "_orig_mod.").
CALLS = {
    "activation_stats": lambda m, p: activation_stats(m, batch(), [1, f"{p}layer1.0.bn2"]),
    "depth_profile": lambda m, p: depth_profile(m, batch(), sites=[1, f"{p}layer2.0.bn2"],
                                                where="pre_norm"),
    "interpolated_step": lambda m, p: interpolated_step_stats(
        m, CE, batch(), {f"{p}{n}": d for n, d in _update(m).items()}, steps=3),
    "explosion_rate": lambda m, p: gradient_explosion_rate(
        m, CE, batch(), layers=[1, f"{p}layer1.0.bn2", 4]),
    "gradient_stats": lambda m, p: gradient_stats(m, CE, batch(), [2, f"{p}layer1.0.conv1"]),
    "ics": lambda m, p: internal_covariate_shift(
        m, CE, batch(), torch.optim.SGD(m.parameters(), lr=0.1), [2, f"{p}layer2.0.conv2"]),
    "landscape": lambda m, p: landscape(m, CE, batch(), lr=0.1),
    "relative_loss": lambda m, p: relative_loss(m, CE, batch(), etas=(0.1, 1.0)),
    "alignment": lambda m, p: output_gradient_alignment(m, CE, batch(),
                                                        param=f"{p}layer1.0.conv1"),
    "bn_identity": lambda m, p: bn_gradient_identity(m, CE, batch(), f"{p}layer1.0.bn2"),
}


def _same(a, b, path="result"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _same(u, v, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif hasattr(a, "__dataclass_fields__"):
        _same(vars(a), vars(b), path)
    else:
        assert a == b or (a != a and b != b), path  # NaN equals NaN here


@pytest.mark.parametrize("prefix", ["", PREFIX], ids=["plain-names", "prefixed-names"])
@pytest.mark.parametrize("name", list(CALLS))
def test_compiled_model_is_measured_through_its_original_module(compiled, name, prefix):
    cm, model = compiled
    with pytest.warns(UserWarning, match=r"original module of a torch\.compile'd model"):
        got = CALLS[name](cm, prefix)
    _same(got, CALLS[name](model, prefix))  # results are keyed by the names asked for


def test_resolve_module_accepts_the_prefix(compiled):
    cm, model = compiled
    assert resolve_module(model, f"{PREFIX}layer1.0.bn2")[1] is model.layer1[0].bn2
    assert resolve_module(cm, f"{PREFIX}layer1.0.bn2")[1] is model.layer1[0].bn2
    with pytest.raises(ValueError, match="no module named"):
        resolve_module(model, f"{PREFIX}nope")


def test_scheduled_probes_accept_a_compiled_model(compiled):
    cm, model = compiled
    x, y = batch()
    assert ActivationStatsProbe([1]).watch_forward(cm) is None  # no hooks in compiled code
    logged, plain = {}, {}
    for target, log in ((cm, logged), (model, plain)):
        ctx = ProbeContext(target, CE, (x, y), None, 0.1, 0, log.__setitem__)
        expect = pytest.warns(UserWarning, match="torch.compile") if target is cm else nullcontext()
        with expect:
            ActivationStatsProbe([1]).on_step(ctx)
            GradientStatsProbe(["layer1.0.conv1"]).on_step(ctx)
    assert logged.keys() == plain.keys() and "grad/layer1.0.conv1/std" in plain
    for key in plain:
        np.testing.assert_array_equal(logged[key], plain[key])
