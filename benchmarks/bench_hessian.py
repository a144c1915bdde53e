"""Top Hessian eigenvalue: bnlab (thick-restart Lanczos) against PyHessian (power iteration).

Models: bnlab's VGG-16 at width/4 and the CIFAR ResNet-20, both with BN, in eval mode
(PyHessian forces ``model.eval()``; bnlab is given ``bn_mode="eval"``), one batch of 128
CIFAR-10 training images (random CIFAR-shaped inputs when the data is absent), CPU. The
running statistics are first set to the average statistics of four 32-image chunks of the
batch, so eval mode is not trivially the identity.

Each tool runs on its own deep copy of the model. The reference is bnlab's solver on a
float64 copy with ``tol=1e-9``. For each tool the tolerances in its list are tried from
loose to tight; the first whose eigenvalue is within 1e-3 (relative) of the reference is
the "equal accuracy" setting, and the time ratio bnlab / PyHessian is printed for those.
Times include each tool's forward and create-graph backward (median of ``--repeats``).

Run: ``python benchmarks/bench_hessian.py [--repeats 3] [--threads N] [--batch-file F]``.
The number of HVPs of PyHessian is counted by wrapping its ``hessian_vector_product``.

Measured (2-core CPU, 1 thread, median of 3, CIFAR-10 batch, gradient-informed start):
VGG-16/4 bnlab 5 HVPs 2.17 s vs PyHessian 11 HVPs 4.60 s (ratio 0.47); ResNet-20 bnlab
3 HVPs 3.51 s vs PyHessian 9 HVPs 10.62 s (0.33). With a random start bnlab needed 5 HVPs
on ResNet-20 (ratio 0.56): the batch gradient lies mostly in the top eigenspace.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.models import create_model
from bnlab.probes.hessian import hessian_eigs

ACCURACY = 1e-3  # relative agreement with the reference that counts as "equal accuracy"
BNLAB_TOLS = (1e-1, 3e-2, 1e-2, 1e-3, 1e-4)  # Ritz-residual tolerances, loose to tight
PYHESSIAN_TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # its relative-change tolerances


def load_batch(path: str | None, n: int = 128) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A fixed batch: from ``path`` if given and present, else CIFAR-10, else random."""
    if path and Path(path).exists():
        x, y = torch.load(path)
        return x, y, f"file {path}"
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    data_dir = Path(os.environ.get("BNLAB_DATA", default_dir))
    if (data_dir / "cifar10.npz").exists():  # never download from a benchmark
        from bnlab.data import load

        x, y = load("cifar10", "train", data_dir=data_dir)
        gen = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(x), generator=gen)[:n]
        x, y, source = x[idx], y[idx], f"CIFAR-10 train ({data_dir})"
    else:
        gen = torch.Generator().manual_seed(0)
        x, y = torch.rand(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        source = "random CIFAR-shaped"
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save((x, y), path)
    return x, y, source


def build(name: str, x: torch.Tensor) -> nn.Module:
    """The model with running statistics set to the average of 4 batch-of-32 statistics.

    With PyTorch's default momentum 0.1, four forwards would leave the running variance near
    its initial 1 and eval mode near the identity; ``momentum=None`` (the cumulative average
    of Ioffe's Algorithm 2) gives the statistics a trained model would carry.
    """
    torch.manual_seed(0)
    width = 0.25 if name == "vgg16" else 1.0
    model = create_model(name, norm="bn", in_shape=(3, 32, 32), num_classes=10, width=width)
    norms = [m for m in model.modules() if hasattr(m, "running_var")]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 32):
            model(x[i : i + 32])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return model.eval()


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def run_bnlab(model: nn.Module, batch, tol: float, repeats: int):
    mine = copy.deepcopy(model)
    eigs, t = timed(lambda: hessian_eigs(mine, F.cross_entropy, batch, bn_mode="eval",
                                         tol=tol, max_iter=300), repeats)
    return eigs.values[0], eigs.hvps, t


def run_pyhessian(model: nn.Module, batch, tol: float, repeats: int):
    ph = importlib.import_module("pyhessian.hessian")  # the module, not the class it exports

    counter = {"hvps": 0}
    original = ph.hessian_vector_product

    def counting(grads, params, v):
        counter["hvps"] += 1
        return original(grads, params, v)

    def once():
        counter["hvps"] = 0
        theirs = copy.deepcopy(model)
        torch.manual_seed(0)  # PyHessian draws its start vector from the global RNG
        with warnings.catch_warnings():  # its backward(create_graph=True) warns of a cycle
            warnings.simplefilter("ignore", UserWarning)
            h = ph.hessian(theirs, nn.CrossEntropyLoss(), data=batch, cuda=False)
        values, _ = h.eigenvalues(maxIter=300, tol=tol, top_n=1)
        return values[0]

    ph.hessian_vector_product = counting
    try:
        value, t = timed(once, repeats)
    finally:
        ph.hessian_vector_product = original
    return value, counter["hvps"], t


def first_accurate(rows, ref):
    for row in rows:
        if abs(row[1] - ref) <= ACCURACY * abs(ref):
            return row
    return None


def bench(name: str, batch, repeats: int) -> None:
    model = build(name, batch[0])
    params = sum(p.numel() for p in model.parameters())
    ref_model = copy.deepcopy(model).double()
    ref_batch = (batch[0].double(), batch[1])
    ref, ref_hvps, ref_t = run_bnlab(ref_model, ref_batch, 1e-9, 1)
    print(f"\n{name}: {params} parameters; reference λ_max = {ref:.8g} "
          f"(float64, tol 1e-9, {ref_hvps} HVPs, {ref_t:.1f} s)")
    print(f"{'tool':<10} {'tol':>7} {'λ_max':>14} {'rel.err':>9} {'HVPs':>5} {'time s':>8}")
    results = {}
    for tool, tols, fn in (("bnlab", BNLAB_TOLS, run_bnlab),
                           ("pyhessian", PYHESSIAN_TOLS, run_pyhessian)):
        rows = []
        for tol in tols:
            value, hvps, t = fn(model, batch, tol, repeats)
            rows.append((tol, value, hvps, t))
            err = abs(value - ref) / abs(ref)
            print(f"{tool:<10} {tol:>7.0e} {value:>14.8g} {err:>9.1e} {hvps:>5d} {t:>8.2f}")
            if err <= ACCURACY:
                break  # the loosest accurate setting is found
        results[tool] = first_accurate(rows, ref)
    b, p = results["bnlab"], results["pyhessian"]
    if b is None or p is None:
        print("no equal-accuracy pair found (a tool missed 1e-3 at every tolerance)")
        return
    print(f"equal accuracy (≤ {ACCURACY:g} rel.): bnlab {b[2]} HVPs {b[3]:.2f} s, "
          f"PyHessian {p[2]} HVPs {p[3]:.2f} s; time ratio bnlab/PyHessian = "
          f"{b[3] / p[3]:.2f} (target ≤ 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-file", default=None, help="cache/reuse the batch here")
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet20"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y, source = load_batch(args.batch_file)
    print(f"batch: 128 x {tuple(x.shape[1:])} from {source}; threads: {torch.get_num_threads()}; "
          f"torch {torch.__version__}; repeats (median): {args.repeats}")
    for name in args.models:
        bench(name, (x, y), args.repeats)


if __name__ == "__main__":
    main()
