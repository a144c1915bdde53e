"""What ``bnlab inspect`` takes from the user: a model factory in their code, and data.

* :func:`load_factory` imports ``module:factory`` (a module on the path, or a ``.py`` file)
  with :mod:`importlib` and calls the factory with no arguments; nothing is ever
  unpickled. The folder the command runs in is on the import path, as for ``python -m``.
* :func:`load_data` reads ``cifar10``, ``mnist`` or ``mnist1d`` through
  :func:`bnlab.data.load`, or an ``.npz`` file (``allow_pickle=False``) holding
  ``x_train`` and ``y_train`` (and optionally ``x_test``, ``y_test``): inputs ``(N, ...)``
  in the layout the model takes, ``uint8`` (scaled to [0, 1]) or floating point; targets
  ``(N,)`` integer class labels or floating-point regression targets.
* :func:`inspect_command` is the whole command: build, load, run the panel.

Every bad input is a :class:`bnlab.errors.UserError` naming it and the fix, so the CLI
prints one line and exits with status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect as pyinspect
import os
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bnlab.data import DataError, Loader, load
from bnlab.data.cache import read_npz
from bnlab.errors import UserError
from bnlab.inspect.run import InspectResult, inspect

__all__ = ["DATASETS", "LOSSES", "OPTIMIZERS", "inspect_command", "load_data", "load_factory"]

#: Named datasets ``--data`` accepts (besides a path to an ``.npz`` file).
DATASETS = ("cifar10", "mnist", "mnist1d")
#: ``--loss`` choices.
LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}
#: ``--optimizer`` choices.
OPTIMIZERS = ("sgd", "adam")


def _import(module_part: str) -> ModuleType:
    """Import a module by dotted name (the working folder on the path) or from a file."""
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_file():
            raise UserError(f"no file {module_part!r}; give module:factory or "
                            "path/to/file.py:factory")
        spec = importlib.util.spec_from_file_location(f"bnlab_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        _run_import(lambda: spec.loader.exec_module(module), module_part)  # type: ignore[union-attr]
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the user's folder is importable
    return _run_import(lambda: importlib.import_module(module_part), module_part)


def _run_import(do: Any, module_part: str) -> Any:
    try:
        return do()
    except ModuleNotFoundError as err:
        if err.name and module_part.split(".")[0] == err.name.split(".")[0]:
            raise UserError(f"no module named {module_part!r}; run from the folder that holds "
                            "it, add that folder to PYTHONPATH, or give path/to/file.py:factory"
                            ) from None
        raise UserError(f"importing {module_part!r} failed: {err}") from None
    except (ImportError, SyntaxError) as err:
        raise UserError(f"importing {module_part!r} failed: {type(err).__name__}: {err}") from None


def load_factory(spec: str) -> nn.Module:
    """Build the model named by ``spec`` = ``module:factory`` (or ``file.py:factory``).

    ``factory`` is a class or function called with no arguments, or an ``nn.Module``
    instance defined in the module.

    Raises:
        UserError: a malformed spec, a module that cannot be imported, a missing attribute,
            a factory that needs arguments, or one that does not return an ``nn.Module``.
    """
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr.isidentifier():
        raise UserError(f"expected module:factory (e.g. mynets:build_resnet), got {spec!r}")
    module = _import(module_part)
    if not hasattr(module, attr):
        found = [n for n, v in vars(module).items()
                 if not n.startswith("_") and (callable(v) or isinstance(v, nn.Module))]
        raise UserError(f"module {module_part!r} has no attribute {attr!r}; it has "
                        f"{', '.join(sorted(found)[:12]) or 'no public callables'}")
    obj = getattr(module, attr)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise UserError(f"{spec} is not a model factory but a {type(obj).__name__}")
    _check_no_arguments(obj, spec)
    model = obj()
    if not isinstance(model, nn.Module):
        raise UserError(f"{spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _check_no_arguments(factory: Any, spec: str) -> None:
    try:
        params = pyinspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return  # no signature to read (a builtin): calling it will tell
    needed = [p.name for p in params if p.default is p.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if needed:
        raise UserError(f"{spec} needs the arguments {needed}; give a factory that takes none "
                        f"(e.g. def build(): return {spec.rpartition(':')[2]}(...))")


def _npz(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits of a user's ``.npz`` as tensors (checked, nothing unpickled)."""
    fix = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {path} as an .npz file ({err}); {fix}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not named arrays; {fix}")
    with archive:
        present = set(archive.files)
    arrays = read_npz(path, ["x_train", "y_train"] + (
        ["x_test", "y_test"] if {"x_test", "y_test"} <= present else []), fix)
    return {split: _tensors(path, arrays[f"x_{split}"], arrays[f"y_{split}"], split, fix)
            for split in ("train", "test") if f"x_{split}" in arrays}


def _tensors(path: Path, x: np.ndarray, y: np.ndarray, split: str, fix: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim < 2 or len(x) == 0 or len(y) != len(x):
        raise DataError(f"{path}: x_{split} {x.shape} and y_{split} {y.shape} must hold the "
                        f"same number N >= 1 of samples, x as (N, ...); {fix}")
    if x.dtype == np.uint8:
        xt = torch.from_numpy(x.astype(np.float32) / 255.0)
    elif np.issubdtype(x.dtype, np.floating):
        xt = torch.from_numpy(x.astype(np.float32))
    else:
        raise DataError(f"{path}: x_{split} is {x.dtype}; give uint8 or floating-point inputs")
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        return xt, torch.from_numpy(y.astype(np.int64))
    if np.issubdtype(y.dtype, np.floating):
        return xt, torch.from_numpy(y.astype(np.float32))
    raise DataError(f"{path}: y_{split} is {y.dtype}{y.shape}; give integer class labels (N,) "
                    "or floating-point targets")


def load_data(data: str, *, data_dir: str | Path | None = None
              ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (x, y), "test": (x, y)}`` (test when the source has one) for ``--data``.

    Raises:
        UserError: an unknown name, a missing file, or an ``.npz`` of the wrong layout.
    """
    if data in DATASETS:
        return {split: load(data, split, data_dir=data_dir) for split in ("train", "test")}
    path = Path(data).expanduser()
    if path.suffix != ".npz":
        raise UserError(f"--data must be one of {', '.join(DATASETS)} or a path to an .npz "
                        f"file, got {data!r}")
    if not path.is_file():
        raise UserError(f"no file {str(path)!r}; give an existing .npz file")
    return _npz(path)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but torch sees no CUDA device; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown --device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


def _optimizer(name: str, lr: float, momentum: float) -> Any:
    if name not in OPTIMIZERS or not lr > 0:
        raise UserError(f"--optimizer must be one of {', '.join(OPTIMIZERS)} with --lr > 0, "
                        f"got {name!r}, lr {lr}")
    if name == "adam":
        return lambda params: torch.optim.Adam(params, lr=lr)
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum)


def _test_subset(split: tuple[torch.Tensor, torch.Tensor], size: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset (held-out sets may be sorted by class)."""
    x, y = split
    if size >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return x[idx], y[idx]


def inspect_command(
    factory: str,
    *,
    data: str,
    steps: int,
    out: str | Path,
    compare: str | None = None,
    probes: str = "default",
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float = 0.05,
    momentum: float = 0.9,
    loss: str = "cross_entropy",
    bn_mode: str = "train",
    seed: int = 0,
    device: str = "auto",
    data_dir: str | Path | None = None,
    test_size: int = 2000,
    eval_every: int = 0,
    progress: bool = True,
) -> InspectResult:
    """``bnlab inspect``: build the user's model, load the data, run the panel, store it.

    ``compare`` is a norm name (the same network with its BNs swapped for it) or a second
    ``module:factory``. See :func:`bnlab.inspect.inspect` for the rest.

    Raises:
        UserError: for any bad input (one line in the CLI).
    """
    if loss not in LOSSES:
        raise UserError(f"unknown --loss {loss!r}; valid: {', '.join(LOSSES)}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    where = _device(device)
    splits = load_data(data, data_dir=data_dir)
    torch.manual_seed(seed)  # the factory's initialization
    model = load_factory(factory).to(where)
    other = None
    if compare is not None and ":" in compare:
        torch.manual_seed(seed)
        other = load_factory(compare).to(where)
    x, y = splits["train"]
    loader = Loader(x.to(where), y.to(where), min(batch_size, len(x)), seed=seed)
    test = None
    if "test" in splits and test_size > 0:
        tx, ty = _test_subset(splits["test"], test_size, seed)
        test = (tx.to(where), ty.to(where))
    return inspect(
        model, LOSSES[loss], loader, steps=steps, optimizer=_optimizer(optimizer, lr, momentum),
        probes=probes, out=out, compare=other if other is not None else compare,
        compare_label=compare if other is not None else None, name=factory,
        data=Path(data).name if data.endswith(".npz") else data, test=test,
        eval_every=eval_every, bn_mode=bn_mode, seed=seed, progress=progress)
