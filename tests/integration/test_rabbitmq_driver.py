"""The RabbitMQ driver against a real broker: delivery, ordering, confirm window, errors.

Each test uses its own exchange and queues (a unique topology name) and removes them.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time
from typing import Any

import aio_pika
import aiormq.exceptions
import numpy as np
import pytest
from pamqp.commands import Basic
from yarl import URL

from bench.drivers.base import DriverContext, Message
from bench.drivers.rabbitmq import RabbitMQConfig, RabbitMQConsumer, RabbitMQDriver
from bench.drivers.rabbitmq_clients import EnvelopeProperties
from bench.engine.reread import classify_losses
from bench.errors import DriverError
from bench.metrics import audit
from tests.integration.driver_harness import (
    MESSAGES_PER_PRODUCER,
    PRODUCERS,
    Received,
    assert_exactly_once,
    assert_unreachable_fails_fast,
    keyed_messages,
    produce_and_consume,
    run,
    topology,
    with_driver,
)
from tests.integration.reread_support import (
    PER_PRODUCER,
    PHANTOMS,
    phantom_samples,
    run_with_losses,
)

PREFIX = "eb-test-rmq"  # of each test's own topology name


def test_one_consumer_per_queue_gets_every_message_once_in_key_order(rabbitmq_url: str) -> None:
    window = 8
    config = RabbitMQConfig(url=rabbitmq_url, confirms=True, confirm_window=window)
    topo = topology(PREFIX, partitions=2, consumers=2)

    async def body(driver: RabbitMQDriver) -> tuple[Received, list[RabbitMQConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, clients, peak), errors = run(lambda: with_driver(RabbitMQDriver, config, topo, body))

    assert_exactly_once(received)
    assert received.reordered() == 0
    # Each consumer owns one queue, so both did work.
    assert [len(c.queue_names) for c in clients] == [1, 1]
    assert all(received.per_consumer[i] > 0 for i in range(2))
    # 16 senders share each confirm-mode channel: publishes overlap, within the window.
    assert 1 < peak <= window
    assert errors == []


def test_competing_consumers_on_one_queue_share_the_work_without_loss(rabbitmq_url: str) -> None:
    config = RabbitMQConfig(url=rabbitmq_url, confirm_window=32, prefetch=16)
    topo = topology(PREFIX, partitions=1, consumers=2)

    async def body(driver: RabbitMQDriver) -> tuple[Received, list[RabbitMQConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, _clients, peak), _ = run(lambda: with_driver(RabbitMQDriver, config, topo, body))

    assert_exactly_once(received)
    assert all(received.per_consumer[i] > 0 for i in range(2))
    assert 1 < peak <= 32
    # Per-key order is not a RabbitMQ guarantee with competing consumers: report, not assert.
    print(
        f"competing consumers: {received.per_consumer[0]}/{received.per_consumer[1]} messages, "
        f"{received.reordered()} per-key inversions"
    )


def test_single_active_consumer_keeps_key_order_with_spare_consumers(rabbitmq_url: str) -> None:
    config = RabbitMQConfig(url=rabbitmq_url, single_active_consumer=True, queue_type="quorum")
    topo = topology(PREFIX, partitions=1, consumers=2)

    async def body(driver: RabbitMQDriver) -> tuple[Received, list[RabbitMQConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, _clients, _peak), _ = run(lambda: with_driver(RabbitMQDriver, config, topo, body))

    assert_exactly_once(received)
    assert received.reordered() == 0
    # The broker delivers the queue to one consumer only; the other stands by.
    assert sorted(received.per_consumer.values()) == [PRODUCERS * MESSAGES_PER_PRODUCER]


def test_prepare_replaces_a_queue_of_another_type(rabbitmq_url: str) -> None:
    topo = topology(PREFIX, partitions=2, consumers=1)

    async def scenario() -> None:
        classic = RabbitMQDriver(RabbitMQConfig(url=rabbitmq_url), DriverContext())
        quorum = RabbitMQDriver(
            RabbitMQConfig(url=rabbitmq_url, queue_type="quorum"), DriverContext()
        )
        await classic.connect()
        await quorum.connect()
        try:
            await classic.prepare(topo)
            await quorum.prepare(topo)
            await quorum.prepare(topo)  # idempotent
            # Redeclaring with the quorum type only succeeds if the queue now is one.
            connection = await aio_pika.connect(rabbitmq_url, timeout=5)
            try:
                channel = await connection.channel()
                for name in quorum.queue_names(topo):
                    queue = await channel.declare_queue(
                        name, durable=True, arguments={"x-queue-type": "quorum"}
                    )
                    assert queue.declaration_result.message_count == 0
                with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
                    await channel.declare_queue(
                        quorum.queue_names(topo)[0],
                        durable=True,
                        arguments={"x-queue-type": "classic"},
                    )
            finally:
                await connection.close()
        finally:
            await quorum.cleanup(topo)
            await classic.close()
            await quorum.close()

    run(scenario)


def test_unreachable_broker_fails_fast_with_one_line_and_no_password() -> None:
    config = RabbitMQConfig(url="amqp://bench:s3cr3t-pw@127.0.0.1:1/", connect_timeout="2s")
    driver = RabbitMQDriver(config, DriverContext())
    assert_unreachable_fails_fast(driver, 2.0, "127.0.0.1:1", "s3cr3t-pw")


def test_describe_names_the_server_and_hides_credentials(rabbitmq_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        driver = RabbitMQDriver(RabbitMQConfig(url=rabbitmq_url), DriverContext())
        await driver.connect()
        try:
            return await driver.describe()
        finally:
            await driver.close()

    described = run(scenario)
    print(json.dumps(described, indent=2))
    assert described["product"] == "RabbitMQ"
    assert described["version"]
    assert described["settings"]["confirms"] is True
    password = URL(rabbitmq_url).password
    assert password
    assert password not in json.dumps(described)


def test_a_stream_queue_re_read_sorts_losses_into_not_stored_and_not_delivered(
    rabbitmq_url: str,
) -> None:
    topo = topology(PREFIX, partitions=2, consumers=1)
    driver = RabbitMQDriver(
        RabbitMQConfig(url=rabbitmq_url, queue_type="stream", prefetch=256), DriverContext()
    )

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        await driver.connect()
        try:
            await driver.prepare(topo)
            ledgers = await run_with_losses(driver, topo)
            lost = audit.lost_ids(ledgers.producers, ledgers.consumers)
            started = time.monotonic()
            result = await classify_losses(driver, topo, lost, budget_s=20)
            elapsed = time.monotonic() - started
            # A second re-read sees the same: the first one's end marker is not an event.
            again = await classify_losses(driver, topo, lost, budget_s=20)
            await driver.cleanup(topo)
            return result, again, int(elapsed)
        finally:
            await driver.close()

    result, again, elapsed_s = run(scenario)
    gapped = sum(1 for p in range(2) for s in range(PER_PRODUCER) if s % 10 == 3)
    assert result["checked"] and result["complete"], result
    assert result["not_delivered"] == gapped
    assert result["not_stored"] == 2 * PHANTOMS
    assert result["unclassified"] == 0
    assert result["samples"]["not_stored"] == phantom_samples()
    assert result["samples"]["not_delivered"][:2] == ["0:3", "0:13"]
    assert result["read"] == 2 * PER_PRODUCER
    assert {k: again[k] for k in ("not_stored", "not_delivered", "read")} == {
        k: result[k] for k in ("not_stored", "not_delivered", "read")
    }
    assert elapsed_s < 10


def test_a_classic_queue_cannot_be_re_read_and_says_so(rabbitmq_url: str) -> None:
    topo = topology(PREFIX, partitions=1, consumers=1)
    driver = RabbitMQDriver(RabbitMQConfig(url=rabbitmq_url), DriverContext())
    result = run(lambda: classify_losses(driver, topo, {0: np.array([1, 2])}, budget_s=5))
    assert not result["checked"] and result["unclassified"] == 2
    assert result["reason"].startswith("not checked: rabbitmq classic queues cannot be re-read")


def test_consumer_lag_counts_what_the_queues_still_hold_until_a_consumer_takes_it(
    rabbitmq_url: str,
) -> None:
    """The coordinator's view from its own connection: every confirmed message is lag until
    the consumer has it, and the lag is back to 0 once everything handled was acknowledged."""
    topo = topology(PREFIX, partitions=4, consumers=1)
    config = RabbitMQConfig(url=rabbitmq_url, prefetch=64)

    async def scenario() -> tuple[int | None, int | None, int | None, int, int]:
        driver = RabbitMQDriver(config, DriverContext())
        observer = RabbitMQDriver(config, DriverContext())
        await driver.connect()
        await observer.connect()
        try:
            await driver.prepare(topo)
            before = await observer.consumer_lag(topo)
            producer = await driver.producer(topo, 0)
            await asyncio.gather(*(producer.send(m) for m in keyed_messages(0)))
            await producer.close()
            queued = await observer.consumer_lag(topo)
            received = Received()
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            await received.wait_for(MESSAGES_PER_PRODUCER)
            # Handled deliveries are acknowledged within a loop turn or two: nothing is left.
            deadline = time.monotonic() + 5
            after = await observer.consumer_lag(topo)
            while after != 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                after = await observer.consumer_lag(topo)
            acks = consumer.acks_sent
            await consumer.stop()
            await driver.cleanup(topo)
            return before, queued, after, acks, consumer.received
        finally:
            await driver.close()
            await observer.close()

    before, queued, after, acks, received = run(scenario)
    assert before == 0
    assert queued == MESSAGES_PER_PRODUCER
    assert after == 0
    assert received == MESSAGES_PER_PRODUCER
    # Acknowledged in batches (multiple acks), not one by one.
    assert 0 < acks < MESSAGES_PER_PRODUCER / 4, acks


def test_consumer_lag_is_unknown_for_a_missing_topology_and_for_stream_queues(
    rabbitmq_url: str,
) -> None:
    topo = topology(PREFIX, partitions=2, consumers=1)

    async def scenario() -> tuple[int | None, int | None, int | None]:
        classic = RabbitMQDriver(RabbitMQConfig(url=rabbitmq_url), DriverContext())
        stream = RabbitMQDriver(
            RabbitMQConfig(url=rabbitmq_url, queue_type="stream", prefetch=64), DriverContext()
        )
        await classic.connect()
        await stream.connect()
        try:
            missing = await classic.consumer_lag(topo)  # closes its channel: 404
            await classic.prepare(topo)
            present = await classic.consumer_lag(topo)  # on a new channel
            await classic.cleanup(topo)
            return missing, present, await stream.consumer_lag(topo)
        finally:
            await classic.close()
            await stream.close()

    missing, present, streamed = run(scenario)
    assert missing is None
    assert present == 0
    assert streamed is None


def test_a_delivery_whose_handler_failed_is_redelivered_not_acknowledged(
    rabbitmq_url: str,
) -> None:
    """No batched ack covers a delivery the engine did not take: it comes back once its
    channel closes, and every other one is acknowledged."""
    topo = topology(PREFIX, partitions=1, consumers=1)
    config = RabbitMQConfig(url=rabbitmq_url, prefetch=32)
    count = 200
    poisoned = 7

    async def scenario() -> tuple[list[int], list[int], int | None]:
        driver = RabbitMQDriver(config, DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            producer = await driver.producer(topo, 0)
            for msg in keyed_messages(0)[:count]:
                await producer.send(msg)
            await producer.close()
            first: list[int] = []

            def failing(msg: Message) -> None:
                if msg.seq == poisoned:
                    raise RuntimeError("handler failed")
                first.append(msg.seq)

            consumer = await driver.consumer(topo, 0, failing)
            await consumer.start()
            deadline = time.monotonic() + 10
            while len(first) < count - 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await consumer.stop()
            second: list[int] = []
            again = await driver.consumer(topo, 0, lambda msg: second.append(msg.seq))
            await again.start()
            deadline = time.monotonic() + 10
            while not second and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            await again.stop()
            left = await driver.consumer_lag(topo)
            await driver.cleanup(topo)
            return first, second, left
        finally:
            await driver.close()

    first, second, left = run(scenario)
    assert sorted(first) == [s for s in range(count) if s != poisoned]
    assert second == [poisoned]
    assert left == 0


def test_describe_names_the_client_library_and_its_version(rabbitmq_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        driver = RabbitMQDriver(RabbitMQConfig(url=rabbitmq_url), DriverContext())
        await driver.connect()
        try:
            return await driver.describe()
        finally:
            await driver.close()

    client = run(scenario)["client"]
    assert client["library"] == "aio-pika"
    assert client["version"] == importlib.metadata.version("aio-pika")
    assert client["aiormq"] == importlib.metadata.version("aiormq")
    assert client["pamqp"] == importlib.metadata.version("pamqp")


class _CuttableProxy:
    """A TCP relay to the broker whose connections the test can cut (the broker keeps running)."""

    def __init__(self, target: URL) -> None:
        self._target = (target.host or "127.0.0.1", target.port or 5672)
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(*self._target)
        self._writers += [client_w, broker_w]

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_r, broker_w), pipe(broker_r, client_w))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


def test_after_a_cut_connection_the_consumer_is_subscribed_again_and_nothing_acked_is_lost(
    rabbitmq_url: str,
) -> None:
    """The consumers subscribe on aiormq's channel, which aio-pika does not restore: the driver
    subscribes again when the robust channel reopens. Every send that succeeded is delivered."""
    topo = topology(PREFIX, partitions=2, consumers=1)
    url = URL(rabbitmq_url)

    async def scenario() -> tuple[set[int], set[int], list[str]]:
        proxy = _CuttableProxy(url)
        await proxy.start()
        errors: list[str] = []
        config = RabbitMQConfig(
            url=str(url.with_host("127.0.0.1").with_port(proxy.port)),
            reconnect_interval="200ms",
            publish_timeout="5s",
        )
        driver = RabbitMQDriver(config, DriverContext(count_error=errors.append))
        await driver.connect()
        acked: set[int] = set()
        received: set[int] = set()
        try:
            await driver.prepare(topo)
            consumer = await driver.consumer(topo, 0, lambda msg: received.add(msg.seq))
            await consumer.start()
            producer = await driver.producer(topo, 0)
            messages = keyed_messages(0)

            async def send(msg: Message) -> None:
                try:
                    await producer.send(msg)
                    acked.add(msg.seq)
                except (DriverError, TimeoutError):
                    pass

            await asyncio.gather(*(send(m) for m in messages[:300]))
            proxy.cut()
            await asyncio.sleep(1.0)  # reconnected by now (reconnect_interval 0.2 s)
            for msg in messages[300:600]:
                await send(msg)
            deadline = time.monotonic() + 10
            while not acked <= received and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await consumer.stop()
            await producer.close()
            await driver.cleanup(topo)
            return acked, received, errors
        finally:
            await driver.close()
            await proxy.close()

    acked, received, errors = run(scenario)
    assert "reconnect" in errors, errors
    assert set(range(300, 600)) <= acked, "sends after the reconnect failed"
    assert acked <= received, f"{len(acked - received)} acknowledged messages never delivered"


@pytest.mark.parametrize(
    ("envelope", "key", "mode", "message_id", "correlation_id", "event_type"),
    [
        ("0:1:2:3", "agg-1", 2, "6f1c2a0e-5b4d-4f3e-9a8b-7c6d5e4f3a2b", "corr-0", "OrderPlaced"),
        ("12:9999:3:172000000000", "ключ-ü", 1, "", "", "T"),
        ("x", "k", 2, "a" * 255, "", ""),
        ("x", "k", 2, "a" * 256, "c", "t"),  # too long for a short string: pamqp decides
    ],
)
def test_hand_encoded_publish_properties_are_the_bytes_pamqp_would_write(
    envelope: str, key: str, mode: int, message_id: str, correlation_id: str, event_type: str
) -> None:
    fast = EnvelopeProperties(envelope, key, mode, message_id, correlation_id, event_type)
    reference = Basic.Properties(
        headers={"eb": envelope, "eb-key": key},
        delivery_mode=mode,
        message_id=message_id,
        correlation_id=correlation_id,
        message_type=event_type,
    )
    if len(message_id) > 255:
        with pytest.raises(TypeError):
            reference.marshal()
        with pytest.raises(TypeError):
            fast.marshal()
        return
    assert fast.marshal() == reference.marshal()
