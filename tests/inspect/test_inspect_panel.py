"""bnlab.inspect on architectures the project did not write (tests/probes/_zoo.py).

Each stored number is checked against the library's measurement called directly on a copy
of the model at the same weights and batch (so a site stored under the wrong index, a
probe run at the wrong point or on the wrong variant fails), and the panel is checked to
observe without steering: training with it gives the same weights as training without.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bnlab
from bnlab.data import Loader
from bnlab.errors import UserError
from bnlab.inspect import Panel
from bnlab.layers import swap_norms
from bnlab.probes import (
    activation_stats,
    gradient_explosion_rate,
    gradient_stats,
    hessian_eigs,
    internal_covariate_shift,
    landscape,
)
from bnlab.recipes.inspect import INSPECT
from bnlab.results import Store
from bnlab.train import seed_everything, train

CE = F.cross_entropy
STEPS = 6


def _loader(data, dtype=torch.float64):
    (x, y), _ = data
    return Loader(x.to(dtype), y, 16, seed=0)


def _first_batch(loader):
    return next(iter(loader.epoch(0)))


@pytest.fixture(scope="module")
def runs(zoo, data, tmp_path_factory):
    """Each architecture trained STEPS steps with the default panel, with and without BN."""
    out = {}
    for arch in ("preact", "mobilenetv2"):
        model = zoo.make(arch)
        init = copy.deepcopy(model)
        path = tmp_path_factory.mktemp(arch)
        res = bnlab.inspect(model, CE, _loader(data), steps=STEPS, compare="none", out=path)
        out[arch] = (path, init, res)
    return out


def _metric(store, run, name, step=0):
    df = store.metrics(runs=[run], names=[name])
    return float(df[df.step == step].value.iloc[0])


def _array(store, run, name, step=0):
    return dict(store.arrays(run, name))[step]


@pytest.mark.parametrize("arch", ["preact", "mobilenetv2"])
def test_stores_what_the_card_declares_for_both_variants(runs, arch):
    path, _, res = runs[arch]
    assert [v.label for v in res.variants] == ["as given", "BN→none"]
    assert all(v.status == "finished" for v in res.variants)
    assert not any("turned off" in t for v in res.variants for ts in v.notes.values() for t in ts)
    with Store(path) as store:
        stored = set()
        for v in res.variants:
            names = set(store.metrics(runs=[v.run_id]).name) | set(store.array_names(v.run_id))
            for name in names:
                q = INSPECT.quantity_of(name)
                assert q is not None, f"{name!r} is not on the inspect card"
                stored.add(q.name)
            costs = {n for n in names if n.startswith("cost/")}
            assert costs == {f"cost/{p}" for p in Panel().probes}
            assert all(store.metrics(runs=[v.run_id], names=sorted(costs)).value > 0)
    not_in_default = {"relative_loss", "test_loss", "test_acc", "diverged_step"}
    declared = {q.name for q in INSPECT.all_stored} - not_in_default
    assert declared <= stored, sorted(declared - stored)


def test_step_zero_values_are_the_library_measurements_at_init(runs, data):
    """Stored step-0 numbers = the measurements on a copy of the initial weights."""
    path, init, res = runs["preact"]
    batch = _first_batch(_loader(data))
    with Store(path) as store:
        run = res.variants[0].run_id
        config = store.run(run)["config"]
        feeders = {int(k): v for k, v in config["feeders"].items()}
        assert feeders == {1: "conv1", 2: "layer1.0.conv1", 4: "layer2.0.conv1"}
        grads = gradient_stats(init, CE, batch, list(feeders.values()))
        for site, layer in feeders.items():
            assert _metric(store, run, f"grad/{site}/norm") == pytest.approx(grads[layer]["norm"])
        opt = torch.optim.SGD(init.parameters(), lr=0.05, momentum=0.9)
        ics = internal_covariate_shift(init, CE, batch, opt, ["layer1.0.conv1", "layer2.0.conv1"])
        assert _metric(store, run, "ics/2/l2") == pytest.approx(ics["layer1.0.conv1"]["l2"])
        assert _metric(store, run, "ics/4/l2") == pytest.approx(ics["layer2.0.conv1"]["l2"])
        expl = gradient_explosion_rate(init, CE, batch)
        np.testing.assert_allclose(_array(store, run, "explosion/ratios"), expl["ratios"])
        top = hessian_eigs(init, CE, batch, tol=1e-3, max_iter=20).values[0]
        assert _metric(store, run, "hessian/top") == pytest.approx(top, rel=1e-6)
        stats = activation_stats(init, batch, [4])["4"]
        np.testing.assert_allclose(_array(store, run, "act/4/percentiles"), stats.percentiles)
        beta = landscape(init, CE, batch, lr=0.05)["beta"]
        assert _metric(store, run, "landscape/beta") == pytest.approx(beta)


def test_the_compared_variant_is_the_same_network_without_bn(runs, data):
    path, init, res = runs["mobilenetv2"]
    batch = _first_batch(_loader(data))
    plain = swap_norms(copy.deepcopy(init), "none")
    with Store(path) as store:
        run = res.variants[1].run_id
        assert store.run(run)["config"]["variant"] == "BN→none"
        expl = gradient_explosion_rate(plain, CE, batch)
        np.testing.assert_allclose(_array(store, run, "explosion/ratios"), expl["ratios"])
        with_bn = _array(store, res.variants[0].run_id, "explosion/ratios")
        assert not np.allclose(with_bn[: len(expl["ratios"])], expl["ratios"])


def test_sites_that_cannot_be_measured_are_named_with_the_reason(runs):
    path, _, res = runs["preact"]
    with Store(path) as store:
        skipped = store.run(res.variants[0].run_id)["config"]["skipped"]
    # pre-activation: sites 3 and 5 normalize a residual sum; site 1's conv runs first
    assert set(skipped["gradients"]) == {"3", "5"}
    assert "a sum (a residual connection)" in skipped["gradients"]["3"]
    assert "ICS is 0 by definition" in skipped["ics"]["1"]
    mobile = runs["mobilenetv2"][2]
    assert any("feeds the next layer directly" in t for t in mobile.variants[0].notes["depth"])


def test_points_cover_the_run_and_the_end(runs):
    path, _, res = runs["preact"]
    with Store(path) as store:
        run = res.variants[0].run_id
        points = store.run(run)["config"]["points"]
        assert points["hessian"] == [0, STEPS] and points["explosion"] == [0]
        for probe in ("hessian", "landscape", "activations"):
            name = {"hessian": "cost/hessian", "landscape": "landscape/beta",
                    "activations": "cost/activations"}[probe]
            steps = sorted(store.metrics(runs=[run], names=[name]).step)
            assert steps == points[probe], probe


def test_steps_zero_measures_once_and_leaves_the_model_as_it_was(zoo, data, tmp_path):
    model = zoo.make("densenet")
    before = copy.deepcopy(model.state_dict())
    res = bnlab.inspect(model, CE, _loader(data), steps=0, out=tmp_path, probes="all")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    with Store(tmp_path) as store:
        df = store.metrics(runs=[res.variants[0].run_id])
        assert set(df.step) == {0} and "train_loss" not in set(df.name)
        assert (df.name == "cost/hessian").sum() == 1
        skipped = store.run(res.variants[0].run_id)["config"]["skipped"]
    assert "a concatenation" in skipped["gradients"]["3"]  # DenseNet: bn of a concat


class _DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.3)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(F.relu(self.bn(self.conv(x))))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.head(out.mean(dim=(2, 3)))


def test_the_panel_observes_without_steering(data, tmp_path):
    """Every probe of "all" on: the same weights and running stats as a bare training run."""
    torch.manual_seed(3)
    model = _DropoutNet().double()
    bare = copy.deepcopy(model)
    bnlab.inspect(model, CE, _loader(data), steps=5, probes="all", out=tmp_path, seed=7)
    seed_everything(7, threads=torch.get_num_threads())
    train(bare, _loader(data), CE, torch.optim.SGD(bare.parameters(), lr=0.05, momentum=0.9),
          steps=5)
    for (name, a), b in zip(model.state_dict().items(), bare.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_whole_panel_in_eval_mode_and_where_the_mode_matters(zoo, data, tmp_path, runs):
    """bn_mode="eval": every probe runs; the BN variant's landscape changes, the no-norm
    variant's does not (it has no batch statistics to switch)."""
    res = bnlab.inspect(zoo.make("mobilenetv2"), CE, _loader(data), steps=2, compare="none",
                        out=tmp_path, bn_mode="eval")
    assert not any("turned off" in t for v in res.variants for ts in v.notes.values() for t in ts)
    assert all(set(v.cost) == set(Panel().probes) for v in res.variants)
    path, _, train_res = runs["mobilenetv2"]
    with Store(tmp_path) as ev, Store(path) as tr:
        assert ev.run(res.variants[0].run_id)["config"]["bn_mode"] == "eval"
        loss = [_metric(s, r.variants[i].run_id, "landscape/loss_min")
                for s, r in ((ev, res), (tr, train_res)) for i in (0, 1)]
    bn_eval, none_eval, bn_train, none_train = loss
    assert bn_eval != pytest.approx(bn_train, rel=1e-6)
    assert none_eval == pytest.approx(none_train, rel=1e-12)


def test_a_compiled_model_trains_compiled_and_is_measured_eagerly(zoo, data, tmp_path):
    model = zoo.make("preact")
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="aot_eager")
    res = bnlab.inspect(compiled, CE, _loader(data), steps=3, out=tmp_path,
                        probes=["gradients", "activations", "explosion"])
    variant = res.variants[0]
    assert variant.status == "finished"
    assert any("original module" in t for texts in variant.notes.values() for t in texts)
    batch = _first_batch(_loader(data))
    ref = gradient_stats(eager, CE, batch, ["layer1.0.conv1"])["layer1.0.conv1"]["norm"]
    with Store(tmp_path) as store:
        assert store.run(variant.run_id)["config"]["compiled"] is True
        assert _metric(store, variant.run_id, "grad/2/norm") == pytest.approx(ref, rel=1e-9)
        assert sorted(set(store.metrics(runs=[variant.run_id], names=["cost/gradients"]).step)) \
            == [0, 1, 2, 3]


def test_running_again_replaces_the_run(zoo, data, tmp_path):
    kw = dict(steps=2, out=tmp_path, probes=["explosion", "depth"])
    first = bnlab.inspect(zoo.make("preact"), CE, _loader(data), **kw)
    with Store(tmp_path) as store:
        rows = len(store.metrics())
    second = bnlab.inspect(zoo.make("preact"), CE, _loader(data), **kw)
    assert second.variants[0].run_id == first.variants[0].run_id
    with Store(tmp_path) as store:
        assert len(store.metrics()) == rows and len(store.runs()) == 1


def _bad_calls(zoo, data):
    good = _loader(data)
    one_channel = Loader(torch.randn(32, 1, 8, 8, dtype=torch.float64),
                         torch.randint(0, 4, (32,)), 8)
    many_classes = Loader(data[0][0].double(), data[0][1] * 3, 16)
    no_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(),
                          nn.LazyLinear(4)).double()
    no_bn(good.x[:2])
    return {
        "shape": (zoo.make("preact"), one_channel, {}, "cannot take inputs of shape"),
        "classes": (zoo.make("preact"), many_classes, {}, "cannot compare the model's output"),
        "steps": (zoo.make("preact"), good, {"steps": -1}, "steps must be an int >= 0"),
        "probe": (zoo.make("preact"), good, {"probes": ["icss"]}, "unknown probes"),
        "compare": (no_bn, good, {"compare": "none"}, "no torch.nn BatchNorm"),
        "pairs": (zoo.make("preact"), [good.x[:8]], {}, "(inputs, targets) tensor pairs"),
        "optimizer": (zoo.make("preact"), good,
                      {"optimizer": torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)},
                      "not the model's"),
        "no norm": (nn.Sequential(nn.Flatten(), nn.Linear(192, 4)).double(), good, {},
                    "no normalization module"),
    }


@pytest.mark.parametrize("case", ["shape", "classes", "steps", "probe", "compare", "pairs",
                                  "optimizer", "no norm"])
def test_bad_input_is_a_user_error(zoo, data, tmp_path, case):
    model, loader, kw, message = _bad_calls(zoo, data)[case]
    with pytest.raises(UserError, match=re.escape(message)):
        bnlab.inspect(model, CE, loader, out=tmp_path, **kw)


def test_the_hessian_budget_in_seconds_caps_the_products(zoo, data, tmp_path):
    panel = Panel.preset(["hessian"], hessian_seconds=1e-9, hessian_tol=1e-12)
    res = bnlab.inspect(zoo.make("preact"), CE, _loader(data), probes=panel, out=tmp_path)
    with Store(tmp_path) as store:
        run = res.variants[0].run_id
        assert _metric(store, run, "hessian/hvps") == 1.0  # stopped after the first product
        assert _metric(store, run, "hessian/converged") == 0.0
        assert _metric(store, run, "hessian/accuracy") > 1e-12
    with pytest.raises(UserError, match="hessian_seconds"):
        Panel(hessian_seconds=0.0)
