"""Santurkar's measurement claims (c08–c11, c13, c14, c31) on hand-made stores.

Each rule is run where it holds, where it fails for every seed, and where the seeds
disagree; and on the readings a plausible bug would get wrong (the wrong net, late steps
counted as early, p95 without the CV, a violation outside the theorem's assumptions).
"""

from __future__ import annotations

import numpy as np
import pytest
from santurkar_measures_fake import (
    STEPS,
    flat,
    thm42_rows,
    write_ics,
    write_landscape,
    write_lp,
    write_theory,
)

from bnlab.claims import evaluate, get_claim
from bnlab.claims.santurkar2018.measures import band_width, thm42_summary


def _verdict(cid, store):
    try:
        return evaluate(get_claim(cid), store)
    finally:
        store.close()


# -- c08 ---------------------------------------------------------------------------------------


def _cos(std, bn, vgg_bn=None, seed_bn=None):
    def cos(net, norm, lr, seed):
        if norm == "none":
            return std
        if net == "vgg" and vgg_bn is not None:
            return vgg_bn
        return (seed_bn or {}).get(seed, bn)

    return cos


def test_c08_bn_decorrelates_the_dln_gradients(tmp_path):
    v = _verdict("c08", write_ics(tmp_path, _cos(0.99, 0.1)))
    assert v.status == "supported", v.reason
    assert v.measurement.mean == pytest.approx(0.89)


def test_c08_bn_above_standard_refutes(tmp_path):
    v = _verdict("c08", write_ics(tmp_path, _cos(0.5, 0.9)))
    assert v.status == "not supported", v.reason
    assert v.measurement.mean == pytest.approx(-0.4)


def test_c08_seeds_disagree(tmp_path):
    v = _verdict("c08", write_ics(tmp_path, _cos(0.6, 0.1, seed_bn={2: 0.8})))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c08_is_decided_by_the_dln_and_every_dln_lr(tmp_path):
    # The VGG (Fig. 3a) only enters the details: BN's higher VGG cosine does not refute.
    v = _verdict("c08", write_ics(tmp_path / "a", _cos(0.9, 0.2, vgg_bn=0.95)))
    assert v.status == "supported", v.reason
    vgg = [d for d in v.measurement.details if d.label.startswith("VGG")]
    assert len(vgg) == 2 and not any(d.holds for d in vgg)

    # BN above Standard at one DLN LR only: the smaller difference decides.
    def cos(net, norm, lr, seed):
        return 0.5 if norm == "none" else (0.9 if lr == 1e-7 else 0.1)

    v = _verdict("c08", write_ics(tmp_path / "b", cos))
    assert v.status == "not supported"
    assert v.measurement.mean == pytest.approx(-0.4)


# -- c09, c10, c11 -------------------------------------------------------------------------------


def _landscape(tmp_path, **tracks):
    base = {"loss_min": flat(1.0), "loss_max": flat(np.e), "gc_max": flat(5.0),
            "beta": flat(20.0)}
    return write_landscape(tmp_path, **{**base, **tracks})


def _by_norm(none, bn, dln=None):
    """A track: ``none``/``bn`` functions of the seed, on VGG; ``dln`` (net, norm, seed)."""
    def track(net, norm, seed):
        if net == "dln" and dln is not None:
            return dln(net, norm, seed)
        return (none if norm == "none" else bn)(seed)

    return track


def test_band_width_counts_a_blown_up_loss_as_infinite():
    width = band_width(np.array([1.0, 1.0, 1.0]), np.array([np.e, np.inf, np.nan]))
    assert width == pytest.approx([1.0, np.inf, np.inf])


def test_c09_narrower_band_with_bn(tmp_path):
    loss_max = _by_norm(lambda s: np.full(STEPS.size, np.exp(2.0)),
                        lambda s: np.full(STEPS.size, np.exp(0.5)))
    v = _verdict("c09", _landscape(tmp_path, loss_max=loss_max))
    assert v.status == "supported", v.reason
    assert v.measurement.mean == pytest.approx(1.5)


def test_c09_wider_band_with_bn_fails_and_seeds_can_disagree(tmp_path):
    loss_max = _by_norm(lambda s: np.full(STEPS.size, np.exp(0.5)),
                        lambda s: np.full(STEPS.size, np.exp(2.0)))
    assert _verdict("c09", _landscape(tmp_path / "a", loss_max=loss_max)).status == \
        "not supported"
    loss_max = _by_norm(lambda s: np.full(STEPS.size, np.exp(1.0 if s < 2 else 0.2)),
                        lambda s: np.full(STEPS.size, np.exp(0.5)))
    v = _verdict("c09", _landscape(tmp_path / "b", loss_max=loss_max))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c09_reads_only_the_first_half_of_training(tmp_path):
    # Standard's band is wide only after the half-way step: not the claim's window.
    late = np.where(STEPS > STEPS.max() / 2, np.exp(5.0), np.exp(0.2))
    loss_max = _by_norm(lambda s: late, lambda s: np.full(STEPS.size, np.exp(0.5)))
    v = _verdict("c09", _landscape(tmp_path, loss_max=loss_max))
    assert v.status == "not supported"
    assert v.measurement.mean == pytest.approx(0.2 - 0.5)


def _spike(base, height, at=1):
    values = np.full(STEPS.size, float(base))
    values[at] = height
    return values


def test_c10_early_spike_of_standard(tmp_path):
    gc = _by_norm(lambda s: _spike(5.0, 100.0), lambda s: np.full(STEPS.size, 5.0))
    v = _verdict("c10", _landscape(tmp_path, gc_max=gc))
    assert v.status == "supported", v.reason
    assert v.measurement.mean == pytest.approx(20.0)


def test_c10_small_ratio_fails_and_seeds_disagree(tmp_path):
    gc = _by_norm(lambda s: _spike(5.0, 30.0), lambda s: np.full(STEPS.size, 5.0))
    v = _verdict("c10", _landscape(tmp_path / "a", gc_max=gc))
    assert v.status == "not supported" and v.measurement.mean == pytest.approx(6.0)
    gc = _by_norm(lambda s: _spike(5.0, 100.0 if s else 30.0), lambda s: np.full(STEPS.size, 5.0))
    v = _verdict("c10", _landscape(tmp_path / "b", gc_max=gc))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c10_counts_step_0_and_shows_the_ratio_without_it(tmp_path):
    # BN's largest change is at step 0 (as measured at quick scale): it caps the ratio.
    gc = _by_norm(lambda s: _spike(5.0, 100.0), lambda s: _spike(1.0, 20.0, at=0))
    v = _verdict("c10", _landscape(tmp_path, gc_max=gc))
    assert v.measurement.mean == pytest.approx(5.0) and v.status == "not supported"
    later = next(d for d in v.measurement.details if "without step 0" in d.label)
    assert later.holds and "100" in later.text


def test_c11_bn_lower_and_steadier(tmp_path):
    rng = np.random.default_rng(0)
    beta = _by_norm(lambda s: _spike(20.0, 45.0, at=3) + rng.uniform(0, 1, STEPS.size),
                    lambda s: 20.0 + rng.uniform(0, 1, STEPS.size))
    v = _verdict("c11", _landscape(tmp_path, beta=beta))
    assert v.status == "supported", v.reason
    assert v.measurement.mean > 1


def test_c11_needs_both_p95_and_cv(tmp_path):
    # Standard is higher (p95 ratio 2.5) but perfectly steady (CV 0): the claim fails.
    steady = _by_norm(lambda s: np.full(STEPS.size, 50.0), lambda s: _spike(20.0, 21.0))
    v = _verdict("c11", _landscape(tmp_path / "a", beta=steady))
    assert v.status == "not supported" and v.measurement.mean == pytest.approx(0.0)
    # Seeds disagree: seed 2's Standard has no spike.
    beta = _by_norm(lambda s: _spike(20.0, 45.0 if s < 2 else 20.5), lambda s: _spike(20.0, 21.0))
    v = _verdict("c11", _landscape(tmp_path / "b", beta=beta))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_landscape_claims_read_the_vgg_and_report_the_dln(tmp_path):
    # The DLN says the opposite of the VGG: the verdict follows the VGG, the detail the DLN.
    def dln(net, norm, seed):
        return np.full(STEPS.size, 5.0 if norm == "none" else 100.0)

    gc = _by_norm(lambda s: _spike(5.0, 100.0), lambda s: np.full(STEPS.size, 5.0), dln=dln)
    v = _verdict("c10", _landscape(tmp_path, gc_max=gc))
    assert v.status == "supported"
    detail = next(d for d in v.measurement.details if d.label.startswith("DLN"))
    assert detail.holds is False


# -- c31 ------------------------------------------------------------------------------------------


def _finals(l1):
    return {"none": lambda s: 5000.0, "bn": lambda s: 1000.0, "l1": l1,
            "l2": lambda s: 1200.0, "linf": lambda s: 1500.0}


def test_c31_l1_below_bn(tmp_path):
    v = _verdict("c31", write_lp(tmp_path, _finals(lambda s: 900.0)))
    assert v.status == "supported", v.reason
    assert v.measurement.mean == pytest.approx(0.9)


def test_c31_l1_above_bn_fails_and_seeds_disagree(tmp_path):
    v = _verdict("c31", write_lp(tmp_path / "a", _finals(lambda s: 1100.0)))
    assert v.status == "not supported" and v.measurement.mean == pytest.approx(1.1)
    v = _verdict("c31", write_lp(tmp_path / "b", _finals(lambda s: 900.0 if s else 1100.0)))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c31_finds_bn_runs_stored_under_the_landscape_recipe(tmp_path):
    # After `bnlab reproduce`, Standard and BN are santurkar2018.landscape's runs.
    v = _verdict("c31", write_lp(tmp_path, _finals(lambda s: 900.0), shared=True))
    assert v.status == "supported", v.reason
    assert "+BN 1000" in v.measurement.details[0].text


def test_c31_without_bn_runs_is_inconclusive(tmp_path):
    finals = _finals(lambda s: 900.0)
    del finals["bn"]
    v = _verdict("c31", write_lp(tmp_path, finals))
    assert v.status == "inconclusive" and v.reason.startswith("missing data")


# -- c13, c14 --------------------------------------------------------------------------------------


def _identity_cases(seed, violate=False, violate_unassumed=False):
    rng = np.random.default_rng(seed)
    t1 = rng.uniform(-1, 1, 50)
    t2 = rng.uniform(-0.5, 0.5, 50)
    g_yhat = np.sign(t2) * rng.uniform(0, 1, 50)  # γ = 1 > 0: T2 has ⟨ĝ, ŷ⟩'s sign
    lhs = t1 - t2
    assumed = (t1 >= 0) & (g_yhat >= 0)
    if violate:
        lhs[np.argmax(assumed)] += 0.1
    if violate_unassumed:
        lhs[np.argmax(~assumed)] += 0.1
    return thm42_rows(lhs, t1, t2, g_yhat)


def test_c13_identity_to_float_precision(tmp_path):
    v = _verdict("c13", write_theory(tmp_path, rel_err=lambda net, s: 1e-15,
                                     cases=_identity_cases))
    assert v.status == "supported", v.reason
    assert any("fails for 100.0%" in d.text for d in v.measurement.details)


def test_c13_an_error_at_one_net_fails_and_seeds_disagree(tmp_path):
    v = _verdict("c13", write_theory(tmp_path / "a", cases=_identity_cases,
                                     rel_err=lambda net, s: 1e-6 if net == "vgg" else 1e-15))
    assert v.status == "not supported" and v.measurement.mean == pytest.approx(1e-6)
    v = _verdict("c13", write_theory(tmp_path / "b", cases=_identity_cases,
                                     rel_err=lambda net, s: 1e-6 if s == 1 else 1e-15))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c14_inequality_in_every_assumed_case(tmp_path):
    v = _verdict("c14", write_theory(tmp_path, rel_err=lambda net, s: 0.0,
                                     cases=_identity_cases))
    assert v.status == "supported", v.reason
    assert v.measurement.mean == 1.0


def test_c14_violation_where_assumed_fails_and_seeds_disagree(tmp_path):
    v = _verdict("c14", write_theory(tmp_path / "a", rel_err=lambda net, s: 0.0,
                                     cases=lambda s: _identity_cases(s, violate=True)))
    assert v.status == "not supported" and v.measurement.mean < 1
    v = _verdict("c14", write_theory(tmp_path / "b", rel_err=lambda net, s: 0.0,
                                     cases=lambda s: _identity_cases(s, violate=s == 0)))
    assert v.status == "inconclusive" and "seeds disagree" in v.reason


def test_c14_ignores_cases_outside_the_assumptions(tmp_path):
    v = _verdict("c14", write_theory(tmp_path, rel_err=lambda net, s: 0.0,
                                     cases=lambda s: _identity_cases(s, violate_unassumed=True)))
    assert v.status == "supported", v.reason


def test_c14_without_assumed_cases_is_inconclusive(tmp_path):
    def cases(seed):
        t1 = -np.ones(10)
        return thm42_rows(t1, t1, np.zeros(10), np.ones(10))

    v = _verdict("c14", write_theory(tmp_path, rel_err=lambda net, s: 0.0, cases=cases))
    assert v.status == "inconclusive" and "met H" in v.reason


def test_thm42_summary_counts_and_gap():
    rows = thm42_rows(np.array([1.0, 0.5, 2.0]), np.array([2.0, -1.0, 1.0]),
                      np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.5]))[:, 0, :]
    s = thm42_summary(rows)
    # Assumed: cases 0 (t1 ≥ 0, ⟨ĝ,ŷ⟩ ≥ 0) and 2; case 2 violates lhs ≤ t1 − t2 by 1.
    assert (s["n"], s["n_assumed"], s["holds"], s["lower"]) == (3, 2, 0.5, 0.5)
    # The gap is over every case: case 1 (outside the assumptions) is off by all its scale.
    assert s["gap"] == pytest.approx(1.5 / 1.5)
