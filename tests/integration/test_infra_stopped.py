"""A SIGSTOPped broker that ``bench up`` started: ``bench status`` and ``bench up`` resume it.

A pause fault SIGSTOPs the broker; when its coordinator is killed (``kill -9``) nothing
resumes it (issue 14). Each test starts a private NATS on a free port under a temporary
state directory; the machine's shared services are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.server_support import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    """(environment for bench, server pid) of a NATS that bench up started; always brought down."""
    env = {
        **os.environ,
        "BENCH_STATE_DIR": str(tmp_path / "state"),
        "BENCH_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "COLUMNS": "200",
    }
    started = bench(env, "up", "nats")
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "state" / "nats" / "server.pid").read_text())
    try:
        yield env, pid
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).resume()  # teardown never waits on a stopped server
        bench(env, "down", "nats")


def _state(pid: int) -> str:
    return psutil.Process(pid).status()


def test_status_resumes_a_stopped_broker_bench_started_and_says_so(private_nats):
    env, pid = private_nats
    os.kill(pid, signal.SIGSTOP)

    status = bench(env, "status", "nats")

    assert status.returncode == 0, status.stderr
    first = status.stdout.splitlines()[0]
    assert first == (
        f"nats: was stopped (SIGSTOP, not by a running pause fault; pid {pid}); resumed"
    )
    assert "running (bench)" in status.stdout
    assert _state(pid) != psutil.STATUS_STOPPED


def test_up_resumes_a_stopped_broker_instead_of_refusing_it(private_nats):
    env, pid = private_nats
    os.kill(pid, signal.SIGSTOP)

    up = bench(env, "up", "nats")

    assert up.returncode == 0, up.stderr
    assert "does not answer" not in up.stderr
    assert up.stdout.splitlines()[0].endswith(f"pid {pid}); resumed")
    assert "running (bench)" in up.stdout
    assert int(Path(env["BENCH_STATE_DIR"], "nats", "server.pid").read_text()) == pid


PAUSER = """
import sys, time
from bench import infra
infra.ServiceFaults("nats").pause()
print("paused", flush=True)
time.sleep(120)
"""


def test_a_pause_left_by_a_killed_coordinator_is_resumed_but_a_live_one_is_not(private_nats):
    env, pid = private_nats
    pauser = subprocess.Popen(
        [sys.executable, "-c", PAUSER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert pauser.stdout is not None and pauser.stdout.readline() == "paused\n"
        assert _state(pid) == psutil.STATUS_STOPPED

        # While the pause fault's process lives, the pause is deliberate: left alone.
        live = bench(env, "status", "nats")
        assert live.returncode == 0, live.stderr
        assert f"paused (SIGSTOP) by a running pause fault, pid {pauser.pid}" in live.stdout
        assert "resumed" not in live.stdout
        refused = bench(env, "up", "nats")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert f"a pause fault of pid {pauser.pid}, still running" in refused.stderr
        assert _state(pid) == psutil.STATUS_STOPPED
    finally:
        pauser.kill()  # the coordinator's kill -9: nothing resumes the broker
        pauser.wait(10)

    status = bench(env, "status", "nats")

    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == (
        f"nats: was stopped (SIGSTOP, left by an interrupted pause fault; pid {pid}); resumed"
    )
    assert "running (bench)" in status.stdout
    assert not Path(env["BENCH_STATE_DIR"], "nats", "paused.json").exists()


def test_down_stops_a_stopped_broker_at_once(private_nats):
    env, pid = private_nats
    os.kill(pid, signal.SIGSTOP)

    began = time.monotonic()
    down = bench(env, "down", "nats")

    # A stopped server holds SIGTERM pending; without a SIGCONT this took the 30s SIGKILL wait.
    assert down.returncode == 0, down.stderr
    assert time.monotonic() - began < 15
    assert not psutil.pid_exists(pid) or _state(pid) == psutil.STATUS_ZOMBIE
