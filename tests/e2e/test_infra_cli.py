"""`bench up`, `bench status`, `bench down` as a user types them (Tansu on a private port)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_up_status_down_for_kafka_end_to_end(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "BENCH_STATE_DIR": str(tmp_path / "state"),
        "BENCH_KAFKA_PORT": str(port),
        "COLUMNS": "200",
    }
    up = bench(env, "up", "kafka")
    assert up.returncode == 0, up.stderr
    assert "running" in up.stdout and "Tansu" in up.stdout and str(port) in up.stdout
    status = bench(env, "status", "kafka")
    assert status.returncode == 0 and "running (bench)" in status.stdout
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    down = bench(env, "down", "kafka")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert bench(env, "status", "kafka").stdout.count("stopped") >= 1
    assert not (tmp_path / "state" / "kafka").exists()


def test_down_never_stops_a_service_bench_did_not_start(tmp_path):
    env = {**os.environ, "BENCH_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    result = bench(env, "down", "nats")
    assert result.returncode == 0
    with socket.create_connection(("127.0.0.1", 4222), timeout=5):
        pass  # the machine's NATS still answers


def test_an_unknown_service_is_a_clear_error(tmp_path):
    result = bench(dict(os.environ), "up", "zookeeper")
    assert result.returncode == 2 and "unknown service" in result.stderr
    assert "Traceback" not in result.stderr
