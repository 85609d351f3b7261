"""The embedded ``memory`` target: an in-process broker and event store with fault injection.

It needs no service, so it is the zero-setup default; and because its behaviour is known
exactly, it is the measurement's proving ground. Its options inject behaviour whose effect on
the numbers is predictable:

* ``service_time`` (+ ``jitter``): every publish is acknowledged, and becomes visible to
  consumers, that long after it was sent;
* ``stall_at`` + ``stall_for``: the broker acknowledges nothing during that window (measured
  from the first publish it receives); publishes made during the stall complete when it ends;
* ``capacity_per_s``: a single-server service rate; beyond it publishes queue up;
* ``drop_rate``: acknowledged, never delivered (acknowledged loss);
* ``duplicate_rate``: delivered twice;
* faults (a scenario's ``[[faults]]``, through :meth:`MemoryDriver.inject_fault`): ``kill``
  fails every unacknowledged publish (its message is gone), refuses publishes and stops
  deliveries for ``down_for``, keeping what it had stored; ``restart`` stops taking publishes,
  lets the in-flight ones complete and is back after ``down_for``; ``pause`` freezes publishes,
  acknowledgements and deliveries for ``down_for`` (nothing fails); ``disconnect`` fails the
  in-flight publishes *after* the broker stored them (acknowledgement lost: the audit counts
  them as unacknowledged yet received) and holds the next ones for a 100 ms reconnect;
* ``client_cpu_per_send``: CPU the *client* burns per send, on the harness's event loop (a busy
  wait, as an expensive client library would). It makes the harness, not the target, the limit
  at about ``1 / client_cpu_per_send`` sends per second per worker: the proving ground for the
  ``client_bound`` verdict and for capacity searches that must not blame the target.

The broker partitions by key (crc32, stable across processes), keeps per-partition order, and
has consumer groups (partitions spread over a group's members; every group gets every
message). It lives inside each worker process (``in_process = True``): with several workers
each one has its own broker, its own producers and its own consumers.

Delays use ``bench.timing.PreciseTimer`` (a timerfd on the event loop): asyncio's own timers
wake up to a millisecond late, which would be a 25% error on a 2 ms service time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from itertools import repeat
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from bench import __version__
from bench.drivers.base import (
    AppendResult,
    DriverConfig,
    DriverContext,
    Message,
    OnMessage,
    OutboxEntry,
    StoredEvent,
    StoredIds,
    Topology,
    partition_chooser,
    partition_of,
)
from bench.errors import DriverError
from bench.timing import PreciseTimer
from bench.units import Duration


class MemoryConfig(DriverConfig):
    driver: Literal["memory"] = "memory"
    service_time: Duration = 0.0
    jitter: Duration = 0.0
    stall_at: Duration | None = None
    stall_for: Duration = 0.0
    capacity_per_s: float | None = Field(default=None, gt=0)
    drop_rate: float = Field(default=0.0, ge=0.0, lt=1.0)
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    client_cpu_per_send: Duration = 0.0
    # Messages a partition holds for a consumer group before publishes wait for room.
    max_backlog: int = Field(default=1_000_000, ge=1)
    delivery_batch: int = Field(default=256, ge=1)
    # A consumer commits what it processed every this many deliveries (0: after each delivery
    # batch). What a killed consumer (the kill_consumer fault) had not committed goes back to
    # the front of its partitions, for the group's next member: redelivered.
    commit_every: int = Field(default=0, ge=0, le=10_000_000)
    # The simulated broker's delays are exact (the timer busy-waits their last 100 µs). Off, they
    # are as late as the machine wakes a sleeping process (tens of µs in a VM).
    exact_delays: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _stall_pair(self) -> MemoryConfig:
        if (self.stall_at is None) != (self.stall_for == 0):
            raise ValueError("stall_at and stall_for go together: set both, or neither")
        return self


# --------------------------------------------------------------------------- broker


class _Partition:
    __slots__ = ("consumer", "queue", "space_waiters")

    def __init__(self) -> None:
        self.queue: deque[Message] = deque()
        self.space_waiters: list[asyncio.Future[None]] = []
        self.consumer: MemoryConsumer | None = None


class _Group:
    def __init__(self, partitions: int) -> None:
        self.partitions = [_Partition() for _ in range(partitions)]
        self.members: list[MemoryConsumer] = []

    def rebalance(self) -> None:
        for member in self.members:
            member.partitions = []
        for index, partition in enumerate(self.partitions):
            owner = self.members[index % len(self.members)] if self.members else None
            partition.consumer = owner
            if owner is not None:
                owner.partitions.append(partition)
        for member in self.members:
            member.wake()


class _Topic:
    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.partition_count = partitions
        self.groups: dict[str, _Group] = {}
        self.last_due_ns = [0] * partitions
        self._partition_of: dict[str, int] = {}
        # Per key: its partition in every group (the send's hot path); reset with the groups.
        self.routes: dict[str, list[_Partition]] = {}

    def partition_of(self, key: str) -> int:
        index = self._partition_of.get(key)
        if index is None:
            index = self._partition_of[key] = partition_of(key, self.partition_count)
        return index

    def group(self, name: str) -> _Group:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(self.partition_count)
            self.routes.clear()
        return group

    def route(self, key: str) -> list[_Partition]:
        index = self.partition_of(key)
        parts = self.routes[key] = [group.partitions[index] for group in self.groups.values()]
        return parts


REREAD_BATCH = 10_000
RECONNECT_S = 0.1  # how long a dropped client takes to reconnect (the disconnect fault)


class MemoryProducer:
    def __init__(self, driver: MemoryDriver, topic: _Topic, partition_key: str) -> None:
        self._driver = driver
        self._topic = topic
        # Not by aggregate: this producer's own partitioner (round robin, or the event id's).
        self._choose = (
            None
            if partition_key == "aggregate"
            else partition_chooser(partition_key, topic.partition_count)
        )

    async def send(self, msg: Message) -> None:
        driver = self._driver
        topic = self._topic
        choose = self._choose
        if driver.plain and driver.fault is None and not driver.admit_waiting:
            # The hand-off alone (no delay, loss, duplication, client cost or fault): what
            # commit() does, unrolled, unless a partition is full.
            if choose is None:
                parts = topic.routes.get(msg.key)
                if parts is None:
                    parts = topic.route(msg.key)
            else:
                index = choose(msg)
                parts = [group.partitions[index] for group in topic.groups.values()]
            limit = driver.max_backlog
            for part in parts:
                if len(part.queue) >= limit:
                    break
            else:
                for part in parts:
                    part.queue.append(msg)
                    consumer = part.consumer
                    if consumer is not None and consumer.waiter is not None:
                        consumer.wake()
                return
        if driver.fault is not None or driver.admit_waiting:
            await driver.admit()
        if driver.client_cost_ns:
            busy_until = time.perf_counter_ns() + driver.client_cost_ns
            while time.perf_counter_ns() < busy_until:
                pass
        partition = topic.partition_of(msg.key) if choose is None else choose(msg)
        for group in topic.groups.values():
            part = group.partitions[partition]
            while len(part.queue) >= driver.config.max_backlog:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                part.space_waiters.append(waiter)
                await waiter
        if not driver.delayed:
            driver.commit(topic, partition, msg)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        due = driver.completion_ns(topic, partition, time.monotonic_ns())
        driver.timer().call_at_ns(
            due, driver.complete, topic, partition, msg, fut, exact=driver.config.exact_delays
        )
        if driver.faults_armed:
            driver.in_flight.add(fut)
            fut.add_done_callback(driver.in_flight.discard)
        await fut

    async def close(self) -> None:
        return None


class MemoryConsumer:
    def __init__(
        self,
        group: _Group,
        on_message: OnMessage,
        batch: int,
        gate: asyncio.Event,
        commit_every: int = 0,
    ) -> None:
        self._gate = gate  # cleared while a fault stops deliveries
        self._group = group
        self._on_message = on_message
        self._batch = batch
        self._commit_every = commit_every
        # Delivered and not committed yet (commit_every > 0), in delivery order per partition.
        self._uncommitted: list[tuple[_Partition, Message]] = []
        self.partitions: list[_Partition] = []
        self.waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def start(self) -> None:
        self._group.members.append(self)
        self._group.rebalance()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        on_message = self._on_message
        batch = self._batch
        loop = asyncio.get_running_loop()
        gate = self._gate
        commit_every = self._commit_every
        while True:
            if not gate.is_set():
                await gate.wait()
            delivered = 0
            for part in self.partitions:
                queue = part.queue
                n = len(queue)
                if not n:
                    continue
                if n > batch:
                    n = batch
                popleft = queue.popleft
                # on_message is synchronous: nothing takes from this queue meanwhile.
                if commit_every:
                    uncommitted = self._uncommitted
                    for _ in repeat(None, n):
                        msg = popleft()
                        on_message(msg)
                        uncommitted.append((part, msg))
                    if len(uncommitted) >= commit_every:
                        uncommitted.clear()  # the commit
                else:
                    for _ in repeat(None, n):
                        on_message(popleft())
                delivered += n
                if part.space_waiters and n:
                    waiters, part.space_waiters = part.space_waiters, []
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
            if delivered:
                await asyncio.sleep(0)  # let producers run between batches
                continue
            self.waiter = loop.create_future()
            if any(part.queue for part in self.partitions):
                self.waiter = None
                continue
            await self.waiter
            self.waiter = None

    async def stop(self) -> None:
        """Leave the group gracefully: what was processed is committed."""
        self._uncommitted.clear()
        await self._leave()

    async def kill(self) -> list[tuple[int, int]]:
        """Die without committing: the messages processed since the last commit go back to
        the front of their partitions, in order, for the group's next member."""
        owed, self._uncommitted = self._uncommitted, []
        await self._leave()
        by_partition: dict[int, tuple[_Partition, list[Message]]] = {}
        for part, msg in owed:
            by_partition.setdefault(id(part), (part, []))[1].append(msg)
        for part, msgs in by_partition.values():
            part.queue.extendleft(reversed(msgs))
            if part.consumer is not None:
                part.consumer.wake()
        return [(msg.producer_id, msg.seq) for _, msg in owed]

    async def _leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self in self._group.members:
            self._group.members.remove(self)
            self._group.rebalance()


class MemoryDriver:
    """The in-process broker and event store, one per worker process."""

    name: ClassVar[str] = "memory"
    kind: ClassVar[Literal["stream", "store", "both"]] = "both"
    config_model: ClassVar[type[DriverConfig]] = MemoryConfig
    in_process: ClassVar[bool] = True

    def __init__(self, config: MemoryConfig, context: DriverContext | None = None) -> None:
        self.config = config
        self.context = context or DriverContext()
        self._topics: dict[str, _Topic] = {}
        self._timer: PreciseTimer | None = None
        self._rng = random.Random(config.seed)
        self._service_ns = int(config.service_time * 1e9)
        self._jitter_ns = int(config.jitter * 1e9)
        self._capacity_gap_ns = 1e9 / config.capacity_per_s if config.capacity_per_s else 0.0
        self.client_cost_ns = int(config.client_cpu_per_send * 1e9)
        self._busy_until_ns = 0.0
        self._origin_ns: int | None = None
        self.delayed = bool(
            self._service_ns or self._jitter_ns or self._capacity_gap_ns or config.stall_for
        )
        # Publishes take the plain hand-off (MemoryProducer.send's fast path) when nothing is
        # injected; a fault in progress still goes through admit() and commit().
        self.plain = not (
            self.delayed or self.client_cost_ns or config.drop_rate or config.duplicate_rate
        )
        self.max_backlog = config.max_backlog
        self.dropped = 0
        self.duplicated = 0
        # Faults: the one in progress (None: healthy), what it did, and what it holds back.
        self.faults_armed = False  # track in-flight publishes (only when faults are scheduled)
        self.fault: str | None = None
        self.in_flight: set[asyncio.Future[None]] = set()
        self._deliveries = asyncio.Event()
        self._deliveries.set()
        self._admission = asyncio.Event()
        self._admission.set()
        self.admit_waiting = 0  # sends held at the admission gate
        self._held: list[tuple[Any, ...]] = []  # completions due while paused
        self._killed: set[asyncio.Future[None]] = set()  # publishes a kill lost
        self.fault_counts = {"failed_in_flight": 0, "refused": 0}
        # Event store state.
        self._streams: dict[str, list[StoredEvent]] = {}
        self._log: list[StoredEvent] = []
        # A replay's snapshots (aggregate -> version, state) and archive (HistoryStore).
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}
        self._archive: dict[str, list[StoredEvent]] = {}
        # saga id -> (status, step, version)
        self._saga_state: dict[str, tuple[str, int, int]] = {}
        # The transactional outbox (``use_outbox``): position -> entry, in commit order.
        self._outbox_on = False
        self._outbox: dict[int, OutboxEntry] = {}
        self._outbox_next = 0
        self.conflicts = 0

    # -- lifecycle
    async def connect(self) -> None:
        return None

    async def prepare(self, topology: Topology) -> None:
        self._topics[topology.name] = _Topic(topology.name, topology.partitions)

    def _topic(self, topology: Topology) -> _Topic:
        topic = self._topics.get(topology.name)
        if topic is None:
            raise DriverError(f"memory: topic {topology.name!r} was not prepared")
        return topic

    async def producer(self, topology: Topology, producer_id: int) -> MemoryProducer:
        return MemoryProducer(self, self._topic(topology), topology.partition_key)

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> MemoryConsumer:
        group = self._topic(topology).group(topology.consumer_group)
        return MemoryConsumer(
            group,
            on_message,
            self.config.delivery_batch,
            self._deliveries,
            self.config.commit_every,
        )

    async def cleanup(self, topology: Topology) -> None:
        self._topics.pop(topology.name, None)

    # -- re-read (Rereadable)
    reread_method: ClassVar[str] = (
        "the in-process broker's partition queues of every group (it keeps no delivered "
        "message, and a dropped one is never stored)"
    )

    def reread_unsupported(self, topology: Topology) -> str | None:
        if topology.name not in self._topics:
            return (
                f"memory: topic {topology.name!r} is not in this process (the broker lives "
                "inside each worker; re-read it there)"
            )
        return None

    async def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """What the broker still holds: the undelivered messages of every group. A lost
        message (acknowledged, never received) is either here or was dropped."""
        topic = self._topic(topology)
        for group in list(topic.groups.values()):
            for part in group.partitions:
                # A copy of the references: the queue may change while the reader awaits.
                queued = list(part.queue)
                for start in range(0, len(queued), REREAD_BATCH):
                    await asyncio.sleep(0)  # a long backlog must not hold the loop
                    yield [(m.producer_id, m.seq) for m in queued[start : start + REREAD_BATCH]]

    async def describe(self) -> dict[str, Any]:
        return {
            "product": "eventbench memory target",
            "version": __version__,
            "in_process": True,
            "precise_timer": PreciseTimer.mechanism(),
            "settings": self.config.model_dump(mode="json"),
            "injected": {
                "dropped": self.dropped,
                "duplicated": self.duplicated,
                **self.fault_counts,
            },
        }

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.release()
            self._timer = None

    # -- broker internals (called by producers and the timer)
    def timer(self) -> PreciseTimer:
        if self._timer is None:
            self._timer = PreciseTimer.acquire()
        return self._timer

    def completion_ns(self, topic: _Topic, partition: int, now_ns: int) -> int:
        if self._origin_ns is None:
            self._origin_ns = now_ns
        due = float(now_ns)
        if self._capacity_gap_ns:
            due = self._busy_until_ns = max(due, self._busy_until_ns) + self._capacity_gap_ns
        due += self._service_ns
        if self._jitter_ns:
            due += self._rng.random() * self._jitter_ns
        if self.config.stall_at is not None:
            stall_start = self._origin_ns + self.config.stall_at * 1e9
            stall_end = stall_start + self.config.stall_for * 1e9
            if stall_start <= due < stall_end or stall_start <= now_ns < stall_end:
                due = max(due, stall_end)
                if self._capacity_gap_ns:
                    self._busy_until_ns = max(self._busy_until_ns, due)
        # A partition is a log: nothing overtakes what was published before it.
        due_ns = max(int(due), topic.last_due_ns[partition])
        topic.last_due_ns[partition] = due_ns
        return due_ns

    def complete(
        self, topic: _Topic, partition: int, msg: Message, fut: asyncio.Future[None]
    ) -> None:
        # The acknowledgement and the delivery happen at the same instant; resolving the ack
        # first lets the loop resume the producer before the consumer's callback runs, so the
        # service time is the injected one rather than that plus the consumer's work.
        if self.fault == "pause":
            self._held.append((topic, partition, msg, fut))
            return
        if fut.done():  # failed by a fault: a kill lost the message, a disconnect only the ack
            if fut in self._killed:
                self._killed.discard(fut)
                return
        else:
            fut.set_result(None)
        self.commit(topic, partition, msg)

    # -- faults
    async def admit(self) -> None:
        """A publish during a fault: refused while killed or restarting, held otherwise."""
        if self.fault in ("kill", "restart"):
            self.fault_counts["refused"] += 1
            raise DriverError(f"memory: connection refused (broker {self.fault}ed)")
        if not self._admission.is_set():
            self.admit_waiting += 1
            try:
                await self._admission.wait()
            finally:
                self.admit_waiting -= 1
        else:
            # Sends held by the fault go first, in their order: a fresh send that overtook
            # them would break per-key order (their wake-ups are already queued; yield behind).
            while self.admit_waiting:
                await asyncio.sleep(0)

    def sends_are_bounded(self) -> bool:
        """Every publish completes after its service time or fails with a fault: no timer."""
        return True

    def arm_faults(self) -> None:
        """Faults are scheduled: track publishes in flight from now on, for a kill."""
        self.faults_armed = True

    async def inject_fault(self, action: str, down_for_s: float) -> str:
        """Act out one fault now and return when the target is back; say what was done. A
        fault cancelled part-way (the run stopping) brings the target back all the same."""
        self.arm_faults()
        in_flight = [f for f in self.in_flight if not f.done()]
        try:
            if action == "disconnect":
                self.fault = action
                self._admission.clear()
                self._deliveries.clear()
                for fut in in_flight:
                    fut.set_exception(DriverError("memory: connection reset (disconnected)"))
                self.fault_counts["failed_in_flight"] += len(in_flight)
                await asyncio.sleep(RECONNECT_S)
                detail = f"dropped the connections ({len(in_flight)} publishes in flight failed)"
            elif action == "kill":
                self.fault = action
                self._deliveries.clear()
                for fut in in_flight:
                    fut.set_exception(DriverError("memory: connection lost (broker killed)"))
                    self._killed.add(fut)
                self.fault_counts["failed_in_flight"] += len(in_flight)
                await asyncio.sleep(down_for_s)
                detail = f"killed ({len(in_flight)} unacknowledged publishes lost)"
            elif action == "restart":
                self.fault = action
                while self.in_flight:  # graceful: what was accepted completes first
                    await asyncio.sleep(0.001)
                self._deliveries.clear()
                await asyncio.sleep(down_for_s or 1.0)
                detail = "restarted gracefully (in-flight publishes completed first)"
            elif action == "pause":
                self.fault = action
                self._admission.clear()
                self._deliveries.clear()
                await asyncio.sleep(down_for_s)
                # In flight when it froze, and sent while it was frozen: all held, none failed.
                detail = (
                    f"paused ({len(in_flight)} publishes in flight froze, "
                    f"{self.admit_waiting} more waited for the resume; none failed)"
                )
            else:
                raise DriverError(f"memory: unknown fault {action!r}")
        finally:
            self.fault = None
            held, self._held = self._held, []
            for topic, partition, msg, fut in held:
                self.complete(topic, partition, msg, fut)
            self._admission.set()
            self._deliveries.set()
        return detail

    def commit(self, topic: _Topic, partition: int, msg: Message) -> None:
        copies = 1
        if self.config.drop_rate and self._rng.random() < self.config.drop_rate:
            self.dropped += 1
            return
        if self.config.duplicate_rate and self._rng.random() < self.config.duplicate_rate:
            self.duplicated += 1
            copies = 2
        for group in topic.groups.values():
            part = group.partitions[partition]
            for _ in range(copies):
                part.queue.append(msg)
            consumer = part.consumer
            if consumer is not None:
                consumer.wake()

    # -- event store
    async def prepare_store(self) -> None:
        self._streams.clear()
        self._log.clear()
        self._outbox.clear()
        self._snapshots.clear()
        self._archive.clear()

    # -- the transactional outbox (Outbox)
    def use_outbox(self) -> None:
        self._outbox_on = True

    async def outbox_fetch(self, shard: int, shards: int, limit: int) -> list[OutboxEntry]:
        found: list[OutboxEntry] = []
        for entry in self._outbox.values():
            if partition_of(entry.event.aggregate_id, shards) == shard:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def outbox_mark(self, positions: Sequence[int]) -> None:
        for position in positions:
            self._outbox.pop(position, None)

    async def outbox_pending(self) -> int:
        return len(self._outbox)

    async def append(
        self, aggregate_id: str, events: list[StoredEvent], expected_version: int
    ) -> AppendResult:
        if self.delayed:
            due = int(time.monotonic_ns() + self._service_ns + self._rng.random() * self._jitter_ns)
            # Plain wake-ups: many concurrent writers would serialise behind exact spins.
            await self.timer().sleep_until(due)
        stream = self._streams.setdefault(aggregate_id, [])
        if len(stream) != expected_version:
            self.conflicts += 1
            return AppendResult(committed=False, version=len(stream))
        for offset, event in enumerate(events, start=1):
            stored = StoredEvent(
                event_id=event.event_id,
                aggregate_id=aggregate_id,
                aggregate_type=event.aggregate_type,
                event_type=event.event_type,
                version=expected_version + offset,
                payload=event.payload,
                metadata=event.metadata,
            )
            stream.append(stored)
            self._log.append(stored)
            if self._outbox_on:
                # In the append's step: no await between the stream and the outbox.
                self._outbox_next += 1
                self._outbox[self._outbox_next] = OutboxEntry(self._outbox_next, stored)
        return AppendResult(committed=True, version=len(stream))

    async def load(self, aggregate_id: str) -> list[StoredEvent]:
        return list(self._streams.get(aggregate_id, ()))

    async def stored_event_ids(self) -> set[str]:
        return {event.event_id for event in self._log}

    # -- saga state (SagaStateStore)
    async def prepare_saga_state(self, namespace: str) -> None:
        self._saga_state.clear()

    async def save_saga_state(self, saga_id: str, status: str, step: int, version: int) -> None:
        stored = self._saga_state.get(saga_id)
        if stored is None or stored[2] < version:
            self._saga_state[saga_id] = (status, step, version)

    async def load_saga_states(self) -> dict[str, tuple[str, int]]:
        return {saga: (status, step) for saga, (status, step, _) in self._saga_state.items()}

    async def drop_saga_state(self) -> None:
        self._saga_state.clear()

    # -- a seeded history (HistoryStore)
    async def seed_history(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            self._streams.setdefault(event.aggregate_id, []).append(event)
            self._log.append(event)

    async def seed_snapshots(self, snapshots: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        for aggregate_id, version, state in snapshots:
            self._snapshots[aggregate_id] = (version, dict(state))

    async def load_snapshot_tail(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        version, state = self._snapshots.get(aggregate_id, (0, None))
        stream = self._streams.get(aggregate_id, [])
        first = stream[0].version if stream else 1  # versions are contiguous from here
        return (
            dict(state) if state is not None else None,
            version,
            stream[max(0, version - first + 1) :],
        )

    async def archive_before_snapshots(self) -> int:
        moved = 0
        for aggregate_id, (version, _) in self._snapshots.items():
            stream = self._streams.get(aggregate_id, [])
            old = [e for e in stream if e.version <= version]
            if old:
                self._archive.setdefault(aggregate_id, []).extend(old)
                self._streams[aggregate_id] = [e for e in stream if e.version > version]
                moved += len(old)
        return moved

    async def load_archived(self, aggregate_id: str) -> list[StoredEvent]:
        return list(self._archive.get(aggregate_id, ()))

    async def table_bytes(self) -> dict[str, int]:
        """The events' payload and metadata bytes, live and archived (the memory store has no
        pages: this is what it holds)."""

        def size(streams: dict[str, list[StoredEvent]]) -> int:
            return sum(
                len(e.payload) + len(e.event_id) + len(e.aggregate_id) + len(e.event_type)
                for stream in streams.values()
                for e in stream
            )

        return {"live": size(self._streams), "archive": size(self._archive)}

    async def rewrite_events(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            stream = self._streams[event.aggregate_id]
            old = stream[event.version - 1]
            if old.event_id != event.event_id:
                raise DriverError(f"memory: rewrite of {event.event_id}: not at its version")
            stream[event.version - 1] = event

    async def verify(self) -> list[str]:
        problems: list[str] = []
        seen_ids: set[str] = set()
        for aggregate_id, stream in self._streams.items():
            versions = [event.version for event in stream]
            if versions != list(range(1, len(stream) + 1)):
                problems.append(f"{aggregate_id}: versions are not 1..{len(stream)} without gaps")
        for event in self._log:
            if event.event_id in seen_ids:
                problems.append(f"event {event.event_id} is stored more than once")
            seen_ids.add(event.event_id)
        return problems
