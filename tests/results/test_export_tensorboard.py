"""``bnlab export --format tensorboard``: event files that TensorBoard's own reader reads."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from bnlab.cli import main
from bnlab.errors import UserError
from bnlab.results import Store, export

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

EDGES = np.linspace(-1.0, 1.0, 5)  # 4 bins
ACT = np.array([[1, 2, 0, 3], [0, 4, 1, 1]], dtype=np.int64)  # (units, bins)
GRAD_COUNTS = np.array([5.0, 0.0, 2.0])
GRAD_EDGES = np.array([0.0, 0.5, 1.0, 2.0])


def _fill(out):
    """Two conditions (lr) x two seeds; run (lr=0.1, seed=1) also stores histograms."""
    ids = {}
    with Store(out) as s:
        for lr in (0.1, 0.5):
            for seed in (0, 1):
                cfg = {"norm": "bn", "lr": lr, "steps": 3, "seed": seed}
                rid = s.register_run(f"k{lr}{seed}", "demo.recipe", cfg, seed)
                s.start_run(rid, resumed_from=None, provenance={})
                s.log_metrics(rid, [(0, "train_loss", 2.0 + lr + seed), (2, "train_loss", 1.0),
                                    (3, "test_acc", 0.5 + seed / 10)])
                ids[lr, seed] = rid
                s.finish_run(rid, "finished")
        rid = ids[0.1, 1]
        grad = np.stack([np.append(GRAD_COUNTS, np.nan), GRAD_EDGES])
        s.log_arrays(rid, [(0, "act/3/hist", ACT), (0, "act/3/edges", EDGES),
                           (2, "act/3/hist", 2 * ACT), (2, "act/3/edges", EDGES + 1),
                           (0, "act/3/mean", np.zeros(2)), (1, "grad/1/hist", grad)])
    return ids


def _read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    return acc.Reload()


def test_event_files_read_back_with_tensorboard(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "tb"
    _fill(out)
    folders = export(out, "tensorboard", dest)
    names = sorted(str(f.relative_to(dest)) for f in folders)
    assert names == ["demo.recipe/lr=0.1/seed=0", "demo.recipe/lr=0.1/seed=1",
                     "demo.recipe/lr=0.5/seed=0", "demo.recipe/lr=0.5/seed=1"]
    acc = _read(dest / "demo.recipe/lr=0.5/seed=1")
    loss = [(e.step, e.value) for e in acc.Scalars("train_loss")]
    assert loss == [(0, pytest.approx(3.5)), (2, pytest.approx(1.0))]
    assert [(e.step, e.value) for e in acc.Scalars("test_acc")] == [(3, pytest.approx(0.6))]
    assert acc.Tags()["histograms"] == []

    acc = _read(dest / "demo.recipe/lr=0.1/seed=1")
    assert sorted(acc.Tags()["histograms"]) == ["act/3/hist", "grad/1/hist"]  # not act/3/mean
    h0, h2 = acc.Histograms("act/3/hist")
    assert (h0.step, h2.step) == (0, 2)
    # (units, bins) counts summed over units; limits are the right bin edges
    assert list(h0.histogram_value.bucket) == [1, 6, 1, 4]
    assert list(h2.histogram_value.bucket) == [2, 12, 2, 8]
    assert list(h0.histogram_value.bucket_limit) == pytest.approx(list(EDGES[1:]))
    assert list(h2.histogram_value.bucket_limit) == pytest.approx(list(EDGES[1:] + 1))
    assert h0.histogram_value.num == 12
    assert (h0.histogram_value.min, h0.histogram_value.max) == (-1.0, 1.0)
    (g,) = acc.Histograms("grad/1/hist")
    assert g.step == 1
    assert list(g.histogram_value.bucket) == [5, 0, 2]
    assert list(g.histogram_value.bucket_limit) == pytest.approx([0.5, 1.0, 2.0])
    assert (g.histogram_value.min, g.histogram_value.max) == (0.0, 2.0)


def test_reexport_replaces_the_event_file(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "tb"
    _fill(out)
    export(out, "tensorboard", dest)
    export(out, "tensorboard", dest)
    folder = dest / "demo.recipe/lr=0.5/seed=0"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert len(_read(folder).Scalars("train_loss")) == 2


def test_one_condition_is_named_default(tmp_path):
    out = tmp_path / "out"
    with Store(out) as s:
        rid = s.register_run("k", "solo", {"lr": 0.1, "seed": 0}, 0)
        s.log_metrics(rid, [(0, "train_loss", 1.0)])
    (folder,) = export(out, "tensorboard", tmp_path / "tb")
    assert folder == tmp_path / "tb" / "solo" / "default" / "seed=0"


def test_cli_export_tensorboard(tmp_path, capsys):
    out = tmp_path / "out"
    _fill(out)
    assert main(["export", "--out", str(out), "--format", "tensorboard",
                 "--dest", str(tmp_path / "tb")]) == 0
    assert (tmp_path / "tb" / "demo.recipe" / "lr=0.1" / "seed=0").is_dir()


def test_missing_tensorboard_is_one_line_with_the_install(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _fill(out)
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(UserError, match=r"pip install 'bnlab\[tensorboard\]'"):
        export(out, "tensorboard", tmp_path / "tb")
    assert not (tmp_path / "tb" / "demo.recipe").exists()
