"""Fixtures for tests that talk to real services.

Each fixture makes sure its service answers (starting it through ``bench.infra`` when it
can) and returns the address a client connects to. A service that this session had to
start is stopped again at the end of the session; one that was already running is left
alone. Every test collected under ``tests/integration`` gets the ``integration`` marker.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import infra
from bench.errors import InfraError
from tests.integration.server_support import free_port

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


def _ensure(name: str) -> Iterator[str]:
    was_running = infra.status(name).running
    try:
        infra.up(name)
    except InfraError as exc:
        # One readable line per failed service instead of an infra traceback in every test.
        hint = f" ({exc.hint})" if exc.hint else ""
        pytest.fail(f"{name} is not available: {exc.message}{hint}", pytrace=False)
    yield infra.connection_url(name)
    # Only a service this session started is stopped, so a broker a developer brought up
    # with `bench up` (or the machine's own) outlives the test run.
    if not was_running and infra.status(name).managed:
        infra.down(name)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a Kafka-protocol broker, e.g. ``127.0.0.1:9092`` (Tansu here)."""
    yield from _ensure("kafka")


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """AMQP URL with credentials, e.g. ``amqp://guest:guest@127.0.0.1:5672/``."""
    yield from _ensure("rabbitmq")


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """NATS URL of a server with JetStream, e.g. ``nats://127.0.0.1:4222``."""
    yield from _ensure("nats")


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """PostgreSQL DSN, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres`` (trust auth)."""
    yield from _ensure("postgres")


@pytest.fixture
def broker_target(request: pytest.FixtureRequest) -> dict:
    """A stream target's options for the broker named by indirect parametrization
    (``kafka``, ``nats`` or ``rabbitmq``), on the services the session ensured."""
    return broker_options(request, request.param)


def broker_options(request: pytest.FixtureRequest, name: str) -> dict:
    """The options of a stream target on ``name`` (kafka, nats or rabbitmq), on the services
    the session ensured."""
    if name == "kafka":
        return {
            "driver": "kafka",
            "bootstrap_servers": request.getfixturevalue("kafka_bootstrap"),
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 6000,
        }
    if name == "nats":
        return {"driver": "nats", "servers": [request.getfixturevalue("nats_url")]}
    return {"driver": "rabbitmq", "url": request.getfixturevalue("rabbitmq_url")}


NATS_SERVER = "/usr/sbin/nats-server"


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A JetStream server of this test's own (never the shared one on 4222): its client port
    and its monitoring port."""
    port, monitor = free_port(), free_port()
    server = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js",
         "-sd", str(tmp_path / "store")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the private NATS server did not start")
                time.sleep(0.05)
        yield port, monitor
    finally:
        server.terminate()
        server.wait(timeout=10)
