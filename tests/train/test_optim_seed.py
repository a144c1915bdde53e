"""Optimizer configs build the torch optimizers they describe; seeding is deterministic."""

import random

import numpy as np
import pytest
import torch

from bnlab.train import SGD, Adam, build_optimizer, seed_everything


def _updates(opt_factory, steps=4):
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    opt = opt_factory([w])
    for i in range(steps):
        opt.zero_grad()
        ((w - i) ** 2).sum().backward()
        opt.step()
    return w.detach()


@pytest.mark.parametrize(
    ("config", "reference"),
    [
        (SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
        (Adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3),
         lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3)),
    ],
    ids=["sgd", "sgd-nesterov-wd", "adam"],
)
def test_build_matches_torch(config, reference):
    assert torch.equal(_updates(lambda p: build_optimizer(config, p)), _updates(reference))


@pytest.mark.parametrize(
    "build",
    [lambda: SGD(0.0), lambda: SGD(0.1, momentum=1.0), lambda: SGD(0.1, nesterov=True),
     lambda: SGD(0.1, weight_decay=-1), lambda: Adam(0.1, betas=(0.9, 1.0)),
     lambda: Adam(0.1, eps=0.0)],
    ids=["zero-lr", "momentum-1", "nesterov-no-momentum", "neg-wd", "beta-1", "eps-0"],
)
def test_bad_configs(build):
    with pytest.raises(ValueError):
        build()


def test_unknown_config():
    with pytest.raises(TypeError, match="SGD"):
        build_optimizer({"lr": 0.1}, [torch.zeros(1, requires_grad=True)])


def test_seed_everything_repeats_all_streams():
    threads = torch.get_num_threads()
    try:
        draws = []
        for _ in range(2):
            seed_everything(123, threads=1)
            draws.append((torch.rand(3), np.random.rand(3), random.random()))
        assert torch.get_num_threads() == 1
        assert torch.equal(draws[0][0], draws[1][0])
        np.testing.assert_array_equal(draws[0][1], draws[1][1])
        assert draws[0][2] == draws[1][2]
        seed_everything(124, threads=1)
        assert not torch.equal(torch.rand(3), draws[0][0])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("seed", "threads"), [(-1, 1), (0, 0), (1.5, 1)], ids=["neg", "no-threads",
                                                                               "float-seed"])
def test_seed_everything_rejects(seed, threads):
    with pytest.raises(ValueError):
        seed_everything(seed, threads)
