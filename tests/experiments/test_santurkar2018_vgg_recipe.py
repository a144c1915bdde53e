"""What the Santurkar VGG recipes measure, pinned: sites, units, where, BN mode, pooling, data.

The moments are checked against the norm module's own output captured by an independent
forward hook in the same training pass: per channel over batch × spatial positions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import pytest
import torch

from bnlab.experiments import RunEnv, get_recipe
from bnlab.experiments.santurkar2018 import common
from bnlab.experiments.santurkar2018.common import VggConfig, VggData
from bnlab.models import create_model, norm_sites
from bnlab.probes import ActivationStatsProbe, Schedule
from bnlab.recipes.santurkar2018.common import SITE_MAP
from bnlab.recipes.santurkar2018.vgg import (
    FIG1_LAYERS,
    FIG2_LAYERS,
    FIG6_LAYERS,
    HIST,
    MOMENTS,
    PERCENTILES,
)
from bnlab.sweep.config import ConfigError
from bnlab.train import MemorySink, train

LAYERS = {"santurkar2018.vgg": FIG1_LAYERS, "santurkar2018.noise": FIG2_LAYERS,
          "santurkar2018.lp": FIG6_LAYERS}


def _env(seed=0, data="mnist1d"):
    return RunEnv(seed, "smoke", data, "cifar10", torch.device("cpu"))


def _job(recipe, seed=0, **fields):
    rec = get_recipe(recipe)
    cfg = rec.config_of({**vars(rec.presets["smoke"].config), **fields})
    return cfg, rec.build(cfg, _env(seed))


def _probes(job):
    return {p.prefix: p for p in job.probes if isinstance(p, ActivationStatsProbe)}


def test_site_map_is_vgg16s_norm_sites():
    model = create_model("vgg16", in_shape=(3, 32, 32), num_classes=10, width=0.125)
    sites = norm_sites(model)
    assert len(sites) == 15 == len(SITE_MAP)
    for site in sites:
        assert site.name == SITE_MAP[site.index] + ".norm"
        kind = torch.nn.Conv2d if site.index <= 13 else torch.nn.Linear
        assert isinstance(site.layer, kind)


@pytest.mark.parametrize("recipe", sorted(LAYERS))
def test_histograms_at_the_papers_layers_at_the_norm_output_in_train_mode(recipe):
    cfg, job = _job(recipe)
    hist = _probes(job)["act"]
    assert hist.layers == LAYERS[recipe] == cfg.hist_layers
    assert hist.options["where"] == "post"  # the norm's output: what feeds the ReLU
    assert hist.options["bn_mode"] == "train" and hist.batch is None  # the training batch
    assert tuple(hist.options["percentiles"]) == PERCENTILES
    assert hist.options["bins"] == cfg.hist_bins and hist.schedule.every == cfg.hist_every
    for layer in LAYERS[recipe]:
        assert len(hist.options["units"][layer]) == cfg.hist_units
        for q in HIST:
            assert q.matches(f"act/{layer}/{q.name.rsplit('/', 1)[1]}")
    assert job.model.training and hist.watch_forward(job.model) is not None


def test_noise_recipe_tracks_moments_every_drift_every_steps():
    cfg, job = _job("santurkar2018.noise")
    moments = _probes(job)["moments"]
    assert moments.layers == FIG2_LAYERS
    assert moments.schedule.every == cfg.drift_every == 1
    assert get_recipe("santurkar2018.noise").presets["paper"].config.drift_every == 1
    assert moments.options["where"] == "post" and moments.options["bn_mode"] == "train"
    assert moments.batch is None
    assert all(len(u) == cfg.drift_units for u in moments.options["units"].values())
    assert {q.name.rsplit("/", 1)[1] for q in MOMENTS} >= {"mean_drift", "var_drift"}


def test_units_are_shared_by_the_networks_of_a_seed_only():
    def units(norm, seed, prefix="moments"):
        return _probes(_job("santurkar2018.noise", seed, norm=norm)[1])[prefix].options["units"]

    assert units("none", 0) == units("noisy_bn", 0) == units("noise", 0)
    assert units("bn", 0) != units("bn", 1)
    assert units("bn", 0, "act") != {k: v[:4] for k, v in units("bn", 0).items()}


@pytest.mark.parametrize("recipe, grid", [
    ("santurkar2018.vgg", {("none", 0.1), ("none", 0.5), ("bn", 0.1), ("bn", 0.5)}),
    ("santurkar2018.noise", {("none",), ("bn",), ("noisy_bn",), ("noise",)}),
    ("santurkar2018.lp", {("none", False), ("bn", False), ("l1", False), ("l2", False),
                          ("linf", False), ("l1", True), ("l2", True), ("linf", True)}),
])
@pytest.mark.parametrize("scale", ["smoke", "quick", "paper"])
def test_grids(recipe, grid, scale):
    fields = {"santurkar2018.vgg": ("norm", "lr"), "santurkar2018.noise": ("norm",),
              "santurkar2018.lp": ("norm", "centered")}[recipe]
    plan = get_recipe(recipe).plan(scale, seeds=[0])
    assert {tuple(s.config[f] for f in fields) for s in plan.specs} == grid


def test_layers_get_the_papers_noise_and_the_lp_reading():
    _, job = _job("santurkar2018.noise", norm="noisy_bn")
    noisy = [s.norm for s in norm_sites(job.model)]
    assert len(noisy) == 15
    assert all(type(n).__name__ == "NoisyBatchNorm" for n in noisy)
    assert {(n.n_mu, n.n_sigma, n.r_mu, n.r_sigma) for n in noisy} == {(0.5, 1.25, 0.1, 0.1)}
    _, job = _job("santurkar2018.noise", norm="noise")
    assert {type(s.norm).__name__ for s in norm_sites(job.model)} == {"Noise"}
    for centered in (False, True):
        _, job = _job("santurkar2018.lp", norm="linf", centered=centered)
        norms = [s.norm for s in norm_sites(job.model)]
        assert {(n.p, n.centered) for n in norms} == {(float("inf"), centered)}


def test_centered_needs_an_lp_norm_and_units_must_fit():
    with pytest.raises(ConfigError, match="centered"):
        VggConfig(norm="bn", centered=True)
    with pytest.raises(ConfigError, match="noise_n_sigma"):
        VggConfig(norm="noisy_bn", noise_n_sigma=0.5)
    with pytest.raises(ConfigError, match="acc_examples"):
        VggConfig(acc_examples=64)
    model = create_model("vgg16", in_shape=(1, 40), num_classes=10, width=0.125)
    with pytest.raises(ConfigError, match="layer #2 has 8 units"):
        common.sampled_units(model, (2,), 9, _env())
    with pytest.raises(ConfigError, match="not a norm site"):
        common.sampled_units(model, (16,), 1, _env())


def _hooked_outputs(model, layers):
    seen = {layer: [] for layer in layers}
    handles = [norm_sites(model)[layer - 1].norm.register_forward_hook(
        lambda m, a, out, layer=layer: seen[layer].append(out.detach().clone()))
        for layer in layers]
    return seen, handles


@pytest.mark.parametrize("norm", ["bn", "noisy_bn", "none"])
def test_conv_moments_pool_batch_and_space_at_the_norm_output(norm):
    # 2-D images (N, C, H, W) through the recipe's own probe builders.
    torch.manual_seed(0)
    cfg = replace(VggConfig(), norm=norm, width=0.125, acc_examples=128)
    x, y = torch.randn(256, 3, 32, 32), torch.arange(256) % 10
    run = common.build_model(cfg, _env(), VggData(x, y, x[:128], y[:128], x[:64], y[:64]))
    units = common.sampled_units(run.model, FIG2_LAYERS, 4, _env())
    probe = common.site_probe(FIG2_LAYERS, units, bins=1, schedule=Schedule(every=1),
                              prefix="moments", percentiles=(50,))
    job = common.vgg_training(replace(cfg, steps=2, eval_every=1000), _env(), run, [probe])
    seen, handles = _hooked_outputs(job.model, FIG2_LAYERS)
    sink = MemorySink()
    train(job.model, job.loader, job.loss, job.optimizer, steps=2, probes=job.probes, sink=sink)
    for h in handles:
        h.remove()
    logged = {(s, n): a for s, n, a in sink.arrays}
    for layer in FIG2_LAYERS:
        outs = [o[:, units[layer]].double() for o in seen[layer][:2]]  # (N, U, H, W) per step
        means = [o.mean(dim=(0, 2, 3)) for o in outs]  # pooled over batch × H × W
        varis = [o.var(dim=(0, 2, 3), unbiased=False) for o in outs]
        torch.testing.assert_close(torch.from_numpy(logged[(0, f"moments/{layer}/mean")]),
                                   means[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(torch.from_numpy(logged[(0, f"moments/{layer}/std")]) ** 2,
                                   varis[0], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(torch.from_numpy(logged[(1, f"moments/{layer}/mean_drift")]),
                                   (means[1] - means[0]).abs(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(torch.from_numpy(logged[(1, f"moments/{layer}/var_drift")]),
                                   (varis[1] - varis[0]).abs(), rtol=1e-5, atol=1e-6)
        assert (0, f"moments/{layer}/mean_drift") not in logged
        step0 = torch.from_numpy(logged[(0, f"moments/{layer}/mean")])
        if norm == "bn":  # batch statistics at init (γ = 1, β = 0): mean 0, variance ≈ 1
            assert step0.abs().max() < 1e-5
        if norm == "noisy_bn":  # the noise is part of what feeds the ReLU
            assert step0.abs().max() > 1e-2


def test_train_accuracy_is_taken_in_training_mode_without_trace():
    _, job = _job("santurkar2018.noise", norm="noisy_bn")
    model = job.model
    before = copy.deepcopy(model.state_dict())
    noise_before = [m.noise_state()["rng"].clone() for m in model.modules()
                    if hasattr(m, "noise_state")]
    model.eval()  # as the loop calls it
    with torch.no_grad():
        first = job.evaluate(model)
        again = job.evaluate(model)
    assert first == again  # the noise is replayed, not advanced
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    noise_after = [m.noise_state()["rng"] for m in model.modules() if hasattr(m, "noise_state")]
    assert all(torch.equal(a, b) for a, b in zip(noise_before, noise_after, strict=True))
    assert not any(m.training for m in model.modules())


def test_train_accuracy_matches_a_plain_training_mode_count():
    _, job = _job("santurkar2018.vgg", norm="bn")
    model = job.model
    twin = copy.deepcopy(model).train()
    x, y = job.evaluate.data.x_acc, job.evaluate.data.y_acc
    bs = 128
    with torch.no_grad():
        hits = sum(int((twin(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum())
                   for i in range(0, len(x) // bs * bs, bs))
    model.eval()
    assert job.evaluate(model)["train_acc"] == pytest.approx(hits / (len(x) // bs * bs))


@dataclass(frozen=True)
class _SortedCifarEnv(RunEnv):
    """A RunEnv whose 'paper' data is a synthetic CIFAR-shaped set sorted by class."""

    def load(self, split):
        n = 600 if split == "train" else 300
        y = torch.arange(10).repeat_interleave(n // 10)
        noise = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(n))
        x = noise * 0.5 + y.view(-1, 1, 1, 1) * 0.05
        return x, y


def test_paper_data_is_a_balanced_standardized_subset():
    cfg = replace(VggConfig(), train_per_class=20, acc_examples=128, test_examples=100)
    env = _SortedCifarEnv(3, "quick", "paper", "cifar10", torch.device("cpu"))
    data = common.load_data(cfg, env)
    assert torch.bincount(data.y, minlength=10).tolist() == [20] * 10
    assert len(data.y_test) == 100 and len(data.y_acc) == 128
    mean = data.x.mean(dim=(0, 2, 3))
    std = data.x.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    # the accuracy sample is drawn from the (standardized) training subset
    rows = {tuple(r.flatten()[:6].tolist()) for r in data.x}
    assert all(tuple(r.flatten()[:6].tolist()) in rows for r in data.x_acc)
    again = common.load_data(cfg, env)
    assert torch.equal(again.x, data.x) and torch.equal(again.x_acc, data.x_acc)


def test_mnist1d_runs_its_own_step_count():
    rec = get_recipe("santurkar2018.noise")
    cfg = rec.presets["quick"].config
    assert common.run_steps(cfg, _env(data="mnist1d")) == cfg.steps_mnist1d < cfg.steps
    assert common.run_steps(cfg, _env(data="paper")) == cfg.steps
    paper = rec.presets["paper"].config
    assert common.run_steps(paper, _env(data="mnist1d")) == paper.steps == 15_000


@pytest.mark.parametrize("recipe", sorted(LAYERS))
def test_the_card_states_the_quick_reductions(recipe):
    rec = get_recipe(recipe)
    quick, paper = rec.presets["quick"].config, rec.presets["paper"].config
    text = rec.card.data_paper
    assert quick.width == 0.125 and "width 1/8" in text
    assert f"{quick.steps:,} steps" in text and f"paper: {paper.steps:,}" in text
    assert quick.train_per_class == 1_000 and "1,000 images per class" in text
    assert quick.acc_examples == 1_024 and quick.test_examples == 1_000
    assert "1,024 training and 1,000 test images" in text
    if recipe == "santurkar2018.noise":
        assert quick.drift_every == 5 and "moments every 5 steps" in text
    assert "steps_mnist1d" in rec.card.data_mnist1d and quick.steps_mnist1d < quick.steps
