"""The NATS JetStream driver against a real server: delivery, ordering, pipelining, dedup, errors.

Each test uses its own stream (a unique topology name) and deletes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import nats
import pytest

from bench.drivers.base import DriverContext, Message, partition_of
from bench.drivers.nats import (
    NatsConfig,
    NatsConsumer,
    NatsDriver,
    decode_body,
    encode_body,
    stream_name,
    subject_prefix,
)
from bench.drivers.nats_publish import hpub_frame
from bench.engine.reread import classify_losses
from bench.errors import DriverError
from bench.metrics import audit
from tests.integration.driver_harness import (
    MESSAGES_PER_PRODUCER,
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
            # A driver that prepared nothing names no streams (a worker's describe() at the end
            # of a run is merged over the coordinator's, which did prepare them).
            assert "streams" not in await on_file.describe()
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
    assert described["client"]["library"] == "nats-py"
    assert described["client"]["version"]
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


def _no_stream_topology(prefix: str) -> Any:
    return topology(prefix, partitions=1, consumers=1)


def test_a_publish_whose_puback_never_comes_fails_and_frees_its_slot(nats_url: str) -> None:
    """A core subscriber on the subjects stands in for a stream that never answers: no 503 (no
    responders), no PubAck. The driver's own publish_timeout fails the send with TimeoutError;
    the engine's send timeout (asyncio.timeout, as in workers._slot) cancels it earlier. Either
    way the slot and the token are given back."""
    topo = _no_stream_topology(PREFIX)
    config = NatsConfig(servers=[nats_url], publish_window=2, publish_timeout="0.6s")

    async def scenario() -> tuple[list[str], int, int, int, float]:
        driver = NatsDriver(config, DriverContext())
        await driver.connect()
        silent = await driver.client.subscribe(f"{stream_name(topo)}.>")
        try:
            producer = await driver.producer(topo, 0)
            msgs = keyed_messages(0)
            outcomes: list[str] = []
            started = time.monotonic()
            try:
                await producer.send(msgs[0])  # the driver's own bound
            except TimeoutError:
                outcomes.append("timeout")
            waited = time.monotonic() - started

            async def engine_send(msg: Any) -> str:
                try:
                    async with asyncio.timeout(0.2):
                        await producer.send(msg)
                except TimeoutError:
                    return "timeout"
                return "acked"

            # Four sends on a window of two: two publish, two queue; all time out.
            outcomes += await asyncio.gather(*(engine_send(m) for m in msgs[1:5]))
            left = (producer.in_flight, producer.waiting, producer._window.tokens)
            await producer.close()
            return outcomes, *left, waited
        finally:
            await silent.unsubscribe()
            await driver.close()

    outcomes, in_flight, waiting, tokens, waited = run(scenario)
    assert outcomes == ["timeout"] * 5
    assert (in_flight, waiting, tokens) == (0, 0, 0)
    assert 0.5 <= waited < 3.0


def test_a_publish_no_stream_captures_fails_at_once(nats_url: str) -> None:
    topo = _no_stream_topology(PREFIX)

    async def scenario() -> tuple[str, float, int]:
        driver = NatsDriver(NatsConfig(servers=[nats_url]), DriverContext())
        await driver.connect()
        try:
            producer = await driver.producer(topo, 0)
            started = time.monotonic()
            with pytest.raises(DriverError) as caught:
                await producer.send(keyed_messages(0)[0])
            took = time.monotonic() - started
            in_flight = producer.in_flight
            await producer.close()
            return str(caught.value), took, in_flight
        finally:
            await driver.close()

    text, took, in_flight = run(scenario)
    assert "no stream captures" in text
    assert took < 2.0
    assert in_flight == 0


def test_cancelled_sends_give_their_slots_to_the_next_sends(nats_url: str) -> None:
    """A window of two stalls (nobody answers); the stalled sends and a queued one are
    cancelled. Then a responder answers with PubAcks: the next sends go through, which they
    could not if the cancelled ones had kept their slots."""
    topo = _no_stream_topology(PREFIX)
    config = NatsConfig(servers=[nats_url], publish_window=2, publish_timeout="30s")

    async def scenario() -> tuple[int, int, list[None]]:
        driver = NatsDriver(config, DriverContext())
        await driver.connect()
        replies = await nats.connect(nats_url)
        answering = asyncio.Event()

        async def answer(msg: Any) -> None:
            if answering.is_set():
                await replies.publish(msg.reply, b'{"stream":"fake","seq":1}')

        responder = await replies.subscribe(f"{stream_name(topo)}.>", cb=answer)
        await replies.flush()
        try:
            producer = await driver.producer(topo, 0)
            msgs = keyed_messages(0)
            stalled = [asyncio.create_task(producer.send(m)) for m in msgs[:3]]
            await asyncio.sleep(0.3)
            assert (producer.in_flight, producer.waiting) == (2, 1)
            for task in stalled:
                task.cancel()
            await asyncio.gather(*stalled, return_exceptions=True)
            freed = (producer.in_flight, producer._window.tokens)
            answering.set()
            async with asyncio.timeout(5):
                done = await asyncio.gather(*(producer.send(m) for m in msgs[3:9]))
            await producer.close()
            return *freed, done
        finally:
            await responder.unsubscribe()
            await replies.close()
            await driver.close()

    in_flight, tokens, done = run(scenario)
    assert (in_flight, tokens) == (0, 0)
    assert done == [None] * 6


def test_sends_started_together_reach_the_stream_in_call_order(nats_url: str) -> None:
    """Every message of a producer is sent at once, as its own task, in seq order, through a
    window of 4: most sends queue for a slot. Nothing awaits before a write when the window has
    room, and the queue is FIFO, so each key's messages are stored, and read, in call order."""
    config = NatsConfig(servers=[nats_url], publish_window=4, storage="memory")
    topo = topology(PREFIX, partitions=2, consumers=1)

    async def body(driver: NatsDriver) -> tuple[Received, int]:
        received = Received()
        producer = await driver.producer(topo, 0)
        msgs = keyed_messages(0)
        tasks = [asyncio.create_task(producer.send(m)) for m in msgs]
        await asyncio.gather(*tasks)
        peak = producer.inflight_peak
        await producer.close()
        consumer = await driver.consumer(topo, 0, received.callback(0))
        await consumer.start()
        try:
            await received.wait_for(len(msgs))
        finally:
            await consumer.stop()
        return received, peak

    (received, peak), errors = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert received.by_id == Counter({(0, s): 1 for s in range(MESSAGES_PER_PRODUCER)})
    assert received.reordered() == 0
    assert peak == 4
    assert errors == []


def test_consumer_lag_counts_what_the_consumers_still_owe(nats_url: str) -> None:
    topo = topology(PREFIX, partitions=2, consumers=1)
    config = NatsConfig(servers=[nats_url], storage="memory")

    async def body(driver: NatsDriver) -> tuple[int | None, int | None, int | None]:
        observer = NatsDriver(config, DriverContext())  # as the coordinator: its own connection
        await observer.connect()
        try:
            producer = await driver.producer(topo, 0)
            msgs = keyed_messages(0)
            await asyncio.gather(*(producer.send(m) for m in msgs))
            await producer.close()
            before = await observer.consumer_lag(topo)
            received = Received()
            consumer = await driver.consumer(topo, 0, received.callback(0))
            await consumer.start()
            try:
                await received.wait_for(len(msgs))
                deadline = time.monotonic() + 5
                after = await observer.consumer_lag(topo)
                while after and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    after = await observer.consumer_lag(topo)
            finally:
                await consumer.stop()
            missing = await observer.consumer_lag(_no_stream_topology(PREFIX))
            return before, after, missing
        finally:
            await observer.close()

    (before, after, missing), _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert before == MESSAGES_PER_PRODUCER
    assert after == 0
    assert missing is None


def test_consumer_lag_is_unknown_for_ordered_consumers(nats_url: str) -> None:
    topo = topology(PREFIX, partitions=1, consumers=1)
    config = NatsConfig(servers=[nats_url], consumer_type="ordered", ack_policy="none")

    async def body(driver: NatsDriver) -> int | None:
        return await driver.consumer_lag(topo)

    lag, _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert lag is None


@pytest.mark.parametrize("ack_policy", ["explicit", "all"])
def test_pull_acks_leave_nothing_pending(nats_url: str, ack_policy: str) -> None:
    """After every message was read, the broker holds none as unacknowledged: the acks sent
    without waiting (explicit) or once per half batch and at stop (all) all arrived."""
    topo = topology(PREFIX, partitions=1, consumers=1)
    config = NatsConfig(servers=[nats_url], storage="memory", ack_policy=ack_policy, fetch_batch=64)

    async def body(driver: NatsDriver) -> tuple[Received, int | None]:
        producer = await driver.producer(topo, 0)
        msgs = keyed_messages(0)
        await asyncio.gather(*(producer.send(m) for m in msgs))
        await producer.close()
        received = Received()
        consumer = await driver.consumer(topo, 0, received.callback(0))
        await consumer.start()
        try:
            await received.wait_for(len(msgs))
        finally:
            await consumer.stop()
        deadline = time.monotonic() + 5
        lag = await driver.consumer_lag(topo)
        while lag and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            lag = await driver.consumer_lag(topo)
        return received, lag

    (received, lag), _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert received.by_id == Counter({(0, s): 1 for s in range(MESSAGES_PER_PRODUCER)})
    assert lag == 0


def test_every_envelope_field_travels_in_the_body_and_a_foreign_body_is_not_delivered(
    nats_url: str,
) -> None:
    """Key, type, ids, correlation, audit fields and value arrive exactly as sent; the only
    header on the stored message is Nats-Msg-Id; a message another client published to the
    stream's subject is counted as foreign, not handed to the harness."""
    config = NatsConfig(servers=[nats_url], storage="memory")
    topo = topology(PREFIX, partitions=1, consumers=1)
    sent = Message(
        key="agg-ü:1 x",  # non-ASCII, a colon and a space
        value=bytes(range(256)) * 4,  # every byte, separators included
        event_type="Order Placed",
        event_id="3f9c0a5e-0000-4000-8000-000000000001",
        correlation_id="corr:7",
        producer_id=3,
        seq=41,
        key_seq=12,
        intended_ns=1_733_000_000_123_456_789,
    )

    async def body(driver: NatsDriver) -> tuple[list[Message], dict[str, str] | None, int]:
        producer = await driver.producer(topo, 0)
        # The installed nats-py has the internals the hand-built HPUB frames rely on.
        assert producer._window.fast
        await producer.send(sent)
        await producer.close()
        await driver.client.publish(f"{subject_prefix(topo)}.0", b'{"not": "ours"}')
        stored = await driver.client.jetstream().get_msg(stream_name(topo), seq=1)
        got: list[Message] = []
        consumer = await driver.consumer(topo, 0, got.append)
        await consumer.start()
        try:
            deadline = time.monotonic() + 5
            while consumer.received + consumer.foreign < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await consumer.stop()
        return got, stored.headers, consumer.foreign

    (got, headers, foreign), _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert got == [sent]
    assert headers == {"Nats-Msg-Id": sent.event_id}
    assert foreign == 1


def test_a_hand_built_hpub_frame_is_the_one_nats_py_builds(nats_url: str) -> None:
    payload = bytes(range(256))

    async def body() -> list[bytes]:
        nc = await nats.connect(nats_url)
        frames: list[bytes] = []

        async def capture(cmd: bytes, priority: bool = False) -> None:
            frames.append(cmd)

        try:
            nc._send_command = capture  # type: ignore[method-assign]
            await nc.publish("s.1", payload, reply="_INBOX.a.7", headers={"Nats-Msg-Id": "id-1"})
        finally:
            del nc._send_command
            await nc.close()
        return frames

    frames = run(body)
    assert frames == [hpub_frame("s.1", "_INBOX.a.7", "id-1", payload)]


def test_the_body_envelope_refuses_separators_and_rejects_what_is_not_one() -> None:
    msg = keyed_messages(0)[0]
    body = encode_body(msg)
    assert decode_body(body) == msg
    for bad in ("a\x1fb", "a\x1eb"):
        with pytest.raises(DriverError, match="0x1e or 0x1f"):
            encode_body(_with_key(msg, bad))
    cut = body.index(b"\x1e")
    for foreign in (
        b"",
        msg.value,
        body[:cut],  # no end of envelope
        body.replace(b"eb1", b"eb2", 1),
        body[:cut].rsplit(b"\x1f", 1)[0] + body[cut:],  # a field short
        body.replace(b":", b":x", 1),  # not a number
        b"eb1\x1f\xff\x1f\x1f\x1f\x1f\x1e",  # not UTF-8
    ):
        assert decode_body(foreign) is None, foreign


def _with_key(msg: Message, key: str) -> Message:
    return Message(
        key,
        msg.value,
        msg.event_type,
        msg.event_id,
        msg.correlation_id,
        msg.producer_id,
        msg.seq,
        msg.key_seq,
        msg.intended_ns,
    )


def test_msg_id_off_sends_no_header_and_stores_a_resend_twice(
    nats_url: str,
) -> None:
    config = NatsConfig(servers=[nats_url], msg_id=False, storage="memory")
    topo = topology(PREFIX, partitions=1, consumers=1)

    async def body(driver: NatsDriver) -> tuple[Received, list[str]]:
        received = Received()
        ids: list[str] = []
        producer = await driver.producer(topo, 0)
        msg = keyed_messages(0)[0]
        await producer.send(msg)
        await producer.send(msg)
        await producer.close()
        stored = await driver.client.jetstream().get_msg(stream_name(topo), seq=1)
        assert not stored.headers  # no Nats-Msg-Id, nothing else either

        def on_message(m: Any) -> None:
            ids.append(m.event_id)
            received.callback(0)(m)

        consumer = await driver.consumer(topo, 0, on_message)
        await consumer.start()
        try:
            await received.wait_for(2)
        finally:
            await consumer.stop()
        assert ids == [msg.event_id, msg.event_id]
        return received, ids

    (received, _ids), _ = run(lambda: with_driver(NatsDriver, config, topo, body))
    assert received.by_id == Counter({(0, 0): 2})


def test_a_pull_reader_whose_consumer_is_deleted_counts_errors_without_spinning(
    nats_url: str,
) -> None:
    topo = topology(PREFIX, partitions=1, consumers=1)
    config = NatsConfig(servers=[nats_url], storage="memory", fetch_timeout="0.5s")

    async def body(driver: NatsDriver) -> None:
        consumer = await driver.consumer(topo, 0, Received().callback(0))
        await consumer.start()
        try:
            await asyncio.sleep(0.2)
            js = driver.client.jetstream()
            await js.delete_consumer(stream_name(topo), driver.consumer_name(topo, 0))
            await asyncio.sleep(2.0)
        finally:
            await consumer.stop()

    _, errors = run(lambda: with_driver(NatsDriver, config, topo, body))
    # Each failed request waits fetch_timeout before the next: a handful in 2 s, not a spin.
    assert 1 <= errors.count("fetch_error") <= 6, errors
