"""Atomic checkpoints that ``torch.load(..., weights_only=True)`` can read.

A checkpoint "at step N" holds w_N and everything needed to perform update N next
(docs/internals.md, Steps): model, optimizer, schedule, every RNG stream and noise state,
probe states, and the loop's own accumulators. It contains only tensors and plain
containers, so loading it never unpickles arbitrary objects.

Files in the checkpoint directory: ``ckpt-<step>.pt`` (the last two are kept) and
``latest.json`` = ``{"step": N, "file": "ckpt-….pt", ...}`` (plus what the sink adds, such
as the number of rows stored), each written to a temporary file, synced and moved into
place with ``os.replace``; ``latest.json`` is written after the file it names, so it never
points to a partial checkpoint.

Reading trusts nothing in the folder: ``latest.json`` must name a ``ckpt-<N>.pt`` of the
same folder and the same step (never a path elsewhere), and the checkpoint is loaded with
``weights_only=True``, so a planted pickle is refused, never run. A refused or unreadable
checkpoint is a :class:`CheckpointError` naming the file and the fix.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.errors import UserError

__all__ = [
    "CheckpointError",
    "get_rng_state",
    "latest_step",
    "load_latest",
    "read_latest",
    "remove_checkpoints",
    "save_checkpoint",
    "set_rng_state",
]

LATEST = "latest.json"
KEEP = 2
_CKPT = re.compile(r"^ckpt-(\d{1,18})\.pt$")


class CheckpointError(UserError):
    """A checkpoint folder holds something this run cannot resume from (one line)."""


def get_rng_state(model: nn.Module) -> dict[str, Any]:
    """Every RNG stream a run draws from, as tensors and plain values.

    Covers torch's CPU (and CUDA) generator, numpy's and Python's global generators, and
    each module's ``noise_state()`` keyed by module name.
    """
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "mt": list(mt), "gauss_next": gauss_next},
        "noise": {
            name: m.noise_state()
            for name, m in model.named_modules()
            if callable(getattr(m, "noise_state", None))
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["mt"]), py["gauss_next"]))
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    modules = dict(model.named_modules())
    for name, noise in state["noise"].items():
        if name not in modules:
            raise ValueError(f"checkpoint has a noise state for {name!r}, absent from the model")
        modules[name].set_noise_state(noise)


def _atomic_write(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a temporary file, sync it and move it onto ``path``.

    Raises:
        OSError: naming ``path`` and the fix (a full disk, a file size limit).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}; "
                                 "free some disk space, then run the same command again") from exc


def _checkpoint_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for p in directory.iterdir():
        m = _CKPT.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(
    directory: Path, step: int, payload: dict[str, Any], meta: dict[str, Any] | None = None
) -> Path:
    """Write ``payload`` as checkpoint ``step``, point ``latest.json`` at it, keep two.

    The payload is serialized in memory first, so a failed write is a plain ``OSError``
    (torch's own file writer reports a full disk as an opaque ``RuntimeError``).

    Args:
        directory: the run's checkpoint folder (created if missing).
        step: the step N of the checkpoint.
        payload: tensors and plain containers.
        meta: more JSON fields for ``latest.json`` (``step`` and ``file`` win).

    Returns:
        The path of the checkpoint file.

    Raises:
        OSError: the folder cannot be written (its message names the file).
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{step:09d}.pt"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _atomic_write(path, buffer.getbuffer())
    latest = json.dumps({**(meta or {}), "step": step, "file": path.name})
    _atomic_write(directory / LATEST, latest.encode())
    for _, old in _checkpoint_files(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def read_latest(directory: Path) -> dict[str, Any] | None:
    """``latest.json`` of ``directory`` as a dict, checked; ``None`` when there is none.

    Raises:
        CheckpointError: the file is unreadable, its step is not an int ``>= 0``, or its
            ``file`` is not ``ckpt-<step>.pt`` of this folder (no path may leave it).
    """
    latest = Path(directory) / LATEST
    if not latest.is_file():
        return None
    fix = f"delete {directory} to restart the run from scratch"
    try:
        info = json.loads(latest.read_text())
        step, name = info["step"], info["file"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {latest} ({type(exc).__name__}); {fix}") from exc
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{latest} holds step {str(step)[:40]!r}, not an int >= 0; {fix}")
    match = _CKPT.fullmatch(name) if isinstance(name, str) else None
    if match is None or int(match.group(1)) != step:
        raise CheckpointError(f"{latest} names {str(name)[:60]!r}, not ckpt-<step>.pt of "
                              f"step {step} in this folder; {fix}")
    return info


def latest_step(directory: Path) -> int | None:
    """The step a run in ``directory`` would resume from, or ``None``.

    Raises:
        CheckpointError: as :func:`read_latest`.
    """
    info = read_latest(directory)
    return None if info is None else int(info["step"])


def load_latest(directory: Path) -> tuple[int, dict[str, Any]] | None:
    """Load the checkpoint ``latest.json`` names, or return ``None`` if there is none.

    Raises:
        CheckpointError: ``latest.json`` is bad (see :func:`read_latest`), or names a
            missing file, or the file is not a checkpoint ``weights_only`` loading accepts
            (corrupt, or a pickle that would run code).
    """
    info = read_latest(directory)
    if info is None:
        return None
    path = Path(directory) / info["file"]
    if not path.is_file():
        raise CheckpointError(f"{path.parent / LATEST} names {path.name}, which is missing; "
                              f"delete {directory} to restart the run from scratch")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or unsafe file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"refused checkpoint {path} ({type(err).__name__}: {first}); "
                              f"delete {directory} to restart the run from scratch") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a "
                              f"dict; delete {directory} to restart the run from scratch")
    return int(info["step"]), payload


def remove_checkpoints(directory: Path) -> None:
    """Delete every checkpoint file, temporary file and ``latest.json`` in ``directory``."""
    if not directory.exists():
        return
    for p in directory.iterdir():
        temporary = p.name.startswith(".") and p.name.endswith(".tmp")
        if _CKPT.match(p.name) or p.name == LATEST or temporary:
            p.unlink(missing_ok=True)
