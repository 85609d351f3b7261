"""A run point in miniature for the loss classification tests: producers send through a real
driver and keep the audit's ledgers, a consumer receives through the driver but lets some
messages fall (a delivery gap the test chooses), and the ledgers claim a few acknowledged
messages that were never sent (what a broker that lost them would look like: not stored)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.drivers.base import Message, Topology
from bench.metrics import audit
from tests.integration.driver_harness import DRAIN_DEADLINE_S

PER_PRODUCER = 300
PRODUCERS = 2
PHANTOMS = 5  # acknowledged in the ledger, never sent: not stored
KEYS = 8


def gap(msg: Message) -> bool:
    """The messages the consumer lets fall: stored, never delivered."""
    return msg.seq % 10 == 3


def message(producer_id: int, seq: int) -> Message:
    key = f"agg-{producer_id}-{seq % KEYS}"
    return Message(
        key=key,
        value=b"x" * 100,
        event_type="OrderPlaced",
        event_id=f"p{producer_id}-{seq:012x}",
        correlation_id="c",
        producer_id=producer_id,
        seq=seq,
        key_seq=seq // KEYS,
        intended_ns=time.monotonic_ns(),
    )


@dataclass
class Ledgers:
    producers: list[tuple[int, bytes, bytes]]
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]]
    sent: list[Message]


async def run_with_losses(
    driver: Any,
    topo: Topology,
    *,
    consume: bool = True,
    after_produce: Callable[[], Awaitable[None]] | None = None,
) -> Ledgers:
    """Send PER_PRODUCER messages per producer; deliver all but the gap to the ledger."""
    ledger = audit.ConsumerLedger()
    sent = [message(p, s) for p in range(PRODUCERS) for s in range(PER_PRODUCER)]
    expected = sum(1 for m in sent if not gap(m))

    def on_message(msg: Message) -> None:
        if not gap(msg):
            ledger.record(msg.producer_id, msg.seq, msg.key, msg.key_seq)

    consumer = await driver.consumer(topo, 0, on_message) if consume else None
    if consumer is not None:
        await consumer.start()
    producer_ledgers = [audit.ProducerLedger(p) for p in range(PRODUCERS)]
    try:
        for p in range(PRODUCERS):
            producer = await driver.producer(topo, p)
            mine = [m for m in sent if m.producer_id == p]
            await asyncio.gather(*(producer.send(m) for m in mine))
            await producer.close()
            producer_ledgers[p].keys.extend(m.seq % KEYS for m in mine)
            producer_ledgers[p].acks.extend([audit.ACK_OK] * len(mine))
            producer_ledgers[p].keys.extend([0] * PHANTOMS)
            producer_ledgers[p].acks.extend([audit.ACK_OK] * PHANTOMS)
        if consumer is not None:
            deadline = time.monotonic() + DRAIN_DEADLINE_S
            while _received(ledger) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if after_produce is not None:
            await after_produce()
    finally:
        if consumer is not None:
            await consumer.stop()
    if consumer is None:
        for m in sent:
            if not gap(m):
                ledger.record(m.producer_id, m.seq, m.key, m.key_seq)
    return Ledgers([lg.export() for lg in producer_ledgers], [ledger.export()], sent)


def _received(ledger: audit.ConsumerLedger) -> int:
    return sum(sum(1 for c in counts if c) for counts in ledger.received.values())


def phantom_samples() -> list[str]:
    return [f"{p}:{PER_PRODUCER + i}" for p in range(PRODUCERS) for i in range(PHANTOMS)]
