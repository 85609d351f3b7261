"""Kafka producers: one aiokafka producer per harness producer, keyed sends with many in
flight, and optional transactions of a fixed number of events."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from bench.drivers.base import H_AGGREGATE, Message, Topology, message_headers
from bench.drivers.kafka.config import KafkaConfig, client_settings, producer_settings, where
from bench.drivers.kafka.failures import reason
from bench.errors import DriverError
from bench.units import format_duration


async def start_producer(
    config: KafkaConfig, topology: Topology, producer_id: int
) -> KafkaProducer | KafkaTransactionalProducer:
    """A started producer for the run point's topic; DriverError if the broker refuses it."""
    # One AIOKafkaProducer per harness producer: aiokafka keeps one produce request in
    # flight per broker connection, so separate producers overlap their requests.
    # Measured on Tansu, 256 in flight: 4 producers ~30-45k msgs/s, 1 shared ~17-34k.
    transactional_id = (
        f"{config.client_id}-{topology.name}-{producer_id}" if config.transactional else None
    )
    client = AIOKafkaProducer(
        client_id=f"{config.client_id}-p{producer_id}",
        transactional_id=transactional_id,
        partitioner=KeyHashCache(),
        **client_settings(config),
        **producer_settings(config),
    )
    try:
        await asyncio.wait_for(client.start(), config.connect_timeout)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), config.connect_timeout)
        if config.enable_idempotence and isinstance(exc, KafkaError):
            raise DriverError(
                f"{where(config)}: the broker refused an idempotent producer "
                f"(InitProducerId: {reason(exc)})",
                hint="this broker does not support idempotent or transactional producers "
                "through aiokafka (Tansu does not): set enable_idempotence = false and "
                "transactional = 0",
            ) from exc
        raise DriverError(
            f"{where(config)}: producer did not start within "
            f"{format_duration(config.connect_timeout)} ({reason(exc)})"
        ) from exc
    producer: KafkaProducer | KafkaTransactionalProducer
    if config.transactional:
        producer = KafkaTransactionalProducer(
            client,
            topology.name,
            config.transactional,
            config.transaction_linger_ms / 1000,
            topology.partition_key,
        )
    else:
        producer = KafkaProducer(client, topology.name, topology.partition_key)
    return producer


class KeyHashCache:
    """aiokafka's default partitioner (Kafka's murmur2 of the key, so a key lands on the same
    partition as with the Java client), with each key's hash computed once.

    aiokafka's murmur2 is pure Python, about 10 us per send on this kind of machine; a run
    reuses a bounded set of keys (its aggregates), so the hash is looked up instead.
    """

    __slots__ = ("_hashes",)

    # Past this many distinct keys the cache starts again: memory stays bounded whatever
    # the key space, and the cost falls back to aiokafka's for one key in MAX_KEYS.
    MAX_KEYS = 1 << 18

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.MAX_KEYS:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def record_headers(msg: Message) -> list[tuple[str, bytes]]:
    """The message's envelope as Kafka record headers."""
    return [(name, value.encode()) for name, value in message_headers(msg).items()]


def keyed_record(msg: Message, partition_key: str) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The record's key and headers: keyed by the aggregate (the client's partitioner keeps
    each aggregate in one partition), by the event id, or not keyed at all (the client spreads
    records over partitions). Not keyed by the aggregate, the aggregate travels in a header."""
    headers = record_headers(msg)
    if partition_key == "aggregate":
        return msg.key.encode(), headers
    headers.append((H_AGGREGATE, msg.key.encode()))
    return (msg.event_id.encode() if partition_key == "event_id" else None), headers


class KafkaProducer:
    """One aiokafka producer for one harness producer; any number of sends in flight.

    Appends to aiokafka's batches go one at a time, in call order (a FIFO lock held only while
    the record is appended, not while it awaits its ack). aiokafka's ``send()`` waits when the
    partition's last batch is full; when that batch drains, the waiting senders wake in order,
    but a send called meanwhile from a callback already queued on the loop appended first, to a
    fresh batch, and so reached the broker ahead of earlier events of its key: 1-4 keys
    reordered per run at 16 KiB batches, blamed on the broker by the audit. An uncontended
    acquire does not suspend, so the lock costs nothing while batches have room.
    """

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, partition_key: str = "aggregate"
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._partition_key = partition_key
        self._append = asyncio.Lock()

    async def send(self, msg: Message) -> None:
        # send() only queues the record (waiting if the batch buffer is full); the future it
        # returns resolves on the broker's ack. Concurrent callers share batches, which is
        # what makes many sends in flight cheap.
        key, headers = keyed_record(msg, self._partition_key)
        async with self._append:
            ack = await self._producer.send(self._topic, msg.value, key=key, headers=headers)
        await ack

    async def close(self) -> None:
        await self._producer.stop()


class TransactionAbortedError(KafkaError):
    """A transaction was aborted; none of its events will be seen by read_committed readers."""


class _TxnBatch:
    __slots__ = ("acked", "assigned", "closing", "done", "error")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.assigned = 0
        self.acked = 0
        self.closing = False
        self.error: BaseException | None = None
        self.done = done


class KafkaTransactionalProducer:
    """Groups sends into transactions of ``per_txn`` events, with many sends in flight.

    Every send joins the open transaction (beginning one if none is open) and, once that
    transaction is full, later sends wait for it to end before a new one begins, so a record
    can never land in the wrong transaction. A transaction ends when all its sends were acked
    and either it is full or no send joined it for ``linger_s``. ``send()`` returns only when
    its transaction committed: a transactional event is not delivered before that, so the
    commit is the acknowledgement the engine measures. If any send of a transaction fails, the
    transaction is aborted and every other send of it raises ``TransactionAbortedError``.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        per_txn: int,
        linger_s: float,
        partition_key: str = "aggregate",
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._partition_key = partition_key
        self._per_txn = per_txn
        self._linger_s = linger_s
        self._join_lock = asyncio.Lock()
        self._batch: _TxnBatch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ending: set[asyncio.Task[None]] = set()
        self._append = asyncio.Lock()  # see KafkaProducer: appends in call order

    async def send(self, msg: Message) -> None:
        batch = await self._join()
        try:
            key, headers = keyed_record(msg, self._partition_key)
            async with self._append:
                ack = await self._producer.send(self._topic, msg.value, key=key, headers=headers)
            await ack
        except BaseException as exc:
            if batch.error is None:
                batch.error = exc
            batch.closing = True
            self._acked(batch)
            raise
        self._acked(batch)
        await asyncio.shield(batch.done)

    async def _join(self) -> _TxnBatch:
        async with self._join_lock:
            while True:
                batch = self._batch
                if batch is None:
                    await self._producer.begin_transaction()
                    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    # Sends that failed on their own never await this; mark it retrieved.
                    done.add_done_callback(lambda f: f.exception())
                    batch = self._batch = _TxnBatch(done)
                if not batch.closing and batch.assigned < self._per_txn:
                    batch.assigned += 1
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    return batch
                # Full or ending: wait (holding the lock, so joiners queue in order) until it
                # has committed or aborted, then begin the next one.
                await asyncio.wait([batch.done])

    def _acked(self, batch: _TxnBatch) -> None:
        batch.acked += 1
        if batch.acked < batch.assigned or batch is not self._batch:
            return
        if batch.closing or batch.assigned >= self._per_txn:
            self._end(batch)
        else:
            assigned_then = batch.assigned
            self._timer = asyncio.get_running_loop().call_later(
                self._linger_s, self._linger_expired, batch, assigned_then
            )

    def _linger_expired(self, batch: _TxnBatch, assigned_then: int) -> None:
        self._timer = None
        if batch is self._batch and not batch.closing and batch.assigned == assigned_then:
            self._end(batch)

    def _end(self, batch: _TxnBatch) -> None:
        batch.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.create_task(self._finish(batch), name="kafka-txn-end")
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _finish(self, batch: _TxnBatch) -> None:
        outcome: BaseException | None = None
        try:
            if batch.error is None:
                await self._producer.commit_transaction()
            else:
                await self._producer.abort_transaction()
        except Exception as exc:
            outcome = exc
        self._batch = None
        if batch.error is not None:
            aborted = TransactionAbortedError(f"transaction aborted: {batch.error!r}")
            batch.done.set_exception(aborted)
        elif outcome is not None:
            batch.done.set_exception(outcome)
        else:
            batch.done.set_result(None)

    async def close(self) -> None:
        batch = self._batch
        if batch is not None and not batch.closing and batch.acked == batch.assigned:
            self._end(batch)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        await self._producer.stop()
