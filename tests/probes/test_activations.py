"""activation_stats and ActivationStatsProbe against a float64 numpy twin; no side effects."""

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.probes.activations import ActivationStatsProbe, activation_stats
from bnlab.probes.base import ProbeContext


class NoisyShift(nn.Module):
    """A module with its own noise generator and the noise_state protocol."""

    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(7)

    def forward(self, x):
        if not self.training:
            return x
        return x + 0.1 * torch.randn(x.shape, generator=self.gen)

    def noise_state(self):
        return {"gen": self.gen.get_state()}

    def set_noise_state(self, state):
        self.gen.set_state(state["gen"])


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Sigmoid(), nn.Dropout(0.2),
        nn.Linear(6, 4), nn.BatchNorm1d(4), NoisyShift(), nn.Sigmoid(), nn.Linear(4, 3),
    )


def convnet():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
    )


def twin(x: np.ndarray, levels, bins):
    """The float64 numpy reference: per-channel loops over (N, C, *S)."""
    x = np.asarray(x, dtype=np.float64)
    rows = [x[:, j].reshape(-1) for j in range(x.shape[1])]
    lo = min(r.min() for r in rows)
    hi = max(r.max() for r in rows)
    edges = np.linspace(lo, hi, bins + 1)
    return {
        "mean": np.array([r.mean() for r in rows]),
        "std": np.array([r.std() for r in rows]),
        "percentiles": np.stack([np.percentile(r, levels) for r in rows]),
        "hist": np.stack([np.histogram(r, edges)[0] for r in rows]),
        "edges": edges,
    }


def capture(model, x, module, where, train_norms=True):
    """Independent capture: deep-copied model, plain hook, norms in train mode."""
    import copy

    clone = copy.deepcopy(model)
    clone.train(train_norms)
    for m in clone.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    target = dict(clone.named_modules())[module]
    out = {}
    target.register_forward_hook(lambda m, a, o: out.setdefault("x", a[0] if where == "pre" else o))
    with torch.no_grad():
        clone(x)
    return out["x"].double().numpy()


CASES = [
    pytest.param(mlp, (32, 5), "1", 1, "pre", id="fc-pre-by-index"),
    pytest.param(mlp, (32, 5), "5", "5", "post", id="fc-post-by-name"),
    pytest.param(convnet, (4, 2, 6, 6), "1", 1, "pre", id="conv-pre"),
    pytest.param(convnet, (4, 2, 6, 6), "4", 2, "post", id="conv-post-site2"),
]


@pytest.mark.parametrize(("make", "shape", "module", "item", "where"), CASES)
def test_matches_numpy_twin(make, shape, module, item, where):
    model = make()
    if make is mlp:  # no noise or dropout in the reference pass: switch them off
        model[3].p = 0.0
        model[6].eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    stats = activation_stats(model, (x, None), [item], where=where, bins=7)[str(item)]
    ref = twin(capture(model, x, module, where), (15, 50, 85), 7)
    for name in ("mean", "std", "percentiles", "edges"):
        np.testing.assert_allclose(getattr(stats, name), ref[name], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(stats.hist, ref["hist"])
    assert stats.hist.sum() == stats.count * stats.mean.shape[0]


def test_units_subset_and_fixed_edges():
    model = mlp()
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(4))
    full = activation_stats(model, x, [2], bins=[-0.5, 0.0, 0.5])["2"]
    sub = activation_stats(model, x, [2], units=[3, 0], bins=[-0.5, 0.0, 0.5])["2"]
    np.testing.assert_array_equal(sub.units, [3, 0])
    np.testing.assert_array_equal(sub.mean, full.mean[[3, 0]])
    np.testing.assert_array_equal(sub.hist, full.hist[[3, 0]])
    # BN output in train mode: mean 0, std ~1, so everything outside ±0.5 is not counted
    assert full.hist.sum() < full.count * 4


def _fingerprint(model):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    flags = [m.training for m in model.modules()]
    rng = torch.get_rng_state().clone()
    noise = [m.gen.get_state().clone() for m in model.modules() if isinstance(m, NoisyShift)]
    return state, grads, flags, rng, noise


def _assert_same(a, b):
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]), k
    for k in a[1]:
        assert (a[1][k] is None and b[1][k] is None) or torch.equal(a[1][k], b[1][k]), k
    assert a[2] == b[2]
    assert torch.equal(a[3], b[3])
    assert all(torch.equal(u, v) for u, v in zip(a[4], b[4], strict=True))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("model_training", [True, False], ids=["model-train", "model-eval"])
def test_no_side_effects(mode, model_training):
    model = mlp()
    x = torch.randn(16, 5)
    model(x).sum().backward()  # grads present
    model.train(model_training)
    before = _fingerprint(model)
    activation_stats(model, x, [1, 2, "5"], where="post", bn_mode=mode)
    _assert_same(before, _fingerprint(model))


def test_eval_mode_uses_running_statistics():
    model = mlp()
    with torch.no_grad():
        model[1].running_mean.fill_(2.0)
        model[1].running_var.fill_(4.0)
    x = torch.randn(16, 5)
    stats = activation_stats(model, x, [1], where="post", bn_mode="eval")["1"]
    pre = activation_stats(model, x, [1], where="pre", bn_mode="eval")["1"]
    bn = model[1]
    expected = (pre.mean - 2.0) / np.sqrt(4.0 + bn.eps) * bn.weight.detach().double().numpy()
    np.testing.assert_allclose(stats.mean, expected + bn.bias.detach().double().numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"where": "middle"}, "where"),
        ({"bn_mode": "test"}, "bn_mode"),
        ({"percentiles": (10, 101)}, "percentiles"),
        ({"units": [9]}, "units"),
        ({"bins": [1.0, 0.0]}, "increasing"),
    ],
    ids=["bad-where", "bad-bn-mode", "bad-level", "bad-unit", "bad-edges"],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        activation_stats(mlp(), torch.randn(8, 5), [1], **kwargs)


def test_unknown_layer():
    with pytest.raises(ValueError, match="out of range"):
        activation_stats(mlp(), torch.randn(8, 5), [7])


def _ctx(model, batch, step, rows):
    def log(name, value):
        rows.setdefault(step, {})[name] = value

    return ProbeContext(model, nn.functional.cross_entropy, batch, None, 0.1, step, log)


def test_probe_logs_stats_and_drift_and_resumes():
    model = mlp()
    fixed = torch.randn(20, 5, generator=torch.Generator().manual_seed(5))
    probe = ActivationStatsProbe([1], units=[0, 2], batch=(fixed, None), schedule=2)
    rows = {}
    means = []
    for step in range(3):
        probe.on_step(_ctx(model, None, step, rows))
        means.append(activation_stats(model, fixed, [1], units=[0, 2])["1"])
        with torch.no_grad():  # the model moves between calls
            model[0].bias.add_(0.3 * (step + 1))
    assert "act/1/mean_drift" not in rows[0]
    for step in (1, 2):
        np.testing.assert_allclose(
            rows[step]["act/1/mean_drift"], np.abs(means[step].mean - means[step - 1].mean)
        )
        np.testing.assert_allclose(
            rows[step]["act/1/var_drift"], np.abs(means[step].std**2 - means[step - 1].std**2)
        )
    assert rows[1]["act/1/mean_drift"].max() > 0
    # a fresh probe loaded from the state continues the drift
    fresh = ActivationStatsProbe([1], units=[0, 2], batch=(fixed, None))
    fresh.load_state_dict(probe.state_dict())
    fresh_rows, again = {}, {}
    fresh.on_step(_ctx(model, None, 3, fresh_rows))
    probe.on_step(_ctx(model, None, 3, again))
    np.testing.assert_array_equal(fresh_rows[3]["act/1/mean_drift"], again[3]["act/1/mean_drift"])


@pytest.mark.parametrize("bins", [5, 7, 30], ids=lambda b: f"bins{b}")
def test_uniform_histogram_matches_numpy_on_bin_edges(bins):
    """Integer-valued and edge-hugging activations: every value on or next to an edge."""
    from bnlab.probes._hist import edges as _edges
    from bnlab.probes._hist import histogram as _histogram

    gen = torch.Generator().manual_seed(bins)
    ints = torch.randint(0, 11, (4, 500), generator=gen).double()
    near = torch.linspace(0, 10, bins + 1, dtype=torch.float64)
    wiggle = torch.tensor([-1e-12, 0.0, 1e-12], dtype=torch.float64)
    hugging = (near[:, None] + wiggle).reshape(1, -1).clamp(0, 10).expand(4, -1)
    values = torch.cat([ints, hugging], dim=1)
    edges = _edges(values, bins)
    fast = _histogram(values, edges, uniform=True).numpy()
    ref = np.stack([np.histogram(r, edges.numpy())[0] for r in values.numpy()])
    np.testing.assert_array_equal(fast, ref)
