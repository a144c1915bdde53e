"""``--executor ray``: the same stored rows as the serial executor; killed workers retried.

One local Ray instance with 2 CPUs serves the module (started here, stopped after), so
Ray's cost in CI is its start-up (~10 s) and a few short sweeps.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
import torch
from sweep_fakes import calls, control_path, fake_train

from bnlab.errors import UserError
from bnlab.results import Store
from bnlab.sweep import RunSpec, execute

ray = pytest.importorskip("ray")

STEPS, EVERY = 12, 5


def _specs(n_seeds=3):
    return [RunSpec("fake.recipe", {"steps": STEPS, "ckpt_every": EVERY}, seed=s)
            for s in range(n_seeds)]


@pytest.fixture(scope="module")
def local_ray():
    here = str(Path(__file__).parent)  # the fakes must be importable by Ray's workers
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, old) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _rows(out):
    """Every stored run, metric and array, comparable between stores."""
    with Store(out) as s:
        runs = s.runs()
        keys = dict(zip(runs["id"], runs["key"], strict=True))
        m = s.metrics()
        metrics = sorted((keys[r], int(st), n, v) for r, st, n, v in m.itertuples(index=False))
        arrays = sorted((keys[r], int(st), n, dict(s.arrays(r, n))[st].tobytes())
                        for r, st, n, _, _ in s.array_index().itertuples(index=False))
        status = {k: st for k, st in zip(runs["key"], runs["status"], strict=True)}
    return status, metrics, arrays


def test_ray_sweep_stores_the_same_rows_as_serial(local_ray, tmp_path):
    serial = execute(_specs(), tmp_path / "serial", fake_train, progress=False)
    summary = execute(_specs(), tmp_path / "ray", fake_train, executor="ray", progress=False)
    assert serial.counts["finished"] == summary.counts["finished"] == 3
    assert summary.executed == 3 and summary.lost == 0
    status, metrics, arrays = _rows(tmp_path / "ray")
    assert (status, metrics, arrays) == _rows(tmp_path / "serial")
    assert len(metrics) == 3 * (STEPS + 1)
    with Store(tmp_path / "ray") as s:
        prov = s.runs()["provenance"].iloc[0]
    assert prov["executor"] == "ray"
    again = execute(_specs(), tmp_path / "ray", fake_train, executor="ray", progress=False)
    assert (again.skipped, again.executed) == (3, 0)  # finished runs are skipped on resume


def test_killed_worker_is_retried_from_its_checkpoint(local_ray, tmp_path):
    from ray_fakes import killable_train

    specs = _specs(2)
    victim = specs[1].key
    path = control_path(tmp_path / "ray", victim, "kill_at")
    path.parent.mkdir(parents=True)
    path.write_text("7")  # after the checkpoint at step 5
    summary = execute(specs, tmp_path / "ray", killable_train, executor="ray", progress=False)
    assert summary.counts["finished"] == 2 and summary.lost == 0 and not summary.failures
    assert sorted(s for k, s in calls(tmp_path / "ray") if k == victim) == [0, 5]
    execute(specs, tmp_path / "serial", fake_train, progress=False)
    status, metrics, arrays = _rows(tmp_path / "ray")
    assert (status, metrics, arrays) == _rows(tmp_path / "serial")  # none lost, none twice
    with Store(tmp_path / "ray") as s:
        assert s.run(victim)["resumed_from"] == 5


def test_checkpoint_root_holds_the_checkpoints(local_ray, tmp_path):
    from ray_fakes import killable_train

    spec = _specs(1)[0]
    root = tmp_path / "shared"
    (root / spec.key[:16]).mkdir(parents=True)
    (root / spec.key[:16] / "kill_at").write_text("7")
    summary = execute([spec], tmp_path / "out", killable_train, executor="ray",
                      progress=False, checkpoint_root=root)
    assert summary.counts["finished"] == 1
    with Store(tmp_path / "out") as s:
        assert s.run(spec.key)["resumed_from"] == 5  # resumed from <root>/<key>/latest.json


def test_options_are_checked():
    with pytest.raises(UserError, match="ray only"):
        execute(_specs(1), "unused", fake_train, options={"gpus_per_run": 1})
    with pytest.raises(UserError, match="valid: address"):
        execute(_specs(1), "unused", fake_train, executor="ray", options={"gpu": 1})
    with pytest.raises(UserError, match="gpus-per-run must be >= 0"):
        execute(_specs(1), "unused", fake_train, executor="ray", options={"gpus_per_run": -1})


def test_without_ray_the_error_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"pip install 'bnlab\[ray\]'"):
        execute(_specs(1), tmp_path / "out", fake_train, executor="ray")
    assert not (tmp_path / "out").exists()


def test_cli_recipe_on_ray_equals_serial(local_ray, tmp_path):
    from bnlab.cli import main

    common = ["run", "ioffe2015.mnist", "--scale", "smoke", "--no-progress", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "serial")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray",
                 "--cpus-per-run", "1"]) == 0
    status, metrics, arrays = _rows(tmp_path / "ray")
    assert set(status.values()) == {"finished"} and len(status) == 2
    assert (status, metrics, arrays) == _rows(tmp_path / "serial")


def test_cli_ray_flags_need_the_ray_executor(tmp_path, capsys):
    from bnlab.cli import main

    rc = main(["run", "ioffe2015.mnist", "--scale", "smoke", "--out", str(tmp_path),
               "--gpus-per-run", "0.5"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--gpus-per-run apply to --executor ray only" in err


def _close(a, b):
    """The same runs and rows, values to GPU float tolerance."""
    (sa, ma, aa), (sb, mb, ab) = a, b
    assert sa == sb and [m[:3] for m in ma] == [m[:3] for m in mb]
    assert [m[3] for m in ma] == pytest.approx([m[3] for m in mb], rel=1e-4, abs=1e-6)
    assert [x[:3] for x in aa] == [x[:3] for x in ab]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ray_packs_two_runs_on_a_gpu(local_ray, tmp_path):
    from bnlab.cli import main

    common = ["run", "ioffe2015.mnist", "--scale", "smoke", "--no-progress", "--device", "cuda"]
    assert main([*common, "--out", str(tmp_path / "serial")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray",
                 "--gpus-per-run", "0.5"]) == 0
    _close(_rows(tmp_path / "ray"), _rows(tmp_path / "serial"))
    with Store(tmp_path / "ray") as s:
        assert {p["device"] for p in s.runs()["provenance"]} == {"cuda"}
