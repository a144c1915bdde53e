"""MNIST-1D (Greydanus & Kobak), generated on the spot and cached as ``.npz``.

Only the package's ``make_dataset`` is called: its ``get_dataset`` downloads a pickle and
unpickles it, which bnlab never does. ``make_dataset`` reseeds the global ``random`` and
``numpy`` generators (``mnist1d.utils.set_seed``); we save and restore them, and torch's,
so generating data never changes the randomness of the caller's experiment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bnlab.data.cache import read_npz, write_npz_atomic
from bnlab.data.errors import DataError

__all__ = ["load_mnist1d", "mnist1d_args", "preserved_global_rng"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")


@contextlib.contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Restore the global ``random``, ``numpy`` and torch CPU generators on exit."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)


def mnist1d_args(**overrides: Any) -> dict[str, Any]:
    """Return the package's dataset arguments with ``overrides`` applied.

    The package defaults: 5,000 samples, ``train_split=0.8``, 40-sample signals, seed 42.
    Every key of ``mnist1d.data.get_dataset_args()`` except ``url`` may be overridden.

    Raises:
        DataError: an unknown key, or fewer than 10 samples (one per class).
    """
    from mnist1d.data import get_dataset_args  # lazy: the package imports matplotlib

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    unknown = sorted(set(overrides) - set(args))
    if unknown:
        raise DataError(f"unknown mnist1d option(s) {unknown}; valid: {sorted(args)}")
    args.update(overrides)
    if int(args["num_samples"]) < 10:
        raise DataError(f"mnist1d num_samples={args['num_samples']} must be at least 10")
    return args


def _generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    with preserved_global_rng():
        data = make_dataset(ObjectView(dict(args)))
    return {
        "x_train": np.asarray(data["x"], dtype=np.float32),
        "y_train": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float32),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }


def cache_path(data_dir: Path, args: dict[str, Any]) -> Path:
    """Return the cache file for ``args``: ``<data_dir>/mnist1d-<hash of args>.npz``."""
    canonical = json.dumps(args, sort_keys=True, default=str)
    return data_dir / f"mnist1d-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}.npz"


def load_mnist1d(
    split: str, data_dir: Path, *, unit_range: bool = True, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load (generating and caching if needed) one split of MNIST-1D.

    The package returns signals standardized over the whole set; with ``unit_range`` (the
    default) they are mapped affinely to [0, 1] by the min and max over both splits, so
    every bnlab dataset shares one input range (one affine map, so nothing is learned
    differently by a model that standardizes its inputs).

    Returns:
        ``x`` (N, 1, 40) float32 and ``y`` (N,) int64.
    """
    args = mnist1d_args(**options)
    path = cache_path(data_dir, args)
    if not path.exists():
        try:
            write_npz_atomic(path, _generate(args))
        except OSError as err:
            raise DataError(f"could not write {path} ({err}); pass a writable data_dir") from err
    arrays = read_npz(path, _KEYS, f"delete {path}; it is regenerated on the next load")
    x = torch.from_numpy(arrays[f"x_{split}"]).unsqueeze(1)  # (N, L) -> (N, 1, L)
    if unit_range:
        lo = min(arrays["x_train"].min(initial=np.inf), arrays["x_test"].min(initial=np.inf))
        hi = max(arrays["x_train"].max(initial=-np.inf), arrays["x_test"].max(initial=-np.inf))
        x = (x - float(lo)) / max(float(hi - lo), 1e-12)
    return x.float().contiguous(), torch.from_numpy(arrays[f"y_{split}"])
