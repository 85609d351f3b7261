"""The harness shared by the broker driver tests: keyed messages from several producers, a
bounded runner, and a tally of deliveries for the exactly-once and per-key order checks."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bench.drivers.base import Message

T = TypeVar("T")

PRODUCERS = 2
KEYS_PER_PRODUCER = 16
MESSAGES_PER_PRODUCER = 1000  # 2000 in all
TEST_DEADLINE_S = 60.0
DRAIN_DEADLINE_S = 30.0


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
