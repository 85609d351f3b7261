"""TLS with a certificate made by the test, and credentials read from a file or the
environment, against a private NATS server on loopback; the planted password never reaches
the terminal (even with --debug), the results or the logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import infra
from tests.cli_support import bench, only_run
from tests.integration.server_support import free_port, leaks, make_ca, make_cert

SECRET = "Tls-Pl4nted-0c1d"


@pytest.fixture
def tls_nats(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A JetStream server that speaks only TLS and wants user ``bench`` with ``SECRET``.

    Yields its port and the CA (made by the test) that signed its certificate.
    """
    ca, ca_key = make_ca(tmp_path, "ca")
    cert, key = make_cert(tmp_path, "server", ca, ca_key)
    port = free_port()
    server = subprocess.Popen(
        [infra._nats_binary(), "-a", "127.0.0.1", "-p", str(port), "-js",
         "-sd", str(tmp_path / "store"), "--tls", "--tlscert", str(cert), "--tlskey", str(key),
         "--user", "bench", "--pass", SECRET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the TLS NATS server did not start")
        yield port, ca
    finally:
        server.terminate()
        server.wait(timeout=10)


def _scenario(tmp_path: Path, port: int, extra: str) -> Path:
    path = tmp_path / "tls.toml"
    path.write_text(
        f"""
[scenario]
name = "tls"
duration = "2s"
warmup = "500ms"

[workload]
rate = 200
producers = 1
consumers = 1
partitions = 2

[targets.nats]
driver = "nats"
servers = ["tls://127.0.0.1:{port}"]
user = "bench"
connect_timeout = "5s"
{extra}
"""
    )
    return path


def _leaks(done: subprocess.CompletedProcess[str], results: Path) -> list[str]:
    return leaks(done, results, SECRET)


def test_tls_and_a_password_from_a_file_work_and_never_leak(tmp_path, tls_nats):
    port, ca = tls_nats
    secret_file = tmp_path / "nats-password"
    secret_file.write_text(SECRET + "\n")
    path = _scenario(tmp_path, port, f'password = "${{file:{secret_file}}}"\ntls_cafile = "{ca}"')
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run(results)
    summary = next(run_dir.glob("*/summary.json")).read_text()
    assert '"lost": 0' in summary and '"status": "ok"' in summary
    assert (run_dir / "report.html").exists()
    assert _leaks(done, results) == []
    # The scenario as recorded holds neither the value nor where it came from.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["targets"]["nats"]["password"] == "***"


def test_a_password_from_the_environment_works(tmp_path, tls_nats, monkeypatch):
    port, ca = tls_nats
    monkeypatch.setenv("EB_TEST_NATS_PASSWORD", SECRET)
    path = _scenario(
        tmp_path, port, f'password = "${{env:EB_TEST_NATS_PASSWORD}}"\ntls_cafile = "{ca}"'
    )
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _leaks(done, results) == []


def test_an_untrusted_certificate_is_one_line_and_exit_1(tmp_path, tls_nats):
    port, _ = tls_nats
    secret_file = tmp_path / "nats-password"
    secret_file.write_text(SECRET)
    path = _scenario(tmp_path, port, f'password = "${{file:{secret_file}}}"')
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "certificate" in errors[0].lower(), done.stderr
    assert "Traceback" not in done.stderr
    assert _leaks(done, results) == []


def test_an_unset_environment_variable_is_a_scenario_error(tmp_path):
    os.environ.pop("EB_TEST_NATS_UNSET", None)
    path = _scenario(tmp_path, free_port(), 'password = "${env:EB_TEST_NATS_UNSET}"')
    done = bench("validate", str(path))
    assert done.returncode == 2
    first = done.stderr.strip().splitlines()[0]
    assert "targets.nats.password" in first and "EB_TEST_NATS_UNSET is not set" in first
