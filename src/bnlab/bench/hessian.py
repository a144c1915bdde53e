"""Top Hessian eigenvalue: bnlab (thick-restart Lanczos) against power iteration (PyHessian).

Models: bnlab's VGG-16 (width 1/4 on the CPU, full width on a GPU) and the CIFAR ResNet-20,
both with BN, in eval mode (PyHessian forces ``model.eval()``; bnlab is given
``bn_mode="eval"``), one batch of 128 CIFAR-10 training images (random CIFAR-shaped inputs
when the data is absent). The running statistics are first set to the average statistics
of four 32-image chunks of the batch, so eval mode is not trivially the identity.

Each tool runs on its own deep copy of the model. The reference is bnlab's solver on a
float64 copy with ``tol=1e-9``. For each tool the tolerances in its list are tried from
loose to tight (one timed run each); the first whose eigenvalue is within 1e-3 (relative)
of the reference is the "equal accuracy" setting. The two settings are then timed
round-robin (``repeats`` each, interleaved, so machine load hits both alike) and the time
ratio bnlab / baseline is printed. Times include each tool's forward and create-graph
backward.
The baseline is PyHessian when it is installed (``pip install -e '.[bench]'``), else the
same power iteration written here. On a GPU the baseline runs with TF32 on (PyTorch's
default for cuDNN) and off; bnlab always runs with it off (``tf32_disabled``). Per tool
the table splits the time into setup (forward + create-graph backward) and per-HVP cost.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.bench._timing import header, resolve_device, round_robin, sync
from bnlab.models import create_model
from bnlab.probes.hessian import HessianBudget, hessian_eigs, tf32_disabled

ACCURACY = 1e-3  # relative agreement with the reference that counts as "equal accuracy"
BNLAB_TOLS = (1e-1, 3e-2, 1e-2, 1e-3, 1e-4)  # Ritz-residual tolerances, loose to tight
POWER_TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # relative-change tolerances, loose to tight
Batch = tuple[torch.Tensor, torch.Tensor]


def load_batch(path: str | None = None, n: int = 128) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A fixed batch: from ``path`` if present, else CIFAR-10 (``BNLAB_DATA``), else random."""
    if path and Path(path).exists():
        x, y = torch.load(path)
        return x, y, f"file {path}"
    data_dir = os.environ.get("BNLAB_DATA")
    if data_dir and (Path(data_dir) / "cifar10.npz").exists():  # never download here
        from bnlab.data import load

        x, y = load("cifar10", "train", data_dir=data_dir)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]
        x, y, source = x[idx], y[idx], f"CIFAR-10 train ({data_dir})"
    else:
        gen = torch.Generator().manual_seed(0)
        x, y = torch.rand(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        source = "random CIFAR-shaped"
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save((x, y), path)
    return x, y, source


def build(name: str, x: torch.Tensor, width: float) -> nn.Module:
    """The model in eval mode, running statistics = average of 4 chunk statistics.

    With PyTorch's default momentum 0.1, four forwards would leave the running variance near
    its initial 1 and eval mode near the identity; ``momentum=None`` (the cumulative average
    of Ioffe's Algorithm 2) gives the statistics a trained model would carry.
    """
    torch.manual_seed(0)
    model = create_model(name, norm="bn", in_shape=tuple(x.shape[1:]), num_classes=10,
                         width=width).to(x.device)  # fmt: skip
    norms = [m for m in model.modules() if hasattr(m, "running_var")]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), max(1, len(x) // 4)):
            model(x[i : i + max(1, len(x) // 4)])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return model.eval()


@contextmanager
def tf32(on: bool) -> Iterator[None]:
    """TF32 on (PyTorch's cuDNN default) or off for the block; every flag restored after."""
    with tf32_disabled():
        if on:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        yield


def _timed(fn: Callable[[], tuple[float, int]], repeats: int,
           device: torch.device) -> tuple[float, int, float]:  # fmt: skip
    times, out = [], (0.0, 0)
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return out[0], out[1], statistics.median(times)


def run_bnlab(
    model: nn.Module, batch: Batch, tol: float, repeats: int, device: torch.device,
    budget: HessianBudget | None = None,
) -> tuple[float, int, float]:  # fmt: skip
    """The top eigenvalue by bnlab, on a copy: ``(value, HVPs, median seconds)``."""
    mine = copy.deepcopy(model)

    def once() -> tuple[float, int]:
        eigs = hessian_eigs(mine, F.cross_entropy, batch, bn_mode="eval", tol=tol,
                            max_iter=300, budget=budget)  # fmt: skip
        return eigs.values[0], eigs.hvps

    return _timed(once, repeats, device)


def power_iteration(model: nn.Module, batch: Batch, tol: float, max_iter: int = 300,
                    seed: int = 0) -> tuple[float, int]:  # fmt: skip
    """PyHessian's method, written here: v <- Hv/|Hv| until λ changes by < tol relative."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(batch[0]), batch[1])
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator(device=batch[0].device).manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in params]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    value, hvps = None, 0
    for _ in range(max_iter):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        hvps += 1
        new = float(sum((h * t).sum() for h, t in zip(hv, v, strict=True)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        v = [h / norm for h in hv]
        if value is not None and abs(value - new) / (abs(value) + 1e-6) < tol:
            return new, hvps
        value = new
    return float(value), hvps


def run_baseline(model: nn.Module, batch: Batch, tol: float, repeats: int,
                 device: torch.device) -> tuple[float, int, float]:  # fmt: skip
    """PyHessian if installed (its HVPs counted by wrapping it), else :func:`power_iteration`."""
    try:
        ph = importlib.import_module("pyhessian.hessian")
    except ImportError:
        return _timed(lambda: power_iteration(copy.deepcopy(model), batch, tol), repeats, device)
    counter = {"hvps": 0}
    original = ph.hessian_vector_product

    def counting(grads: object, params: object, v: object) -> object:
        counter["hvps"] += 1
        return original(grads, params, v)

    def once() -> tuple[float, int]:
        counter["hvps"] = 0
        theirs = copy.deepcopy(model)
        torch.manual_seed(0)  # PyHessian draws its start vector from the global RNG
        with warnings.catch_warnings():  # its backward(create_graph=True) warns of a cycle
            warnings.simplefilter("ignore", UserWarning)
            h = ph.hessian(theirs, nn.CrossEntropyLoss(), data=batch, cuda=device.type == "cuda")
            values, _ = h.eigenvalues(maxIter=300, tol=tol, top_n=1)
        return values[0], counter["hvps"]

    ph.hessian_vector_product = counting
    try:
        return _timed(once, repeats, device)
    finally:
        ph.hessian_vector_product = original


def _baseline_name() -> str:
    try:
        importlib.import_module("pyhessian.hessian")
        return "pyhessian"
    except ImportError:
        return "power-it"


def _ladder(label: str, tols: tuple[float, ...], fn: Callable[[float], tuple[float, int, float]],
            ref: float, lines: list[str]) -> float | None:  # fmt: skip
    """Try tolerances loose to tight (one timed run each); the first accurate tol, or None."""
    for tol in tols:
        value, hvps, t = fn(tol)
        err = abs(value - ref) / abs(ref)
        lines.append(f"  {label:<22} {tol:>7.0e} {value:>14.8g} {err:>9.1e} {hvps:>5d} {t:>8.3f}")
        if err <= ACCURACY:
            return tol
    return None


def _equal_accuracy(
    model: nn.Module, batch: Batch, mine: float, theirs: float, on: bool, repeats: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, int]]:
    """Median times of both tools at their accurate tols, timed round-robin (load-robust)."""
    hvps: dict[str, int] = {}

    def ours() -> None:
        hvps["bnlab"] = run_bnlab(model, batch, mine, 1, device)[1]

    def baseline() -> None:
        with tf32(on):
            hvps["baseline"] = run_baseline(model, batch, theirs, 1, device)[1]

    med = round_robin({"bnlab": ours, "baseline": baseline}, repeats, device, warmup=0)
    return med, hvps


def model_table(name: str, batch: Batch, width: float, repeats: int, device: torch.device) -> str:
    """Reference, both tools' tolerance ladders, the equal-accuracy ratio and the phases."""
    model = build(name, batch[0], width)
    params = sum(p.numel() for p in model.parameters())
    ref_batch = (batch[0].double(), batch[1])
    ref, ref_hvps, ref_t = run_bnlab(copy.deepcopy(model).double(), ref_batch, 1e-9, 1, device)
    lines = [f"{name} (width {width:g}): {params} parameters; reference λ_max = {ref:.8g} "
             f"(float64, tol 1e-9, {ref_hvps} HVPs, {ref_t:.1f} s)",
             f"  {'tool':<22} {'tol':>7} {'λ_max':>14} {'rel.err':>9} {'HVPs':>5} "
             f"{'time s':>8}"]  # fmt: skip
    base_name = _baseline_name()
    mine = _ladder("bnlab (tf32 off)", BNLAB_TOLS,
                   lambda tol: run_bnlab(model, batch, tol, 1, device), ref, lines)  # fmt: skip
    for on in ((True, False) if device.type == "cuda" else (False,)):
        label = f"{base_name} (tf32 {'on' if on else 'off'})"
        with tf32(on):
            theirs = _ladder(label, POWER_TOLS,
                             lambda tol: run_baseline(model, batch, tol, 1, device),
                             ref, lines)  # fmt: skip
        if mine is None or theirs is None:
            lines.append(f"  no equal-accuracy pair vs {label}: a tool missed {ACCURACY:g} "
                         "at every tolerance")  # fmt: skip
            continue
        med, hvps = _equal_accuracy(model, batch, mine, theirs, on, repeats, device)
        ratio = med["bnlab"] / med["baseline"]
        lines.append(f"  equal accuracy (<= {ACCURACY:g} rel.) vs {label}, {repeats} round-robin "
                     f"repeats: bnlab tol {mine:g} {hvps['bnlab']} HVPs {med['bnlab']:.3f} s, "
                     f"{base_name} tol {theirs:g} {hvps['baseline']} HVPs "
                     f"{med['baseline']:.3f} s; time ratio {ratio:.2f} (target <= 0.5)")
    _, _, t1 = run_bnlab(model, batch, 1e-12, repeats, device, HessianBudget(hvps=1))
    _, h, th = run_bnlab(model, batch, 1e-12, repeats, device, HessianBudget(hvps=5))
    per = (th - t1) / (h - 1)
    lines.append(f"  bnlab phases: setup (forward + create-graph backward + restore) "
                 f"{(t1 - per) * 1e3:.1f} ms, per HVP {per * 1e3:.1f} ms")  # fmt: skip
    return "\n".join(lines)


def table(device: str | torch.device = "cpu", *, quick: bool = False,
          repeats: int | None = None, models: list[str] | None = None,
          batch_file: str | None = None) -> str:  # fmt: skip
    """The Hessian comparison, as printable text (see the module docstring).

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        quick: a small VGG (width 1/16) on 16 images, 1 repeat: a dry run of the machinery.
        repeats: timing repeats per setting (default 3).
        models: model names (default ``vgg16`` and ``resnet20``; ``vgg16`` when quick).
        batch_file: cache the batch here (and reuse it).
    """
    dev = resolve_device(device)
    repeats = repeats or (1 if quick else 3)
    x, y, source = load_batch(batch_file, n=16 if quick else 128)
    batch = (x.to(dev), y.to(dev))
    models = models or (["vgg16"] if quick else ["vgg16", "resnet20"])
    lines = [header("bnlab hessian: top eigenvalue vs power iteration (PyHessian)", dev, repeats),
             f"  batch: {len(x)} x {tuple(x.shape[1:])} from {source}"]  # fmt: skip
    for name in models:
        width = 1 / 16 if quick else (1.0 if dev.type == "cuda" or name != "vgg16" else 0.25)
        lines.append(model_table(name, batch, width, repeats, dev))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The command line of this table (``benchmarks/bench_*.py`` call it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-file", default=None, help="cache/reuse the batch here")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(table(args.device, quick=args.quick, repeats=args.repeats, models=args.models,
                batch_file=args.batch_file))  # fmt: skip
