"""Classifying lost messages by re-reading the topic, on the memory target (whose drops are
"not stored" and whose undelivered queue is "stored, not delivered"), and what a target that
cannot re-read reports."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bench.drivers.base import DriverContext, Message, Rereadable, Topology
from bench.drivers.memory import MemoryConfig, MemoryDriver
from bench.drivers.rabbitmq import RabbitMQConfig, RabbitMQDriver
from bench.engine.reread import SAMPLES_KEPT, classify_losses, combine_losses
from bench.metrics import audit

TOPO = Topology(name="t", partitions=4, producers=2, consumers=1, consumer_group="g")
PER_PRODUCER = 200


def _msg(producer_id: int, seq: int) -> Message:
    key = f"k{seq % 7}"
    return Message(key, b"v", "T", f"{producer_id}-{seq}", "c", producer_id, seq, seq, 0)


async def _run_with_a_gap(config: MemoryConfig) -> tuple[MemoryDriver, list, list]:
    """Both producers send half their messages to a live consumer, which then stops; the
    second half stays queued (stored, never delivered). Every send was acknowledged."""
    driver = MemoryDriver(config)
    await driver.prepare(TOPO)
    ledger = audit.ConsumerLedger()
    consumer = await driver.consumer(
        TOPO, 0, lambda m: ledger.record(m.producer_id, m.seq, m.key, m.key_seq)
    )
    await consumer.start()
    producers = [await driver.producer(TOPO, p) for p in range(2)]
    ledgers = [audit.ProducerLedger(p) for p in range(2)]
    for half in (0, 1):
        for seq in range(half * PER_PRODUCER // 2, (half + 1) * PER_PRODUCER // 2):
            for p, producer in enumerate(producers):
                await producer.send(_msg(p, seq))
                ledgers[p].keys.append(seq % 7)
                ledgers[p].acks.append(audit.ACK_OK)
        if half == 0:
            deadline = time.monotonic() + 2
            while any(part.queue for part in _parts(driver)) and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            await consumer.stop()
    return driver, [lg.export() for lg in ledgers], [ledger.export()]


def _parts(driver: MemoryDriver) -> list:
    topic = driver._topics[TOPO.name]
    return [part for group in topic.groups.values() for part in group.partitions]


def test_drops_are_not_stored_and_the_queued_backlog_is_stored_not_delivered() -> None:
    async def main() -> tuple[dict, int, int]:
        driver, producers, consumers = await _run_with_a_gap(MemoryConfig(drop_rate=0.2, seed=3))
        lost = audit.lost_ids(producers, consumers)
        merged = audit.merge(producers, consumers)
        assert sum(s.size for s in lost.values()) == merged.lost
        result = await classify_losses(driver, TOPO, lost, budget_s=5)
        return result, driver.dropped, merged.received

    result, dropped, received = asyncio.run(main())
    total = 2 * PER_PRODUCER
    assert dropped > 0
    assert result["checked"] and result["complete"]
    assert result["not_stored"] == dropped
    assert result["not_delivered"] == total - dropped - received > 0
    assert result["unclassified"] == 0
    assert "reason" not in result
    assert result["method"].startswith("memory: ")
    assert len(result["samples"]["not_stored"]) == SAMPLES_KEPT
    assert len(result["samples"]["not_delivered"]) == SAMPLES_KEPT
    producer_id, seq = result["samples"]["not_delivered"][0].split(":")
    # The second half was never delivered; the samples come in (producer, seq) order.
    assert producer_id == "0" and int(seq) >= PER_PRODUCER // 2


def test_a_re_read_out_of_time_leaves_its_losses_unclassified() -> None:
    async def main() -> dict:
        driver, producers, consumers = await _run_with_a_gap(MemoryConfig())
        lost = audit.lost_ids(producers, consumers)
        return await classify_losses(driver, TOPO, lost, budget_s=0)

    result = asyncio.run(main())
    assert result["checked"] and not result["complete"]
    assert result["unclassified"] == PER_PRODUCER  # the undelivered halves of both producers
    assert result["not_stored"] == result["not_delivered"] == 0
    assert "budget" in result["reason"]


def test_nothing_lost_needs_no_re_read() -> None:
    result = asyncio.run(classify_losses(MemoryDriver(MemoryConfig()), TOPO, {}, budget_s=1))
    assert result["checked"] and result["unclassified"] == 0 and result["read"] == 0


def test_a_target_that_cannot_re_read_says_what_was_not_checked() -> None:
    lost = {0: np.array([3, 5]), 1: np.array([7])}
    classic = RabbitMQDriver(RabbitMQConfig(queue_type="classic"), DriverContext())
    assert isinstance(classic, Rereadable)
    result = asyncio.run(classify_losses(classic, TOPO, lost, budget_s=1))
    assert not result["checked"]
    assert result["unclassified"] == 3
    assert "not checked" in result["reason"] and "classic" in result["reason"]

    # The memory broker lives inside each worker: a driver in another process has no topic.
    elsewhere = asyncio.run(classify_losses(MemoryDriver(MemoryConfig()), TOPO, lost, 1))
    assert not elsewhere["checked"] and "inside each worker" in elsewhere["reason"]

    assert not asyncio.run(classify_losses(object(), TOPO, lost, 1))["checked"]


def test_per_worker_classifications_add_up() -> None:
    a = {
        "checked": True,
        "complete": True,
        "not_stored": 2,
        "not_delivered": 1,
        "unclassified": 0,
        "method": "memory: queues",
        "samples": {"not_stored": ["0:1", "0:2"], "not_delivered": ["0:9"]},
        "read": 10,
        "elapsed_s": 0.1,
    }
    b = {**a, "not_stored": 0, "not_delivered": 4, "samples": {"not_delivered": ["1:3"]}}
    combined = combine_losses([a, b])
    assert combined["not_stored"] == 2 and combined["not_delivered"] == 5
    assert combined["samples"]["not_delivered"] == ["0:9", "1:3"]
    assert combined["method"] == "memory: queues" and combined["read"] == 20


def test_lost_ids_are_the_acknowledged_messages_nobody_received() -> None:
    acks = bytes([audit.ACK_OK, audit.ACK_FAILED, audit.ACK_OK, audit.ACK_PENDING, audit.ACK_OK])
    keys = np.zeros(5, dtype=np.uint32).tobytes()
    ledger = audit.ConsumerLedger()
    ledger.record(0, 0, "k", 0)
    producers = [(0, keys, acks), (1, keys[:4], bytes([audit.ACK_OK]))]
    consumers = [ledger.export()]
    lost = audit.lost_ids(producers, consumers)
    assert {p: seqs.tolist() for p, seqs in lost.items()} == {0: [2, 4], 1: [0]}
    assert audit.merge(producers, consumers).lost == 3
