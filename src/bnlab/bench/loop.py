"""Time per step of ``bnlab.train.train`` as a ratio to a bare PyTorch loop (target <= 1.05).

Both loops train the same model on the same in-memory batches, in the same process; each
repeat rebuilds the model from the same seed and the two loops alternate order. Reported:
median seconds per step of each, and their ratio. On CUDA a third column times
``compile="graphs"`` (each step one CUDA graph replay, after its warm-up and capture) as a
ratio to the bare loop. The VGG-16 step and packing tables live in
:mod:`bnlab.bench.graphs`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from bnlab.bench._timing import header, resolve_device, sync
from bnlab.train import SGD, MemorySink, TrainRun, build_optimizer, train

CE = nn.functional.cross_entropy


class _Batches:
    """In-memory shuffled batches with the bnlab.data.Loader interface."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.x, self.y, self.bs = x, y, batch_size

    def __len__(self) -> int:
        return len(self.x) // self.bs

    def epoch(self, e: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(e)
        perm = torch.randperm(len(self.x), generator=gen).to(self.x.device)
        for i in range(start, len(self)):
            idx = perm[i * self.bs : (i + 1) * self.bs]
            yield self.x[idx], self.y[idx]


def ioffe_mlp() -> nn.Module:
    """784-100-100-100-10 sigmoid MLP with BN before each sigmoid (Ioffe & Szegedy §4.1)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 784
    for _ in range(3):
        layers += [nn.Linear(width, 100, bias=False), nn.BatchNorm1d(100), nn.Sigmoid()]
        width = 100
    return nn.Sequential(*layers, nn.Linear(100, 10))


def small_convnet() -> nn.Module:
    """Two conv + BN + ReLU + pool blocks and a linear head, for 1x28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def _bare(model: nn.Module, loader: _Batches, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    batches = (b for e in range(10**6) for b in loader.epoch(e))
    for _ in range(steps):
        x, y = next(batches)
        opt.zero_grad(set_to_none=True)
        CE(model(x), y).backward()
        opt.step()


def _bnlab(model: nn.Module, loader: _Batches, steps: int) -> None:
    opt = build_optimizer(SGD(0.1), model.parameters())
    train(model, loader, CE, opt, steps=steps, sink=MemorySink(), log_every=100)


def _graphs_per_step(make: Callable[[], nn.Module], loader: _Batches, steps: int,
                     device: torch.device) -> float:  # fmt: skip
    """Seconds per step of ``compile="graphs"`` once warmed up and captured."""
    torch.manual_seed(0)
    model = make().to(device)
    opt = build_optimizer(SGD(0.1), model.parameters())
    run = TrainRun(model, loader, CE, opt, steps=steps + 10, log_every=100,
                   compile="graphs").start()  # fmt: skip
    for _ in range(10):  # warm-up, capture
        run.advance()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        run.advance()
    sync(device)
    return (time.perf_counter() - start) / steps


def _timed(fn: Callable[[nn.Module, _Batches, int], None], make: Callable[[], nn.Module],
           loader: _Batches, steps: int, device: torch.device) -> float:  # fmt: skip
    torch.manual_seed(0)
    model = make().to(device)
    fn(model, loader, 5)  # warm-up
    sync(device)
    start = time.perf_counter()
    fn(model, loader, steps)
    sync(device)
    return (time.perf_counter() - start) / steps


def _row(name: str, make: Callable[[], nn.Module], shape: tuple[int, ...], batch: int,
         steps: int, repeats: int, device: torch.device) -> str:  # fmt: skip
    x = torch.rand(batch * 50, *shape, device=device)
    y = torch.randint(10, (batch * 50,), device=device)
    loader = _Batches(x, y, batch)
    times: dict[str, list[float]] = {"bare": [], "bnlab": []}
    order = [("bare", _bare), ("bnlab", _bnlab)]
    for r in range(repeats):
        for key, fn in order if r % 2 == 0 else order[::-1]:
            times[key].append(_timed(fn, make, loader, steps, device))
        if device.type == "cuda":
            times.setdefault("graphs", []).append(_graphs_per_step(make, loader, steps, device))
    bare, ours = statistics.median(times["bare"]), statistics.median(times["bnlab"])
    line = (f"  {name:<28} bare {bare * 1e6:8.1f} us/step   train() {ours * 1e6:8.1f} us/step"
            f"   ratio {ours / bare:.3f}")  # fmt: skip
    if "graphs" in times:
        graphs = statistics.median(times["graphs"])
        line += f"   graphs {graphs * 1e6:8.1f} us/step   ratio {graphs / bare:.3f}"
    return line


def table(device: str | torch.device = "cpu", *, quick: bool = False,
          repeats: int | None = None, steps: int | None = None) -> str:  # fmt: skip
    """The loop-overhead table, as printable text (see the module docstring)."""
    dev = resolve_device(device)
    repeats = repeats or (2 if quick else 7)
    steps = steps or (20 if quick else 300)
    lines = [header(f"bnlab loop: train() vs a bare loop, {steps} steps", dev, repeats)]
    lines.append(_row("ioffe MLP, batch 60", ioffe_mlp, (1, 28, 28), 60, steps, repeats, dev))
    lines.append(_row("conv net 28x28, batch 32", small_convnet, (1, 28, 28), 32,
                      max(1, steps // 3), repeats, dev))  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The command line of this table (``benchmarks/bench_*.py`` call it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(table(args.device, quick=args.quick, repeats=args.repeats, steps=args.steps))
