"""The VGG-16 training step: CUDA graphs against eager, and runs packed on one device.

Model: bnlab's VGG-16 (BN, and noisy BN whose own generators a capture must register),
CIFAR-shaped random inputs, SGD with momentum; full width, batch 128 on a GPU (issue 15's
paper-scale setting), width 1/4, batch 32 on a CPU, width 1/16, batch 16 with ``quick``.

* ``graphs``: seconds per step of :class:`bnlab.train.TrainRun` in eager mode and with
  ``compile="graphs"``, timed round-robin after warm-up and capture; the speed-up is eager
  over graphs (issue 15's target: >= 1.5 on the GPU; an H200 measured 7.3 ms eager against
  3.8 ms captured). On a CPU nothing can be captured: the graphs column is the eager twin
  (``GraphSteps(capture=False)``), a dry run of the same bookkeeping.
* ``packing``: aggregate steps per second of N runs interleaved by the packed executor's
  :class:`~bnlab.sweep.packed.Lane` (own CUDA stream, own RNG streams) against one run of
  the same mode and against one eager run (the target: >= 2.5 at N = 4 on the GPU; as
  separate processes, 4 runs gained 1.14 on an H200).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bnlab.bench._timing import header, resolve_device, round_robin, sync
from bnlab.bench.loop import _Batches
from bnlab.models import create_model
from bnlab.sweep.packed import Lane
from bnlab.train import SGD, TrainRun, build_optimizer
from bnlab.train.graphs import GraphSteps

CE = nn.functional.cross_entropy


def _setting(device: torch.device, quick: bool) -> tuple[float, int]:
    """(width, batch) of the VGG-16 step on ``device``."""
    if quick:
        return 1 / 16, 16
    return (1.0, 128) if device.type == "cuda" else (0.25, 32)


def vgg_run(device: torch.device, width: float, batch: int, *, norm: str = "bn",
            graphs: bool = False, seed: int = 0) -> TrainRun:  # fmt: skip
    """A started VGG-16 run that never ends on its own (for timing)."""
    torch.manual_seed(seed)
    model = create_model("vgg16", norm=norm, width=width, in_shape=(3, 32, 32),
                         num_classes=10).to(device)  # fmt: skip
    x = torch.rand(batch * 4, 3, 32, 32, device=device)  # (4 batches, C, H, W)
    y = torch.randint(10, (batch * 4,), device=device)
    opt = build_optimizer(SGD(0.01, momentum=0.9), model.parameters())
    cuda_graphs = graphs and device.type == "cuda"
    run = TrainRun(model, _Batches(x, y, batch), CE, opt, steps=10**9, log_every=100,
                   divergence_factor=None, compile="graphs" if cuda_graphs else "none")
    if graphs and not cuda_graphs:
        run.graph = GraphSteps(model, CE, opt, capture=False)  # the CPU twin
    return run.start()


def _advance(runs: list[Lane], k: int) -> Callable[[], None]:
    def job() -> None:
        for _ in range(k):
            for lane in runs:
                if not lane.advance():
                    raise RuntimeError("a timed run ended (diverged?)")

    return job


def graphs_table(device: str | torch.device = "cpu", *, quick: bool = False) -> str:
    """Eager against graph-replayed VGG-16 steps, as printable text (module docstring)."""
    dev = resolve_device(device)
    width, batch = _setting(dev, quick)
    repeats, k = (2, 3) if quick else (7, 20)
    mode = "graphs" if dev.type == "cuda" else "twin (CPU: no capture)"
    lines = [header(f"bnlab graphs: VGG-16 width {width:g}, batch {batch}, {k} steps per "
                    f"timing; eager vs {mode}", dev, repeats)]  # fmt: skip
    for norm in ("bn", "noisy_bn"):
        eager = Lane(vgg_run(dev, width, batch, norm=norm))
        graph = Lane(vgg_run(dev, width, batch, norm=norm, graphs=True))
        t = round_robin({"eager": _advance([eager], k), "graphs": _advance([graph], k)},
                        repeats, dev, warmup=2)  # fmt: skip
        counts = graph.run.graph.counts if graph.run.graph is not None else {}
        lines.append(f"  {norm:<9} eager {t['eager'] / k * 1e3:8.3f} ms/step   graphs "
                     f"{t['graphs'] / k * 1e3:8.3f} ms/step   speed-up "
                     f"{t['eager'] / t['graphs']:.2f}x   ({counts.get('replays', 0)} replays, "
                     f"{counts.get('captures', 0)} captures)")  # fmt: skip
        del eager, graph
        _free(dev)
    lines.append("  target (issue 15): speed-up >= 1.5 for bn on the GPU (H200: 7.3 vs 3.8 ms)")
    return "\n".join(lines)


def _throughput(dev: torch.device, width: float, batch: int, n: int, graphs: bool,
                repeats: int, k: int) -> float:  # fmt: skip
    """Aggregate steps per second of ``n`` runs interleaved as the packed executor does."""
    lanes = [Lane(vgg_run(dev, width, batch, graphs=graphs, seed=i)) for i in range(n)]
    job = _advance(lanes, k)
    job()  # warm-up (and capture)
    job()
    times = []
    for _ in range(repeats):
        sync(dev)
        start = time.perf_counter()
        job()
        sync(dev)
        times.append(time.perf_counter() - start)
    del lanes, job
    _free(dev)
    return n * k / statistics.median(times)


def packing_table(device: str | torch.device = "cpu", *, quick: bool = False) -> str:
    """Aggregate throughput of packed VGG-16 runs, as printable text (module docstring)."""
    dev = resolve_device(device)
    width, batch = _setting(dev, quick)
    repeats, k = (2, 2) if quick else (5, 20)
    sizes = (1, 2) if quick else (1, 2, 4)
    modes = (False, True) if dev.type == "cuda" else (False,)
    lines = [header(f"bnlab packing: VGG-16 width {width:g}, batch {batch}; N runs in one "
                    "process, each on its own stream", dev, repeats)]  # fmt: skip
    single_eager = None
    for graphs in modes:
        single = None
        for n in sizes:
            rate = _throughput(dev, width, batch, n, graphs, repeats, k)
            single = single or rate
            single_eager = single_eager or rate
            lines.append(f"  {'graphs' if graphs else 'eager':<6} N={n}  {rate:8.1f} steps/s   "
                         f"x{rate / single:.2f} one run of this mode   "
                         f"x{rate / single_eager:.2f} one eager run")  # fmt: skip
    lines.append("  target (issue 15): >= 2.5x one run at N=4 on the GPU (H200, 4 processes: "
                 "1.14x)")  # fmt: skip
    return "\n".join(lines)


def _free(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
