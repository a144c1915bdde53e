"""c01 and c02 measured on synthetic stored curves whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from ioffe_fake import (
    EVAL_STEPS,
    PCT_STEPS,
    acc_bn_wins,
    drifting_tracks,
    pct_ratio,
    saturating,
    write_runs,
)

from bnlab.claims import MissingDataError, evaluate, get_claim
from bnlab.claims.ioffe2015 import load_accuracy, total_variation, typical_unit


def _status(tmp_path, **kw):
    store = write_runs(tmp_path, **kw)
    return {cid: evaluate(get_claim(cid), store) for cid in ("c01", "c02")}


def test_bn_wins_everywhere_supports_both(tmp_path):
    verdicts = _status(tmp_path)
    c01, c02 = verdicts["c01"], verdicts["c02"]
    assert c01.status == "supported", c01.reason
    assert c01.measurement.per_seed == {0: 1.0, 1: 1.0, 2: 1.0}
    # Conditions: lr=0.1, lr=0.5 and the best LRs.
    assert [d.label for d in c01.measurement.details][:2] == ["lr=0.1", "lr=0.5"]
    assert len(c01.measurement.details) == 3
    assert c02.status == "supported", c02.reason
    assert c02.measurement.mean == pytest.approx(5.0)
    assert list(c02.measurement.per_seed.values()) == pytest.approx([5.0] * 3)


def test_c02_small_ratio_is_not_supported(tmp_path):
    verdict = _status(tmp_path, pct=pct_ratio(2.0))["c02"]
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == pytest.approx(2.0)


def test_c02_uses_each_networks_best_lr(tmp_path):
    # BN's TV grows with the LR; none's is fixed at 0.05 per snapshot. BN's curves tie at
    # every LR, so its best LR is the smaller one (0.1): ratio 0.05 / (0.1 * 0.1) = 5.
    def pct(norm, lr, seed):
        return drifting_tracks(0.05 if norm == "none" else 0.1 * lr, seed)

    m = _status(tmp_path, pct=pct)["c02"].measurement
    assert m.mean == pytest.approx(0.05 / 0.01)
    per_lr = {d.label: d.text for d in m.details}
    assert per_lr["lr=0.5"].endswith("ratio 1")  # 0.05 / (0.1 * 0.5)


def test_c02_per_seed_ratios_and_ratio_of_means(tmp_path):
    def pct(norm, lr, seed):
        return drifting_tracks(0.01 * (2.0 + 2.0 * seed) if norm == "none" else 0.01, seed)

    verdict = _status(tmp_path, pct=pct)["c02"]
    assert verdict.measurement.per_seed == pytest.approx({0: 2.0, 1: 4.0, 2: 6.0})
    assert verdict.measurement.mean == pytest.approx(4.0)
    assert verdict.status == "inconclusive"  # seed 0 fails, the mean and seeds 1, 2 hold


def test_c01_curves_cross_at_one_lr(tmp_path):
    # At lr=0.5 the unnormalized net is better than BN: it fails there and at the best LRs
    # (none's best is 0.5, BN's ties and goes to 0.1); it holds only at lr=0.1.
    def acc(norm, lr, seed):
        if norm == "none" and lr == 0.5:
            return saturating(0.99, 5.0)
        return acc_bn_wins(norm, lr, seed)

    verdict = _status(tmp_path, acc=acc)["c01"]
    assert verdict.status == "not supported"
    assert verdict.measurement.per_seed == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    assert "none 0.5" in verdict.measurement.details[-1].label


def test_c01_identical_curves_are_not_faster(tmp_path):
    # Equal curves satisfy "at least as high" but BN does not reach the target sooner.
    verdict = _status(tmp_path, acc=lambda norm, lr, seed: saturating(0.9, 1.0))["c01"]
    assert verdict.status == "not supported"
    assert verdict.measurement.mean == 0.0


def test_c01_one_seed_disagrees(tmp_path):
    def acc(norm, lr, seed):
        if seed == 2 and norm == "none":
            return saturating(0.99, 5.0)
        return acc_bn_wins(norm, lr, seed)

    verdict = _status(tmp_path, acc=acc)["c01"]
    assert verdict.status == "inconclusive"
    assert verdict.measurement.per_seed[2] == 0.0
    assert verdict.measurement.mean == 1.0
    assert "fails for seeds [2]" in verdict.reason


def test_best_lr_matches_closed_form(tmp_path):
    store = write_runs(tmp_path, lrs=(0.1, 0.5, 1.0))
    curves = load_accuracy(store, store.runs(recipe="ioffe2015.mnist"))
    finals = {lr: (0.90 - 0.01 * lr - 0.1) * (1 - np.exp(-0.5 * 5)) + 0.1 for lr in (0.1, 0.5, 1.0)}
    assert curves.best_lr("none") == max(finals, key=finals.get)
    assert curves.best_lr("bn") == 0.1  # ties break to the smaller LR
    np.testing.assert_array_equal(curves.steps, EVAL_STEPS)
    assert curves.acc[("bn", 0.5)].shape == (3, EVAL_STEPS.size)


def test_diverged_run_makes_both_inconclusive(tmp_path):
    verdicts = _status(tmp_path, status=lambda n, lr, s: "diverged" if n == "none" and s == 1
                       else "finished")
    for verdict in verdicts.values():
        assert verdict.status == "inconclusive"
        assert "diverged unexpectedly" in verdict.reason


def test_missing_network_is_missing_data(tmp_path):
    store = write_runs(tmp_path, skip=lambda norm, lr, seed: norm == "none")
    verdict = evaluate(get_claim("c01"), store)
    assert verdict.status == "inconclusive"
    assert "norm='none'" in verdict.reason


def test_quick_requirement(tmp_path):
    verdicts = _status(tmp_path, scale="smoke")
    assert all("needs at least 'quick'" in v.reason for v in verdicts.values())


def test_total_variation_matches_loop_reference():
    rng = np.random.default_rng(0)
    tracks = rng.normal(size=(7, 4, 3))
    ref = 0.0
    for u in range(4):
        for p in range(3):
            ref += sum(abs(tracks[t + 1, u, p] - tracks[t, u, p]) for t in range(6))
    assert total_variation(tracks) == pytest.approx(ref / 12, rel=1e-12)
    with pytest.raises(MissingDataError):
        total_variation(tracks[:1])


def test_typical_unit_is_the_median_drifter():
    t = np.arange(PCT_STEPS.size, dtype=np.float64)[:, None, None]
    speeds = np.array([5.0, 1.0, 3.0, 2.0, 4.0])[None, :, None]  # unit 2 has the median TV
    tracks = np.repeat(t * speeds, 3, axis=2)  # (T, 5, 3)
    assert typical_unit(tracks) == 2
