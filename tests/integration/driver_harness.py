"""The harness shared by the broker driver tests: keyed messages from several producers, a
bounded runner, a driver connected and prepared for one test's own topology, a produce-and-consume
round with concurrent senders, and a tally of deliveries for the exactly-once and per-key order
checks."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from bench.drivers.base import DriverContext, Message, StreamDriver, Topology
from bench.errors import DriverError

T = TypeVar("T")
D = TypeVar("D", bound=StreamDriver)

PRODUCERS = 2
KEYS_PER_PRODUCER = 16
MESSAGES_PER_PRODUCER = 1000  # 2000 in all
TEST_DEADLINE_S = 60.0
DRAIN_DEADLINE_S = 30.0
# How much later than its connect_timeout a driver may give up on an unreachable address.
CONNECT_SLACK_S = 1.5


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), TEST_DEADLINE_S)

    return asyncio.run(bounded())


def keyed_messages(producer_id: int) -> list[Message]:
    """seq runs over the producer, key_seq within each of its keys."""
    key_seq: Counter[str] = Counter()
    out = []
    for seq in range(MESSAGES_PER_PRODUCER):
        key = f"agg-{producer_id}-{seq % KEYS_PER_PRODUCER}"
        out.append(
            Message(
                key=key,
                value=b"x" * 1024,
                event_type="OrderPlaced",
                event_id=str(uuid.uuid4()),
                correlation_id=f"corr-{producer_id}",
                producer_id=producer_id,
                seq=seq,
                key_seq=key_seq[key],
                intended_ns=time.monotonic_ns(),
            )
        )
        key_seq[key] += 1
    return out


@dataclass
class Received:
    by_id: Counter[tuple[int, int]] = field(default_factory=Counter)
    key_seqs: dict[tuple[int, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    per_consumer: Counter[int] = field(default_factory=Counter)

    def callback(self, consumer_id: int) -> Callable[[Message], None]:
        def on_message(msg: Message) -> None:
            self.by_id[(msg.producer_id, msg.seq)] += 1
            self.key_seqs[(msg.producer_id, msg.key)].append(msg.key_seq)
            self.per_consumer[consumer_id] += 1

        return on_message

    def reordered(self) -> int:
        return sum(
            1 for seqs in self.key_seqs.values() for a, b in itertools.pairwise(seqs) if b < a
        )

    async def wait_for(self, expected: int) -> None:
        deadline = time.monotonic() + DRAIN_DEADLINE_S
        while sum(self.by_id.values()) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # A little longer, so that a duplicate arriving late is seen too.
        await asyncio.sleep(0.3)


def topology(prefix: str, *, partitions: int, consumers: int) -> Topology:
    """A topology of the test's own (a unique name), for the harness's producers."""
    return Topology(
        name=f"{prefix}-{uuid.uuid4().hex[:10]}",
        partitions=partitions,
        producers=PRODUCERS,
        consumers=consumers,
        consumer_group="eb-test",
    )


async def with_driver(
    driver_class: Callable[[Any, DriverContext], D],
    config: Any,
    topo: Topology,
    body: Callable[[D], Awaitable[T]],
) -> tuple[T, list[str]]:
    """``body`` on a connected driver with ``topo`` prepared (and cleaned up after), and the
    errors the driver counted meanwhile."""
    errors: list[str] = []
    driver = driver_class(config, DriverContext(count_error=errors.append))
    await driver.connect()
    try:
        await driver.prepare(topo)
        return await body(driver), errors
    finally:
        await driver.cleanup(topo)
        await driver.close()


async def produce_and_consume(
    driver: StreamDriver, topo: Topology, consumers: int
) -> tuple[Received, list[Any], int]:
    """2 producers x 16 concurrent senders (one per key, so per-key send order is fixed).

    Returns the deliveries, the consumers (stopped) and the most sends any producer had waiting
    for an acknowledgement at once (its ``inflight_peak``)."""
    received = Received()
    clients = [await driver.consumer(topo, i, received.callback(i)) for i in range(consumers)]
    for client in clients:
        await client.start()
    try:
        producers: list[Any] = [await driver.producer(topo, p) for p in range(PRODUCERS)]

        async def sender(producer: Any, msgs: list[Message]) -> None:
            for msg in msgs:
                await producer.send(msg)

        senders = []
        for p, producer in enumerate(producers):
            by_key: dict[str, list[Message]] = defaultdict(list)
            for msg in keyed_messages(p):
                by_key[msg.key].append(msg)
            senders += [sender(producer, msgs) for msgs in by_key.values()]
        await asyncio.gather(*senders)
        peak = max(producer.inflight_peak for producer in producers)
        for producer in producers:
            await producer.close()
        await received.wait_for(PRODUCERS * MESSAGES_PER_PRODUCER)
    finally:
        for client in clients:
            await client.stop()
    return received, clients, peak


def assert_exactly_once(received: Received) -> None:
    expected = {(p, s) for p in range(PRODUCERS) for s in range(MESSAGES_PER_PRODUCER)}
    missing = expected - set(received.by_id)
    duplicated = {k: n for k, n in received.by_id.items() if n > 1}
    assert not missing, f"{len(missing)} messages lost, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"{len(duplicated)} messages duplicated"
    assert set(received.by_id) == expected, "deliveries of messages never sent"


def assert_unreachable_fails_fast(
    driver: StreamDriver, connect_timeout_s: float, address: str, password: str
) -> None:
    """Connecting to an address nobody answers fails within the connect timeout, in one line
    that names the address and not the password."""
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        run(driver.connect)
    elapsed = time.monotonic() - started
    assert elapsed < connect_timeout_s + CONNECT_SLACK_S, f"gave up after {elapsed:.1f}s"
    message = str(caught.value)
    assert address in message and "\n" not in message, message
    assert password not in message, "the error shows the password"
