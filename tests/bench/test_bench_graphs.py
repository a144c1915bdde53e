"""bnlab bench graphs|packing: the VGG-16 step tables run on a CPU (a dry run of the GPU check)."""

from __future__ import annotations

import re

import torch

from bnlab.bench import run_bench
from bnlab.bench.graphs import vgg_run
from bnlab.sweep.packed import Lane


def test_graphs_table_times_the_eager_twin_on_a_cpu():
    text = run_bench("graphs", "cpu", quick=True, threads=1)
    assert "eager vs twin (CPU: no capture)" in text
    rows = [ln for ln in text.splitlines() if "speed-up" in ln and "target" not in ln]
    assert [r.split()[0] for r in rows] == ["bn", "noisy_bn"]
    for row in rows:  # the twin replayed: it went through the graph bookkeeping
        assert int(re.search(r"\((\d+) replays, 1 captures\)", row).group(1)) > 0


def test_packing_table_has_a_row_per_pack_size():
    text = run_bench("packing", "cpu", quick=True, threads=1)
    rows = [ln.split()[:2] for ln in text.splitlines() if "steps/s" in ln]
    assert rows == [["eager", "N=1"], ["eager", "N=2"]]  # graph rows need CUDA
    assert re.search(r"eager  N=1 .* x1\.00 one run of this mode", text)


def test_timed_runs_are_independent_lanes():
    # two lanes of different seeds stepped in turn equal each stepped alone
    alone = []
    for seed in (0, 1):
        run = vgg_run(torch.device("cpu"), 1 / 16, 4, seed=seed)
        for _ in range(3):
            run.advance()
        alone.append(run._loop.guard.losses)
    lanes = []
    for seed in (0, 1):
        lanes.append(Lane(vgg_run(torch.device("cpu"), 1 / 16, 4, seed=seed)))
    for _ in range(3):
        for lane in lanes:
            lane.advance()
    for lane, losses in zip(lanes, alone, strict=True):
        assert torch.equal(torch.stack(lane.run._loop.guard.losses), torch.stack(losses))
