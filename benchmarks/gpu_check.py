"""The GPU checks of issue 15 in one go: correctness on CUDA, then the ratio tables.

On a CUDA machine, in a few minutes, from the repository root:

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu_check.txt

1. the CUDA tests (``pytest -m cuda``): every layer's forward and backward on the GPU
   against a float64 CPU reference, every probe's no-trace guarantee on the GPU, and
   every benchmark table's machinery;
2. the layer table (every norm against ``nn.BatchNorm2d``, issue 15's two shapes, with
   kernel and memory-pass counts);
3. the Hessian table (top eigenvalue against a float64 reference; PyHessian's power
   iteration with TF32 on and off, bnlab always off; equal-accuracy time ratios; setup
   and per-HVP cost);
4. the probe-cost table (full-width VGG-16, batch 128, in training steps);
5. the loop table (``train()`` against a bare loop).

Everything goes into one report (printed, and written to ``--out`` and to ``$OUT`` when
that is set). A section that fails shows its traceback and the others still run; the exit
status is non-zero if any failed. ``--device cpu --quick`` dry-runs the same script on a
CPU with tiny sizes (its numbers are not measurements), so the script is known to work
before GPU time is spent on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("tests", "layers", "hessian", "probes", "loop")


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


def section(name: str, device: str, quick: bool) -> str:
    if name == "tests":
        return run_tests(device, quick)
    from bnlab.bench import run_bench

    return run_bench(name, device, quick=quick)


def environment(device: str) -> str:
    lines = [f"torch {torch.__version__}, python {sys.version.split()[0]}, "
             f"CPU threads {torch.get_num_threads()}, device {device}"]  # fmt: skip
    if torch.cuda.is_available():
        lines.append(f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
                     f"cuDNN {torch.backends.cudnn.version()}")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    report = [f"bnlab gpu_check ({time.strftime('%Y-%m-%d %H:%M:%S')})", environment(args.device)]
    failed = []
    for name in args.sections:
        start = time.perf_counter()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        try:
            body = section(name, args.device, args.quick)
        except Exception:  # a failed section is reported, the others still run
            body = "FAILED\n" + traceback.format_exc()
            failed.append(name)
        report.append(f"\n== {name} ({time.perf_counter() - start:.0f} s)\n{body}")
        print(report[-1], flush=True)
    report.append(f"\n== summary: {len(args.sections) - len(failed)} sections ok"
                  + (f", FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    print(report[-1])
    text = "\n".join(report) + "\n"
    targets: list[Callable[[], Path]] = []
    if args.out:
        targets.append(lambda: Path(args.out))
    if os.environ.get("OUT"):
        targets.append(lambda: Path(os.environ["OUT"]) / "gpu_check.txt")
    for target in targets:
        target().write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
