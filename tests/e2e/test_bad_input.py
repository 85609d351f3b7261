"""The bad-input corpus: every malformed input a user can hand the bench command gives one
clear line (what file or option, which field, what is wrong), a non-zero exit code, and no
traceback; and nothing already written is lost.

The cases run the real CLI entry point in-process (``bench.cli.main``), which is what the
``bench`` script calls, so the corpus stays fast enough to run with the quick tests. The
corpus itself is in tests/bad_input_support.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.bad_input_support import (
    CORPUS,
    GOOD,
    NATS_BAD_PORT,
    PLANTED,
    RMQ_BAD_PORT,
    materialise,
    scenario_with,
)
from tests.cli_support import run_bench_captured


def test_the_corpus_has_at_least_forty_inputs():
    assert len(CORPUS) >= 40
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(case, tmp_path, capsys):
    argv = materialise(case, tmp_path)
    code, out, err = run_bench_captured(argv, capsys)
    assert code == case.code, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, out
    first = lines[0]
    assert first.startswith("error:"), err
    for needle in case.needles:
        assert needle in first, (needle, first)
    # One line of error, at most one line of hint.
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].lstrip().startswith("hint:")), err


def test_bad_input_never_loses_results_already_written(tmp_path, capsys):
    # A good run first, then a bad one into the same results directory.
    (tmp_path / "s.toml").write_text(GOOD)
    code, _, _ = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "-q"], capsys
    )
    assert code == 0
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "r").rglob("*"))
    (tmp_path / "bad.toml").write_text(scenario_with("rate = 100", "rate = -1"))
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "workload.rate" in err
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "r").rglob("*"))
    assert after == before
    run_dir = next((tmp_path / "r").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "ok"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_results_directory_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    (tmp_path / "s.toml").write_text(GOOD)
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(locked / "r")], capsys
    )
    assert code == 2 and "cannot create the results directory" in err


def _matrix_scenario(tmp_path: Path, rates: int, aggregates: int) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(
        GOOD
        + f'\n[matrix]\n"workload.rate" = {list(range(1, rates + 1))}\n'
        + f'"workload.aggregates" = {list(range(1, aggregates + 1))}\n'
    )
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["validate", "run", "find-max", "sweep"])
def test_a_matrix_over_the_point_limit_is_refused_at_once_in_one_line(command, tmp_path, capsys):
    # Issue 14: a 10^6-point matrix never answered (each point was validated, at 12 ms a point).
    path = _matrix_scenario(tmp_path, 1000, 1000)
    argv = [command, str(path)] + ([] if command == "validate" else ["-o", str(tmp_path / "r")])
    code, _, err = run_bench_captured(argv, capsys)
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {path}: matrix: 1,000,000 points (1 target(s) x 1000 x 1000 values) is more "
        "than the limit of 10,000: pass --allow-large-matrix (or --max-points N) to expand it"
    )
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_matrix_point_limit_is_an_option_of_validate(tmp_path, capsys):
    path = _matrix_scenario(tmp_path, 10, 30)  # 300 points
    code, _, err = run_bench_captured(["validate", str(path), "--max-points", "299"], capsys)
    assert code == 2 and "matrix: 300 points" in err and "limit of 299" in err
    for extra in (["--max-points", "300"], ["--max-points", "5", "--allow-large-matrix"], []):
        code, out, err = run_bench_captured(["validate", str(path), *extra], capsys)
        assert code == 0, err
        assert f"ok {path}: 1 target(s), 300 point(s)" in out.splitlines()[0]


@pytest.mark.parametrize("text", [RMQ_BAD_PORT, NATS_BAD_PORT], ids=["rabbitmq", "nats"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_malformed_broker_url_never_shows_its_password(text, command, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(text)
    argv = [command, str(tmp_path / "s.toml")]
    argv += ["-o", str(tmp_path / "r"), "--no-report"] if command == "run" else []
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 2, (out, err)  # was 0 for validate, and 70 (an internal error) for run
    assert PLANTED not in out + err
    assert not (tmp_path / "r").exists()


def test_durations_are_shown_back_as_written(tmp_path, capsys):
    # "1.2345678s" was recorded as "1234.57ms" in manifest.json.
    (tmp_path / "s.toml").write_text(scenario_with('duration = "1s"', 'duration = "1.2345678s"'))
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "--no-report", "-q"], capsys
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "r").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["scenario"]["duration"] == "1.2345678s"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_rate_whose_window_holds_no_event_is_a_warning_not_an_error(command, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(scenario_with("rate = 100", "rate = 0.5"))
    argv = [command, str(tmp_path / "s.toml")]
    argv += ["-o", str(tmp_path / "r"), "--no-report", "-q"] if command == "run" else []
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 0, (out, err)
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "workload.rate = 0.5/s" in warnings[0] and "1s" in warnings[0], warnings
    assert "no event" in warnings[0]
