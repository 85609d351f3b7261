"""Ctrl-C and SIGTERM at any moment of a run: valid files marked ``interrupted``, every interval
up to that moment kept, exit 130 or 143; a second Ctrl-C leaves at once, files still valid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_support import ROOT

pytestmark = pytest.mark.slow


def _start(tmp_path: Path, *overrides: str) -> subprocess.Popen[str]:
    sets = [arg for override in overrides for arg in ("--set", override)]
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "scenarios/quickstart.toml", *sets,
         "--no-report", "-o", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail("the run never reached the moment to interrupt")


def _run_dir(tmp_path: Path) -> Path | None:
    runs = [p for p in tmp_path.iterdir() if p.is_dir()] if tmp_path.exists() else []
    return runs[0] if runs else None


def _rows(tmp_path: Path) -> list[list[str]]:
    run_dir = _run_dir(tmp_path)
    csvs = list(run_dir.glob("*/timeseries.csv")) if run_dir else []
    if not csvs:
        return []
    return [line.split(",") for line in csvs[0].read_text().splitlines()[1:]]


def _phases(tmp_path: Path) -> list[str]:
    return [row[2] for row in _rows(tmp_path) if len(row) > 2]


def _check_interrupted(tmp_path: Path, process: subprocess.Popen[str], code: int) -> dict:
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    run_dir = _run_dir(tmp_path)
    assert run_dir is not None
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["ended_at"] is not None
    return manifest


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_while_preparing_leaves_a_valid_manifest(tmp_path, sig, code):
    process = _start(tmp_path, "scenario.duration=30s")
    _wait_for(lambda: (r := _run_dir(tmp_path)) is not None and (r / "manifest.json").exists())
    process.send_signal(sig)  # the workers are still starting: no interval yet
    manifest = _check_interrupted(tmp_path, process, code)
    assert manifest["points"][0]["status"] in ("interrupted", "pending")


def test_an_interrupt_during_warmup_keeps_the_warmup_intervals(tmp_path):
    process = _start(tmp_path, "scenario.warmup=30s", "scenario.duration=5s")
    _wait_for(lambda: len(_phases(tmp_path)) >= 2)
    process.send_signal(signal.SIGINT)
    manifest = _check_interrupted(tmp_path, process, 130)
    phases = _phases(tmp_path)
    assert len(phases) >= 2 and set(phases) == {"warmup"}
    summary = json.loads(
        (_run_dir(tmp_path) / manifest["points"][0]["dir"] / "summary.json").read_text()
    )
    assert summary["status"] == "interrupted"


def test_an_interrupt_during_the_drain_keeps_every_interval(tmp_path):
    # The target acknowledges nothing from 2.5 s on, so the drain waits (up to 60 s) for the
    # backlog: interrupt it there.
    process = _start(
        tmp_path,
        "scenario.warmup=1s",
        "scenario.duration=2s",
        "scenario.drain_timeout=60s",
        "targets.memory.stall_at='2500ms'",
        "targets.memory.stall_for='60s'",
    )
    _wait_for(lambda: "drain" in _phases(tmp_path), timeout_s=40)
    process.send_signal(signal.SIGINT)
    manifest = _check_interrupted(tmp_path, process, 130)
    phases = _phases(tmp_path)
    assert {"warmup", "measure", "drain"} <= set(phases)
    summary = json.loads(
        (_run_dir(tmp_path) / manifest["points"][0]["dir"] / "summary.json").read_text()
    )
    assert summary["status"] == "interrupted"
    assert summary["audit"]["sent"] > 0


def test_a_second_interrupt_leaves_at_once_with_valid_files(tmp_path):
    # A drain that would wait a minute: the first Ctrl-C asks for a clean stop, the second
    # must not wait for it.
    process = _start(
        tmp_path,
        "scenario.warmup=1s",
        "scenario.duration=2s",
        "scenario.drain_timeout=60s",
        "targets.memory.stall_at='2500ms'",
        "targets.memory.stall_for='60s'",
    )
    _wait_for(lambda: len(_phases(tmp_path)) >= 3, timeout_s=40)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    run_dir = _run_dir(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())  # valid JSON
    assert manifest["status"] == "interrupted"
    assert _rows(tmp_path)  # the intervals up to that moment


def test_an_interrupt_while_the_report_is_written_marks_the_run_interrupted(tmp_path):
    # Issue 14: Ctrl-C while report.html was written exited 130 while the manifest said "ok".
    # The report step is all or nothing: interrupted, none of it is kept, and the manifest says
    # the run was interrupted (its report too), as the exit code does.
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "scenarios/quickstart.toml",
         "--set", "scenario.duration=2s", "--set", "scenario.warmup=500ms", "-q",
         "-o", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def finished() -> bool:
        run_dir = _run_dir(tmp_path)
        try:
            return json.loads((run_dir / "manifest.json").read_text())["status"] == "ok"
        except (TypeError, OSError, ValueError):
            return False

    _wait_for(finished, timeout_s=60)  # the run is complete: the report is being written
    process.send_signal(signal.SIGINT)
    manifest = _check_interrupted(tmp_path, process, 130)
    assert manifest["report"] == {"status": "interrupted"}
    assert manifest["points"][0]["status"] == "ok"  # the point itself ran to its end
    run_dir = _run_dir(tmp_path)
    assert sorted(p.name for p in run_dir.iterdir()) == [manifest["points"][0]["dir"],
                                                         "manifest.json"]  # fmt: skip
