"""TLS (with a client certificate) and a planted password against a private RabbitMQ node.

The test starts its own node beside the system one (its own node name, distribution port,
config, data and log directories under a temporary directory) that listens only with TLS, on
a free loopback port, with a certificate signed by a CA the test makes and ``verify_peer``:
a client must show a certificate from that CA as well. The node's only user is defined at
boot with a password the test plants. A stream scenario runs through the real ``bench`` CLI
over ``amqps`` with the driver's ``tls`` table; an untrusted CA, a missing client
certificate and a wrong password each end in one ``error:`` line and exit 1, and the planted
password never reaches the terminal (``--debug`` included) or the results.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import bench, only_run
from tests.integration.server_support import (
    free_port,
    leaks,
    make_ca,
    make_cert,
    one_error,
    stray_lines,
)

SECRET = "Rmq-Pl4nted-31b7"
WRONG = "Wr0ng-Pl4nted-9d04"
USER = "bench"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

SERVER = shutil.which("rabbitmq-server")
CTL = shutil.which("rabbitmqctl")


def _node_owner() -> tuple[int, int] | None:
    """Who the node's files must belong to: Debian's scripts run it as ``rabbitmq``."""
    try:
        entry = pwd.getpwnam("rabbitmq")
    except KeyError:
        return (os.getuid(), os.getgid()) if os.geteuid() != 0 else None
    if os.geteuid() not in (0, entry.pw_uid):
        return None
    return entry.pw_uid, entry.pw_gid


OWNER = _node_owner()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        SERVER is None or CTL is None, reason="rabbitmq-server / rabbitmqctl are not installed"
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
    pytest.mark.skipif(OWNER is None, reason="needs root or the rabbitmq user to start a node"),
]


def _password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path

    def url(self, password: str = SECRET) -> str:
        return f"amqps://{USER}:{password}@127.0.0.1:{self.port}/"


def _stop(node: str, pid_file: Path, env: dict[str, str]) -> None:
    """rabbitmqctl stop (it waits for the pid in the file to exit), bounded; else SIGKILL it."""
    assert CTL is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        done = subprocess.run(
            [CTL, "-n", node, "stop", str(pid_file)],
            env=env, capture_output=True, text=True, timeout=STOP_TIMEOUT_S,
        )  # fmt: skip
        if done.returncode == 0:
            return
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def _log_tail(directory: Path) -> str:
    logs = sorted((directory / "log").glob("*.log"))
    text = "".join(path.read_text(errors="replace")[-3000:] for path in logs)
    return text.replace(SECRET, "***")


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """A TLS-only node with one user (``bench`` / SECRET); stopped and removed at the end."""
    assert SERVER is not None and OWNER is not None
    uid, gid = OWNER
    # Not under pytest's tmp_path, which is private to root: the node runs as rabbitmq.
    directory = Path(tempfile.mkdtemp(prefix="eb-rmq-tls-"))
    directory.chmod(0o755)
    port, dist_port = free_port(), free_port()
    name = f"benchtls{port}@localhost"
    pid_file = directory / "mnesia" / "node.pid"
    env: dict[str, str] = {}
    started = False
    try:
        ca, ca_key = make_ca(directory, "ca")
        other_ca, _ = make_ca(directory, "other-ca")
        cert, key = make_cert(directory, "server", ca, ca_key)
        client_cert, client_key = make_cert(directory, "client", ca, ca_key, client=True)
        for sub in ("mnesia", "log"):
            (directory / sub).mkdir()
            os.chown(directory / sub, uid, gid)
        os.chown(key, uid, gid)
        key.chmod(0o600)
        definitions = directory / "definitions.json"
        definitions.write_text(
            json.dumps(
                {
                    "users": [
                        {
                            "name": USER,
                            "password_hash": _password_hash(SECRET),
                            "hashing_algorithm": "rabbit_password_hashing_sha256",
                            "tags": [],
                        }
                    ],
                    "vhosts": [{"name": "/"}],
                    "permissions": [
                        {"user": USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
                    ],
                }
            )
        )
        config = directory / "rabbitmq.conf"
        config.write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{port}\n"
            f"ssl_options.cacertfile = {ca}\n"
            f"ssl_options.certfile = {cert}\n"
            f"ssl_options.keyfile = {key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            f"load_definitions = {definitions}\n"
            "log.console = false\n"
        )
        plugins = directory / "enabled_plugins"
        plugins.write_text("[].\n")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": name,
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(pid_file),
        }
        started = True
        launched = subprocess.run(
            [SERVER, "-detached"], env=env, capture_output=True, text=True, timeout=30
        )
        assert launched.returncode == 0, launched.stdout + launched.stderr
        # The TLS listener opens once the node has booted (definitions loaded).
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.25)
        else:
            pytest.fail(f"the TLS RabbitMQ node did not listen within {START_TIMEOUT_S:g}s:\n"
                        + _log_tail(directory))  # fmt: skip
        yield Node(name, port, ca, other_ca, client_cert, client_key)
    finally:
        if started:
            _stop(name, pid_file, env)
        shutil.rmtree(directory, ignore_errors=True)


def _tls_table(node: Node, *, cafile: Path | None = None, client: bool = True) -> str:
    lines = [f'cafile = "{cafile or node.ca}"']
    if client:
        lines += [f'certfile = "{node.client_cert}"', f'keyfile = "{node.client_key}"']
    return "\n".join(lines)


def _scenario(tmp_path: Path, name: str, url: str, tls: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[scenario]
name = "{name}"
duration = "2s"
warmup = "500ms"

[workload]
rate = 200
producers = 1
consumers = 1
partitions = 2

[targets.rabbitmq]
driver = "rabbitmq"
url = "{url}"
connect_timeout = "10s"

[targets.rabbitmq.tls]
{tls}
"""
    )
    return path


def _leaks(done: subprocess.CompletedProcess[str], results: Path, *planted: str) -> list[str]:
    return leaks(done, results, *(planted or (SECRET,)))


def test_amqps_with_the_test_ca_and_a_password_from_a_file_is_clean_and_never_leaks(tmp_path, node):
    secret_file = tmp_path / "rabbitmq-url"
    secret_file.write_text(node.url() + "\n")
    path = _scenario(tmp_path, "rmqtls-file", f"${{file:{secret_file}}}", _tls_table(node))
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run(results)
    summary = json.loads(next(run_dir.glob("*/summary.json")).read_text())
    audit = summary["audit"]
    assert summary["status"] == "ok", summary["problems"]
    assert summary["errors"]["total"] == 0, summary["errors"]
    assert audit["sent"] >= 300, audit  # 200/s for 2 s, less what the warm-up takes
    assert audit["sent"] == audit["acked"] == audit["received"], audit
    assert audit["lost"] == 0 and audit["duplicated"] == 0, audit
    info = summary["target_info"]
    assert info["product"] == "RabbitMQ" and info["server"] == f"amqps://127.0.0.1:{node.port}/"
    assert (run_dir / "report.html").exists()
    assert _leaks(done, results) == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["targets"]["rabbitmq"]["url"] == f"${{file:{secret_file}}}"


def test_an_amqp_url_from_the_environment_is_upgraded_by_the_tls_table(tmp_path, node, monkeypatch):
    # amqp:// plus a tls table means amqps:// (the port given stays).
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url().replace("amqps://", "amqp://"))
    path = _scenario(tmp_path, "rmqtls-env", "${env:EB_TEST_RMQ_URL}", _tls_table(node))
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    audit = json.loads(next(only_run(results).glob("*/summary.json")).read_text())["audit"]
    assert audit["sent"] == audit["acked"] == audit["received"] and audit["lost"] == 0, audit
    assert _leaks(done, results) == []


def test_an_untrusted_ca_is_one_line_and_exit_1(tmp_path, node, monkeypatch):
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url())
    path = _scenario(
        tmp_path, "rmqtls-untrusted", "${env:EB_TEST_RMQ_URL}",
        _tls_table(node, cafile=node.other_ca),
    )  # fmt: skip
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = one_error(done)
    assert "certificate" in error.lower() and f"127.0.0.1:{node.port}" in error, error
    assert _leaks(done, results) == []


def test_a_failed_handshake_prints_nothing_but_the_error_line(tmp_path, node, monkeypatch):
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url())
    path = _scenario(
        tmp_path, "rmqtls-quiet", "${env:EB_TEST_RMQ_URL}", _tls_table(node, cafile=node.other_ca)
    )
    done = bench("run", str(path), "-o", str(tmp_path / "results"), "--no-report", timeout=120)
    one_error(done)
    assert stray_lines(done) == []


def test_a_missing_client_certificate_is_one_line_and_exit_1(tmp_path, node, monkeypatch):
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url())
    path = _scenario(
        tmp_path, "rmqtls-nocert", "${env:EB_TEST_RMQ_URL}", _tls_table(node, client=False)
    )
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = one_error(done)
    assert f"127.0.0.1:{node.port}" in error, error
    assert stray_lines(done) == []
    assert _leaks(done, results) == []


def test_a_wrong_password_is_one_line_and_exit_1(tmp_path, node, monkeypatch):
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url(WRONG))
    path = _scenario(tmp_path, "rmqtls-wrong", "${env:EB_TEST_RMQ_URL}", _tls_table(node))
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = one_error(done)
    assert "authentication" in error.lower(), error
    assert stray_lines(done) == []
    assert _leaks(done, results, WRONG, SECRET) == []


def test_debug_output_of_a_refused_connection_holds_no_password(tmp_path, node, monkeypatch):
    monkeypatch.setenv("EB_TEST_RMQ_URL", node.url())
    path = _scenario(
        tmp_path, "rmqtls-debug", "${env:EB_TEST_RMQ_URL}", _tls_table(node, cafile=node.other_ca)
    )
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower(), done.stderr
    assert _leaks(done, results) == []
