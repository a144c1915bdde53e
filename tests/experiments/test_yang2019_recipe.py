"""What the yang2019 recipes measure, pinned: the probe, its inputs, profiles, sizes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.experiments import RunEnv, get_recipe
from bnlab.experiments.yang2019 import EXPLOSION_PRESETS, TRAIN_PRESETS, log10_profile
from bnlab.models import create_model
from bnlab.probes import GradientStatsProbe, gradient_explosion_rate
from bnlab.recipes.yang2019 import PROFILE, RATE, RATE_SPREAD

EXPLOSION = get_recipe("yang2019.explosion")
TRAIN = get_recipe("yang2019.trainability")


def _env(seed=0, data="none", dataset=None):
    return RunEnv(seed, "smoke", data, dataset, torch.device("cpu"))


def _measure(cfg, seed=0):
    torch.manual_seed(seed)  # the harness seeds the global RNG before build
    logged = {}
    EXPLOSION.build(cfg, _env(seed)).run(lambda step, name, value: logged.__setitem__(name,
                                                                                      value))
    return logged


def test_profile_sums_log_ratios_from_each_layer_on():
    ratios = [2.0, 10.0, 0.5]  # ‖g1‖²/‖g2‖², ‖g2‖²/‖g3‖², ‖g3‖²/‖g4‖²
    sq = [2.0 * 10.0 * 0.5, 10.0 * 0.5, 0.5, 1.0]  # ‖g_l‖² / ‖g_4‖²
    np.testing.assert_allclose(log10_profile(ratios), np.log10(sq), atol=1e-15)


def test_stored_rate_is_the_probe_on_the_seeds_gaussian_batches():
    cfg = replace(EXPLOSION_PRESETS["smoke"].config, draws=3)
    logged = _measure(cfg)
    env = _env()
    torch.manual_seed(0)  # the same weights as the recipe's network
    net = create_model("mlp", norm="bn", in_shape=(cfg.in_dim,), num_classes=10,
                       depth=cfg.depth, width=cfg.width, activation="relu", init="kaiming")
    rates = []
    for draw in range(3):
        gen = env.generator(100 + draw)
        x = torch.randn(cfg.batch_size, cfg.in_dim, generator=gen)
        y = torch.randint(0, 10, (cfg.batch_size,), generator=gen)
        rates.append(gradient_explosion_rate(net, nn.functional.cross_entropy, (x, y))["mean"])
    assert logged[RATE.name] == pytest.approx(np.mean(rates), rel=1e-6)
    assert logged[RATE_SPREAD.name] == pytest.approx(np.std(rates, ddof=1), rel=1e-5)
    assert logged[PROFILE.name].shape == (cfg.depth,)
    assert logged[PROFILE.name][-1] == 0.0


def test_networks_of_one_seed_share_weights_whatever_the_activation():
    cfg = EXPLOSION_PRESETS["smoke"].config
    weights = []
    for activation in ("relu", "linear"):
        torch.manual_seed(0)
        net = create_model("mlp", norm="bn", in_shape=(cfg.in_dim,), num_classes=10,
                           depth=cfg.depth, width=cfg.width, activation=activation,
                           init="kaiming")
        weights.append(net.hidden[0].layer.weight)
    assert torch.equal(*weights)


def test_trainability_sizes_probe_and_skips():
    cfg = replace(TRAIN_PRESETS["quick"].config, depth=4, test_subset=100)
    job = TRAIN.build(replace(cfg, skip=True), _env(data="mnist1d", dataset="mnist"))
    assert job.steps == cfg.mnist1d_steps == 60
    assert job.model.hidden[1].layer.weight.shape == (cfg.mnist1d_width, cfg.mnist1d_width)
    assert job.model.skips == (False, True, True, True)  # the first changes width: no skip
    (probe,) = job.probes
    assert isinstance(probe, GradientStatsProbe)
    assert probe.layers == [1, 2, 3, 4] and probe.schedule.steps == frozenset({0, 1})
    plain = TRAIN.build(replace(cfg, mnist1d_width=0, mnist1d_steps=0),
                        _env(data="mnist1d", dataset="mnist"))
    assert plain.steps == cfg.steps and plain.model.skips == (False,) * 4
    assert plain.model.hidden[1].layer.weight.shape == (cfg.width, cfg.width)
