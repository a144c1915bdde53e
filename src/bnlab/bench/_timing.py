"""Shared timing for the benchmark tables: round-robin medians, device syncs, headers."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer measures the work, not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def round_robin(
    jobs: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per job, each repeat timing every job once in turn.

    Interleaving spreads machine load (other processes, clocks) over all jobs alike, so
    ratios between jobs of one call hold even on a busy machine.
    """
    for _ in range(warmup):
        for job in jobs.values():
            job()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            sync(device)
            start = time.perf_counter()
            job()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def header(title: str, device: torch.device, repeats: int) -> str:
    """One line: what, where, torch version, thread count, repeats."""
    return (
        f"{title}\n  torch {torch.__version__}, device {device} ({device_name(device)}), "
        f"{torch.get_num_threads()} CPU threads, median of {repeats} repeats"
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device that is absent is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev
