"""The NATS JetStream driver against a real server: delivery, ordering, pipelining, dedup, errors.

Each test uses its own stream (a unique topology name) and deletes it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import nats
import pytest

from bench.drivers.base import DriverContext, partition_of
from bench.drivers.nats import NatsConfig, NatsConsumer, NatsDriver, stream_name
from bench.engine.reread import classify_losses
from bench.metrics import audit
from tests.integration.driver_harness import (
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
    gap,
    message,
    run_with_losses,
)

PREFIX = "eb-test-nats"  # of each test's own topology name


def test_pipelined_pull_delivers_every_message_once_in_key_order(nats_url: str) -> None:
    window = 8
    config = NatsConfig(
        servers=[nats_url], publish="pipelined", publish_window=window, consumer_type="pull"
    )
    topo = topology(PREFIX, partitions=2, consumers=2)

    async def body(driver: NatsDriver) -> tuple[Received, list[NatsConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, clients, peak), errors = run(lambda: with_driver(NatsDriver, config, topo, body))

    assert_exactly_once(received)
    # JetStream keeps order per subject and each partition has one reader.
    assert received.reordered() == 0
    assert [c.partitions for c in clients] == [[0], [1]]
    assert all(received.per_consumer[i] > 0 for i in range(2))
    # 16 senders share each producer: acks overlap, never more than the window.
    assert 1 < peak <= window
    assert errors == []


def test_sync_push_publishes_one_at_a_time_and_keeps_key_order(nats_url: str) -> None:
    config = NatsConfig(servers=[nats_url], publish="sync", consumer_type="push", storage="memory")
    topo = topology(PREFIX, partitions=4, consumers=2)

    async def body(driver: NatsDriver) -> tuple[Received, list[NatsConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, clients, peak), _ = run(lambda: with_driver(NatsDriver, config, topo, body))

    assert_exactly_once(received)
    assert received.reordered() == 0
    assert [c.partitions for c in clients] == [[0, 2], [1, 3]]
    assert peak == 1


def test_ordered_consumers_keep_key_order(nats_url: str) -> None:
    config = NatsConfig(servers=[nats_url], consumer_type="ordered", ack_policy="none")
    topo = topology(PREFIX, partitions=2, consumers=2)

    async def body(driver: NatsDriver) -> tuple[Received, list[NatsConsumer], int]:
        return await produce_and_consume(driver, topo, consumers=2)

    (received, _clients, _peak), _ = run(lambda: with_driver(NatsDriver, config, topo, body))

    assert_exactly_once(received)
    assert received.reordered() == 0


def test_a_resent_event_id_is_stored_once(nats_url: str) -> None:
    config = NatsConfig(servers=[nats_url], dedup_window="1m")
    topo = topology(PREFIX, partitions=1, consumers=1)

    async def body(driver: NatsDriver) -> Received:
        received = Received()
        producer = await driver.producer(topo, 0)
        msg = keyed_messages(0)[0]
        await producer.send(msg)
        await producer.send(msg)  # a retry after a lost ack looks exactly like this
        await producer.close()
        consumer = await driver.consumer(topo, 0, received.callback(0))
        await consumer.start()
        try:
            await received.wait_for(1)  # then a moment more, in which a copy would arrive
            await asyncio.sleep(0.5)
        finally:
            await consumer.stop()
        return received

    received, _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert received.by_id == Counter({(0, 0): 1})


def test_prepare_recreates_a_stream_whose_config_changed(nats_url: str) -> None:
    topo = topology(PREFIX, partitions=2, consumers=1)

    async def scenario() -> tuple[str, str]:
        on_file = NatsDriver(NatsConfig(servers=[nats_url]), DriverContext())
        in_memory = NatsDriver(NatsConfig(servers=[nats_url], storage="memory"), DriverContext())
        await on_file.connect()
        await in_memory.connect()
        try:
            await on_file.prepare(topo)
            first = (await on_file.describe())["streams"][stream_name(topo)]["storage"]
            await in_memory.prepare(topo)
            await in_memory.prepare(topo)  # idempotent
            nc = await nats.connect(nats_url)
            try:
                info = await nc.jetstream().stream_info(stream_name(topo))
            finally:
                await nc.close()
            storage = info.config.storage
            return first, getattr(storage, "value", storage)
        finally:
            await in_memory.cleanup(topo)
            await on_file.close()
            await in_memory.close()

    assert run(scenario) == ("file", "memory")


def test_unreachable_server_fails_within_connect_timeout_with_one_line() -> None:
    config = NatsConfig(servers=["nats://bench:s3cr3t-pw@127.0.0.1:1"], connect_timeout="2s")
    driver = NatsDriver(config, DriverContext())
    assert_unreachable_fails_fast(driver, 2.0, "127.0.0.1:1", "s3cr3t-pw")


def test_describe_names_the_server_and_hides_the_password(nats_url: str) -> None:
    # The local server has no authorization configured and ignores the credentials, which
    # still have to stay out of what describe() returns.
    config = NatsConfig(servers=[nats_url], user="bench", password="s3cr3t-pw")

    async def scenario() -> dict[str, Any]:
        driver = NatsDriver(config, DriverContext())
        await driver.connect()
        try:
            return await driver.describe()
        finally:
            await driver.close()

    described = run(scenario)
    print(json.dumps(described, indent=2))
    assert described["product"] == "NATS Server"
    assert described["version"]
    assert described["jetstream"] is True
    assert described["settings"]["password_set"] is True
    assert "s3cr3t-pw" not in json.dumps(described)


@pytest.mark.parametrize("retention", ["limits", "workqueue"])
def test_a_re_read_sorts_losses_into_not_stored_and_not_delivered(
    nats_url: str, retention: str
) -> None:
    """The consumer lets some messages fall (stored, not delivered); then one partition's
    subject is purged, so those of its messages nobody received are gone (not stored), as are
    the acknowledged messages that were never sent. A workqueue stream refuses a second
    consumer, so its re-read gets message by message (and the run had no consumer here)."""
    topo = topology(PREFIX, partitions=4, consumers=1)
    config = NatsConfig(servers=[nats_url], retention=retention)

    async def body(driver: NatsDriver) -> tuple[dict[str, Any], int]:
        js = driver.client.jetstream()
        name = stream_name(topo)

        async def purge_partition_0() -> None:
            await js.purge_stream(name, subject=f"{name}.0")

        ledgers = await run_with_losses(
            driver, topo, consume=retention == "limits", after_produce=purge_partition_0
        )
        lost = audit.lost_ids(ledgers.producers, ledgers.consumers)
        result = await classify_losses(driver, topo, lost, budget_s=20)
        # The re-read's own consumer is gone; the run's durable ones are untouched.
        names = {c.name for c in await js.consumers_info(name)}
        assert names == {driver.consumer_name(topo, p) for p in range(4)}
        purged = sum(1 for m in ledgers.sent if partition_of(m.key, 4) == 0)
        return result, purged

    (result, purged), errors = run(lambda: with_driver(NatsDriver, config, topo, body))
    sent = [message(p, s) for p in range(2) for s in range(PER_PRODUCER)]
    gapped = [m for m in sent if gap(m)]
    gone = [m for m in gapped if partition_of(m.key, 4) == 0]
    assert 0 < len(gone) < len(gapped)
    assert result["checked"] and result["complete"], result
    assert result["not_stored"] == len(gone) + 2 * PHANTOMS
    assert result["not_delivered"] == len(gapped) - len(gone)
    assert result["unclassified"] == 0
    assert result["read"] == len(sent) - purged
    assert f"{gone[0].producer_id}:{gone[0].seq}" in result["samples"]["not_stored"]
    assert errors == []
