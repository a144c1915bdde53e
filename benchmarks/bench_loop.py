"""Time per step of bnlab.train.train as a ratio to a bare PyTorch loop (target <= 1.05).

Both loops train the same model on the same in-memory batches, in the same process; each
repeat rebuilds the model from the same seed and the two loops alternate order. Reported:
median seconds per step of each, and their ratio. Runs on one thread
(``torch.set_num_threads(1)``) unless ``--threads`` says otherwise; on a GPU with
``--device cuda``.

    python benchmarks/bench_loop.py [--steps 300] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from bnlab.train import SGD, MemorySink, build_optimizer, train

CE = nn.functional.cross_entropy


class Batches:
    """In-memory shuffled batches with the bnlab.data.Loader interface."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.bs = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.bs

    def epoch(self, e, start=0):
        gen = torch.Generator().manual_seed(e)
        perm = torch.randperm(len(self.x), generator=gen).to(self.x.device)
        for i in range(start, len(self)):
            idx = perm[i * self.bs : (i + 1) * self.bs]
            yield self.x[idx], self.y[idx]


def ioffe_mlp():
    """784-100-100-100-10 sigmoid MLP with BN before each sigmoid (Ioffe & Szegedy §4.1)."""
    layers, width = [nn.Flatten()], 784
    for _ in range(3):
        layers += [nn.Linear(width, 100, bias=False), nn.BatchNorm1d(100), nn.Sigmoid()]
        width = 100
    return nn.Sequential(*layers, nn.Linear(100, 10))


def small_convnet():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def bare(model, loader, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    batches = (b for e in range(10**6) for b in loader.epoch(e))
    for _ in range(steps):
        x, y = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = CE(model(x), y)
        loss.backward()
        opt.step()


def bnlab_loop(model, loader, steps):
    opt = build_optimizer(SGD(0.1), model.parameters())
    train(model, loader, CE, opt, steps=steps, sink=MemorySink(), log_every=100)


def timed(fn, make, loader, steps, device):
    torch.manual_seed(0)
    model = make().to(device)
    fn(model, loader, 5)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn(model, loader, steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench(name, make, shape, batch, steps, repeats, device):
    x = torch.rand(batch * 50, *shape, device=device)
    y = torch.randint(10, (batch * 50,), device=device)
    loader = Batches(x, y, batch)
    times = {"bare": [], "bnlab": []}
    for r in range(repeats):
        order = [("bare", bare), ("bnlab", bnlab_loop)]
        for key, fn in order if r % 2 == 0 else order[::-1]:
            times[key].append(timed(fn, make, loader, steps, device))
    bare_t, ours = statistics.median(times["bare"]), statistics.median(times["bnlab"])
    print(f"{name:<28} bare {bare_t * 1e6:8.1f} us/step   train() {ours * 1e6:8.1f} us/step"
          f"   ratio {ours / bare_t:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {args.threads}, "
          f"{args.steps} steps x {args.repeats} repeats (median)")
    bench("ioffe MLP, batch 60", ioffe_mlp, (1, 28, 28), 60, args.steps, args.repeats, device)
    bench("conv net 28x28, batch 32", small_convnet, (1, 28, 28), 32, args.steps // 3,
          args.repeats, device)


if __name__ == "__main__":
    main()
