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
import torch.multiprocessing as mp
from ddp_fakes import ENV_INTERRUPT, plain_main, rank_main

from bnlab.results import Store

RECIPE = "ddptest.mlp"


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(out, *extra):
    return ["run", RECIPE, "--scale", "smoke", "--device", "cpu", "--no-progress",
            "--out", str(out), *extra]


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


def _assert_same_rows(got, want):
    (run_a, m_a, a_a), (run_b, m_b, a_b) = got, want
    assert run_a["status"] == run_b["status"] == "finished"
    assert m_a.keys() == m_b.keys() and a_a.keys() == a_b.keys()
    assert {k for k in m_a if k[1] == "train_loss"} and {k for k in a_a if "grad/" in k[1]}
    for k in m_a:
        assert m_a[k] == pytest.approx(m_b[k], rel=1e-4, abs=1e-5), k
    for k in a_a:
        np.testing.assert_allclose(a_a[k], a_b[k], rtol=1e-4, atol=1e-5, err_msg=str(k))


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
