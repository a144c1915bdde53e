"""MNIST-1D (Greydanus & Kobak), generated on the spot and cached as ``.npz``.

Only the package's ``make_dataset`` is called: its ``get_dataset`` downloads a pickle and
unpickles it, which bnlab never does. ``make_dataset`` reseeds the global ``random`` and
``numpy`` generators (``mnist1d.utils.set_seed``); we save and restore them, and torch's,
so generating data never changes the randomness of the caller's experiment.

The cache is verified before use: the digests stored with it (see
:mod:`bnlab.data.cache`), then dtypes, shapes, finite values within
:data:`MAX_ABS_SIGNAL` and labels in 0..9. A cache that fails (changed, damaged, written
by a bnlab without digests, or a planted pickle) is regenerated with a
:class:`CacheWarning`, since a single NaN or 1e30 in it would silently wreck every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bnlab.data.cache import read_npz, write_npz_atomic
from bnlab.data.errors import DataError

__all__ = ["MAX_ABS_SIGNAL", "CacheWarning", "load_mnist1d", "mnist1d_args",
           "preserved_global_rng"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: The package standardizes its signals (|x| < 6 at the default arguments); far beyond
#: this bound a value is damage, not data.
MAX_ABS_SIGNAL = 1e3


class CacheWarning(UserWarning):
    """A cached dataset failed verification and was regenerated."""


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


def _cached(path: Path) -> dict[str, np.ndarray] | None:
    """The verified arrays of the cache at ``path``, or ``None`` (missing or refused)."""
    if not path.exists():
        return None
    try:
        arrays = read_npz(path, _KEYS, "regenerating it", require_digests=True)
        _check(path, arrays)
        return arrays
    except DataError as err:
        warnings.warn(str(err), CacheWarning, stacklevel=3)
        return None


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Refuse arrays whose dtype, shape, values or labels are not MNIST-1D's."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.float32 or x.ndim != 2 or y.dtype != np.int64 or y.shape != x.shape[:1]:
            raise DataError(f"{path}: x_{split} {x.dtype}{x.shape}, y_{split} {y.dtype}{y.shape};"
                            " expected float32 (N, L) and int64 (N,); regenerating it")
        if x.size and not (np.isfinite(x).all() and np.abs(x).max() <= MAX_ABS_SIGNAL):
            raise DataError(f"{path}: x_{split} holds non-finite values or values beyond "
                            f"±{MAX_ABS_SIGNAL:g}; regenerating it")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{path}: y_{split} holds labels outside 0..9; regenerating it")


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
    arrays = _cached(path)
    if arrays is None:
        arrays = _generate(args)
        _check(path, arrays)  # the package's own output, checked like the cache
        try:
            write_npz_atomic(path, arrays)
        except OSError as err:
            raise DataError(f"could not write {path} ({err}); pass a writable data_dir") from err
    x = torch.from_numpy(arrays[f"x_{split}"]).unsqueeze(1)  # (N, L) -> (N, 1, L)
    if unit_range:
        lo = min(arrays["x_train"].min(initial=np.inf), arrays["x_test"].min(initial=np.inf))
        hi = max(arrays["x_train"].max(initial=-np.inf), arrays["x_test"].max(initial=-np.inf))
        x = (x - float(lo)) / max(float(hi - lo), 1e-12)
    return x.float().contiguous(), torch.from_numpy(arrays[f"y_{split}"])
