"""The coordinator's death ends its workers, and a Ctrl-C in a run's first seconds ends it at once.

Before: after ``kill -9`` of the coordinator its workers went on generating load until the
scheduled end (re-parented to PID 1); a Ctrl-C while workers still waited for "start" sat out a
10 s join per worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.cli_support import ROOT

pytestmark = pytest.mark.slow

ORPHAN_LIMIT_S = 2.0  # the bound: no worker outlives its coordinator by more
STOP_LIMIT_S = 6.0  # a Ctrl-C before the load started (it took 12 s; it needs ~1.5 s)


def _start(tmp_path: Path, command: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", command, *args, "--no-report", "-o", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a stray signal from the test never reaches pytest
    )  # fmt: skip


def _workers(coordinator: int) -> list[psutil.Process]:
    """The coordinator's spawned worker processes (not multiprocessing's resource tracker)."""
    found = []
    with _suppress():
        for child in psutil.Process(coordinator).children():
            with _suppress():
                if "spawn_main" in " ".join(child.cmdline()):
                    found.append(child)
    return found


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, psutil.Error)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail("the run never reached the moment to act")


def _csv_rows(tmp_path: Path) -> int:
    return sum(len(p.read_text().splitlines()) - 1 for p in tmp_path.glob("*/*/timeseries.csv"))


def _seconds_until_gone(workers: list[psutil.Process], limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s + 3:
        if not any(_alive(w) for w in workers):
            return time.monotonic() - started
        time.sleep(0.02)
    survivors = [w.pid for w in workers if _alive(w)]
    for pid in survivors:  # leave nothing behind, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    pytest.fail(f"workers {survivors} outlived their coordinator by more than {limit_s + 3:.0f} s")


@pytest.mark.parametrize("moment", ["setting up", "generating load"])
def test_no_worker_outlives_a_killed_coordinator(tmp_path, moment):
    process = _start(
        tmp_path, "run", "scenarios/quickstart.toml", "--set", "scenario.duration=60s",
        "--set", "workload.workers=2",
    )  # fmt: skip
    try:
        _wait_until(lambda: len(_workers(process.pid)) == 2)
        if moment == "generating load":
            _wait_until(lambda: _csv_rows(tmp_path) >= 2)
        workers = _workers(process.pid)
        assert all(_alive(w) for w in workers)
        process.kill()
        process.wait(timeout=10)
        gone_after = _seconds_until_gone(workers, ORPHAN_LIMIT_S)
        assert gone_after <= ORPHAN_LIMIT_S, (
            f"a worker outlived the coordinator by {gone_after:.1f} s"
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("command", ["run", "find-max"])
def test_a_ctrl_c_while_workers_wait_for_the_start_ends_the_run_at_once(tmp_path, command):
    args = (
        ["scenarios/quickstart.toml", "--set", "scenario.duration=30s"]
        if command == "run"
        else ["scenarios/quickstart.toml", "--set", "scenario.duration=5s"]
    )
    process = _start(tmp_path, command, *args)
    try:
        _wait_until(lambda: len(_workers(process.pid)) >= 1)
        workers = _workers(process.pid)
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - interrupted_at
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert took <= STOP_LIMIT_S, f"the Ctrl-C took {took:.1f} s to end the {command}"
        assert not any(_alive(w) for w in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
