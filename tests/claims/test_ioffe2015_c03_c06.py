"""c03–c06 on hand-made stores whose answers are known in closed form."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from bnlab.claims import evaluate, get_claim
from bnlab.claims.ioffe2015.acceleration import steps_to
from bnlab.recipes.ioffe2015 import (
    ACC_POP,
    ACCELERATION,
    AGREEMENT,
    BIASED_GAP,
    FOLD_ERR,
    LOGIT_GAP,
    MEAN_GAP,
    PROPERTIES,
    SCALE_IN_GRAD,
    SCALE_IN_GRAD_EPS,
    SCALE_OUT,
    SCALE_OUT_EPS,
    SCALE_W_GRAD,
    SCALE_W_GRAD_EPS,
    SIGMOID,
    TEST_ACC,
    TEST_N,
    VAL_ACC,
    VAL_N,
    VAR_GAP,
)
from bnlab.results import Store

SEEDS = (0, 1, 2)
EVALS = np.arange(1, 11) * 100  # (10,) evaluation steps


def _run(store, recipe, config, seed, data="paper"):
    config = {**config, "scale": "quick", "data": data}
    key = hashlib.sha256(json.dumps({**config, "seed": seed}, sort_keys=True).encode())
    run = store.register_run(key.hexdigest(), recipe, config, seed)
    store.start_run(run, resumed_from=None, provenance={})
    return run


# -- c03 -----------------------------------------------------------------------------------


def ramp(reach_step, final=0.31):
    """Accuracy rising linearly to ``final`` at ``reach_step``, flat after."""
    return final * np.minimum(EVALS / reach_step, 1.0)


PAPER_LIKE = {"inception": 1000, "bn_baseline": 600, "bn_x5": 200, "bn_x30": 300}


def write_acceleration(tmp_path, reach=PAPER_LIKE, diverged=lambda v, s: v == "inception_x5",
                       finals=None):
    store = Store(tmp_path)
    for variant in ("inception", "inception_x5", "bn_baseline", "bn_x5", "bn_x30"):
        for seed in SEEDS:
            run = _run(store, ACCELERATION.name, {"variant": variant}, seed)
            if diverged(variant, seed):
                store.log_metrics(run, [(0, "diverged_step", 30.0)])
                store.finish_run(run, "diverged", error="loss above 10x its initial value")
                continue
            final = (finals or {}).get(variant, 0.31 if variant != "bn_x30" else 0.33)
            curve = ramp(reach.get(variant, 1000), final)
            store.log_metrics(run, [(int(s), n, float(v)) for s, a in zip(EVALS, curve,
                                                                           strict=True)
                                    for n, v in ((VAL_ACC.name, a), (VAL_N.name, 2000.0))])
            store.finish_run(run, "finished")
    return store


def test_c03_holds_on_the_papers_picture_with_its_table(tmp_path):
    v = evaluate(get_claim("c03"), write_acceleration(tmp_path))
    assert v.status == "supported", v.reason
    d = {x.label: x for x in v.measurement.details}
    assert d["(i) BN-x5 reaches the target in ≤ half the baseline's steps"].text == \
        "200 vs 1000 steps"
    assert d["(iii) the unnormalized net at 5·η0 diverges"].text.startswith("3 of 3 seeds")
    assert d["BN-x5 (LR 5·η0)"].text == ("paper: 2.1M steps to 72.2%, max 73.0%; measured: "
                                         "200 steps to 31.0%, max 31.0%")
    assert d["BN-x30 (LR 30·η0)"].text.endswith("300 steps to 31.0%, max 33.0%")
    assert d["Inception (LR 1·η0)"].text.startswith("paper: 31.0M steps")


def test_c03_bn_x5_just_over_half_fails_part_one(tmp_path):
    v = evaluate(get_claim("c03"), write_acceleration(tmp_path, reach={**PAPER_LIKE,
                                                                        "bn_x5": 600}))
    assert v.status == "not supported"
    assert v.measurement.mean == pytest.approx(2 / 3)
    assert [d.holds for d in v.measurement.details[:3]] == [False, True, True]


def test_c03_baseline_at_5x_that_trains_fails_part_three(tmp_path):
    v = evaluate(get_claim("c03"), write_acceleration(tmp_path, diverged=lambda v, s: False))
    assert v.measurement.mean == pytest.approx(2 / 3)
    assert v.measurement.details[2].holds is False


def test_c03_diverged_bn_x30_never_reaches_and_is_no_missing_run(tmp_path):
    v = evaluate(get_claim("c03"), write_acceleration(
        tmp_path, diverged=lambda v, s: v in ("inception_x5", "bn_x30")))
    assert v.status == "not supported", v.reason
    assert v.measurement.details[1].text == "inf vs 1000 steps"


def test_c03_one_seed_whose_5x_baseline_survives_is_inconclusive(tmp_path):
    v = evaluate(get_claim("c03"), write_acceleration(
        tmp_path, diverged=lambda v, s: v == "inception_x5" and s != 2))
    assert v.status == "inconclusive"
    assert v.measurement.per_seed == pytest.approx({0: 1.0, 1: 1.0, 2: 2 / 3})
    assert v.measurement.details[2].holds is False  # the mean counts only all-seed divergence


def test_steps_to_target():
    curve = np.array([0.1, 0.2, np.nan, 0.4])
    assert steps_to(EVALS[:4], curve, 0.2) == 200.0
    assert steps_to(EVALS[:4], curve, 0.5) == float("inf")


# -- c04 -----------------------------------------------------------------------------------


def write_sigmoid(tmp_path, acc):
    store = Store(tmp_path)
    epochs = np.arange(1, 6) * 1000
    for norm in ("bn", "none"):
        for lr in (0.1, 0.5, 2.5):
            for seed in SEEDS:
                run = _run(store, SIGMOID.name, {"norm": norm, "lr": lr}, seed)
                final = acc(norm, lr, seed)
                curve = np.linspace(0.1, final, epochs.size)
                store.log_metrics(run, [(int(s), n, float(v)) for s, a in
                                        zip(epochs, curve, strict=True)
                                        for n, v in ((TEST_ACC.name, a), (TEST_N.name, 1e4))])
                store.finish_run(run, "finished")
    return store


def test_c04_holds_when_bn_trains_and_none_stays_at_chance(tmp_path):
    v = evaluate(get_claim("c04"), write_sigmoid(
        tmp_path, lambda n, lr, s: (0.95 if lr == 0.5 else 0.9) if n == "bn" else 0.11))
    assert v.status == "supported"
    assert v.measurement.details[0].label == "(i) with BN ≥ 0.9 (best lr 0.5)"


@pytest.mark.parametrize(("bn", "none", "mean"), [(0.85, 0.11, 0.5), (0.97, 0.35, 0.5),
                                                  (0.5, 0.5, 0.0)],
                         ids=["bn_short_of_90", "none_learns", "neither"])
def test_c04_fails_part_by_part(tmp_path, bn, none, mean):
    v = evaluate(get_claim("c04"), write_sigmoid(
        tmp_path, lambda n, lr, s: bn if n == "bn" else none))
    assert v.status == "not supported"
    assert v.measurement.mean == pytest.approx(mean)


def test_c04_best_lr_of_the_unnormalized_net_decides(tmp_path):
    # Without BN one LR learns (0.6): "near chance" must hold at its best LR, so it fails.
    v = evaluate(get_claim("c04"), write_sigmoid(
        tmp_path, lambda n, lr, s: 0.95 if n == "bn" else (0.6 if lr == 2.5 else 0.1)))
    assert v.measurement.details[1].holds is False
    assert "best lr 2.5" in v.measurement.details[1].label


# -- c05, c06 ------------------------------------------------------------------------------

GOOD = {TEST_ACC: 0.95, ACC_POP: 0.951, TEST_N: 10_000, AGREEMENT: 0.998, LOGIT_GAP: 0.01,
        BIASED_GAP: 0.012, FOLD_ERR: 1e-7, MEAN_GAP: 0.02, VAR_GAP: 0.03, SCALE_OUT: 1e-15,
        SCALE_IN_GRAD: 2e-15, SCALE_W_GRAD: 3e-15, SCALE_OUT_EPS: 1e-3,
        SCALE_IN_GRAD_EPS: 1e-3, SCALE_W_GRAD_EPS: 1e-2}


def write_properties(tmp_path, values=lambda seed, step: {}):
    store = Store(tmp_path)
    for seed in SEEDS:
        run = _run(store, PROPERTIES.name, {"steps": 2000}, seed)
        rows = []
        for step in (1000, 2000):
            merged = {**{q.name: v for q, v in GOOD.items()}, **values(seed, step)}
            rows += [(step, name, float(v)) for name, v in merged.items()]
        store.log_metrics(run, rows)
        store.finish_run(run, "finished")
    return store


def _se(p1, p2, n=10_000):
    return np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)


def test_c05_c06_hold_on_good_values(tmp_path):
    store = write_properties(tmp_path)
    c05, c06 = (evaluate(get_claim(c), store) for c in ("c05", "c06"))
    assert c05.status == "supported" and c06.status == "supported"
    assert c05.measurement.mean == pytest.approx(0.001 / _se(0.951, 0.95))
    assert c06.measurement.mean == pytest.approx(3e-15)


def test_c05_reads_the_last_evaluation_and_fails_beyond_one_se(tmp_path):
    # At step 1000 the fold is off by 3 points; at the end it is 1.5 SE off: fails.
    gap = 1.5 * _se(0.95, 0.95)
    store = write_properties(tmp_path, lambda seed, step: {ACC_POP.name: 0.92} if step == 1000
                             else {ACC_POP.name: 0.95 + gap})
    v = evaluate(get_claim("c05"), store)
    assert v.status == "not supported"
    assert v.measurement.mean == pytest.approx(gap / _se(0.95 + gap, 0.95))  # ≈ 1.53
    assert "accuracies 0.9200 vs 0.9500" in v.measurement.details[-1].text


def test_c06_fails_on_a_broken_identity_at_any_evaluation_and_seed(tmp_path):
    store = write_properties(tmp_path, lambda seed, step: {SCALE_W_GRAD.name: 1e-3}
                             if (seed, step) == (1, 1000) else {})
    v = evaluate(get_claim("c06"), store)
    assert v.status == "inconclusive"  # seeds 0 and 2 hold, seed 1 and the mean fail
    assert v.measurement.per_seed[1] == pytest.approx(1e-3)
    assert get_claim("c06").kind == "identity"
