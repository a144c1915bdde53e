"""Benchmarks as a library: ratio tables against baselines timed in the same process.

``run_bench(which, device)`` runs one table (or all) in-process and returns printable text:
``layers`` (every norm against ``torch.nn.BatchNorm2d``, with kernel and memory-pass
counts), ``probes`` (each probe in training steps), ``loop`` (``bnlab.train.train`` against
a bare loop; on CUDA also with ``compile="graphs"``), ``hessian`` (top eigenvalue against
PyHessian's power iteration, with a float64 reference and, on a GPU, TF32 on and off),
``graphs`` (the VGG-16 step eager against CUDA-graph replays) and ``packing`` (aggregate
throughput of VGG-16 runs packed into one process). Every header states the device, the
torch version and the CPU thread count; every number is a ratio to a baseline measured in
the same process, never an absolute target. ``benchmarks/bench_*.py`` are thin wrappers;
``benchmarks/gpu_check.py`` runs the GPU checks in one go.

Example:
    >>> from bnlab.bench import run_bench
    >>> print(run_bench("layers", "cpu"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bnlab.errors import UserError

__all__ = ["BENCHES", "run_bench"]

BENCHES = ("layers", "probes", "loop", "hessian", "graphs", "packing")


def _tables() -> dict[str, Callable[..., str]]:
    # imported here: `import bnlab.bench` stays light, each table pulls its own stack
    from bnlab.bench import graphs, hessian, layers, loop, probes

    return {"layers": layers.table, "probes": probes.table, "loop": loop.table,
            "hessian": hessian.table, "graphs": graphs.graphs_table,
            "packing": graphs.packing_table}  # fmt: skip


def run_bench(which: str, device: str = "cpu", *, quick: bool = False,
              threads: int | None = None) -> str:  # fmt: skip
    """Run benchmark tables in this process and return them as printable text.

    Args:
        which: ``"layers"``, ``"probes"``, ``"loop"``, ``"hessian"``, ``"graphs"``,
            ``"packing"`` or ``"all"``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        quick: tiny sizes and few repeats: checks that the machinery runs (a dry run),
            its ratios are not measurements.
        threads: set torch's CPU thread count first (``None`` keeps it); on a loaded
            2-core machine 1 thread gives steadier ratios.

    Returns:
        The tables, separated by blank lines.

    Raises:
        UserError: for an unknown ``which`` (the message lists the choices) or a CUDA
            device that torch cannot see.
    """
    choices = (*BENCHES, "all")
    if which not in choices:
        raise UserError(f"unknown benchmark {which!r}; choose one of {', '.join(choices)}")
    if threads is not None:
        torch.set_num_threads(threads)
    tables = _tables()
    names = BENCHES if which == "all" else (which,)
    return "\n\n".join(tables[name](device, quick=quick) for name in names)
