"""Export a results store as TensorBoard event files (``bnlab export --format tensorboard``).

One folder per run, ``<dest>/<recipe>/<condition>/seed=<seed>``, where the condition is
the run's values of the config fields that differ between the recipe's runs in the store
(``norm=bn,lr=0.5``; ``default`` when every run of the recipe shares one config). Each
folder holds one event file with

* every stored scalar metric, as a TensorBoard scalar under its stored name;
* every stored histogram, as a TensorBoard histogram. The recipe cards
  (:mod:`bnlab.recipes`) declare histograms as arrays named ``.../hist`` of counts, with
  the bin edges ``.../edges`` stored beside them at the same step (the activation probes):
  counts of shape (units, bins) are summed over the units into one layer histogram. A
  ``.../hist`` of shape (2, bins + 1) holds counts (NaN-padded) over edges in one array
  (the gradient probe). Other arrays (means, percentiles) are not histograms and stay in
  the database (``--format parquet`` lists them).

TensorBoard is an optional extra (``pip install bnlab[tensorboard]``); the files are written
with its own event writer and protobufs, so TensorBoard's readers read them back.

Example:
    >>> export("bnlab_out", "tensorboard", "tb")  # doctest: +SKIP
    >>> # tensorboard --logdir tb
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnlab.errors import UserError
from bnlab.results.store import Store

__all__ = ["histogram_pairs", "run_folders", "write_tensorboard"]

_INSTALL = ("--format tensorboard needs the tensorboard package: pip install 'bnlab[tensorboard]'"
            " (or pip install tensorboard)")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
_LABELS = ("seed",)  # part of the folder name on its own


def _tensorboard() -> tuple[Any, Any, Any]:
    """TensorBoard's event writer and protobuf classes, or a one-line install hint."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise UserError(_INSTALL) from exc
    return EventFileWriter, event_pb2, summary_pb2


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def run_folders(runs: pd.DataFrame) -> dict[int, str]:
    """``run id -> "<recipe>/<condition>/seed=<seed>"`` for the runs of a store.

    The condition lists, in config order, the top-level fields whose values differ between
    the runs of the same recipe (the seed aside), as ``field=value`` joined by commas.
    """
    folders: dict[int, str] = {}
    for recipe, group in runs.groupby("recipe", sort=False):
        configs = [dict(c) for c in group["config"]]
        fields = list(dict.fromkeys(k for c in configs for k in c if k not in _LABELS))
        varying = [k for k in fields if len({_text(c.get(k)) for c in configs}) > 1]
        for run_id, cfg, seed in zip(group["id"], configs, group["seed"], strict=True):
            condition = ",".join(f"{k}={_text(cfg.get(k))}" for k in varying) or "default"
            folders[int(run_id)] = "/".join(
                _UNSAFE.sub("_", part) for part in (str(recipe), condition, f"seed={seed}"))
    return folders


def histogram_pairs(store: Store, run: int) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Yield ``(name, step, counts (B,), edges (B+1,))`` for every stored histogram of a run.

    Arrays named ``.../hist`` with ``.../edges`` at the same step, or of shape
    (2, B + 1) holding counts then edges; counts over several units are summed.
    """
    names = set(store.array_names(run))
    for name in sorted(n for n in names if n.endswith("/hist")):
        edges_name = name.removesuffix("hist") + "edges"
        edges = dict(store.arrays(run, edges_name)) if edges_name in names else {}
        for step, hist in store.arrays(run, name):
            pair = _counts_and_edges(np.asarray(hist, dtype=np.float64), edges.get(step))
            if pair is not None:
                yield name, step, *pair


def _counts_and_edges(hist: np.ndarray, edges: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    if edges is not None:
        counts = hist.reshape(-1, hist.shape[-1]).sum(axis=0)  # (units, B) -> (B,)
        edges = np.asarray(edges, dtype=np.float64).ravel()
    elif hist.ndim == 2 and hist.shape[0] == 2:  # counts (NaN-padded) over edges
        counts, edges = hist[0, :-1], hist[1]
    else:
        return None
    if edges.shape != (counts.shape[0] + 1,) or not np.all(np.isfinite(edges)):
        return None
    return np.nan_to_num(counts), edges


def _histogram_proto(summary_pb2: Any, counts: np.ndarray, edges: np.ndarray) -> Any:
    """TensorBoard's histogram: bucket i holds (limit[i-1], limit[i]], limits = right edges.

    ``sum`` and ``sum_squares`` are estimated from the bin centres (the store keeps counts).
    """
    centres = (edges[:-1] + edges[1:]) / 2
    filled = np.flatnonzero(counts)
    low = edges[filled[0]] if filled.size else edges[0]
    high = edges[filled[-1] + 1] if filled.size else edges[-1]
    return summary_pb2.HistogramProto(
        min=float(low), max=float(high), num=float(counts.sum()),
        sum=float((counts * centres).sum()), sum_squares=float((counts * centres**2).sum()),
        bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts])


def _write_run(store: Store, run: int, folder: Path, metrics: pd.DataFrame) -> Path:
    writer_cls, event_pb2, summary_pb2 = _tensorboard()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.out.tfevents.*"):  # a re-export replaces the run
        old.unlink()
    writer = writer_cls(str(folder))
    now = time.time()

    def add(step: int, value: Any) -> None:
        summary = summary_pb2.Summary(value=[value])
        writer.add_event(event_pb2.Event(wall_time=now, step=int(step), summary=summary))

    try:
        for step, name, value in metrics[["step", "name", "value"]].itertuples(index=False):
            add(step, summary_pb2.Summary.Value(tag=name, simple_value=float(value)))
        for name, step, counts, edges in histogram_pairs(store, run):
            add(step, summary_pb2.Summary.Value(
                tag=name, histo=_histogram_proto(summary_pb2, counts, edges)))
    finally:
        writer.close()
    return folder


def write_tensorboard(store: Store, dest: Path) -> list[Path]:
    """Write one TensorBoard run folder per stored run under ``dest``.

    Args:
        store: an open results store.
        dest: the log directory (``tensorboard --logdir dest``), created if missing.

    Returns:
        The run folders written, in run order.

    Raises:
        UserError: if the tensorboard package is not installed.
    """
    _tensorboard()  # fail before writing anything
    runs = store.runs()
    if runs.empty:
        return []
    metrics = store.metrics()
    by_run = dict(iter(metrics.groupby("run"))) if not metrics.empty else {}
    empty = metrics.iloc[0:0]
    return [
        _write_run(store, run, Path(dest) / folder, by_run.get(run, empty))
        for run, folder in run_folders(runs).items()
    ]
