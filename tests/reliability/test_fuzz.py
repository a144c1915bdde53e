"""Fuzzing the command line with hypothesis: ``--set`` strings, YAML config files, whole
argument lists and seed lists.

Every input either is accepted (exit 0: the sweep is planned and every run's config
rebuilds and validates) or is refused with exit status 2 and one line under 300
characters: no traceback, no hang. The work after validation is replaced by fakes
(training, the demo, the report), so each case takes milliseconds; a case that still runs
longer than :data:`CASE_LIMIT_S` fails as a hang. ``test_accepted_inputs_really_run``
then trains a few accepted inputs for real at tiny sizes.

CI runs 60 examples per strategy; ``pytest --long`` 1,000.
"""

from __future__ import annotations

import contextlib
import signal
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bnlab.experiments.demo as demo_module
import bnlab.experiments.runner as runner_module
import bnlab.report as report_module
from bnlab.cli import main
from bnlab.experiments import get_recipe
from bnlab.sweep import SweepSummary

R = "ioffe2015.mnist"
CASE_LIMIT_S = 20
FIELDS = sorted(get_recipe(R).config_type.__dataclass_fields__)
LABELS = ["scale", "data", "seed", "device"]


def _examples(request: pytest.FixtureRequest) -> int:
    return 1000 if request.config.getoption("--long") else 60


class Hang(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"a case ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fake_execute(specs, out, run_fn, **kw):
    """Instead of training: every run's stored config must rebuild into a valid config."""
    specs = list(specs)
    for spec in specs:
        get_recipe(spec.recipe).config_of(spec.config)
        assert 0 <= spec.seed < 2**63
    summary = SweepSummary(total=len(specs), executed=len(specs))
    summary.counts["finished"] = len(specs)
    return summary


@pytest.fixture
def fast_cli(monkeypatch, tmp_path):
    """``main`` with training, the demo and the report faked; returns (exit, stderr)."""
    monkeypatch.setattr(runner_module, "execute", _fake_execute)
    monkeypatch.setattr(demo_module, "run_demo", lambda steps, **kw: [])
    monkeypatch.setattr(report_module, "write_report", lambda out, **kw: Path(out) / "r.html")
    monkeypatch.chdir(tmp_path)

    def call(argv: list[str], capsys) -> tuple[int, str]:
        capsys.readouterr()
        with _time_limit(CASE_LIMIT_S):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse, --help
                code = exc.code if isinstance(exc.code, int) else 2
        return code, capsys.readouterr().err.strip()

    return call


def _check(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len(err.splitlines()) == 1 and len(err) < 300, (argv, err)


def _run(out: Path, *more: str) -> list[str]:
    return ["run", R, "--scale", "smoke", "--out", str(out), "--no-progress", *more]


# -- strategies ---------------------------------------------------------------------------------

numbers = st.one_of(st.integers(-10**30, 10**30).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["1e3", "0x10", "1_000", " 7 ", "-0", "+5", "1e-400",
                                     "9" * 5000, "٣", "nan", "-inf"]))
values = st.one_of(numbers, st.text(max_size=40),
                   st.lists(numbers, max_size=5).map(",".join),
                   st.lists(numbers, max_size=5).map(lambda v: "[" + ", ".join(v) + "]"),
                   st.sampled_from(["bn", "none", "ln", "true", "null", "[[[[", "{a: 1}", "",
                                    "&a [*a]", "!!python/object:os.system x"]))
keys = st.one_of(st.sampled_from(FIELDS + LABELS), st.text(max_size=30),
                 st.sampled_from(FIELDS).map(lambda k: k + ".x"))
set_strings = st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, values), st.text(max_size=60))

yaml_scalars = st.one_of(st.integers(-10**20, 10**20), st.floats(), st.booleans(), st.none(),
                         st.text(max_size=20))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12)
yaml_docs = st.one_of(
    st.dictionaries(keys, yaml_values, max_size=4).map(lambda d: yaml.safe_dump(d)),
    yaml_values.map(lambda v: yaml.safe_dump(v)),
    st.text(max_size=200),
    st.builds(lambda k, n, depth: f"{k}: &a [1]\n" + "".join(
        f"x{i}: &{'b' * (i + 1)} [{', '.join(['*' + ('b' * i or 'a')] * n)}]\n"
        for i in range(depth)), st.sampled_from(FIELDS), st.integers(1, 12), st.integers(0, 9)),
)

FLAGS = ["--scale", "--data", "--data-dir", "--seeds", "--set", "--config", "--executor",
         "--device", "--workers", "--retry-failed", "--no-progress", "--format", "--dest",
         "--steps", "--summary", "--help", "-h", "--"]
WORDS = ["run", "reproduce", "status", "export", "report", "demo", "list", R, "smoke",
         "quick", "paper", "mnist1d", "serial", "process", "cpu", "auto", "cuda", "csv",
         "parquet", "0", "1", "-1", "3", "lr=0.1", "steps=-5", "norm=bn", "out", ".", ""]
arg_lists = st.lists(st.one_of(st.sampled_from(FLAGS + WORDS), st.text(max_size=15)),
                     min_size=0, max_size=8)

seed_items = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(
    ["", " ", "1.0", "1e3", "0x1", "٣", "--1", "+3", "9" * 5000, "10001", "9223372036854775807",
     "9223372036854775808"]))
seed_lists = st.one_of(st.lists(seed_items, max_size=6).map(",".join), st.text(max_size=30))

FUZZ = settings(database=None, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# -- the fuzz tests -----------------------------------------------------------------------------


def test_fuzz_set_strings(fast_cli, capsys, tmp_path, request):
    @settings(FUZZ, max_examples=_examples(request))
    @given(st.lists(set_strings, min_size=1, max_size=3))
    def case(sets):
        argv = _run(tmp_path / "out", *(f"--set={s}" for s in sets))
        _check(*fast_cli(argv, capsys), argv)

    case()


def test_fuzz_yaml_documents(fast_cli, capsys, tmp_path, request):
    path = tmp_path / "fuzz.yaml"

    @settings(FUZZ, max_examples=_examples(request))
    @given(yaml_docs)
    def case(doc):
        path.write_text(doc, encoding="utf-8", errors="surrogatepass")
        argv = _run(tmp_path / "out", "--config", str(path))
        _check(*fast_cli(argv, capsys), [doc[:200]])

    case()


def test_fuzz_argument_lists(fast_cli, capsys, request):
    @settings(FUZZ, max_examples=_examples(request))
    @given(arg_lists)
    def case(argv):
        code, err = fast_cli(argv, capsys)
        _check(code, err, argv)

    case()


def test_fuzz_seed_lists(fast_cli, capsys, tmp_path, request):
    @settings(FUZZ, max_examples=_examples(request))
    @given(seed_lists)
    def case(seeds):
        argv = _run(tmp_path / "out", f"--seeds={seeds}")
        _check(*fast_cli(argv, capsys), argv)

    case()


@pytest.mark.parametrize("text", ["", "\x00", "\ud800", "a" * 300, "=" * 5, string.printable])
def test_odd_text_anywhere_is_one_line(fast_cli, capsys, tmp_path, text):
    for argv in (_run(tmp_path / "o", f"--set={text}"), _run(tmp_path / "o", f"--seeds={text}"),
                 ["run", text], ["export", "--format", text, "--dest", "d"], [text]):
        _check(*fast_cli(argv, capsys), argv)


@pytest.mark.slow
@pytest.mark.parametrize("sets", [
    ["steps=3", "lr=0.1,1e-3", "norm=none"],
    ["steps=2", "widths=7", "pct_units=1", "pct_batch=2", "hist_bins=1", "binarize=1"],
    ["steps=4", "log_every=1", "eval_every=1", "pct_every=1", "checkpoint_every=1"],
    ["steps=2", "batch_size=4000", "threads=2", "init_std=1e-30"],
], ids=["two-lrs", "tiny-everything", "every-period-1", "huge-batch"])
def test_accepted_inputs_really_run(sets, tmp_path, capsys, monkeypatch, cache):
    """Accepted values at the edges of their ranges train for real (tiny steps)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    argv = _run(tmp_path / "out", *(f"--set={s}" for s in sets))
    with _time_limit(300):
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
