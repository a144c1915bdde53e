"""Every bad input the adversarial review tried (and more): one line under 300 characters
naming the problem and the fix, exit status 2 for bad input and 1 for the environment,
never a traceback, and nothing run."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _reliability_helpers import SWEEP, env_for

from bnlab.cli import main

R = "ioffe2015.mnist"
BOMB = "lr:\n  - &a [0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]\n" + "".join(
    f"  - &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefg", "bcdefgh", strict=True)
) + f"  - [{', '.join(['*h'] * 9)}]\n"

# (id, argv after "bnlab", exit status, a word the message must hold). {out} is a fresh
# folder, {file} an existing file, {tmp} the test's folder.
CASES = [
    ("steps-negative", ["run", R, "--set", "steps=-5"], 2, "steps"),
    ("steps-zero", ["run", R, "--set", "steps=0"], 2, "steps"),
    ("steps-float", ["run", R, "--set", "steps=1e3"], 2, "steps"),
    ("batch-zero", ["run", R, "--set", "batch_size=0"], 2, "batch_size"),
    ("eval-every-zero", ["run", R, "--set", "eval_every=0"], 2, "eval_every"),
    ("pct-every-zero", ["run", R, "--set", "pct_every=0"], 2, "pct_every"),
    ("pct-batch-negative", ["run", R, "--set", "pct_batch=-3"], 2, "pct_batch"),
    ("width-zero", ["run", R, "--set", "widths=0,100"], 2, "widths"),
    ("widths-empty", ["run", R, "--set", "widths="], 2, "at least 1 item"),
    ("pct-batch-one", ["run", R, "--set", "pct_batch=1"], 2, "pct_batch"),
    ("threads-zero", ["run", R, "--set", "threads=0"], 2, "threads"),
    ("probability-2", ["run", R, "--set", "binarize=2"], 2, "binarize"),
    ("init-std-zero", ["run", R, "--set", "init_std=0"], 2, "init_std"),
    ("lrs-empty", ["run", R, "--set", "lr="], 2, "lr"),
    ("norms-empty", ["run", R, "--set", "norm="], 2, "norm"),
    ("lr-nan", ["run", R, "--set", "lr=nan"], 2, "lr"),
    ("lr-inf", ["run", R, "--set", "lr=1e400"], 2, "lr"),
    ("lr-negative", ["run", R, "--set", "lr=-0.1"], 2, "lr"),
    ("set-no-equals", ["run", R, "--set", "steps"], 2, "key=value"),
    ("set-no-key", ["run", R, "--set", "=5"], 2, "key=value"),
    ("set-label", ["run", R, "--set", "seed=3"], 2, "--seeds"),
    ("set-long-key", ["run", R, "--set", "k" * 100_000 + "=1"], 2, "unknown key"),
    ("set-long-value", ["run", R, "--set", "lr=" + "1," * 30_000], 2, "lr"),
    ("set-huge-int", ["run", R, "--set", "steps=" + "9" * 5000], 2, "steps"),
    ("set-yaml-bomb", ["run", R, "--set", "lr=" + "[" * 10_000], 2, "lr"),
    ("seeds-past-int64", ["run", R, "--seeds", "0,9223372036854775808"], 2, "--seeds"),
    ("seeds-huge-count", ["run", R, "--seeds", "99999999999"], 2, "--seeds"),
    ("seeds-negative", ["run", R, "--seeds=-1"], 2, "--seeds"),
    ("seeds-text", ["run", R, "--seeds", "x,y"], 2, "--seeds"),
    ("seeds-empty", ["run", R, "--seeds", ""], 2, "--seeds"),
    ("seeds-many-digits", ["run", R, "--seeds", "9" * 5000], 2, "--seeds"),
    ("config-dev-zero", ["run", R, "--config", "/dev/zero"], 2, "regular file"),
    ("config-folder", ["run", R, "--config", "{tmp}"], 2, "regular file"),
    ("config-missing", ["run", R, "--config", "{tmp}/nope.yaml"], 2, "not found"),
    ("config-alias-bomb", ["run", R, "--config", "{tmp}/bomb.yaml"], 2, "expands"),
    ("config-recursive", ["run", R, "--config", "{tmp}/loop.yaml"], 2, "recursive"),
    ("config-binary", ["run", R, "--config", "{tmp}/binary.yaml"], 2, "UTF-8"),
    ("config-2mb", ["run", R, "--config", "{tmp}/big.yaml"], 2, "larger than"),
    ("config-list", ["run", R, "--config", "{tmp}/list.yaml"], 2, "mapping"),
    ("config-python-tag", ["run", R, "--config", "{tmp}/tag.yaml"], 2, "cannot parse"),
    ("workers-zero", ["run", R, "--executor", "process", "--workers", "0"], 2, "--workers"),
    ("workers-negative", ["run", R, "--workers", "-3"], 2, "--workers"),
    ("workers-huge", ["run", R, "--workers", "100000"], 2, "--workers"),
    ("scale-unknown", ["run", R, "--scale", "huge"], 2, "--scale"),
    ("recipe-unknown", ["run", "nosuch.recipe"], 2, R),
    ("demo-steps-negative", ["demo", "--steps", "-1"], 2, "--steps"),
    ("demo-steps-zero", ["demo", "--steps", "0"], 2, "--steps"),
    ("demo-steps-huge", ["demo", "--steps", "10000000000"], 2, "--steps"),
    ("out-is-a-file", ["run", R, "--out", "{file}"], 2, "is a file"),
    ("out-under-a-file", ["run", R, "--out", "{file}/sub"], 2, "is a file"),
    ("export-no-database", ["export", "--format", "csv", "--dest", "{tmp}/x"], 2, "no results"),
    ("export-dest-file", ["export", "--out", "{db}", "--format", "csv", "--dest", "{file}"], 2,
     "is a file"),
    ("export-dest-under-file", ["export", "--out", "{db}", "--format", "csv", "--dest",
                                "{file}/x"], 2, "is a file"),
    ("status-no-database", ["status"], 2, "no results"),
    ("report-no-database", ["report"], 2, "no results"),
    ("run-corrupt-database", ["run", R, "--out", "{corrupt}"], 2, "not a database"),
    ("status-corrupt-database", ["status", "--out", "{corrupt}"], 2, "not a database"),
    ("export-corrupt-database", ["export", "--out", "{corrupt}", "--format", "csv", "--dest",
                                 "{tmp}/e"], 2, "not a database"),
    ("report-corrupt-database", ["report", "--out", "{corrupt}"], 2, "not a database"),
    ("status-damaged-database", ["status", "--out", "{damaged}"], 1, "damaged"),
    ("report-damaged-database", ["report", "--out", "{damaged}"], 1, "damaged"),
    ("export-damaged-database", ["export", "--out", "{damaged}", "--format", "csv", "--dest",
                                 "{tmp}/e2"], 1, "damaged"),
    ("run-damaged-database", ["run", R, "--scale", "smoke", "--out", "{damaged}"], 1, "damaged"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, reference_db):
    """The files the cases point at: configs, a plain file, corrupt and damaged stores."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    (tmp / "bomb.yaml").write_text(BOMB)
    (tmp / "loop.yaml").write_text("lr: &a [0.1, *a]\n")
    (tmp / "binary.yaml").write_bytes(b"lr: \xff\xfe\x00\x81\n")
    (tmp / "big.yaml").write_text("# padding\n" * 200_000)
    (tmp / "list.yaml").write_text("- lr\n- 0.1\n")
    (tmp / "tag.yaml").write_text("lr: !!python/object/apply:os.system ['touch PWNED']\n")
    (tmp / "file").write_text("not a folder\n")
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "bnlab.db").write_bytes(os.urandom(50_000))
    (tmp / "damaged").mkdir()
    shutil.copy(reference_db, tmp / "damaged" / "bnlab.db")
    with open(tmp / "damaged" / "bnlab.db", "r+b") as handle:  # one page of garbage
        handle.seek(4096 * 3)
        handle.write(b"\xff" * 4096)
    (tmp / "db").mkdir()
    shutil.copy(reference_db, tmp / "db" / "bnlab.db")
    return tmp


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory):
    from bnlab.results import Store

    out = tmp_path_factory.mktemp("tiny-store")
    with Store(out) as store:
        for i in range(60):  # enough pages that page 4 holds rows
            rid = store.register_run(f"k{i}", R, {"lr": 0.1, "pad": "x" * 500}, i)
            store.log_metrics(rid, [(s, "loss", 1.0 / (1 + s)) for s in range(20)])
            store.finish_run(rid, "finished")
    return out / "bnlab.db"  # closing the last connection moved the WAL into the file


def _fill(arg: str, places: Path, out: Path) -> str:
    return arg.format(tmp=places, file=places / "file", corrupt=places / "corrupt",
                      damaged=places / "damaged", db=places / "db", out=out)


@pytest.mark.parametrize(("argv", "code", "needle"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_the_right_exit_status(argv, code, needle, places,
                                                          tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out lands here
    argv = [_fill(a, places, tmp_path / "out") for a in argv]
    if argv[0] in ("run", "reproduce") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if argv[0] in ("run", "reproduce"):
        argv.append("--no-progress")
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse
        got = exc.code
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert len(err.splitlines()) == 1 and len(err) < 300, err
    assert "Traceback" not in err and needle in err, err
    assert not (tmp_path / "out" / "bnlab.db").exists()  # nothing ran
    assert not (tmp_path / "PWNED").exists()


def test_bad_input_table_covers_the_issue_list():
    """Each case of issue 17's items 4 and 5 is in the table above (by id)."""
    ids = {c[0] for c in CASES}
    for needed in ("steps-negative", "batch-zero", "pct-batch-negative", "lrs-empty",
                   "norms-empty", "demo-steps-negative", "seeds-past-int64", "seeds-huge-count",
                   "config-dev-zero", "workers-zero", "out-is-a-file", "out-under-a-file",
                   "export-no-database", "export-dest-file", "run-corrupt-database",
                   "config-alias-bomb"):
        assert needed in ids


def test_failed_runs_exit_1_and_are_listed(tmp_path, capsys, cache, monkeypatch):
    """A sweep whose runs fail (batches larger than the data) says so; no longer exit 0."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    code = main(["run", R, "--scale", "smoke", "--set", "batch_size=100000", "--out",
                 str(tmp_path), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1, lines
    assert "2 run(s) did not finish" in lines[0] and "bnlab status" in lines[0]
    assert len(lines) == 3 and all("batch_size" in ln for ln in lines[1:]), lines
    assert all(len(ln) < 300 and "Traceback" not in ln for ln in lines)


_AS_NOBODY = """
import os, sys
import bnlab.cli, bnlab.experiments, bnlab.results, bnlab.report  # imported while root
if os.getuid() == 0:  # root ignores permissions: drop to nobody once everything is loaded
    os.setgid(65534)
    os.setuid(65534)
sys.exit(bnlab.cli.main(sys.argv[1:]))
"""


@pytest.fixture
def public_tmp():
    """A folder that user nobody can reach (pytest's own tmp is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="bnlab-ro-"))
    folder.chmod(0o755)
    yield folder
    for p in (folder, *folder.rglob("*")):
        p.chmod(0o755) if p.is_dir() else None
    shutil.rmtree(folder)


def _as_nobody(args, cache):
    env = {**env_for(cache), "HOME": "/nonexistent"}
    return subprocess.run([sys.executable, "-c", _AS_NOBODY, *args], env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_read_only_output_folder_is_one_line_exit_1(public_tmp, cache):
    out = public_tmp / "ro"
    out.mkdir()
    out.chmod(0o555)
    res = _as_nobody([*SWEEP, "--out", str(out)], cache)
    err = res.stderr.strip()
    assert res.returncode == 1, err
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    assert str(out) in err and "writable" in err, err


def test_unreadable_database_for_status_is_one_line(public_tmp, cache, reference_db):
    shutil.copy(reference_db, public_tmp / "bnlab.db")
    public_tmp.chmod(0o555)
    res = _as_nobody(["status", "--out", str(public_tmp)], cache)
    err = res.stderr.strip()
    assert res.returncode in (0, 1), err  # SQLite may read it; if not, one line
    assert "Traceback" not in err and len(err.splitlines()) <= 1, err


def test_sigterm_is_handled_like_ctrl_c(tmp_path, cache):
    proc = subprocess.Popen([sys.executable, "-m", "bnlab", "demo", "--steps", "1000000"],
                            env=env_for(cache), stderr=subprocess.PIPE, text=True)
    import time

    time.sleep(3)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err


def test_a_locked_store_is_one_line(tmp_path, capsys):
    con = sqlite3.connect(tmp_path / "bnlab.db")
    con.execute("CREATE TABLE foreign_table (x)")
    con.commit()
    con.close()
    code = main(["status", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not written by bnlab" in err and len(err.splitlines()) == 1, err
