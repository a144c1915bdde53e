"""What ioffe2015.acceleration, .sigmoid and .properties build and measure, pinned."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from bnlab.experiments import RunEnv, get_recipe
from bnlab.experiments.ioffe2015 import acceleration, properties, sigmoid
from bnlab.models import create_model, norm_sites


def _env(data="mnist1d", dataset="mnist", seed=0):
    return RunEnv(seed, "smoke", data, dataset, torch.device("cpu"))


def _bn_mlp(seed=0, norm="bn"):
    torch.manual_seed(seed)
    return create_model("mlp", norm=norm, in_shape=(12,), num_classes=4, widths=(8, 6),
                        activation="sigmoid", init="normal", init_std=0.5)


# -- properties ----------------------------------------------------------------------------


def test_population_stats_match_a_hand_run_forward():
    model = _bn_mlp()
    batches = [torch.randn(10, 12) for _ in range(4)]
    pop = properties.population_stats(model, batches)
    means, variances = {}, {}
    for xb in batches:  # by hand: each BN normalizes with its own batch statistics
        h = xb.double()
        for i, unit in enumerate(model.hidden):
            y = h @ unit.layer.weight.double().T
            means.setdefault(i, []).append(y.mean(0))
            variances.setdefault(i, []).append(y.var(0, correction=0))
            h = torch.sigmoid((y - y.mean(0)) / torch.sqrt(y.var(0, correction=0) + 1e-5)
                              * unit.norm.weight.double() + unit.norm.bias.double())
    for i in range(2):
        name = f"hidden.{i}.norm"
        torch.testing.assert_close(pop.mean[name], torch.stack(means[i]).mean(0))
        torch.testing.assert_close(pop.var()[name], torch.stack(variances[i]).mean(0) * 10 / 9)
        torch.testing.assert_close(pop.var(unbiased=False)[name],
                                   torch.stack(variances[i]).mean(0))
    assert float(model.hidden[0].norm.running_mean.abs().sum()) == 0.0  # untouched


def test_folding_running_statistics_is_the_eval_output():
    model = _bn_mlp()
    model.train()
    for _ in range(5):
        model(torch.randn(16, 12))  # running statistics away from 0/1
    model.eval()
    x = torch.randn(32, 12)
    running = {s.name: (s.norm.running_mean, s.norm.running_var) for s in norm_sites(model)}
    folded = properties.fold(model, {k: m for k, (m, _) in running.items()},
                             {k: v for k, (_, v) in running.items()})
    torch.testing.assert_close(folded(x), model(x), rtol=1e-6, atol=1e-6)
    bn_type = type(model.hidden[0].norm)
    assert not any(isinstance(m, bn_type) for m in folded.modules())
    shifted = properties.fold(model, {k: m + 1.0 for k, (m, _) in running.items()},
                              {k: v for k, (_, v) in running.items()})
    assert (shifted(x) - model(x)).abs().max() > 1e-2  # the fold uses the statistics given


def test_scale_invariance_holds_with_bn_and_fails_without():
    batch = (torch.randn(64, 12), torch.randint(0, 4, (64,)))
    exact = properties.scale_invariance(_bn_mlp(), batch, (0.1, 10.0), dtype=torch.float64,
                                        eps=properties.EPS_LIMIT)
    assert max(exact) < 1e-12
    with_eps = properties.scale_invariance(_bn_mlp(), batch, (0.1, 10.0),
                                           dtype=torch.float32, eps=None)
    assert max(with_eps) > 1e-6  # ε = 1e-5 against the small variances at a = 0.1
    none = properties.scale_invariance(_bn_mlp(norm="none"), batch, (0.1, 10.0),
                                       dtype=torch.float64, eps=None)
    assert min(none) > 1e-3


def test_properties_evaluate_leaves_the_model_as_it_was():
    recipe = get_recipe("ioffe2015.properties")
    cfg = properties.PRESETS["smoke"].config
    job = recipe.build(cfg, _env())
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    job.model.eval()
    with torch.no_grad():
        metrics = job.evaluate(job.model)
    assert set(metrics) == {q.name for q in recipe.card.stored}
    for k, v in job.model.state_dict().items():
        assert torch.equal(v, before[k]), k


# -- acceleration --------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "norm", "lr", "dropout", "wd", "speedup"), [
    ("inception", "none", 1, 0.4, 5e-4, 1), ("inception_x5", "none", 5, 0.4, 5e-4, 1),
    ("bn_baseline", "bn", 1, 0.4, 5e-4, 1), ("bn_x5", "bn", 5, 0.0, 1e-4, 6),
    ("bn_x30", "bn", 30, 0.0, 1e-4, 6)])
def test_variants_follow_the_papers_table(variant, norm, lr, dropout, wd, speedup):
    cfg = replace(acceleration.PRESETS["smoke"].config, variant=variant, base_lr=0.01)
    got_norm, got_lr, got_dropout, got_wd, gamma = acceleration._settings(cfg, 1200)
    assert (got_norm, got_dropout) == (norm, dropout)
    assert got_lr == pytest.approx(lr * 0.01) and got_wd == pytest.approx(wd)
    half_life = 0.5 * 1200 / speedup  # steps until the LR halves
    assert gamma ** half_life == pytest.approx(0.5)


def test_acceleration_build_wires_norm_dropout_schedule_and_divergence():
    recipe = get_recipe("ioffe2015.acceleration")
    base = acceleration.PRESETS["smoke"].config
    job = recipe.build(replace(base, variant="bn_x30", mnist1d_steps=4), _env())
    assert [s.norm.absorbs_bias for s in norm_sites(job.model)] == [True] * 10  # BN
    assert not any(isinstance(m, nn.Dropout) for m in job.model.modules())
    assert job.steps == 4 and job.divergence_factor == 10.0
    assert job.optimizer.param_groups[0]["lr"] == pytest.approx(30 * base.base_lr)
    plain = recipe.build(replace(base, variant="inception"), _env())
    assert sum(isinstance(m, nn.Dropout) for m in plain.model.modules()) == 2
    assert not any(s.norm.absorbs_bias for s in norm_sites(plain.model))  # no norm
    assert plain.steps == base.steps


# -- sigmoid -------------------------------------------------------------------------------


def test_sigmoid_trains_whole_epochs_and_evaluates_after_each():
    recipe = get_recipe("ioffe2015.sigmoid")
    cfg = replace(sigmoid.PRESETS["smoke"].config, epochs=3)
    job = recipe.build(cfg, _env())
    assert job.steps == 3 * len(job.loader) and job.eval_every == len(job.loader)
    assert len(norm_sites(job.model)) == cfg.depth == 10
    assert isinstance(job.model.hidden[-1].act, nn.Sigmoid)
