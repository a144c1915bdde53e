"""Forward+backward time of every bnlab norm as a ratio to torch.nn.BatchNorm2d.

Input (128, 64, 32, 32) float32 on CPU, training mode. Each repeat times every norm once,
round-robin (so machine load hits all norms alike), and the ratio is median(norm) /
median(BatchNorm2d) from the same process. Targets (issue 2): bn <= 1.05x; l1, l2, linf,
ghost_bn, batch_renorm <= 1.5x; noisy_bn <= 3x. The noise draw alone is reported as a
share of noisy_bn's time.

    python benchmarks/bench_layers.py [--repeats 9] [--threads N] [--shape 128 64 32 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from bnlab.layers import create_norm, list_norms
from bnlab.layers.functional import santurkar_noise

TARGETS = {"bn": 1.05, "l1": 1.5, "l2": 1.5, "linf": 1.5, "ghost_bn": 1.5,
           "batch_renorm": 1.5, "noisy_bn": 3.0}  # fmt: skip


def fwd_bwd(module, x, g):
    x.grad = None
    module(x).backward(g)


def time_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shape", type=int, nargs=4, default=[128, 64, 32, 32])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = tuple(args.shape)
    x = torch.randn(*shape, requires_grad=True)
    g = torch.randn(*shape)
    gen = torch.Generator().manual_seed(0)
    cases = {"torch.nn.BatchNorm2d": nn.BatchNorm2d(shape[1])}
    cases.update({name: create_norm(name, shape[1]) for name in list_norms()})
    jobs = {name: (lambda m=m: fwd_bwd(m, x, g)) for name, m in cases.items()}
    jobs["noise draw only"] = lambda: santurkar_noise(x, gen)
    for job in jobs.values():  # warm-up
        job()
    times = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            times[name].append(time_once(job))
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["torch.nn.BatchNorm2d"]
    print(f"shape {shape} float32, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}; BatchNorm2d fwd+bwd = {base * 1e3:.1f} ms")  # fmt: skip
    for name, t in med.items():
        if name == "noise draw only":
            continue
        target = TARGETS.get(name)
        mark = "" if target is None else f"  (target <= {target}x)"
        print(f"  {name:22s} {t / base:6.2f}x{mark}")
    print(f"  noisy_bn noise-draw share: {med['noise draw only'] / med['noisy_bn']:.0%} "
          f"(draw alone = {med['noise draw only'] / base:.2f}x BatchNorm2d)")  # fmt: skip


if __name__ == "__main__":
    main()
