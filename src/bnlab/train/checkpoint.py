"""Atomic checkpoints that ``torch.load(..., weights_only=True)`` can read.

A checkpoint "at step N" holds w_N and everything needed to perform update N next
(docs/internals.md, Steps): model, optimizer, schedule, every RNG stream and noise state,
probe states, and the loop's own accumulators. It contains only tensors and plain
containers, so loading it never unpickles arbitrary objects.

Files in the checkpoint directory: ``ckpt-<step>.pt`` (the last two are kept) and
``latest.json`` = ``{"step": N, "file": "ckpt-….pt"}``, each written to a temporary file
and moved into place with ``os.replace``; ``latest.json`` is written after the file it
names, so it never points to a partial checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "get_rng_state",
    "latest_step",
    "load_latest",
    "remove_checkpoints",
    "save_checkpoint",
    "set_rng_state",
]

LATEST = "latest.json"
KEEP = 2
_CKPT = re.compile(r"^ckpt-(\d+)\.pt$")


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


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _checkpoint_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for p in directory.iterdir():
        m = _CKPT.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as checkpoint ``step``, point ``latest.json`` at it, keep two.

    Returns:
        The path of the checkpoint file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{step:09d}.pt"
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    latest = json.dumps({"step": step, "file": path.name})
    _atomic_write(directory / LATEST, lambda tmp: tmp.write_text(latest))
    for _, old in _checkpoint_files(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def latest_step(directory: Path) -> int | None:
    """The step a run in ``directory`` would resume from (no torch needed), or ``None``."""
    latest = Path(directory) / LATEST
    if not latest.exists():
        return None
    return int(json.loads(latest.read_text())["step"])


def load_latest(directory: Path) -> tuple[int, dict[str, Any]] | None:
    """Load the checkpoint ``latest.json`` names, or return ``None`` if there is none.

    Raises:
        ValueError: if ``latest.json`` names a missing file or the file is unreadable.
    """
    latest = directory / LATEST
    if not latest.exists():
        return None
    info = json.loads(latest.read_text())
    path = directory / info["file"]
    if not path.exists():
        raise ValueError(
            f"{latest} names {path.name}, which is missing; delete {directory} to restart"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or unsafe file
        raise ValueError(f"cannot load checkpoint {path}: {err}; delete it to restart") from err
    return int(info["step"]), payload


def remove_checkpoints(directory: Path) -> None:
    """Delete every checkpoint file, temporary file and ``latest.json`` in ``directory``."""
    if not directory.exists():
        return
    for p in directory.iterdir():
        temporary = p.name.startswith(".") and p.name.endswith(".tmp")
        if _CKPT.match(p.name) or p.name == LATEST or temporary:
            p.unlink(missing_ok=True)
