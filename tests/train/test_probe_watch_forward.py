"""Probes that measure from the training forward pass itself (Probe.watch_forward)."""

import numpy as np
import torch
from _train_helpers import TinyLoader, make_data, make_model
from torch import nn

from bnlab.probes.activations import ActivationStatsProbe
from bnlab.train import SGD, MemorySink, build_optimizer, train


class ExtraForwardProbe(ActivationStatsProbe):
    """The same probe, forced to run its own extra forward pass."""

    def watch_forward(self, model):
        return None


def _run(probes, model=None, steps=12):
    model = model if model is not None else make_model(noisy=False)
    x, y = make_data()
    sink = MemorySink()
    train(model, TinyLoader(x, y, batch_size=8, seed=3), nn.functional.cross_entropy,
          build_optimizer(SGD(lr=0.1, momentum=0.9), model.parameters()), steps=steps,
          probes=probes, sink=sink, log_every=4)
    return sink, model


def _arrays(sink, prefix):
    return {(s, n.split("/", 1)[1]): a for s, n, a in sink.arrays if n.startswith(prefix)}


def test_captured_stats_equal_an_extra_forward_on_the_training_batch(monkeypatch):
    import bnlab.probes.activations as act

    extra_forwards = []
    real = act.activation_stats
    monkeypatch.setattr(act, "activation_stats",
                        lambda *a, **k: extra_forwards.append(1) or real(*a, **k))
    # Dropout is active in training; 'post' of the BN sits before it, so both passes agree.
    captured = ActivationStatsProbe(["1"], where="post", schedule=3, prefix="cap")
    extra = ExtraForwardProbe(["1"], where="post", schedule=3, prefix="extra")
    sink, _ = _run([captured, extra])
    assert len(extra_forwards) == 4  # steps 0, 3, 6, 9: only the forced probe ran a pass
    got, want = _arrays(sink, "cap/"), _arrays(sink, "extra/")
    assert got.keys() == want.keys() and len(got) >= 4 * 5
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=str(k))


def test_capturing_probe_leaves_training_bit_identical():
    plain, m0 = _run([])
    probed, m1 = _run([ActivationStatsProbe([1, "3"], schedule=2)])
    assert plain.metrics == probed.metrics
    for a, b in zip(m0.parameters(), m1.parameters(), strict=True):
        assert torch.equal(a, b)


def test_no_capture_when_a_norm_is_frozen_in_eval_mode():
    model = make_model(noisy=False)
    model[1].eval()  # a frozen BN: the training pass is not the bn_mode="train" pass
    probe = ActivationStatsProbe([1], schedule=1)
    assert probe.watch_forward(model) is None
    assert ActivationStatsProbe([1], batch=make_data(8)).watch_forward(make_model()) is None
