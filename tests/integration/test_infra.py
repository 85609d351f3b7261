"""``bench.infra`` against real services: a Tansu started per test, the others reused."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psutil
import pytest

from bench import infra
from bench.errors import InfraError
from tests.integration.server_support import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def free_kafka_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A port nobody listens on, so the test starts its own Tansu beside any other broker."""
    port = free_port()
    monkeypatch.setenv("BENCH_KAFKA_PORT", str(port))
    return port


async def _round_trip(bootstrap: str, topic: str, payload: bytes) -> bytes:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, payload, key=b"k"), 15)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        record = await asyncio.wait_for(consumer.getone(), 15)
    finally:
        await consumer.stop()
    assert record.value is not None
    return record.value


def test_kafka_up_starts_tansu_that_round_trips_a_message_and_down_cleans_up(
    tmp_path: Path, free_kafka_port: int
) -> None:
    started = infra.up("kafka", tmp_path, timeout_s=30)

    assert started.running and started.managed
    assert started.endpoint == f"127.0.0.1:{free_kafka_port}"
    assert started.product == "Tansu (Kafka protocol)"
    assert started.version and started.version[0].isdigit()
    assert started.detail.startswith("started pid ")
    pid = int((tmp_path / "kafka" / "server.pid").read_text())
    assert Path(psutil.Process(pid).exe()).name == "tansu"

    now = infra.status("kafka", tmp_path)
    assert now.running and now.managed

    echoed = asyncio.run(_round_trip(started.endpoint, "infra-round-trip", b"hello tansu"))
    assert echoed == b"hello tansu"

    stopped = infra.down("kafka", tmp_path)
    assert not stopped.running and not stopped.managed
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "kafka").exists()
    assert not infra.status("kafka", tmp_path).running


def test_restart_replaces_the_tansu_process_and_keeps_it_answering(
    tmp_path: Path, free_kafka_port: int
) -> None:
    first = infra.up("kafka", tmp_path, timeout_s=30)
    first_pid = int((tmp_path / "kafka" / "server.pid").read_text())
    try:
        again = infra.restart("kafka", tmp_path, timeout_s=30)
        second_pid = int((tmp_path / "kafka" / "server.pid").read_text())
        assert first.managed and again.running and again.managed
        assert second_pid != first_pid
        assert not psutil.pid_exists(first_pid) or (
            psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
        )
    finally:
        infra.down("kafka", tmp_path)
    assert not (tmp_path / "kafka").exists()


def test_up_twice_reports_the_running_managed_broker_without_starting_another(
    tmp_path: Path, free_kafka_port: int
) -> None:
    infra.up("kafka", tmp_path, timeout_s=30)
    try:
        pid = (tmp_path / "kafka" / "server.pid").read_text()
        again = infra.up("kafka", tmp_path, timeout_s=30)
        assert again.running and again.managed
        assert (tmp_path / "kafka" / "server.pid").read_text() == pid
    finally:
        infra.down("kafka", tmp_path)


def test_kafka_port_held_by_another_protocol_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        monkeypatch.setenv("BENCH_KAFKA_PORT", str(squatter.getsockname()[1]))
        with pytest.raises(InfraError, match="is in use, but does not answer as kafka"):
            infra.up("kafka", tmp_path, timeout_s=10)
    assert not (tmp_path / "kafka" / "service.json").exists()


@pytest.mark.parametrize(
    ("name", "fixture", "product"),
    [
        ("nats", "nats_url", "NATS Server"),
        ("rabbitmq", "rabbitmq_url", "RabbitMQ"),
        ("postgres", "postgres_dsn", "PostgreSQL"),
    ],
)
def test_a_running_service_is_reused_and_down_leaves_it_running(
    tmp_path: Path, request: pytest.FixtureRequest, name: str, fixture: str, product: str
) -> None:
    request.getfixturevalue(fixture)  # the service answers, whoever started it

    reused = infra.up(name, tmp_path, timeout_s=30)
    assert reused.running and not reused.managed
    assert reused.product == product
    assert reused.version and reused.version[0].isdigit()
    assert reused.detail.startswith("reused (already running)")
    assert "@" not in reused.endpoint  # no credentials in what gets printed

    left = infra.down(name, tmp_path)
    assert left.running and not left.managed
    assert left.detail == "left running (not started by eventbench)"
    assert infra.status(name, tmp_path).running


def test_nats_status_says_whether_jetstream_is_enabled(nats_url: str) -> None:
    assert "JetStream enabled" in infra.status("nats").detail


def test_an_unknown_service_name_is_an_infra_error() -> None:
    with pytest.raises(InfraError, match="unknown service 'zookeeper'"):
        infra.status("zookeeper")
