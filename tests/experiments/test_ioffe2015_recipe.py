"""What ``ioffe2015.mnist`` measures, pinned: the layer, units, inputs, BN mode and names."""

from __future__ import annotations

import torch

from bnlab.experiments import RunEnv, get_recipe
from bnlab.experiments.ioffe2015.mnist import PRESETS
from bnlab.models import norm_sites
from bnlab.probes import ActivationStatsProbe
from bnlab.recipes.ioffe2015 import PCT, PCT_EVAL, PERCENTILES

RECIPE = get_recipe("ioffe2015.mnist")


def _build(norm: str, seed: int):
    cfg = RECIPE.config_of({**vars(PRESETS["smoke"].config), "norm": norm})
    env = RunEnv(seed, "smoke", "mnist1d", "mnist", torch.device("cpu"))
    return cfg, RECIPE.build(cfg, env)


def test_percentile_probes_measure_the_sigmoid_input_of_the_last_hidden_layer():
    cfg, job = _build("bn", 0)
    probes = [p for p in job.probes if isinstance(p, ActivationStatsProbe)]
    assert len(probes) == 2
    last = len(norm_sites(job.model))
    assert last == len(cfg.widths) == 3
    by_mode = {p.options["bn_mode"]: p for p in probes}
    assert set(by_mode) == {"train", "eval"}
    for mode, quantity in (("train", PCT), ("eval", PCT_EVAL)):
        probe = by_mode[mode]
        assert probe.layers == (last,)
        assert probe.options["where"] == "post"  # the norm's output is the sigmoid's input
        assert tuple(probe.options["percentiles"]) == PERCENTILES
        assert quantity.matches(f"{probe.prefix}/{last}/percentiles")
        assert probe.batch.shape == (cfg.pct_batch, *job.loader.x.shape[1:])
        units = probe.options["units"]
        assert len(set(units)) == cfg.pct_units and all(0 <= u < cfg.widths[-1] for u in units)


def test_same_units_and_inputs_for_both_networks_of_a_seed_not_across_seeds():
    def picks(norm, seed):
        _, job = _build(norm, seed)
        probe = job.probes[0]
        return probe.options["units"], probe.batch

    units_bn, batch_bn = picks("bn", 0)
    units_none, batch_none = picks("none", 0)
    assert units_bn == units_none and torch.equal(batch_bn, batch_none)
    units_other, batch_other = picks("bn", 1)
    assert units_other != units_bn and not torch.equal(batch_other, batch_bn)
