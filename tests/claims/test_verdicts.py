"""Verdict logic of bnlab.claims.evaluate on hand-made stores written through the real Store."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from bnlab.claims import (
    Claim,
    Measurement,
    MissingDataError,
    Rule,
    evaluate,
    get_claim,
    list_claims,
    register_claim,
    run_sets,
)
from bnlab.errors import UserError
from bnlab.recipes import get_card
from bnlab.registry import UnknownNameError
from bnlab.results import Store

TOY = "toy.recipe"


def _score_measure(store: Store, runs: pd.DataFrame) -> Measurement:
    """One value per seed: the final 'score' of the variant 'a' run; mean of the seeds."""
    m = store.metrics(runs=runs["id"].tolist(), names="score")
    if m.empty:
        raise MissingDataError("no 'score' metric stored")
    last = m.sort_values("step").groupby("run")["value"].last()
    a_runs = runs[runs["cfg.variant"] == "a"]
    per_seed = {int(r.seed): float(last[r.id]) for r in a_runs.itertuples()}
    return Measurement(per_seed, float(np.mean(list(per_seed.values()))))


def _toy_claim(**kw: object) -> Claim:
    fields = dict(id="c99", paper="Toy 2024", figure="Fig. 0", statement="score >= 1",
                  kind="evidence", recipe=TOY, measure=_score_measure,
                  rule=Rule(">=", 1.0, "test", "score at least 1"), explanation="ics",
                  min_scale="quick")
    fields.update(kw)
    return Claim(**fields)  # type: ignore[arg-type]


def _write(store: Store, scores: dict[int, float], *, scale: str = "quick",
           variants: tuple[str, ...] = ("a", "b"), status: dict | None = None,
           skip: tuple[tuple[str, int], ...] = (), write_metric: bool = True) -> None:
    for variant in variants:
        for seed, score in scores.items():
            if (variant, seed) in skip:
                continue
            config = {"variant": variant, "seed": seed, "scale": scale, "data": "mnist1d"}
            key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
            run = store.register_run(key, TOY, config, seed)
            store.start_run(run, resumed_from=None, provenance={})
            if write_metric:
                store.log_metrics(run, [(0, "score", 0.0), (10, "score", score)])
            st = (status or {}).get((variant, seed), "finished")
            if st != "running":
                store.finish_run(run, st, error="why: " + st if st != "finished" else None)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path) as s:
        yield s


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param({0: 2.0, 1: 3.0, 2: 4.0}, "supported", id="holds_every_seed"),
        pytest.param({0: 0.5, 1: 0.6, 2: 5.0}, "inconclusive", id="holds_for_mean_only"),
        pytest.param({0: 0.1, 1: 0.2, 2: 0.3}, "not supported", id="holds_for_none"),
        pytest.param({0: 0.0, 1: 0.0, 2: 1.5}, "inconclusive", id="fails_mean_one_seed_holds"),
        pytest.param({0: 1.0, 1: 1.0, 2: 1.0}, "supported", id="threshold_is_inclusive"),
        pytest.param({0: 2.0, 1: 2.0, 2: 2.0, 3: 0.0}, "inconclusive", id="four_seeds_one_off"),
    ],
)
def test_decision_table(store, scores, expected):
    _write(store, scores)
    verdict = evaluate(_toy_claim(), store)
    assert verdict.status == expected, verdict.reason
    assert verdict.measurement is not None
    assert verdict.measurement.mean == pytest.approx(np.mean(list(scores.values())))
    assert verdict.seeds == tuple(sorted(scores))
    assert verdict.reason


def _explicit_mean(mean: float):
    """A measure whose per-seed values are the stored scores and whose mean is ``mean``.

    Claims may measure the seed-averaged data (``seedwise(mean="of_data")``), so the mean's
    value need not be the mean of the seeds' values: the verdict must look at both.
    """
    def measure(store: Store, runs: pd.DataFrame) -> Measurement:
        return Measurement(_score_measure(store, runs).per_seed, mean)

    return measure


@pytest.mark.parametrize(
    ("scores", "mean", "expected"),
    [
        # Every seed holds but the mean fails: a rule that ignored the mean would say
        # "supported".
        pytest.param({0: 2.0, 1: 3.0, 2: 4.0}, 0.5, "inconclusive", id="seeds_hold_mean_fails"),
        # Every seed fails but the mean holds: ignoring the mean would say "not supported".
        pytest.param({0: 0.1, 1: 0.2, 2: 0.3}, 2.0, "inconclusive", id="seeds_fail_mean_holds"),
        pytest.param({0: 2.0, 1: 3.0, 2: 4.0}, 2.0, "supported", id="all_hold"),
        pytest.param({0: 0.1, 1: 0.2, 2: 0.3}, 0.5, "not supported", id="all_fail"),
    ],
)
def test_seeds_and_mean_must_agree(store, scores, mean, expected):
    _write(store, scores)
    verdict = evaluate(_toy_claim(measure=_explicit_mean(mean)), store)
    assert verdict.status == expected, verdict.reason
    assert verdict.measurement.mean == mean


def test_mean_only_reason_names_failing_seeds(store):
    _write(store, {0: 0.5, 1: 0.6, 2: 5.0})
    verdict = evaluate(_toy_claim(), store)
    assert "fails for seeds [0, 1]" in verdict.reason


@pytest.mark.parametrize(
    ("kwargs", "reason_part"),
    [
        pytest.param(dict(skip=(("b", 1),)), "run missing", id="missing_run"),
        pytest.param(dict(status={("b", 2): "running"}), "not finished", id="running_run"),
        pytest.param(dict(status={("a", 0): "diverged"}), "diverged unexpectedly",
                     id="diverged_run"),
        pytest.param(dict(status={("b", 0): "failed"}), "run failed", id="failed_run"),
        pytest.param(dict(scale="smoke"), "needs at least 'quick'", id="scale_too_small"),
        pytest.param(dict(write_metric=False), "missing data", id="metric_missing"),
    ],
)
def test_inconclusive_cases(store, kwargs, reason_part):
    _write(store, {0: 2.0, 1: 3.0, 2: 4.0}, **kwargs)
    verdict = evaluate(_toy_claim(), store)
    assert verdict.status == "inconclusive"
    assert reason_part in verdict.reason


def test_fewer_than_three_seeds(store):
    _write(store, {0: 2.0, 1: 3.0})
    verdict = evaluate(_toy_claim(), store)
    assert verdict.status == "inconclusive"
    assert "only 2 seed(s)" in verdict.reason


def test_no_runs(store):
    verdict = evaluate(_toy_claim(), store)
    assert verdict.status == "inconclusive"
    assert "no stored runs" in verdict.reason


def test_expected_divergence_is_not_a_problem(store):
    # Variant b diverging is part of the claim (as in Ioffe's no-BN at a high LR).
    _write(store, {0: 2.0, 1: 3.0, 2: 4.0}, status={("b", 0): "diverged"})
    claim = _toy_claim(diverge_ok=lambda cfg: cfg["variant"] == "b")
    assert evaluate(claim, store).status == "supported"


def test_larger_scale_is_judged_when_both_exist(store):
    _write(store, {0: 0.1, 1: 0.1}, scale="smoke")
    _write(store, {0: 2.0, 1: 3.0, 2: 4.0}, scale="paper")
    assert [rs.scale for rs in run_sets(store, TOY)] == ["paper", "smoke"]
    verdict = evaluate(_toy_claim(), store)
    assert (verdict.status, verdict.scale) == ("supported", "paper")
    assert evaluate(_toy_claim(), store, scale="smoke").status == "inconclusive"


def test_paper_scale_meets_quick_requirement(store):
    _write(store, {0: 0.1, 1: 0.2, 2: 0.3}, scale="paper")
    assert evaluate(_toy_claim(), store).status == "not supported"


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [(">=", 1.0, True), (">", 1.0, False), ("<=", 1.0, True), ("<", 0.5, True),
     (">=", math.nan, False), (">=", math.inf, True)],
    ids=["ge_equal", "gt_equal", "le_equal", "lt_below", "nan_never", "inf_ge"],
)
def test_rule_ops(op, value, expected):
    assert Rule(op, 1.0, "src", "text").holds(value) is expected


def test_bad_rule_and_claim_fields():
    with pytest.raises(ValueError, match="operator"):
        Rule("=>", 1.0, "src", "text")
    with pytest.raises(ValueError, match="c01"):
        _toy_claim(id="claim1")
    with pytest.raises(ValueError, match="kind"):
        _toy_claim(kind="opinion")
    with pytest.raises(ValueError, match="min_scale"):
        _toy_claim(min_scale="huge")


def test_registry_rejects_duplicates_and_lists_valid_ids():
    with pytest.raises(ValueError, match="already registered"):
        register_claim(_toy_claim(id="c01"))
    with pytest.raises(UnknownNameError, match=r"valid claims: .*c01") as err:
        get_claim("c77")
    assert isinstance(err.value, UserError)
    with pytest.raises(UnknownNameError, match=r"valid recipes: .*ioffe2015\.mnist"):
        get_card("nope")
    assert [c.id for c in list_claims("ioffe2015.mnist")] == ["c01", "c02"]
    assert get_claim("c01") is list_claims()[0]


def test_measurement_std_is_sample_std():
    m = Measurement({0: 1.0, 1: 2.0, 2: 4.0}, 7 / 3)
    assert m.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert math.isnan(Measurement({0: 1.0}, 1.0).std)


def test_runs_without_scale_are_grouped_and_inconclusive(store):
    for seed in range(3):
        run = store.register_run(f"k{seed}", TOY, {"variant": "a", "seed": seed}, seed)
        store.start_run(run, resumed_from=None, provenance={})
        store.finish_run(run, "finished")
    sets = run_sets(store, TOY)
    assert [(rs.scale, rs.data, len(rs.runs)) for rs in sets] == [(None, None, 3)]
    verdict = evaluate(_toy_claim(), store)
    assert verdict.status == "inconclusive"
    assert "no known scale" in verdict.reason
