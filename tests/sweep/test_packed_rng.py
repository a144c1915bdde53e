"""RunRNG: each packed run's random streams, swapped in and out around its steps.

The CUDA branch (the default generator's state object swapped by pointer, as CUDA graphs
need) runs here against a recording stand-in for the generator.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from bnlab.sweep.packed import RunRNG


def draws():
    return (torch.rand(2).tolist(), np.random.rand(2).tolist(), [random.random()])


def test_two_runs_interleaved_draw_what_each_draws_alone():
    alone = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        alone.append([draws() for _ in range(3)])
    rngs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        rngs.append(RunRNG(torch.device("cpu")))
    got = [[], []]
    for _ in range(3):
        for i, rng in enumerate(rngs):
            with rng.active():
                got[i].append(draws())
    assert got == alone


def test_the_thread_count_is_the_runs():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = RunRNG(torch.device("cpu"))
    torch.set_num_threads(2)
    with rng.active():
        assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


class FakeCudaGenerator:
    """Records the state object installed; clone_state hands out numbered states."""

    def __init__(self):
        self.current, self.log, self.clones = "process", [], 0

    def clone_state(self):
        self.clones += 1
        return f"clone-{self.clones}"

    def graphsafe_get_state(self):
        return self.current

    def graphsafe_set_state(self, state):
        self.log.append(state)
        self.current = state


def test_cuda_state_object_is_installed_for_the_step_and_put_back(monkeypatch):
    gen = FakeCudaGenerator()
    monkeypatch.setattr(torch.cuda, "default_generators", (gen,), raising=False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    a, b = RunRNG(torch.device("cuda")), RunRNG(torch.device("cuda:0"))
    assert (a.cuda_state, b.cuda_state) == ("clone-1", "clone-2")
    with a.active():
        assert gen.current == "clone-1"
    with b.active():
        assert gen.current == "clone-2"
    assert gen.current == "process"
    assert gen.log == ["clone-1", "process", "clone-2", "process"]
