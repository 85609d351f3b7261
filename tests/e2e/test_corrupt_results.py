"""Corrupt results files in the commands whose loading lives outside bench/report (issue 14):
``bench show`` (bench/cli.py reads the run with bench.store.load_run) and a binary ``.hlog``
in ``bench report`` (bench/metrics/hlog.py reads it as UTF-8 text).

Each must be one line naming the file and field, exit 2. Until the two changes below are made
these are strict expected failures, so a fix that lands turns them into passes that must be
unmarked:
- bench/cli.py ``show``: load with ``bench.report.tables.load_results`` (checks each field)
  instead of ``bench.store.load_run``;
- bench/metrics/hlog.py ``read_all``: ``except UnicodeDecodeError`` beside ``OSError``, raising
  ``ResultsError(f"{path}: not a text file (not UTF-8)")``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.bad_input_support import CORRUPT_RESULTS, Case, materialise, results_files
from tests.cli_support import run_bench_captured

CASES = [
    pytest.param(Case(f"show: {name}", files, ["show", "{tmp}/run"], needles))
    for name, files, needles in CORRUPT_RESULTS
] + [
    pytest.param(
        Case(
            "report: a binary .hlog",
            {**results_files(), "run/p/e2e.hlog": bytes(range(256)) * 16},
            ["report", "{tmp}/run", "-o", "{tmp}/out"],
            ("p/e2e.hlog", "not a text file"),
        ),
    )
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_corrupt_results_file_is_one_line_exit_2(case, tmp_path, capsys):
    argv = materialise(case, tmp_path)
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), err
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert len(lines) <= 2


# --------------------------------------------------------------- runs left "running" (issue 14)
# A coordinator killed mid-run (kill -9, a crash) leaves a valid manifest that says "running".
# It is not a damaged file: show and report read it, say the run was cut off (never running,
# never ok) and show the points it completed. The slow test with a real kill -9 is in
# tests/e2e/test_results_lifecycle.py.


def _left_running(tmp_path, coordinator: dict | None) -> Path:
    manifest = {
        "status": "running",
        "points": [{"dir": "p", "target": "m"}, {"dir": "q", "target": "m"}],
    }
    if coordinator is not None:
        manifest["coordinator"] = coordinator
    for name, content in results_files(manifest=manifest).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path / "run"


def _gone() -> dict:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: no process has this pid now (pids are not reused at once)
    return {"pid": process.pid, "host": socket.gethostname(), "process_started_at": None}


def test_a_run_left_running_by_a_killed_coordinator_shows_as_cut_off(tmp_path, capsys):
    run_dir = _left_running(tmp_path, _gone())
    code, out, err = run_bench_captured(["show", str(run_dir)], capsys)
    assert code == 0, err
    assert "(r, cut off)" in out and "running" not in out
    assert "the run is cut off" in err and "is gone" in err
    assert "1 of 2 points completed; without a summary: q" in err


def test_a_report_of_a_cut_off_run_is_never_a_pass(tmp_path, capsys):
    run_dir = _left_running(tmp_path, _gone())
    code, out, err = run_bench_captured(
        ["report", str(run_dir), "-o", str(tmp_path / "out")], capsys
    )
    assert code == 0, err
    assert "the run is cut off" in out
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<th>status</th><td>cut off (" in page
    assert 'class="banner pass"' not in page and "Incomplete" in page


def test_a_run_whose_coordinator_still_lives_shows_as_running(tmp_path, capsys):
    me = psutil.Process()
    alive = {"pid": me.pid, "host": socket.gethostname(), "process_started_at": me.create_time()}
    code, out, err = run_bench_captured(["show", str(_left_running(tmp_path, alive))], capsys)
    assert code == 0, err
    assert "(r, running)" in out and "is still running" in err


@pytest.mark.parametrize(
    "coordinator",
    [None, {"pid": 1, "host": "another-host", "process_started_at": None}],
    ids=["no coordinator recorded", "another host"],
)
def test_a_run_left_running_that_nobody_here_can_ask_about_is_unfinished(
    tmp_path, capsys, coordinator
):
    code, out, err = run_bench_captured(["show", str(_left_running(tmp_path, coordinator))], capsys)
    assert code == 0, err
    assert "(r, unfinished)" in out and "the run is unfinished" in err
