"""Kafka consumers: members of the run point's consumer group that hand every record to the
engine's callback, committing as the config says."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from bench.drivers.base import (
    H_AGGREGATE,
    DriverContext,
    OnMessage,
    Topology,
    message_from_headers,
)
from bench.drivers.kafka.config import KafkaConfig, client_settings, consumer_settings
from bench.drivers.kafka.failures import no_assignment, reason
from bench.errors import DriverError


def new_consumer(
    config: KafkaConfig,
    topology: Topology,
    consumer_id: int,
    on_message: OnMessage,
    context: DriverContext,
) -> KafkaConsumer:
    """A member of the topology's consumer group, not started yet."""
    client = AIOKafkaConsumer(
        client_id=f"{config.client_id}-c{consumer_id}",
        group_id=topology.consumer_group,
        **client_settings(config),
        **consumer_settings(config),
    )
    return KafkaConsumer(client, topology.name, on_message, config, context)


class _AssignmentListener(ConsumerRebalanceListener):
    """Signals the first assignment, and pins the start position of every new partition.

    Committing the resolved position when a partition is assigned means that, if a later
    rebalance moves it to another member before anything was consumed, that member starts
    from the same offset instead of re-resolving ``latest`` and skipping what arrived between.
    """

    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner
        self.assigned = asyncio.get_running_loop().create_future()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:  # the first join revokes nothing: a commit then is an error, not a commit
            await self._owner.commit_quietly()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._owner.client
        try:
            positions = {tp: await consumer.position(tp) for tp in assigned}
            if positions:
                await consumer.commit(positions)
        except KafkaError as exc:
            self._owner.count_error(f"commit:{type(exc).__name__}")
        if not self.assigned.done():
            self.assigned.set_result(None)


class KafkaConsumer:
    """One member of the run point's consumer group, delivering records to the callback."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        on_message: OnMessage,
        config: KafkaConfig,
        context: DriverContext,
    ) -> None:
        self.client = consumer
        self._topic = topic
        self._on_message = on_message
        self._config = config
        self._context = context
        self._task: asyncio.Task[None] | None = None
        # (producer, seq) handed to the engine since the last commit: what a kill owes.
        self._owed: list[tuple[int, int]] = []
        self._committed_at = time.monotonic()
        self._killed = False

    def count_error(self, kind: str) -> None:
        self._context.count_error(kind)

    async def commit_quietly(self) -> None:
        if self._config.commit == "explicit" and not self._killed:
            # Everything delivered so far is covered: the client reads the positions first.
            owed, self._owed = self._owed, []
            self._committed_at = time.monotonic()
            try:
                await self.client.commit()
            except KafkaError as exc:
                self._owed = owed + self._owed  # still uncommitted
                self.count_error(f"commit:{type(exc).__name__}")

    def _commit_due(self) -> bool:
        config = self._config
        if not (config.commit_every or config.commit_interval):
            return True  # after every fetched batch
        if config.commit_every and len(self._owed) >= config.commit_every:
            return True
        interval = config.commit_interval
        return bool(interval) and time.monotonic() - self._committed_at >= interval

    async def start(self) -> None:
        """Join the group and return once this member has its assignment.

        The engine starts producing as soon as this returns; returning earlier would let
        ``auto_offset_reset = "latest"`` skip the first messages. A member may be assigned no
        partitions (more consumers than partitions): it still returns after its first join.
        """
        listener = _AssignmentListener(self)
        try:
            async with asyncio.timeout(self._config.setup_timeout):
                await self.client.start()
                self.client.subscribe([self._topic], listener=listener)
                await listener.assigned
        except TimeoutError:
            await self._stop_client()
            raise no_assignment(self._topic, self._config.setup_timeout) from None
        except KafkaError as exc:
            await self._stop_client()
            raise DriverError(f"kafka: consumer could not join its group: {reason(exc)}") from exc
        self._task = asyncio.create_task(self._run(), name=f"kafka-consume-{self._topic}")

    async def _run(self) -> None:
        consumer = self.client
        deliver = self._on_message
        track = self._config.commit == "explicit"
        while True:
            try:
                batches = await consumer.getmany(
                    timeout_ms=200, max_records=self._config.max_poll_records
                )
            except ConsumerStoppedError:
                return
            except KafkaError:
                # The consumer reconnects by itself; a fetch error is something the run survives.
                self.count_error("consumer_fetch")
                await asyncio.sleep(0.1)
                continue
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    # Not keyed by the aggregate (partition_key): the aggregate is a header.
                    key = headers.get(H_AGGREGATE, record.key)
                    if key is None:
                        continue
                    msg = message_from_headers(
                        key.decode("utf-8", "replace"), record.value, headers
                    )
                    if msg is not None:
                        deliver(msg)
                        if track:
                            self._owed.append((msg.producer_id, msg.seq))
            if (batches or self._owed) and (not track or self._commit_due()):
                await self.commit_quietly()

    async def kill(self) -> list[tuple[int, int]]:
        """Die the way a crashed consumer does: stop at once and leave without committing; the
        group's next member reads on from the last commit."""
        self._killed = True  # no commit from here on (nor from the revocation listener)
        owed, self._owed = self._owed, []
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._stop_client()
        return owed

    async def stop(self) -> None:
        failure: BaseException | None = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await self._task
                except Exception as exc:
                    # The callback raised: that is a harness bug, surface it.
                    failure = exc
            self._task = None
        await self.commit_quietly()
        await self._stop_client()
        if failure is not None:
            raise failure

    async def _stop_client(self) -> None:
        try:
            await asyncio.wait_for(self.client.stop(), self._config.setup_timeout)
        except (TimeoutError, KafkaError):
            self.count_error("consumer_close")
