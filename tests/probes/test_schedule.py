"""Schedule and the Probe constructor: one schedule object, one bn_mode check, for every probe."""

from __future__ import annotations

import inspect

import pytest

import bnlab.probes as probes
from bnlab.probes import Probe, Schedule


def _reference_due(every: int, start: int, steps: set[int] | None, step: int) -> bool:
    """Twin: the steps a loop over the whole run would select."""
    if steps is not None:
        return step in steps
    return step in range(start, 10_000, every)


@pytest.mark.parametrize(
    ("every", "start", "steps"),
    [(1, 0, None), (3, 0, None), (4, 5, None), (1, 7, None), (1, 0, {0, 2, 9}), (1, 0, set())],
    ids=["every-step", "every-3", "every-4-from-5", "from-7", "explicit", "never"],
)
def test_due_matches_a_plain_loop(every: int, start: int, steps: set[int] | None) -> None:
    sched = Schedule(every=every, start=start, steps=None if steps is None else frozenset(steps))
    got = [s for s in range(60) if sched.due(s)]
    assert got == [s for s in range(60) if _reference_due(every, start, steps, s)]


def test_steps_accept_any_iterable_and_are_frozen() -> None:
    sched = Schedule(steps=[5, 1, 5])  # type: ignore[arg-type]
    assert sched.steps == frozenset({1, 5})
    assert sched == Schedule(steps=frozenset({1, 5}))
    with pytest.raises(AttributeError):
        sched.every = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every": 0}, "every must be an int >= 1"),
        ({"every": -2}, "every must be an int >= 1"),
        ({"every": 2.0}, "every must be an int >= 1"),
        ({"every": True}, "every must be an int >= 1"),
        ({"start": -1}, "start must be an int >= 0"),
        ({"steps": [3, -1]}, "steps must be ints >= 0"),
        ({"steps": "12"}, "steps must be a set of ints"),
        ({"steps": {2}, "every": 5}, "either steps or every/start"),
    ],
    ids=["zero", "negative", "float", "bool", "negative-start", "negative-step", "string",
         "steps-and-every"],
)
def test_bad_schedules_are_one_line_value_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        Schedule(**kwargs)
    assert "\n" not in str(err.value)


def test_probe_takes_a_schedule_or_an_int() -> None:
    assert Probe(4).schedule == Schedule(every=4)
    assert Probe().schedule == Schedule()
    sched = Schedule(every=2, start=1)
    probe = Probe(sched)
    assert probe.schedule is sched
    assert [s for s in range(8) if probe.due(s)] == [1, 3, 5, 7]
    for bad in (0, "10", 2.5, None):
        with pytest.raises(ValueError, match=r"schedule|every"):
            Probe(bad)  # type: ignore[arg-type]


def test_probe_validates_bn_mode_once() -> None:
    assert Probe(bn_mode="eval").bn_mode == "eval"
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        Probe(bn_mode="inference")


def _probe_classes() -> list[type[Probe]]:
    found = [obj for obj in vars(probes).values()
             if inspect.isclass(obj) and issubclass(obj, Probe) and obj is not Probe]
    return found


def test_every_library_probe_is_covered() -> None:
    names = {c.__name__ for c in _probe_classes()}
    assert {"ActivationStatsProbe", "AlignmentProbe", "GradientStatsProbe", "ICSProbe",
            "LandscapeProbe", "RelativeLossProbe"} <= names


@pytest.mark.parametrize("cls", _probe_classes(), ids=lambda c: c.__name__)
def test_probe_classes_take_schedule_and_declare_no_every_start_steps(cls: type[Probe]) -> None:
    params = inspect.signature(cls.__init__).parameters
    assert "schedule" in params
    assert not {"every", "start", "steps"} & set(params)


EXTRA_PASS_PROBES = ["AlignmentProbe", "GradientStatsProbe", "ICSProbe", "LandscapeProbe",
                     "RelativeLossProbe", "ActivationStatsProbe"]


@pytest.mark.parametrize("name", EXTRA_PASS_PROBES)
def test_probes_with_extra_passes_take_and_check_bn_mode(name: str) -> None:
    cls = getattr(probes, name)
    args = ([1],) if name == "ActivationStatsProbe" else ()
    probe = cls(*args, schedule=Schedule(every=5, start=2), bn_mode="eval")
    assert probe.bn_mode == "eval" and probe.due(7) and not probe.due(5)
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        cls(*args, bn_mode="Train")
