"""``bnlab run ... --ddp``: DistributedDataParallel on CPU (gloo), 2 ranks spawned here.

* ``--bn-sync global`` stores what a single process stores on the same global batch
  (losses, evaluations, activation and gradient probes), to float tolerance;
* ``--bn-sync local`` stores what ``ghost_bn`` stores with the per-rank batch as its
  virtual batch;
* a run interrupted on 1 rank resumes from rank 0's checkpoint on 2 ranks and ends equal
  to the uninterrupted run;
* refusals name the norm; the DDP choice is in the key of DDP runs only.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from ddp_fakes import ENV_INTERRUPT, plain_main, rank_main

from bnlab.results import Store

RECIPE = "ddptest.mlp"


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(out, *extra):
    device = [] if "--device" in extra else ["--device", "cpu"]
    return ["run", RECIPE, "--scale", "smoke", *device, "--no-progress", "--out", str(out),
            *extra]


def _ddp(world, out, *extra, env=None):
    mp.spawn(rank_main, args=(world, _port(), _argv(out, "--ddp", *extra), env), nprocs=world)


def _single(out, *extra):
    mp.spawn(plain_main, args=(_argv(out, *extra),), nprocs=1)


def _stored(out):
    """The one run of ``out``: its config, metrics {(step, name): value}, arrays."""
    with Store(out) as s:
        (run,) = s.runs().to_dict("records")
        m = s.metrics(runs=run["id"])
        metrics = {(int(st), n): v for st, n, v in zip(m["step"], m["name"], m["value"],
                                                        strict=True)}
        arrays = {(st, n): a for n in s.array_names(run["id"]) for st, a in s.arrays(run["id"], n)}
    return run, metrics, arrays


def _assert_same_rows(got, want, rel=1e-4, abs=1e-5):
    (run_a, m_a, a_a), (run_b, m_b, a_b) = got, want
    assert run_a["status"] == run_b["status"] == "finished"
    assert m_a.keys() == m_b.keys() and a_a.keys() == a_b.keys()
    assert {k for k in m_a if k[1] == "train_loss"} and {k for k in a_a if "grad/" in k[1]}
    for k in m_a:
        assert m_a[k] == pytest.approx(m_b[k], rel=rel, abs=abs), k
    for k in a_a:
        np.testing.assert_allclose(a_a[k], a_b[k], rtol=rel, atol=abs, err_msg=str(k))


@pytest.fixture(scope="module")
def ddp_global(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_global")
    _ddp(2, out, "--bn-sync", "global")
    return out


def test_global_bn_matches_one_process_on_the_global_batch(ddp_global, tmp_path):
    _single(tmp_path / "single")
    got, want = _stored(ddp_global), _stored(tmp_path / "single")
    _assert_same_rows(got, want)
    assert got[0]["config"]["ddp"] == {"bn_sync": "global"}
    assert "ddp" not in want[0]["config"]
    assert got[0]["provenance"]["ddp_world_size"] == 2


def test_local_bn_matches_ghost_bn_with_the_per_rank_batch(tmp_path):
    _ddp(2, tmp_path / "ddp", "--bn-sync", "local")
    _single(tmp_path / "ghost", "--set", "norm=ghost_bn", "--set", "virtual_batch_size=8")
    got, want = _stored(tmp_path / "ddp"), _stored(tmp_path / "ghost")
    _assert_same_rows(got, want)  # running stats too: test_loss is an eval-mode loss
    assert got[0]["config"]["ddp"] == {"bn_sync": "local", "world_size": 2}


def test_resume_on_another_world_size(ddp_global, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(mp.ProcessExitedException):  # Ctrl-C at step 7 (exit 130)
        _ddp(1, out, "--bn-sync", "global", env={ENV_INTERRUPT: "7"})
    with Store(out) as s:
        (run,) = s.runs().to_dict("records")
    assert run["status"] == "pending"
    _ddp(2, out, "--bn-sync", "global")
    got = _stored(out)
    assert got[0]["resumed_from"] == 5  # rank 0's checkpoint, written on 1 rank
    _assert_same_rows(got, _stored(ddp_global))


# -- refusals and keys (in this process, a process group of 1) ----------------------------


@pytest.fixture
def group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdv'}", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def _job(norm, batch=16, **kw):
    import torch
    from torch import nn

    from bnlab.data import Loader
    from bnlab.experiments.harness import Training
    from bnlab.models import create_model

    model = create_model("mlp", norm=norm, norm_kwargs=kw, in_shape=(4,), num_classes=2,
                         widths=(6,), activation="relu")
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    return Training(model, Loader(x, y, batch), nn.functional.cross_entropy,
                    torch.optim.SGD(model.parameters(), lr=0.1), steps=2)


def _env():
    import torch

    from bnlab.experiments.harness import RunEnv

    return RunEnv(0, "smoke", "none", None, torch.device("cpu"))


@pytest.mark.parametrize("norm,sync,kw,match", [
    ("batch_renorm", "global", {}, "'batch_renorm' .*no global-statistics form.*--bn-sync local"),
    ("l2", "global", {}, "'l2' .*no global-statistics form"),
    ("noisy_bn", "global", {}, "'noisy_bn' .*same noise"),
    ("noisy_bn", "local", {}, "'noisy_bn' .*same noise"),
    ("ghost_bn", "global", {"virtual_batch_size": 12}, "'ghost_bn' .*straddle"),
], ids=["batch_renorm", "l2", "noisy_bn_global", "noisy_bn_local", "ghost_straddles"])
def test_norms_ddp_cannot_keep_are_refused_by_name(group, norm, sync, kw, match):
    from bnlab.errors import UserError
    from bnlab.experiments.ddp import distribute

    with pytest.raises(UserError, match=match):
        distribute(_job(norm, **kw), {"bn_sync": sync}, _env())


@pytest.mark.parametrize("norm,sync,kw", [
    ("bn", "global", {}), ("bn_reference", "global", {}), ("ln", "global", {}),
    ("none", "global", {}), ("ghost_bn", "global", {"virtual_batch_size": 8}),
    ("batch_renorm", "local", {}), ("l2", "local", {}),
])
def test_norms_ddp_keeps(group, norm, sync, kw):
    from bnlab.experiments.ddp import GlobalBatchNorm, distribute

    job = distribute(_job(norm, **kw), {"bn_sync": sync}, _env())
    converted = [m for m in job.model.modules() if isinstance(m, GlobalBatchNorm)]
    assert bool(converted) == (sync == "global" and norm in ("bn", "bn_reference"))
    # the optimizer still holds the model's parameters (shared, not copied)
    held = {id(p) for g in job.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in job.model.parameters()}


def test_world_size_must_divide_the_batch():
    import torch

    from bnlab.data import Loader
    from bnlab.errors import UserError
    from bnlab.experiments.ddp import _per_rank_batch

    loader = Loader(torch.zeros(30, 2), torch.zeros(30), 15)
    assert _per_rank_batch(loader, 3) == 5
    with pytest.raises(UserError, match="world size 2 does not divide the batch of 15"):
        _per_rank_batch(loader, 2)


def test_probe_that_cannot_be_made_correct_is_refused(group):
    from bnlab.errors import UserError
    from bnlab.experiments.ddp import distribute
    from bnlab.probes import Probe

    class PerDevice(Probe):
        ddp_correct = False

    job = _job("bn")
    job.probes = [PerDevice()]
    with pytest.raises(UserError, match="probe PerDevice cannot be measured"):
        distribute(job, {"bn_sync": "global"}, _env())


def test_measure_recipes_are_refused(group):
    from bnlab.errors import UserError
    from bnlab.experiments.ddp import distribute
    from bnlab.experiments.harness import Measure

    with pytest.raises(UserError, match="only measures"):
        distribute(Measure(lambda log: None), {"bn_sync": "global"}, _env())


def test_the_ddp_choice_is_in_the_key_of_ddp_runs_only():
    from bnlab.experiments import plan
    from bnlab.experiments.ddp import ddp_specs
    from bnlab.sweep import run_key

    specs = plan("ioffe2015.mnist", scale="smoke").specs
    # a plain run's key is the hash of its config and seed, as before DDP existed
    assert [s.key for s in specs] == [run_key({**s.config, "seed": s.seed}) for s in specs]
    assert all("ddp" not in s.config for s in specs)
    g2, g4 = ddp_specs(specs, "global", 2), ddp_specs(specs, "global", 4)
    l2, l4 = ddp_specs(specs, "local", 2), ddp_specs(specs, "local", 4)
    keys = [{s.key for s in x} for x in (specs, g2, l2, l4)]
    assert all(a.isdisjoint(b) for i, a in enumerate(keys) for b in keys[i + 1:])
    assert [s.key for s in g2] == [s.key for s in g4]  # resumable on any world size


@pytest.mark.parametrize("argv,match", [
    (["--bn-sync", "local"], "--bn-sync applies to --ddp runs"),
    (["--ddp"], "--ddp runs under torchrun"),
    (["--ddp", "--executor", "process"], "--executor process does not apply"),
], ids=["bn_sync_alone", "no_torchrun", "executor"])
def test_cli_ddp_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, match):
    from bnlab.cli import main

    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    rc = main(["run", "ioffe2015.mnist", "--scale", "smoke", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and match in err
    assert not (tmp_path / "bnlab.db").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ddp_on_the_gpus_matches_one_gpu(tmp_path):
    """NCCL and SyncBatchNorm: every GPU a rank (one GPU checks the plumbing, two the exchange)."""
    world = torch.cuda.device_count()
    batch = ["--set", f"batch_size={8 * world}", "--device", "cuda"]
    _ddp(world, tmp_path / "ddp", "--bn-sync", "global", *batch)
    _single(tmp_path / "single", *batch)
    got = _stored(tmp_path / "ddp")
    _assert_same_rows(got, _stored(tmp_path / "single"), rel=1e-3, abs=1e-4)
    assert got[0]["provenance"]["ddp_backend"] == "nccl"
    assert got[0]["provenance"]["device"].startswith("cuda")


def test_a_refused_norm_fails_the_run_and_every_rank_ends(tmp_path):
    with pytest.raises(mp.ProcessExitedException, match="exit code 1"):  # no rank hangs
        _ddp(2, tmp_path, "--bn-sync", "global", "--set", "norm=batch_renorm")
    with Store(tmp_path) as s:
        (run,) = s.runs().to_dict("records")
    assert run["status"] == "failed"
    assert "norm 'batch_renorm'" in run["error"] and "--bn-sync local" in run["error"]
