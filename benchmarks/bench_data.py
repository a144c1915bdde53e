"""Closing-note figure of the data issue: load times and one augmented loader epoch.

Run:  BNLAB_DATA=../shared/data python benchmarks/bench_data.py [--repeats 3] [--threads 1]

Prints medians over repeats and ratios against baselines measured in the same process:
- load: ``bnlab.data.load`` of both splits vs. ``np.load`` + reading every array (the
  floor: decompression), so the ratio is the cost of validation and float conversion.
- epoch: one CIFAR-10 training epoch of ``Loader`` (batch 128, crop 4 + flip) vs. the same
  epoch without augmentation and vs. ``torch.utils.data.DataLoader`` over a
  ``TensorDataset`` without augmentation (the usual built-in).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from bnlab.data import Loader, RandomCropFlip, load


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def np_floor(path: Path) -> None:
    with np.load(path) as npz:
        for key in npz.files:
            npz[key]


def bench_load(data_dir: Path, repeats: int) -> None:
    for name in ("mnist", "cifar10"):
        path = data_dir / f"{name}.npz"
        base = median_time(lambda path=path: np_floor(path), repeats)
        ours = median_time(
            lambda name=name: [load(name, s, data_dir=data_dir) for s in ("train", "test")],
            repeats,
        )
        print(
            f"load {name:8s} train+test: {ours:6.2f} s   np.load floor {base:6.2f} s   "
            f"ratio {ours / base:5.2f}"
        )


def drain(batches) -> None:
    for xb, _ in batches:
        xb.sum()  # touch every batch, as a training step would


def bench_epoch(data_dir: Path, repeats: int) -> None:
    x, y = load("cifar10", "train", data_dir=data_dir)
    aug = Loader(x, y, 128, seed=0, augment=RandomCropFlip(padding=4))
    plain = Loader(x, y, 128, seed=0)
    builtin = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, drop_last=True)
    t_aug = median_time(lambda: drain(aug.epoch(0)), repeats)
    t_plain = median_time(lambda: drain(plain.epoch(0)), repeats)
    t_builtin = median_time(lambda: drain(builtin), repeats)
    print(f"CIFAR-10 epoch, batch 128, {len(aug)} batches:")
    print(f"  Loader + RandomCropFlip(4)     {t_aug:6.2f} s")
    print(f"  Loader, no augmentation        {t_plain:6.2f} s   aug/plain   {t_aug / t_plain:5.2f}")
    ratio = t_plain / t_builtin
    print(f"  torch DataLoader(TensorDataset) {t_builtin:5.2f} s   plain/torch {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (stated below)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = Path(os.environ.get("BNLAB_DATA", "../shared/data"))
    if not (data_dir / "cifar10.npz").exists():
        raise SystemExit(f"no cifar10.npz in {data_dir}; set BNLAB_DATA")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}, "
        f"cpu count {os.cpu_count()}, data {data_dir}"
    )
    bench_load(data_dir, args.repeats)
    bench_epoch(data_dir, args.repeats)


if __name__ == "__main__":
    main()
