"""The Kafka driver against a real Kafka-protocol broker (Tansu here): delivery, ordering,
concurrency, transactions, connection errors, secrets and option validation.

Each test uses its own topic and consumer group (unique names) and deletes the topic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiokafka
import numpy as np
import pytest
from pydantic import ValidationError

from bench.drivers.base import DriverContext, Message, Producer, Topology
from bench.drivers.kafka import KafkaConfig, KafkaDriver, available_compressions
from bench.engine.reread import classify_losses
from bench.errors import DriverError
from bench.metrics import audit
from tests.integration.reread_support import (
    PER_PRODUCER,
    PHANTOMS,
    phantom_samples,
    run_with_losses,
)

T = TypeVar("T")

PRODUCERS = 2
KEYS_PER_PRODUCER = 16
MESSAGES_PER_PRODUCER = 1000  # 2000 in all
TEST_DEADLINE_S = 90.0
DRAIN_DEADLINE_S = 30.0
# Tansu holds a JoinGroup for half the session timeout; 6 s is Kafka's minimum.
SESSION_TIMEOUT_MS = 6000


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), TEST_DEADLINE_S)

    return asyncio.run(bounded())


def topology(*, partitions: int, consumers: int) -> Topology:
    unique = uuid.uuid4().hex[:10]
    return Topology(
        name=f"eb-test-kafka-{unique}",
        partitions=partitions,
        producers=PRODUCERS,
        consumers=consumers,
        consumer_group=f"eb-test-{unique}",
    )


def config(bootstrap: str, **options: Any) -> KafkaConfig:
    return KafkaConfig(
        driver="kafka",
        bootstrap_servers=bootstrap,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **options,
    )


def message(producer_id: int, seq: int, key: str, key_seq: int) -> Message:
    return Message(
        key=key,
        value=b"x" * 1024,
        event_type="OrderPlaced",
        event_id=str(uuid.uuid4()),
        correlation_id=f"corr-{producer_id}",
        producer_id=producer_id,
        seq=seq,
        key_seq=key_seq,
        intended_ns=time.monotonic_ns(),
    )


def keyed_messages(producer_id: int, count: int) -> dict[str, list[Message]]:
    """Messages per key; seq runs over the producer, key_seq within each key."""
    per_key: dict[str, list[Message]] = defaultdict(list)
    for seq in range(count):
        key = f"agg-{producer_id}-{seq % KEYS_PER_PRODUCER}"
        per_key[key].append(message(producer_id, seq, key, len(per_key[key])))
    return per_key


@dataclass
class Received:
    by_id: Counter[tuple[int, int]] = field(default_factory=Counter)
    key_seqs: dict[tuple[int, int, str], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    per_consumer: Counter[int] = field(default_factory=Counter)

    def callback(self, consumer_id: int) -> Callable[[Message], None]:
        def on_message(msg: Message) -> None:
            self.by_id[(msg.producer_id, msg.seq)] += 1
            self.key_seqs[(consumer_id, msg.producer_id, msg.key)].append(msg.key_seq)
            self.per_consumer[consumer_id] += 1

        return on_message

    @property
    def total(self) -> int:
        return sum(self.by_id.values())


async def wait_for_count(received: Received, expected: int) -> None:
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    while received.total < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def send_per_key(producer: Producer, per_key: dict[str, list[Message]]) -> None:
    """One coroutine per key, each awaiting its acks in order: keys overlap in flight, while
    every key's events are sent one after the other (as the engine does per aggregate)."""

    async def one_key(messages: list[Message]) -> None:
        for msg in messages:
            await producer.send(msg)

    await asyncio.gather(*(one_key(msgs) for msgs in per_key.values()))


async def send_in_window(producer: Any, count: int, window: int, keys: int) -> None:
    """Send ``count`` messages over ``keys`` keys with at most ``window`` in flight, a slot
    freed on each ack, as the engine does; return once every send is acknowledged."""
    slots = asyncio.Semaphore(window)
    key_seqs: Counter[str] = Counter()
    tasks = []

    async def one(msg: Message) -> None:
        try:
            await producer.send(msg)
        finally:
            slots.release()

    for seq in range(count):
        await slots.acquire()
        key = f"agg-{seq % keys}"
        tasks.append(asyncio.create_task(one(message(0, seq, key, key_seqs[key]))))
        key_seqs[key] += 1
    await asyncio.gather(*tasks)


def test_two_consumers_in_a_group_receive_every_message_once_and_in_key_order(
    kafka_bootstrap: str,
) -> None:
    errors: list[str] = []
    topo = topology(partitions=4, consumers=2)
    received = Received()

    async def scenario() -> None:
        driver = KafkaDriver(config(kafka_bootstrap), DriverContext(count_error=errors.append))
        await driver.connect()
        try:
            await driver.prepare(topo)
            consumers = [await driver.consumer(topo, i, received.callback(i)) for i in (0, 1)]
            # Started together: both join the same generation instead of two rebalances.
            await asyncio.gather(*(c.start() for c in consumers))
            producers = [await driver.producer(topo, p) for p in range(PRODUCERS)]
            await asyncio.gather(
                *(
                    send_per_key(producers[p], keyed_messages(p, MESSAGES_PER_PRODUCER))
                    for p in range(PRODUCERS)
                )
            )
            await wait_for_count(received, PRODUCERS * MESSAGES_PER_PRODUCER)
            for consumer in consumers:
                await consumer.stop()
            for producer in producers:
                await producer.close()
            missed = expected - set(received.by_id)
            if missed:
                # Tansu 0.6.0 can skip records for a live consumer while several producers
                # write (the records are stored). The loss classification's re-read tells
                # that broker bug apart from a loss in the driver.
                lost = {
                    p: np.array(sorted(s for q, s in missed if q == p)) for p in range(PRODUCERS)
                }
                classified.update(await classify_losses(driver, topo, lost, budget_s=20))
            await driver.cleanup(topo)
        finally:
            await driver.close()

    expected = {(p, s) for p in range(PRODUCERS) for s in range(MESSAGES_PER_PRODUCER)}
    classified: dict[str, Any] = {}
    run(scenario)

    assert set(received.by_id) <= expected, "messages nobody sent"
    skipped = expected - set(received.by_id)
    if skipped:
        assert classified["complete"], classified
        assert classified["not_stored"] == 0, "acknowledged messages that the broker never stored"
        assert classified["not_delivered"] == len(skipped)
        assert len(skipped) < len(expected) // 100, f"{len(skipped)} skipped by the live group"
        warnings.warn(
            f"the broker skipped {len(skipped)} stored records for the live consumer group "
            "(a known Tansu 0.6.0 fault); the re-read found them all stored",
            stacklevel=1,
        )
    duplicated = {k: n for k, n in received.by_id.items() if n != 1}
    assert not duplicated, f"duplicates: {list(duplicated.items())[:5]}"
    # The group shared the partitions: both members got a part.
    assert received.per_consumer[0] > 0 and received.per_consumer[1] > 0, received.per_consumer
    for (consumer_id, producer_id, key), seqs in received.key_seqs.items():
        assert all(a < b for a, b in itertools.pairwise(seqs)), (
            f"consumer {consumer_id} saw {key} of producer {producer_id} out of order: {seqs[:20]}"
        )
    assert errors == []


def test_many_sends_are_in_flight_at_once(kafka_bootstrap: str) -> None:
    topo = topology(partitions=4, consumers=0)
    concurrent_sends = 400
    sequential_sends = 50
    peak = 0
    in_progress = 0

    async def scenario() -> tuple[float, float]:
        nonlocal peak, in_progress
        driver = KafkaDriver(config(kafka_bootstrap), DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            producer = await driver.producer(topo, 0)

            async def tracked(msg: Message) -> None:
                nonlocal peak, in_progress
                in_progress += 1
                peak = max(peak, in_progress)
                try:
                    await producer.send(msg)
                finally:
                    in_progress -= 1

            started = time.perf_counter()
            for i in range(sequential_sends):
                await tracked(message(0, i, f"agg-{i % 32}", i // 32))
            sequential_per_send = (time.perf_counter() - started) / sequential_sends
            peak = 0

            # Best of three bursts: one broker hiccup (Tansu has them) must not decide it.
            concurrent_total = float("inf")
            for burst in range(3):
                first = sequential_sends + burst * concurrent_sends
                started = time.perf_counter()
                await asyncio.gather(
                    *(
                        tracked(message(0, first + i, f"agg-{i % 32}", first + i))
                        for i in range(concurrent_sends)
                    )
                )
                concurrent_total = min(concurrent_total, time.perf_counter() - started)
            await producer.close()
            await driver.cleanup(topo)
            return sequential_per_send, concurrent_total
        finally:
            await driver.close()

    sequential_per_send, concurrent_total = run(scenario)
    assert peak > 1
    # Were the sends really overlapped on the wire (not queued behind each other)? Then 400
    # of them take far less than 400 one-at-a-time sends would.
    assert concurrent_total < 0.5 * concurrent_sends * sequential_per_send, (
        f"{concurrent_sends} concurrent sends took {concurrent_total:.3f}s; one at a time "
        f"takes {sequential_per_send * 1e3:.2f}ms each"
    )


def test_recreate_topic_starts_each_point_empty(kafka_bootstrap: str) -> None:
    topo = topology(partitions=2, consumers=1)
    received = Received()

    async def scenario() -> None:
        driver = KafkaDriver(config(kafka_bootstrap), DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            producer = await driver.producer(topo, 0)
            for seq in range(20):
                await producer.send(message(0, seq, "agg-old", seq))
            await producer.close()
            await driver.prepare(topo)  # the next point: delete and create again
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            producer = await driver.producer(topo, 1)
            for seq in range(5):
                await producer.send(message(1, seq, "agg-new", seq))
            await wait_for_count(received, 5)
            await asyncio.sleep(0.3)  # anything old would arrive with or before the new
            await consumer.stop()
            await producer.close()
            await driver.cleanup(topo)
        finally:
            await driver.close()

    run(scenario)
    assert set(received.by_id) == {(1, s) for s in range(5)}


def test_transactional_round_trip_or_a_clear_refusal(kafka_bootstrap: str) -> None:
    """Transactions of 100: 250 events commit as 100 + 100 + 50 (the last by linger).

    Tansu (0.6, with aiokafka's InitProducerId v0) refuses idempotent producers; then the
    driver must say so in one line naming the settings to change, and the round trip is
    skipped with that reason.
    """
    topo = topology(partitions=2, consumers=1)
    received = Received()
    count = 250
    refusal: list[DriverError] = []

    async def scenario() -> None:
        cfg = config(
            kafka_bootstrap,
            enable_idempotence=True,
            transactional=100,
            transaction_linger_ms=50,
        )
        driver = KafkaDriver(cfg, DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            try:
                producer = await driver.producer(topo, 0)
            except DriverError as exc:
                refusal.append(exc)
                await driver.cleanup(topo)
                return
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            per_key = keyed_messages(0, count)
            await send_per_key(producer, per_key)
            await wait_for_count(received, count)
            await consumer.stop()
            await producer.close()
            await driver.cleanup(topo)
        finally:
            await driver.close()

    run(scenario)
    if refusal:
        error = refusal[0]
        assert "\n" not in str(error)
        assert "refused an idempotent producer" in str(error)
        assert error.hint is not None and "enable_idempotence = false" in error.hint
        pytest.skip(f"the broker refuses transactional producers: {error}")
    assert set(received.by_id) == {(0, s) for s in range(count)}
    assert all(n == 1 for n in received.by_id.values())


def test_unreachable_broker_is_one_line_within_connect_timeout() -> None:
    driver = KafkaDriver(
        KafkaConfig.model_validate(
            {"driver": "kafka", "bootstrap_servers": "127.0.0.1:1", "connect_timeout": "2s"}
        ),
        DriverContext(),
    )

    async def attempt() -> tuple[DriverError, float]:
        started = time.monotonic()
        try:
            await driver.connect()
        except DriverError as exc:
            return exc, time.monotonic() - started
        finally:
            await driver.close()
        raise AssertionError("connect() to 127.0.0.1:1 succeeded")

    error, elapsed = run(attempt)
    assert elapsed < 2.5
    assert str(error).startswith("kafka at 127.0.0.1:1: cannot connect within 2s (")
    assert "refused" in str(error)
    assert "\n" not in str(error)
    assert error.hint


def test_silent_broker_times_out_at_connect_timeout() -> None:
    """A port that accepts TCP but never answers ApiVersions must not hang connect()."""

    async def attempt() -> tuple[DriverError, float]:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(10)
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        driver = KafkaDriver(
            KafkaConfig.model_validate(
                {
                    "driver": "kafka",
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "connect_timeout": "2s",
                }
            ),
            DriverContext(),
        )
        started = time.monotonic()
        try:
            await driver.connect()
        except DriverError as exc:
            return exc, time.monotonic() - started
        finally:
            await driver.close()
            server.close()
        raise AssertionError("connect() to a mute port succeeded")

    error, elapsed = run(attempt)
    assert 1.9 < elapsed < 3.0
    assert "cannot connect within 2s (no answer)" in str(error)


def test_describe_names_the_server_and_settings_without_secrets(kafka_bootstrap: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    sasl = KafkaConfig.model_validate(
        {
            "driver": "kafka",
            "bootstrap_servers": kafka_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "bench",
            "sasl_password": secret,
        }
    )
    assert secret not in json.dumps(sasl.settings())
    assert secret not in repr(sasl)
    assert sasl.settings()["sasl_password_set"] is True

    async def describe() -> dict[str, Any]:
        # The broker here has no SASL, so describe a plaintext connection with the same
        # secret-bearing model fields to check the whole describe() output.
        plaintext = sasl.model_copy(update={"security_protocol": "PLAINTEXT"})
        driver = KafkaDriver(plaintext, DriverContext())
        await driver.connect()
        try:
            return await driver.describe()
        finally:
            await driver.close()

    described = run(describe)
    text = json.dumps(described)
    assert secret not in text
    assert described["cluster_id"]
    assert described["broker_count"] >= 1
    assert described["controller_id"] is not None
    assert described["api_versions"]["Produce"]
    assert described["client"] == {"library": "aiokafka", "version": aiokafka.__version__}
    assert described["settings"]["fetch_max_wait_ms"] == 10
    assert described["effective"]["consumer"]["fetch_max_wait_ms"] == 10
    assert described["product"] in {"Tansu", "Apache Kafka", "Redpanda"} or described[
        "product"
    ].startswith("unknown")


def test_unusable_compression_is_an_error_naming_the_field() -> None:
    unusable = [c for c in ("lz4", "zstd", "snappy") if c not in available_compressions()]
    for codec in unusable:
        with pytest.raises(ValidationError) as caught:
            KafkaConfig.model_validate({"driver": "kafka", "compression": codec})
        (error,) = caught.value.errors()
        assert error["loc"] == ("compression",)
        assert codec in error["msg"] and "not installed" in error["msg"]
    with pytest.raises(ValidationError) as caught:
        KafkaConfig.model_validate({"driver": "kafka", "compression": "brotli"})
    assert caught.value.errors()[0]["loc"] == ("compression",)
    gzip = KafkaConfig.model_validate({"driver": "kafka", "compression": "gzip"})
    assert gzip.compression == "gzip"


def test_a_re_read_sorts_losses_into_not_stored_and_not_delivered(kafka_bootstrap: str) -> None:
    """Kafka cannot delete one record, so "not stored" is the acknowledged messages that were
    never sent; "not delivered" is what the consumers let fall (the run had no consumer group
    here: joining one on Tansu takes seconds). Every record is read, from every partition."""
    topo = topology(partitions=3, consumers=1)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        driver = KafkaDriver(config(kafka_bootstrap), DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            ledgers = await run_with_losses(driver, topo, consume=False)
            lost = audit.lost_ids(ledgers.producers, ledgers.consumers)
            result = await classify_losses(driver, topo, lost, budget_s=20)
            # Only the lost that are stored: the read stops once it found them all.
            stored_only = {p: seqs[seqs < PER_PRODUCER] for p, seqs in lost.items()}
            early = await classify_losses(driver, topo, stored_only, budget_s=20)
            await driver.cleanup(topo)
            return result, early
        finally:
            await driver.close()

    result, early = run(scenario)
    gapped = sum(1 for p in range(2) for s in range(PER_PRODUCER) if s % 10 == 3)
    assert result["checked"] and result["complete"], result
    assert result["not_stored"] == 2 * PHANTOMS
    assert result["not_delivered"] == gapped
    assert result["unclassified"] == 0
    assert result["read"] == 2 * PER_PRODUCER
    assert result["samples"]["not_stored"] == phantom_samples()
    assert result["method"].startswith("kafka: a reader outside any group")
    assert early["complete"] and early["not_stored"] == 0 and early["not_delivered"] == gapped


def test_a_topic_that_is_gone_stores_none_of_its_losses(kafka_bootstrap: str) -> None:
    missing = topology(partitions=1, consumers=1)  # never prepared: as if the broker lost it

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        driver = KafkaDriver(config(kafka_bootstrap), DriverContext())
        await driver.connect()
        try:
            result = await classify_losses(driver, missing, {0: np.array([1, 2, 3])}, budget_s=8)
            assert driver._admin is not None
            return result, await driver._admin.list_topics()
        finally:
            await driver.close()

    result, topics = run(scenario)
    assert result["checked"] and result["complete"]
    assert result["not_stored"] == 3 and result["unclassified"] == 0
    assert result["samples"]["not_stored"] == ["0:1", "0:2", "0:3"]
    assert missing.name not in topics, "the re-read created the topic"


@pytest.mark.parametrize("client", ["aiokafka", "confluent"])
def test_consumer_lag_is_what_the_group_has_not_committed(
    kafka_bootstrap: str, client: str
) -> None:
    """Asked from a second, separately connected driver (as the coordinator does during the
    drain): None before the group committed anything, 0 once it committed all it consumed,
    and exactly the records sent while no member was consuming. The same commits whichever
    library the producers and consumers run on."""
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    topo = topology(partitions=4, consumers=1)
    received = Received()
    sent, later = 200, 37

    async def scenario() -> dict[str, int | None]:
        run_driver = KafkaDriver(config(kafka_bootstrap, client=client), DriverContext())
        observer = KafkaDriver(config(kafka_bootstrap), DriverContext())
        await run_driver.connect()
        await observer.connect()
        seen: dict[str, int | None] = {}
        try:
            await run_driver.prepare(topo)
            seen["before_any_commit"] = await observer.consumer_lag(topo)
            consumer = await run_driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            seen["after_join"] = await observer.consumer_lag(topo)
            producer = await run_driver.producer(topo, 0)
            await asyncio.gather(
                *(producer.send(message(0, s, f"agg-{s % 8}", s // 8)) for s in range(sent))
            )
            await wait_for_count(received, sent)
            seen["delivered"] = received.total
            # The group commits once a second: the lag reaches 0 after the next commit.
            deadline = time.monotonic() + 10
            while (lag := await observer.consumer_lag(topo)) != 0 and time.monotonic() < deadline:
                seen["max_while_committing"] = max(seen.get("max_while_committing") or 0, lag or 0)
                await asyncio.sleep(0.2)
            seen["caught_up"] = lag
            await consumer.stop()
            await asyncio.gather(
                *(
                    producer.send(message(0, s, f"agg-{s % 8}", s // 8))
                    for s in range(sent, sent + later)
                )
            )
            seen["nobody_consuming"] = await observer.consumer_lag(topo)
            await producer.close()
            await run_driver.cleanup(topo)
            seen["topic_gone"] = await observer.consumer_lag(topo)
        finally:
            await observer.close()
            await run_driver.close()
        return seen

    seen = run(scenario)
    assert seen["before_any_commit"] is None, seen
    assert seen["after_join"] == 0, seen
    assert seen["delivered"] == sent, seen
    assert seen.get("max_while_committing", 0) <= sent, seen
    assert seen["caught_up"] == 0, seen
    assert seen["nobody_consuming"] == later, seen
    assert seen["topic_gone"] is None, seen


def test_sends_called_in_order_stay_in_key_order_when_batches_fill(kafka_bootstrap: str) -> None:
    """The engine calls send() in event order with up to 64 in flight. With small batches the
    partition's last batch is often full and senders wait for it to drain; a send called
    meanwhile must not append ahead of them (KafkaProducer's append lock)."""
    topo = topology(partitions=1, consumers=1)
    received = Received()
    count, window = 1500, 64

    async def scenario() -> None:
        # A batch holds about two 1 KiB records: nearly every append finds it full.
        driver = KafkaDriver(config(kafka_bootstrap, max_batch_bytes=2500), DriverContext())
        await driver.connect()
        try:
            await driver.prepare(topo)
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            producer = await driver.producer(topo, 0)
            await send_in_window(producer, count, window, keys=3)
            await wait_for_count(received, count)
            await consumer.stop()
            await producer.close()
            await driver.cleanup(topo)
        finally:
            await driver.close()

    run(scenario)
    assert received.total >= count * 0.99, received.total
    for (_, _, key), seqs in received.key_seqs.items():
        inversions = sum(1 for a, b in itertools.pairwise(seqs) if a > b)
        assert inversions == 0, f"{key}: {inversions} inversions, first {seqs[:30]}"


def test_the_confluent_client_keeps_key_order_partitions_and_describes_itself(
    kafka_bootstrap: str,
) -> None:
    """client = "confluent" (librdkafka): every message delivered once and in key order to a
    group member, each key on the partition aiokafka's murmur2 gives it (read back per
    partition), and describe() naming the library and librdkafka."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from aiokafka.partitioner import murmur2

    topo = topology(partitions=4, consumers=1)
    received = Received()
    errors: list[str] = []
    count, window = 2000, 64

    async def scenario() -> tuple[dict[str, Any], dict[int, set[str]], dict[str, Any]]:
        cfg = config(kafka_bootstrap, client="confluent", commit="explicit")
        driver = KafkaDriver(cfg, DriverContext(count_error=errors.append))
        await driver.connect()
        classified: dict[str, Any] = {}
        try:
            await driver.prepare(topo)
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            producer = await driver.producer(topo, 0)
            await send_in_window(producer, count, window, keys=37)
            await wait_for_count(received, count)
            await consumer.stop()
            await producer.close()
            missed = set(range(count)) - {s for _, s in received.by_id}
            if missed:
                lost = {0: np.array(sorted(missed))}
                classified = await classify_losses(driver, topo, lost, budget_s=20)
            # Where each key landed, read back per partition outside any group.
            reader = aiokafka.AIOKafkaConsumer(
                bootstrap_servers=kafka_bootstrap, enable_auto_commit=False
            )
            await reader.start()
            keys_on: dict[int, set[str]] = defaultdict(set)
            try:
                parts = [aiokafka.TopicPartition(topo.name, p) for p in range(4)]
                reader.assign(parts)
                await reader.seek_to_beginning(*parts)
                seen = 0
                async with asyncio.timeout(30):  # a read-back that stalls fails, never hangs
                    while seen < count - len(missed):
                        batches = await reader.getmany(timeout_ms=500)
                        for tp, records in batches.items():
                            seen += len(records)
                            keys_on[tp.partition].update(r.key.decode() for r in records)
            finally:
                await reader.stop()
            described = await driver.describe()
            await driver.cleanup(topo)
            return classified, keys_on, described
        finally:
            await driver.close()

    classified, keys_on, described = run(scenario)
    skipped = count - len(received.by_id)
    if skipped:
        # Tansu 0.6 can skip a stored record for a live consumer (see the first test).
        assert classified["complete"] and classified["not_stored"] == 0, classified
        assert classified["not_delivered"] == skipped <= 4, classified
    assert all(n == 1 for n in received.by_id.values()), "duplicates"
    for (_, _, key), seqs in received.key_seqs.items():
        inversions = sum(1 for a, b in itertools.pairwise(seqs) if a > b)
        assert inversions == 0, f"{key}: {inversions} inversions, first {seqs[:30]}"
    for partition, keys in keys_on.items():
        for key in keys:
            assert (murmur2(key.encode()) & 0x7FFFFFFF) % 4 == partition, (key, partition)
    assert sum(len(k) for k in keys_on.values()) == 37
    assert described["client"]["library"] == "confluent-kafka"
    assert described["client"]["version"] == confluent_kafka.__version__
    assert described["client"]["librdkafka"] == confluent_kafka.libversion()[0]
    assert described["effective"]["producer"]["partitioner"] == "murmur2_random"
    assert errors == []
