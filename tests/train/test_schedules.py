"""Schedules against torch.optim.lr_scheduler and closed forms."""

import math

import pytest
import torch

from bnlab.train import Constant, Cosine, Exponential, LRSchedule, Plateau, Step, Warmup


def torch_factors(make_scheduler, steps):
    """Multipliers a torch scheduler applies at steps 0..steps-1 (base lr 1)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


CASES = [
    pytest.param(Constant(), lambda o: torch.optim.lr_scheduler.ConstantLR(o, 1.0), id="constant"),
    pytest.param(Step(5, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 5, 0.5), id="step"),
    pytest.param(Exponential(0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
                 id="exponential"),
    pytest.param(Cosine(12, 0.1), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, 0.1),
                 id="cosine"),
]


@pytest.mark.parametrize(("config", "reference"), CASES)
def test_matches_torch(config, reference):
    sched = LRSchedule(config)
    expected = torch_factors(reference, 13)
    got = [sched.factor(s) for s in range(13)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_cosine_holds_minimum_after_total():
    sched = LRSchedule(Cosine(10, 0.2))
    assert sched.factor(10) == pytest.approx(0.2)
    assert sched.factor(50) == pytest.approx(0.2)


def test_warmup_composes_multiplicatively():
    sched = LRSchedule(Warmup(4, then=Step(6, 0.1), start_factor=0.2))
    for s in range(12):
        ramp = 0.2 + 0.8 * min(1.0, (s + 1) / 4)
        assert sched.factor(s) == pytest.approx(ramp * 0.1 ** (s // 6)), s


def test_plateau_matches_reduce_on_plateau():
    values = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8, 2.0, 2.5, 2.6, 2.7]
    config = Plateau("val", gamma=0.5, patience=2, threshold=1e-3, min_factor=0.1)
    sched = LRSchedule(config)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=2, threshold=1e-3, min_lr=0.1
    )
    for v in values:
        sched.observe({"val": v, "other": 0.0})
        ref.step(v)
        assert sched.factor(0) == pytest.approx(opt.param_groups[0]["lr"]), v
    assert sched.factor(0) < 1.0  # it did drop


def test_plateau_max_mode_nonfinite_and_state_roundtrip():
    sched = LRSchedule(Plateau("acc", mode="max", gamma=0.1, patience=0, then=Exponential(0.5)))
    sched.observe({"acc": 0.5})
    sched.observe({"acc": 0.6})
    assert sched.factor(1) == pytest.approx(0.5)
    sched.observe({"acc": math.nan})
    assert sched.factor(1) == pytest.approx(0.05)
    other = LRSchedule(sched.config)
    other.load_state_dict(sched.state_dict())
    assert other.factor(3) == sched.factor(3)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Step(0),
        lambda: Exponential(1.5),
        lambda: Cosine(10, 2.0),
        lambda: Warmup(0),
        lambda: Plateau("x", gamma=1.0),
        lambda: Plateau("x", mode="up"),
        lambda: LRSchedule(Warmup(2, then=Plateau("a", then=Plateau("b")))),
        lambda: LRSchedule("cosine"),
    ],
    ids=["step-zero", "exp-gamma", "cos-min", "warmup-zero", "plateau-gamma", "plateau-mode",
         "two-plateaus", "not-a-config"],
)
def test_bad_configs(build):
    with pytest.raises((ValueError, TypeError)):
        build()


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        Step(3).every = 4
