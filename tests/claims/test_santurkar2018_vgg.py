"""c07, c12 (VGG part), c15, c29 and c30 on synthetic stores whose answers are closed-form."""

from __future__ import annotations

import numpy as np
import pytest
from santurkar_vgg_fake import (
    EVAL_STEPS,
    LP_CONDITIONS,
    NOISE_CONDITIONS,
    VGG_CONDITIONS,
    drift_table,
    finals,
    rising,
    write_runs,
)

from bnlab.claims import evaluate, get_claim

NOISE, LP, VGG = "santurkar2018.noise", "santurkar2018.lp", "santurkar2018.vgg"
# The paper's picture: BN and noisy BN high, Standard lower, Standard + noise at chance.
NOISE_OK = {"none": 0.45, "bn": 0.80, "noisy_bn": 0.78, "noise": 0.12}
# Noisy BN's moments jump every step; Standard's and BN's barely move.
DRIFT_OK = {"none": 0.02, "bn": 0.01, "noisy_bn": 0.5, "noise": 0.6}


def _noise(tmp_path, claim, *, acc=None, drift=None, **kw):
    store = write_runs(tmp_path, NOISE, NOISE_CONDITIONS, train_acc=acc or finals(NOISE_OK),
                       drift=drift or drift_table(DRIFT_OK), **kw)
    return evaluate(get_claim(claim), store)


def _with(table, **changes):
    return {**table, **changes}


def _per_seed(fn_by_seed):
    """A curve function whose final value depends on the seed: fn_by_seed(norm, seed)."""
    return lambda cond, seed: rising(fn_by_seed(cond["norm"], seed))


# -- c07 -----------------------------------------------------------------------------------------


def test_c07_supported_with_the_margin_in_points(tmp_path):
    verdict = _noise(tmp_path, "c07")
    assert verdict.status == "supported", verdict.reason
    # margins: 5 − (80 − 78) = 3, 80 − 45 − 10 = 25, 78 − 45 − 10 = 23 → 3
    assert verdict.measurement.mean == pytest.approx(3.0)
    assert verdict.measurement.per_seed == pytest.approx({0: 3.0, 1: 3.0, 2: 3.0})


def test_c07_noisy_bn_above_bn_still_nearly_matches(tmp_path):
    verdict = _noise(tmp_path, "c07", acc=finals(_with(NOISE_OK, noisy_bn=0.90)))
    assert verdict.status == "supported"
    # 5 − (80 − 90) = 15; 80 − 45 − 10 = 25; 90 − 45 − 10 = 35
    assert verdict.measurement.mean == pytest.approx(15.0)


@pytest.mark.parametrize("changes, margin, status", [
    ({"noisy_bn": 0.70}, 5 - 10.0, "not supported"),  # noisy BN 10 points below BN
    ({"none": 0.75}, 78 - 75 - 10.0, "not supported"),  # Standard within 10 of both
    ({"bn": 0.60, "noisy_bn": 0.58}, 3.0, "supported"),  # all parts hold, 3 points spare
], ids=["noisy_far_below_bn", "standard_close", "all_parts_hold"])
def test_c07_each_part_decides(tmp_path, changes, margin, status):
    verdict = _noise(tmp_path, "c07", acc=finals(_with(NOISE_OK, **changes)))
    assert verdict.measurement.mean == pytest.approx(margin)
    assert verdict.status == status


def test_c07_reads_the_final_evaluation_not_the_best(tmp_path):
    # Noisy BN peaks at BN's level midway, then falls 20 points below BN by the end.
    def acc(cond, seed):
        curve = rising(NOISE_OK[cond["norm"]])
        if cond["norm"] == "noisy_bn":
            curve = curve.copy()
            curve[4], curve[-1] = 0.80, 0.60
        return curve

    verdict = _noise(tmp_path, "c07", acc=acc)
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(5 - 20.0)


def test_c07_seeds_disagree(tmp_path):
    acc = _per_seed(lambda norm, seed: 0.70 if (norm == "noisy_bn" and seed == 1)
                    else NOISE_OK[norm])
    verdict = _noise(tmp_path, "c07", acc=acc)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed[1] == pytest.approx(5 - 10.0)
    assert "fails for seeds [1]" in verdict.reason
    # of_data: mean noisy BN final = (78 + 70 + 78) / 3 = 75.33 → 5 − 4.67 = 0.33
    assert verdict.measurement.mean == pytest.approx(5 - (80 - (78 + 70 + 78) / 3))


# -- c29 -----------------------------------------------------------------------------------------


def test_c29_ratio_of_noisy_to_standard_drift(tmp_path):
    verdict = _noise(tmp_path, "c29")
    assert verdict.status == "supported", verdict.reason
    assert verdict.measurement.mean == pytest.approx(0.5 / 0.02)
    assert [d.label for d in verdict.measurement.details][:3] == ["layer #2", "layer #9",
                                                                 "layer #13"]


def test_c29_one_layer_with_a_stabler_noisy_bn_fails_it(tmp_path):
    # At layer #13 noisy BN drifts half as much as Standard: "larger at each layer" fails.
    def drift(cond, seed, layer):
        if layer == 13 and cond["norm"] == "noisy_bn":
            return 0.01 / 2
        return DRIFT_OK[cond["norm"]] / 2

    verdict = _noise(tmp_path, "c29", drift=drift)
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(0.5)
    assert [d.holds for d in verdict.measurement.details][:3] == [True, True, False]


def test_c29_compares_with_standard_not_bn(tmp_path):
    # BN drifts more than noisy BN, Standard less: the claim is about Standard.
    verdict = _noise(tmp_path, "c29", drift=drift_table(_with(DRIFT_OK, bn=2.0)))
    assert verdict.status == "supported"
    assert verdict.measurement.mean == pytest.approx(0.5 / 0.02)


def test_c29_seeds_disagree_and_the_mean_is_the_ratio_of_means(tmp_path):
    # Standard's drift per seed: 0.02, 1.0, 0.02 → seed 1's ratio 0.5 fails.
    def drift(cond, seed, layer):
        if cond["norm"] == "none":
            return (1.0 if seed == 1 else 0.02) / 2
        return DRIFT_OK[cond["norm"]] / 2

    verdict = _noise(tmp_path, "c29", drift=drift)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed == pytest.approx({0: 25.0, 1: 0.5, 2: 25.0})
    assert verdict.measurement.mean == pytest.approx(0.5 / ((0.02 + 1.0 + 0.02) / 3))


def test_c29_scale_free_drift_is_a_detail_not_the_rule(tmp_path):
    # Standard's units have σ = 0.01: its raw drift 0.02 is huge relative to its scale.
    # Scale-free: noisy 0.25/1 + 0.25/1 = 0.5, Standard 0.01/0.01 + 0.01/1e-4 = 101.
    def std(cond, seed, layer):
        return 0.01 if cond["norm"] == "none" else 1.0

    verdict = _noise(tmp_path, "c29", std=std)
    assert verdict.status == "supported"  # the rule reads the raw drift, as Fig. 8 plots it
    detail = verdict.measurement.details[-1]
    assert detail.label.startswith("scale-free") and detail.holds is None
    assert detail.text == ", ".join(f"#{layer}: {0.5 / 101:.3g}" for layer in (2, 9, 13))
    assert _noise(tmp_path / "no_std", "c29").measurement.details[-1].text.startswith(
        "not stored")


def test_c29_missing_drift_is_inconclusive(tmp_path):
    store = write_runs(tmp_path, NOISE, NOISE_CONDITIONS, train_acc=finals(NOISE_OK))
    verdict = evaluate(get_claim("c29"), store)
    assert verdict.status == "inconclusive"
    assert "moments/2/mean_drift" in verdict.reason


# -- c30 -----------------------------------------------------------------------------------------


def test_c30_supported_when_standard_trains_and_noise_stays_at_chance(tmp_path):
    verdict = _noise(tmp_path, "c30")
    assert verdict.status == "supported", verdict.reason
    # min(45 − 30, 15 − 12) = 3
    assert verdict.measurement.mean == pytest.approx(3.0)


def test_c30_noise_that_trains_refutes_it(tmp_path):
    verdict = _noise(tmp_path, "c30", acc=finals(_with(NOISE_OK, noise=0.35)))
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(15 - 35.0)


def test_c30_noise_must_stay_at_chance_at_every_evaluation(tmp_path):
    # Standard + noise spikes to 25% once midway and falls back to chance: "stays" fails.
    def acc(cond, seed):
        curve = rising(NOISE_OK[cond["norm"]])
        if cond["norm"] == "noise":
            curve = np.full(EVAL_STEPS.size, 0.11)
            curve[3] = 0.25
        return curve

    verdict = _noise(tmp_path, "c30", acc=acc)
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(15 - 25.0)


def test_c30_without_a_standard_that_trains_it_cannot_be_tested(tmp_path):
    verdict = _noise(tmp_path, "c30", acc=finals(_with(NOISE_OK, none=0.22)))
    assert verdict.status == "inconclusive"
    assert "Standard reached only 22.0% by step 500" in verdict.reason
    assert "too short" in verdict.reason


def test_c30_a_seed_whose_standard_lags_fails_its_part(tmp_path):
    acc = _per_seed(lambda norm, seed: 0.25 if (norm == "none" and seed == 0)
                    else NOISE_OK[norm])
    verdict = _noise(tmp_path, "c30", acc=acc)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed[0] == pytest.approx(25 - 30.0)
    # the seed-mean Standard (25 + 45 + 45) / 3 = 38.3 trains: min(8.3, 3) = 3
    assert verdict.measurement.mean == pytest.approx(3.0)


def test_c30_seeds_disagree(tmp_path):
    acc = _per_seed(lambda norm, seed: 0.18 if (norm == "noise" and seed == 2)
                    else NOISE_OK[norm])
    verdict = _noise(tmp_path, "c30", acc=acc)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed == pytest.approx({0: 3.0, 1: 3.0, 2: 15 - 18.0})


# -- c12 -----------------------------------------------------------------------------------------

LP_OK = {"none": 0.40, "bn": 0.80, "l1": 0.78, "l2": 0.82, "linf": 0.76}


def _lp(tmp_path, table=None, i2=None, **kw):
    i2 = i2 or {"l1": 0.50, "l2": 0.80, "linf": 0.30}

    def acc(cond, seed):
        source = i2 if cond.get("centered") else (table or LP_OK)
        return rising(source[cond["norm"]])

    store = write_runs(tmp_path, LP, LP_CONDITIONS, train_acc=acc, **kw)
    return evaluate(get_claim("c12"), store)


def test_c12_largest_deficit_of_the_i1_variants(tmp_path):
    verdict = _lp(tmp_path)
    assert verdict.status == "supported", verdict.reason
    assert verdict.measurement.mean == pytest.approx(80 - 76.0)  # ℓ∞ is the worst
    i2 = next(d for d in verdict.measurement.details if d.label.startswith("I2"))
    assert "BN − ℓ∞ +50.0" in i2.text  # I2 is shown, not judged


def test_c12_a_surplus_over_bn_is_allowed(tmp_path):
    verdict = _lp(tmp_path, _with(LP_OK, l1=0.99, l2=0.99, linf=0.99))
    assert verdict.status == "supported"
    assert verdict.measurement.mean == pytest.approx(80 - 99.0)


def test_c12_one_lp_variant_far_below_bn_refutes(tmp_path):
    verdict = _lp(tmp_path, _with(LP_OK, l2=0.70))
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(10.0)


def test_c12_exactly_five_points_is_within(tmp_path):
    verdict = _lp(tmp_path, _with(LP_OK, linf=0.75))
    assert verdict.measurement.mean == pytest.approx(5.0)
    assert verdict.status == "supported"


def test_c12_seeds_disagree(tmp_path):
    def acc(cond, seed):
        if cond.get("centered"):
            return rising(0.5)
        value = 0.70 if (cond["norm"] == "l1" and seed == 0) else LP_OK[cond["norm"]]
        return rising(value)

    store = write_runs(tmp_path, LP, LP_CONDITIONS, train_acc=acc)
    verdict = evaluate(get_claim("c12"), store)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed[0] == pytest.approx(10.0)
    # mean ℓ1 = (70 + 78 + 78) / 3 = 75.33 → deficit 4.67 (ℓ∞'s 4 is smaller)
    assert verdict.measurement.mean == pytest.approx(80 - (70 + 78 + 78) / 3)


# -- c15 -----------------------------------------------------------------------------------------


def _vgg(tmp_path, test_table, scale="paper", **kw):
    store = write_runs(tmp_path, VGG, VGG_CONDITIONS, train_acc=finals({"bn": 0.99, "none": 0.9}),
                       test_acc=lambda cond, seed: rising(test_table[(cond["norm"], cond["lr"])]),
                       scale=scale, **kw)
    return evaluate(get_claim("c15"), store)


PAPER_TEST = {("bn", 0.1): 0.83, ("none", 0.1): 0.80, ("bn", 0.5): 0.84, ("none", 0.5): 0.70}


def test_c15_is_inconclusive_below_paper_scale(tmp_path):
    verdict = _vgg(tmp_path, PAPER_TEST, scale="quick")
    assert verdict.status == "inconclusive"
    assert "needs at least 'paper'" in verdict.reason


def test_c15_paper_numbers_support_it(tmp_path):
    verdict = _vgg(tmp_path, PAPER_TEST)
    assert verdict.status == "supported", verdict.reason
    assert verdict.measurement.mean == pytest.approx(3.0)


def test_c15_reads_lr_0_1_only(tmp_path):
    # At lr 0.5 BN wins by 14 points, at lr 0.1 by 1: the claim's LR decides.
    table = {**PAPER_TEST, ("bn", 0.1): 0.81}
    verdict = _vgg(tmp_path, table)
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(1.0)


def test_c15_a_diverged_run_at_lr_0_5_is_an_outcome(tmp_path):
    def diverged_at(lr):
        def status(cond, seed):
            return "diverged" if (cond["norm"], cond["lr"]) == ("none", lr) else "finished"
        return status

    verdict = _vgg(tmp_path, PAPER_TEST, status=diverged_at(0.5))
    assert verdict.status == "supported", verdict.reason
    verdict = _vgg(tmp_path / "again", PAPER_TEST, status=diverged_at(0.1))
    assert verdict.status == "inconclusive"
    assert "diverged unexpectedly" in verdict.reason


def test_c15_seeds_disagree(tmp_path):
    def test_acc(cond, seed):
        value = PAPER_TEST[(cond["norm"], cond["lr"])]
        if cond == {"norm": "bn", "lr": 0.1} and seed == 2:
            value = 0.805
        return rising(value)

    store = write_runs(tmp_path, VGG, VGG_CONDITIONS, train_acc=finals({"bn": 0.99, "none": 0.9}),
                       test_acc=test_acc, scale="paper")
    verdict = evaluate(get_claim("c15"), store)
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed[2] == pytest.approx(0.5)


def test_two_seeds_are_too_few(tmp_path):
    assert _noise(tmp_path, "c07", seeds=(0, 1)).status == "inconclusive"
