"""``bnlab inspect module:factory``: the user's factory imported from a temporary module,
data from an .npz; every bad input is one line and exit status 2."""

from __future__ import annotations

import textwrap
import uuid

import numpy as np
import pytest

from bnlab.cli import main
from bnlab.results import Store

FACTORY = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, channels=3):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)  # depthwise
            self.bn2 = nn.BatchNorm2d(4)
            self.pw = nn.Conv2d(4, 6, 1, bias=False)                       # pointwise
            self.bn3 = nn.BatchNorm2d(6)
            self.head = nn.Linear(6, 4)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = torch.relu(self.bn3(self.pw(torch.relu(self.bn2(self.dw(out))))))
            return self.head(out.mean(dim=(2, 3)))

    def build():
        return Net()

    def build_gray():
        return Net(channels=1)

    def needs_args(width):
        return Net()

    def not_a_model():
        return "resnet"

    instance = Net()
    NUMBER = 3
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of factories in tmp_path, importable by a fresh name; returns the name."""
    name = f"userfactories_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture
def npz(tmp_path):
    gen = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=gen.integers(0, 256, (48, 3, 8, 8), dtype=np.uint8),
             y_train=gen.integers(0, 4, 48), x_test=gen.random((20, 3, 8, 8)).astype(np.float32),
             y_test=gen.integers(0, 4, 20))
    return path


def _run(*args):
    return main(["inspect", *map(str, args), "--no-progress", "--device", "cpu",
                 "--batch-size", "16"])


def test_the_command_runs_both_variants_and_writes_the_report(user_module, npz, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(f"{user_module}:build", "--data", npz, "--steps", 3, "--out", out,
                "--compare", "none", "--probes", "gradients,explosion")
    assert code == 0
    printed = capsys.readouterr().out
    assert "as given: run 1, finished" in printed and "BN→none: run 2, finished" in printed
    assert "explosion" in printed and "report:" in printed
    assert (out / "report.html").is_file()
    with Store(out) as store:
        runs = store.runs()
        assert list(runs.recipe) == ["inspect", "inspect"]
        assert set(runs["cfg.variant"]) == {"as given", "BN→none"}
        assert set(runs["cfg.data"]) == {"data.npz"} and set(runs["cfg.model"]) == {
            f"{user_module}:build"}
        assert "test_acc" in set(store.metrics().name)  # the npz's held-out split


def test_a_second_model_and_steps_zero(user_module, npz, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(f"{user_module}:build", "--data", npz, "--out", out,
                "--compare", f"{user_module}:instance", "--probes", "depth")
    assert code == 0
    with Store(out) as store:
        runs = store.runs()
        assert list(runs["cfg.variant"]) == ["as given", f"{user_module}:instance"]
        assert set(store.metrics().step) == {0}


def _error(capsys, *args):
    code = _run(*args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(("factory", "message"), [
    ("no_such_module_xyz:build", "no module named 'no_such_module_xyz'"),
    ("{m}:missing", "has no attribute 'missing'; it has Net, build"),
    ("{m}:needs_args", "needs the arguments ['width']"),
    ("{m}:not_a_model", "returned a str, not a torch.nn.Module"),
    ("{m}:NUMBER", "is not a model factory but a int"),
    ("{m}", "expected module:factory"),
    ("{m}:build_gray", "cannot take inputs of shape (16, 3, 8, 8)"),
])
def test_bad_factories_are_one_line(user_module, npz, tmp_path, capsys, factory, message):
    err = _error(capsys, factory.format(m=user_module), "--data", npz, "--out", tmp_path / "o")
    assert message in err


def test_bad_data_is_one_line(user_module, tmp_path, capsys):
    factory = f"{user_module}:build"
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1))
    nokeys = tmp_path / "nokeys.npz"
    np.savez(nokeys, images=np.zeros((4, 3, 8, 8)))
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, x_train=np.zeros((4, 3, 8, 8)), y_train=np.zeros(5, dtype=np.int64))
    cases = {
        corrupt: "cannot read", pickled: "cannot read", nokeys: "lacks the arrays",
        ragged: "same number N", tmp_path / "absent.npz": "no file",
        "imagenet": "--data must be one of cifar10, mnist, mnist1d",
    }
    for data, message in cases.items():
        assert message in _error(capsys, factory, "--data", data, "--out", tmp_path / "o")


def test_bad_flags_are_one_line(user_module, npz, tmp_path, capsys):
    factory = f"{user_module}:build"
    assert "unknown probes ['hessain']" in _error(capsys, factory, "--data", npz, "--probes",
                                                  "hessain", "--out", tmp_path / "o")
    assert "steps must be an int >= 0" in _error(capsys, factory, "--data", npz, "--steps", -2,
                                                 "--out", tmp_path / "o")
    assert "unknown norm" in _error(capsys, factory, "--data", npz, "--compare", "batchnorm9",
                                    "--out", tmp_path / "o")
