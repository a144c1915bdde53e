"""The GPU checks of issue 15 in one go: correctness on CUDA, then the ratio tables.

On a CUDA machine, from the repository root (sections in this order; a section is
started only while ``--budget`` seconds have not passed):

    PYTHONPATH=src python benchmarks/gpu_check.py --budget 480 --out gpu_check.txt

1. tests: the CUDA tests (``pytest -m cuda``): every layer's forward and backward on the
   GPU against a float64 CPU reference, every probe's no-trace guarantee on the GPU,
   captured training steps against eager ones, packed runs against lone ones, no host
   sync in a replayed step, and every benchmark table's machinery;
2. graphs: the VGG-16 paper-scale step (full width, batch 128) eager against CUDA-graph
   replays, with BN and with noisy BN (target: >= 1.5x);
3. packing: aggregate throughput of 1, 2, 4 VGG-16 runs interleaved in one process (each
   on its own stream, eager and with graphs) against one run (target: >= 2.5x at 4);
4. loop: ``train()`` against a bare loop, and with ``compile="graphs"``;
5. layers: every norm against ``nn.BatchNorm2d``, issue 15's two shapes, with kernel and
   memory-pass counts;
6. probes: the probe-cost table (full-width VGG-16, batch 128, in training steps);
7. hessian: top eigenvalue against a float64 reference; PyHessian's power iteration with
   TF32 on and off, bnlab always off; equal-accuracy time ratios; setup and per-HVP cost;
8. recipe: the runtime of one paper-scale run of ``--recipe`` (default
   ``santurkar2018.noise``), eager and with ``--compile graphs``, on synthetic data of the
   card's dataset's shape (the real files stay behind); skipped when the recipe is not
   registered in this checkout.

Everything goes into one report (printed, and written to ``--out`` and to ``$OUT`` when
that is set, after every section, so a run cut short keeps what it measured). A section
that fails shows its traceback and the others still run; the exit status is non-zero if
any failed. ``--device cpu --quick`` dry-runs the same script on a CPU with tiny sizes
(its numbers are not measurements), so the script is known to work before GPU time is
spent on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# The new measurements first, so a run cut short still has them.
SECTIONS = ("tests", "graphs", "packing", "loop", "layers", "probes", "hessian", "recipe")
#: Synthetic stand-ins for the data files a recipe reads: (train, test) sample counts, shape.
FAKE_DATA = {"cifar10": ((50_000, 10_000), (32, 32, 3)), "mnist": ((60_000, 10_000), (28, 28))}


def run_tests(device: str, quick: bool) -> str:
    """The device-parity tests, in a subprocess (pytest's own process, its own exit code)."""
    marker = "cuda" if device.startswith("cuda") else "not cuda"
    del quick  # the tests are small either way
    paths = ["tests/gpu", "tests/bench"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, *paths]
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
    if proc.returncode not in (0, 5):  # 5: nothing selected
        raise RuntimeError(f"pytest {' '.join(cmd[3:])} exited {proc.returncode}\n{tail}")
    return f"$ pytest -m {marker!r} {' '.join(paths)}\n{tail}"


def _fake_data(dataset: str, folder: Path) -> None:
    """Write ``<folder>/<dataset>.npz`` with random images of the real file's format."""
    import numpy as np

    from bnlab.data.cache import write_npz_atomic  # with the digests bnlab checks

    (n_train, n_test), shape = FAKE_DATA[dataset]
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n, dtype=np.int64)
    write_npz_atomic(folder / f"{dataset}.npz", arrays)


def run_recipe(device: str, quick: bool, name: str) -> str:
    """One run of ``name`` (paper scale; smoke with ``quick``), eager and with graphs."""
    from bnlab.experiments import get_recipe, list_recipes, plan, run_spec
    from bnlab.sweep import RunSpec, execute

    if name not in list_recipes():
        return (f"skipped: recipe {name!r} is not registered in this checkout "
                f"(registered: {', '.join(list_recipes())})")  # fmt: skip
    dataset, scale = get_recipe(name).card.dataset, "smoke" if quick else "paper"
    lines, before = [], os.environ.get("BNLAB_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        if dataset in FAKE_DATA:
            _fake_data(dataset, Path(tmp))
            os.environ["BNLAB_DATA"] = tmp
        spec = plan(name, scale=scale, data="paper" if dataset else "mnist1d", seeds=[0],
                    device=device).specs[0]  # fmt: skip
        modes = ("none", "graphs") if device.startswith("cuda") else ("none",)
        for mode in modes:
            run = RunSpec(spec.recipe, spec.config, spec.seed,
                          execution={**spec.execution, "compile": mode})  # fmt: skip
            start = time.perf_counter()
            summary = execute([run], Path(tmp) / f"out-{mode}", run_spec, progress=False)
            took = time.perf_counter() - start
            failure = f"; {summary.failures[0][1]}" if summary.failures else ""
            lines.append(f"  --compile {mode:<6} {took:8.1f} s   {summary}{failure}")
        if before is None:
            os.environ.pop("BNLAB_DATA", None)
        else:
            os.environ["BNLAB_DATA"] = before
    config = {k: v for k, v in spec.config.items() if k not in ("scale", "data")}
    head = f"{name} at {scale} scale on synthetic {dataset or 'data'}, first run of the grid:"
    return "\n".join([head, f"  config {config}", *lines])


def section(name: str, device: str, quick: bool, recipe: str) -> str:
    if name == "tests":
        return run_tests(device, quick)
    if name == "recipe":
        return run_recipe(device, quick, recipe)
    from bnlab.bench import run_bench

    return run_bench(name, device, quick=quick)


def environment(device: str) -> str:
    lines = [f"torch {torch.__version__}, python {sys.version.split()[0]}, "
             f"CPU threads {torch.get_num_threads()}, device {device}"]  # fmt: skip
    if torch.cuda.is_available():
        lines.append(f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
                     f"cuDNN {torch.backends.cudnn.version()}")  # fmt: skip
    return "\n".join(lines)


def _write(report: list[str], targets: list[Path]) -> None:
    """Write the report so far (after every section: a run cut short keeps what it did)."""
    text = "\n".join(report) + "\n"
    for target in targets:
        target.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="also write the report here")
    parser.add_argument("--recipe", default="santurkar2018.noise",
                        help="the recipe whose paper-scale run the recipe section times")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="start no section after this many seconds (the rest are listed "
                        "as skipped)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    targets = [Path(args.out)] if args.out else []
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / "gpu_check.txt")
    report = [f"bnlab gpu_check ({time.strftime('%Y-%m-%d %H:%M:%S')})", environment(args.device)]
    failed, skipped, began = [], [], time.perf_counter()
    for name in args.sections:
        if args.budget is not None and time.perf_counter() - began > args.budget:
            skipped.append(name)
            continue
        start = time.perf_counter()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        try:
            body = section(name, args.device, args.quick, args.recipe)
        except Exception:  # a failed section is reported, the others still run
            body = "FAILED\n" + traceback.format_exc()
            failed.append(name)
        report.append(f"\n== {name} ({time.perf_counter() - start:.0f} s)\n{body}")
        print(report[-1], flush=True)
        _write(report, targets)
    ran = len(args.sections) - len(skipped)
    report.append(f"\n== summary: {ran - len(failed)} sections ok"
                  + (f", FAILED: {', '.join(failed)}" if failed else "")
                  + (f", skipped (budget): {', '.join(skipped)}" if skipped else "")
                  + f"; {time.perf_counter() - began:.0f} s in all")  # fmt: skip
    print(report[-1])
    _write(report, targets)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
