"""Forward+backward time of every bnlab norm as a ratio to ``torch.nn.BatchNorm2d``.

Training mode, float32, on the chosen device. Each repeat times every norm once,
round-robin, and a ratio is median(norm) / median(BatchNorm2d) from the same process.
Targets (issues 2, 15): bn <= 1.05x; l1, l2, linf, ghost_bn, batch_renorm <= 1.5x;
noisy_bn <= 3x (on the CPU and on a GPU). Beside each ratio: the kernels launched and the
full-size tensors read or written per forward+backward (counted, not timed),
BatchNorm2d's in the header: on a GPU at these sizes time follows those two numbers. On
the CPU a last column counts the same with the reductions a CUDA device would use
(``bnlab.layers._grouped``), what a GPU will pay.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from bnlab.bench._opcount import OpCount, count_ops
from bnlab.bench._timing import header, resolve_device, round_robin
from bnlab.layers import _grouped, create_norm, list_norms
from bnlab.layers.functional import santurkar_noise

TARGETS = {"bn": 1.05, "l1": 1.5, "l2": 1.5, "linf": 1.5, "ghost_bn": 1.5,
           "batch_renorm": 1.5, "noisy_bn": 3.0}  # fmt: skip
#: shapes of issue 15's GPU table; the CPU runs the first
GPU_SHAPES = ((128, 64, 32, 32), (256, 128, 16, 16))
QUICK_SHAPE = (16, 8, 8, 8)


def _fwd_bwd(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    module.zero_grad(set_to_none=True)  # every call does the same work (no accumulation)
    module(x).backward(g)


def _count_cuda_path(job: object, numel: int) -> OpCount:
    """Count a job with the reductions CUDA would choose (bnlab.layers._grouped)."""
    saved = _grouped.MOMENTS_BY_DEVICE
    _grouped.MOMENTS_BY_DEVICE = {"cpu": "welford"}
    try:
        return count_ops(job, numel)  # type: ignore[arg-type]
    finally:
        _grouped.MOMENTS_BY_DEVICE = saved


def shape_table(shape: tuple[int, ...], device: torch.device, repeats: int) -> str:
    """The ratio table for one input shape."""
    torch.manual_seed(0)
    x = torch.randn(*shape, device=device, requires_grad=True)
    g = torch.randn(*shape, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    cases: dict[str, nn.Module] = {"torch.nn.BatchNorm2d": nn.BatchNorm2d(shape[1])}
    cases.update({name: create_norm(name, shape[1]) for name in list_norms()})
    for m in cases.values():
        m.to(device)
    jobs = {name: (lambda m=m: _fwd_bwd(m, x, g)) for name, m in cases.items()}
    counts = {name: count_ops(job, x.numel()) for name, job in jobs.items()}
    on_cpu = device.type == "cpu"
    cuda_counts = {n: _count_cuda_path(j, x.numel()) for n, j in jobs.items()} if on_cpu else {}
    jobs["noise draw only"] = lambda: santurkar_noise(x, gen)
    med = round_robin(jobs, repeats, device)
    base = med["torch.nn.BatchNorm2d"]
    bc = counts["torch.nn.BatchNorm2d"]
    extra = f" {'cuda-path k/p':>14s}" if on_cpu else ""
    lines = [f"shape {tuple(shape)} float32: BatchNorm2d fwd+bwd = {base * 1e3:.2f} ms "
             f"({bc.kernels} kernels, {bc.passes} full-size passes)",
             f"  {'norm':22s} {'ratio':>7s} {'kernels':>8s} {'passes':>7s}{extra}"]  # fmt: skip
    for name, t in med.items():
        if name == "noise draw only":
            continue
        target = TARGETS.get(name)
        mark = "" if target is None else f"  (target <= {target}x)" + (
            "" if t / base <= target else " MISSED"
        )
        c = counts[name]
        cc = cuda_counts.get(name)
        col = f" {f'{cc.kernels}/{cc.passes}':>14s}" if cc else ""
        lines.append(f"  {name:22s} {t / base:6.2f}x {c.kernels:8d} {c.passes:7d}{col}{mark}")
    lines.append(f"  noisy_bn noise-draw share: {med['noise draw only'] / med['noisy_bn']:.0%} "
                 f"(draw alone = {med['noise draw only'] / base:.2f}x BatchNorm2d)")  # fmt: skip
    return "\n".join(lines)


def table(
    device: str | torch.device = "cpu",
    *,
    quick: bool = False,
    repeats: int | None = None,
    shapes: list[tuple[int, ...]] | None = None,
) -> str:
    """Every norm's forward+backward against ``nn.BatchNorm2d``, as printable text.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        quick: a tiny shape and 3 repeats (a dry run of the machinery, not a measurement).
        repeats: round-robin repeats (default 9 on CPU, 30 on GPU, 3 when quick).
        shapes: input shapes (default: issue 15's two on a GPU, the first on a CPU).

    Returns:
        The table, with the device, torch version and thread count in its header.
    """
    dev = resolve_device(device)
    if shapes is None:
        on_gpu = dev.type == "cuda"
        shapes = [QUICK_SHAPE] if quick else list(GPU_SHAPES if on_gpu else GPU_SHAPES[:1])
    repeats = repeats or (3 if quick else 30 if dev.type == "cuda" else 9)
    parts = [header("bnlab layers: forward+backward vs torch.nn.BatchNorm2d", dev, repeats)]
    parts += [shape_table(tuple(s), dev, repeats) for s in shapes]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """The command line of this table (``benchmarks/bench_*.py`` call it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shape", type=int, nargs=4, action="append", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(table(args.device, quick=args.quick, repeats=args.repeats, shapes=args.shape))
