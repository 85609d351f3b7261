"""The CQRS pipeline inside a worker: command -> event store -> relay -> broker -> projection.

``workload.kind = "pipeline"`` (issue 17) joins the two halves the harness measured apart. The
command side is the event-store workload's writers (``StoreWriters``, unchanged: decide,
append with an expected version, retry on conflict). What happens after a commit is the relay
mode:

* ``outbox``: the store writes each committed append's events to an outbox in the append's
  transaction (``bench.drivers.base.Outbox``). ``relays`` relay tasks poll it, each owning the
  aggregates of one shard (``partition_of(aggregate, relays)``), publish in outbox order, and
  mark what the broker acknowledged. A relay that dies between publishing and marking
  publishes again after its restart: at least once, never lost.
* ``dual_write``: the command handler publishes after its commit, outside the transaction (the
  negative control). A crash between the commit and the publish loses the event: the store
  has it, no consumer ever sees it, and the invariants name it.

Each relay is a producer of the broker, so the delivery audit of streams (lost, duplicated,
reordered per (relay, aggregate)) applies to the broker hop unchanged. A message carries the
stored event: key = aggregate id, ``key_seq`` = the event's version, ``intended_ns`` = the
command's intended time, and ``correlation_id`` = ``"<committed_ns>:<published_ns>"`` (the
commit time as the writer saw it and the relay's send start; one monotonic clock on a host).

The projection consumes from the broker into a read model of order summaries
(``bench.drivers.base.ReadModel`` where the store keeps one, else ``MemoryReadModel`` here),
with the idempotency guard (a processed-events record in the update's transaction) or none,
and a version check that rejects an event ahead of the next version.

Stages, per event, each from the previous one (ns, monotonic):
``append`` intended -> committed, ``relay`` committed -> acknowledged by the broker,
``broker`` published -> consumed, ``apply`` consumed -> read model committed, and ``visible``
intended -> the read model reflects it (the headline: the eventual-consistency window).
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.domain import OrderState, fold
from bench.drivers.base import (
    APPLIED,
    DUPLICATE_APPLIED,
    DUPLICATE_SKIPPED,
    OUT_OF_ORDER,
    ConsumerLag,
    Message,
    Outbox,
    OutboxEntry,
    Producer,
    ReadModel,
    StoredEvent,
    StoreDriver,
    partition_of,
)
from bench.metrics.audit import ACK_FAILED, ACK_NOT_SENT, ACK_OK, ConsumerLedger, ProducerLedger
from bench.metrics.recorder import LatencyRecorder
from bench.scenario import PIPELINE_STAGES

STAGES = PIPELINE_STAGES
SAMPLES_KEPT = 10
BACKLOG_EVERY_S = 0.1
RELAY_BACKOFF_MAX_S = 0.5
BROKER_LAG_EVERY = 10  # backlog samples between two questions to the broker (1 s)
BACKLOG_SAMPLES_KEPT = 36_000  # an hour at BACKLOG_EVERY_S


def event_data(payload: bytes) -> dict[str, Any]:
    """The domain data of a stored payload (``{"data": {...}, "pad": ...}``)."""
    decoded = json.loads(payload)
    if isinstance(decoded, dict):
        data = decoded.get("data", decoded)
        return data if isinstance(data, dict) else {}
    return {}


class MemoryReadModel:
    """The read model in this worker's memory, for a store that keeps none of its own (the
    memory target). Same contract as ``bench.drivers.base.ReadModel``."""

    def __init__(self) -> None:
        self.rows: dict[str, OrderState] = {}
        self.processed: set[str] = set()

    async def prepare_read_model(self, guard: bool) -> None:
        self.rows.clear()
        self.processed.clear()

    async def apply_event(self, event: StoredEvent, guard: bool) -> str:
        if guard and event.event_id in self.processed:
            return DUPLICATE_SKIPPED
        state = self.rows.get(event.aggregate_id)
        last = state.version if state is not None else 0
        if event.version > last + 1:
            return OUT_OF_ORDER
        if event.version <= last and guard:
            # An id never processed at a version already applied: another event took that
            # version (the store would have refused it), so it cannot be applied.
            return OUT_OF_ORDER
        if state is None:
            state = self.rows[event.aggregate_id] = OrderState()
        outcome = APPLIED if event.version == last + 1 else DUPLICATE_APPLIED
        fold(state, event.event_type, event_data(event.payload))
        # A naive projection's re-application counts the event again, but never moves the
        # version back: the row's version is the highest applied.
        state.version = max(last, event.version)
        if guard:
            self.processed.add(event.event_id)
        return outcome

    async def read_summary(self, aggregate_id: str) -> dict[str, Any] | None:
        state = self.rows.get(aggregate_id)
        return state.as_dict() if state is not None else None

    async def read_summaries(self) -> dict[str, dict[str, Any]]:
        return {key: state.as_dict() for key, state in self.rows.items()}


@dataclass
class PipelineTotals:
    published: int = 0  # relay sends the broker acknowledged
    publish_failed: int = 0  # relay sends that failed (outbox: published again later)
    republished: int = 0  # outbox entries sent more than once (a retry or a relay restart)
    not_published: int = 0  # dual write: committed, never published (the crash window)
    consumed: int = 0
    applied: int = 0
    duplicates_skipped: int = 0
    duplicates_applied: int = 0
    out_of_order: int = 0
    foreign: int = 0  # consumed messages that are not this pipeline's events
    queries: int = 0
    queries_stale: int = 0  # reads that did not yet reflect the aggregate's last commit
    relay_restarts: int = 0
    # Republished sends the broker acknowledged and never delivered because it had delivered
    # the event already (JetStream's Nats-Msg-Id window): not owed to the consumers, so not
    # in the audit's sent, and never counted lost.
    broker_deduplicated: int = 0
    not_published_ids: list[str] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["not_published_ids"] = self.not_published_ids[:SAMPLES_KEPT]
        return out


class StageTimes:
    """The stage timestamps of every event, appended on the hot paths; ``recorders`` turns
    them into one HdrHistogram per stage (samples whose command was intended in ``window``
    are the measured ones, as for every latency kind)."""

    def __init__(self) -> None:
        # Per applied event: intended, committed, published, consumed, applied.
        self.intended: array[int] = array("q")
        self.committed: array[int] = array("q")
        self.published: array[int] = array("q")
        self.consumed: array[int] = array("q")
        self.applied: array[int] = array("q")
        # Per acknowledged publish: committed, acknowledged (the relay stage).
        self.relay_intended: array[int] = array("q")
        self.relay_committed: array[int] = array("q")
        self.relay_acked: array[int] = array("q")
        # Per committed event: intended, committed (the append stage).
        self.append_intended: array[int] = array("q")
        self.append_committed: array[int] = array("q")
        # Each stage's events that completed inside the measurement window (its throughput):
        # committed, published (acknowledged), consumed and applied (first applications).
        self.in_window = {"committed": 0, "published": 0, "consumed": 0, "applied": 0}

    def recorders(self, window: tuple[int, int]) -> dict[str, LatencyRecorder]:
        """Every stage recorded so far, in fresh recorders."""
        out = {stage: LatencyRecorder(stage) for stage in STAGES}
        self.flush_into(out, window)
        return out

    def flush_into(
        self, out: dict[str, LatencyRecorder], window: tuple[int, int]
    ) -> tuple[np.ndarray, int]:
        """Record (and clear) what was timed since the last flush: every stage, and ``e2e`` as
        ``visible`` where ``out`` has it. (when each event was applied, how many of them inside
        ``window``)."""

        def take(buf: array[int]) -> np.ndarray:
            if not len(buf):
                return np.zeros(0, np.int64)
            values = np.frombuffer(buf, dtype=np.int64).copy()
            del buf[:]
            return values

        start, end = window
        a_int, a_com = take(self.append_intended), take(self.append_committed)
        out["append"].record(a_com - a_int, (a_int >= start) & (a_int < end))
        r_int, r_com, r_ack = (
            take(self.relay_intended),
            take(self.relay_committed),
            take(self.relay_acked),
        )
        out["relay"].record(r_ack - r_com, (r_int >= start) & (r_int < end))
        intended, published = take(self.intended), take(self.published)
        consumed, applied = take(self.consumed), take(self.applied)
        measured = (intended >= start) & (intended < end)
        out["broker"].record(consumed - published, measured)
        out["apply"].record(applied - consumed, measured)
        out["visible"].record(applied - intended, measured)
        if "e2e" in out:
            out["e2e"].record(applied - intended, measured)

        def inside(times: np.ndarray) -> int:
            return int(((times >= start) & (times < end)).sum())

        counts = self.in_window
        counts["committed"] += inside(a_com)
        counts["published"] += inside(r_ack)
        counts["consumed"] += inside(consumed)
        applied_inside = inside(applied)
        counts["applied"] += applied_inside
        return applied, applied_inside


def encode(event: StoredEvent, relay: int, seq: int, intended: int, committed: int) -> Message:
    """The broker message of a stored event (see the module docstring for the fields)."""
    return Message(
        event.aggregate_id,
        event.payload,
        event.event_type,
        event.event_id,
        f"{committed}:{time.monotonic_ns()}",
        relay,
        seq,
        event.version,
        intended,
    )


def decode(msg: Message, aggregate_type: str) -> tuple[StoredEvent, int, int] | None:
    """(the stored event, committed_ns, published_ns) of a pipeline message; None when the
    message is not one."""
    committed, _, published = msg.correlation_id.partition(":")
    try:
        times = int(committed), int(published)
    except ValueError:
        return None
    event = StoredEvent(
        msg.event_id,
        msg.key,
        aggregate_type,
        msg.event_type,
        msg.key_seq,
        msg.value,
        {},
    )
    return event, times[0], times[1]


def _key_index(aggregate_id: str) -> int:
    digits = aggregate_id[-8:]
    return int(digits) if digits.isdigit() else 0


class Relays:
    """The publishing side: one producer per relay shard. ``outbox`` mode runs a polling task
    per shard; ``dual_write`` publishes from the command handler (``publish_committed``)."""

    def __init__(
        self,
        store: StoreDriver,
        producers: Sequence[Producer],
        mode: str,
        poll_interval_s: float,
        batch: int,
        times: StageTimes,
        totals: PipelineTotals,
        count_error: Callable[[str], None],
        first_id: int = 0,
    ) -> None:
        self.store = store
        self.producers = list(producers)
        # Relay r is the audit's producer first_id + r: unique across the workers of a point.
        self.first_id = first_id
        self.shards = len(self.producers)
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.times = times
        self.totals = totals
        self.count_error = count_error
        self.ledgers = [ProducerLedger(first_id + relay) for relay in range(self.shards)]
        # The command times of committed events, by event id, until their publish is acked:
        # the outbox keeps the event, the engine keeps when its command was intended.
        self.command_times: dict[str, tuple[int, int]] = {}
        self.sent_ids: set[str] = set()
        self.committed_aggregates: set[str] = set()
        # The sends of events not yet marked published, and every send of a republished event:
        # a broker that deduplicates the republish never delivers it (``settle_republished``).
        self.unmarked: dict[str, tuple[int, int]] = {}
        self.resends: dict[str, list[tuple[int, int]]] = {}
        # Events with at least one send the broker acknowledged: what the drain waits for, by
        # event (a republish the broker deduplicated is never delivered, and owed nothing).
        self.acked_ids: set[str] = set()
        self.stopping = False
        # A crash window (monotonic ns). Dual write loses what commits inside it. Each outbox
        # relay dies once, after publishing its first batch at or after the crash and before
        # marking it, stays down until the window ends, and then publishes that batch again.
        self.crash: tuple[int, int] | None = None
        self._crashed = [False] * self.shards

    # ------------------------------------------------------------------ the commit hook
    async def on_commit(self, events: list[StoredEvent], intended: int, committed: int) -> None:
        times = self.times
        self.committed_aggregates.add(events[0].aggregate_id)
        for _ in events:
            times.append_intended.append(intended)
            times.append_committed.append(committed)
        if self.mode == "outbox":
            for event in events:
                self.command_times[event.event_id] = (intended, committed)
            return
        crash = self.crash
        if crash is not None and crash[0] <= committed < crash[1]:
            # The process died after the commit, before the publish: nothing remembers these.
            self.totals.not_published += len(events)
            self.totals.not_published_ids.extend(e.event_id for e in events[:SAMPLES_KEPT])
            return
        shard = partition_of(events[0].aggregate_id, self.shards)
        for event in events:
            await self._publish(shard, event, intended, committed)

    async def _publish(self, shard: int, event: StoredEvent, intended: int, committed: int) -> bool:
        ledger = self.ledgers[shard]
        seq = len(ledger.acks)
        ledger.keys.append(_key_index(event.aggregate_id))
        ledger.acks.append(0)
        event_id = event.event_id
        if event_id in self.sent_ids:
            self.totals.republished += 1
            earlier = self.unmarked.get(event_id)
            sends = self.resends.setdefault(event_id, [] if earlier is None else [earlier])
            sends.append((shard, seq))
        else:
            self.sent_ids.add(event_id)
        if self.mode == "outbox":
            self.unmarked[event_id] = (shard, seq)
        msg = encode(event, self.first_id + shard, seq, intended, committed)
        try:
            await self.producers[shard].send(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ledger.acks[seq] = ACK_FAILED
            self.totals.publish_failed += 1
            self.count_error(f"relay:{type(exc).__name__}")
            return False
        ledger.acks[seq] = ACK_OK
        first_ack = event_id not in self.acked_ids
        self.acked_ids.add(event_id)
        self.totals.published += 1
        # One relay sample per event, its first acknowledged publish (a republish is counted in
        # ``republished``); 0: the commit was not seen here (an untimed event).
        if first_ack and committed:
            times = self.times
            times.relay_intended.append(intended)
            times.relay_committed.append(committed)
            times.relay_acked.append(time.monotonic_ns())
        return True

    def settle_republished(self, received: dict[int, bytearray]) -> int:
        """After the drain: each acknowledged send of a republished event that the consumers
        never received, while another send of the same event was received, was deduplicated
        by the broker. Marked not owed (``ACK_NOT_SENT``) so the audit does not count it lost,
        and counted in ``broker_deduplicated``. ``received`` is the consumers' ledger."""
        settled = 0
        for sends in self.resends.values():
            got = []
            for shard, seq in sends:
                counts = received.get(self.first_id + shard, b"")
                got.append(seq < len(counts) and counts[seq] > 0)
            if not any(got):
                continue
            for (shard, seq), was_received in zip(sends, got, strict=True):
                acks = self.ledgers[shard].acks
                if not was_received and acks[seq] == ACK_OK:
                    acks[seq] = ACK_NOT_SENT
                    settled += 1
        self.totals.broker_deduplicated += settled
        return settled

    # ------------------------------------------------------------------ the outbox relay
    async def run_outbox(self, shard: int) -> None:
        """Poll, publish in order, mark what was acknowledged; until ``stopping`` and the
        shard's part of the outbox is empty."""
        store = self.store
        assert isinstance(store, Outbox)
        failures = 0
        while True:
            try:
                entries = await store.outbox_fetch(shard, self.shards, self.batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The store is away (a restart): poll again after a back-off.
                self.count_error(f"relay:{type(exc).__name__}")
                failures += 1
                await asyncio.sleep(min(self.poll_interval_s * 2**failures, RELAY_BACKOFF_MAX_S))
                continue
            if not entries:
                if self.stopping:
                    return
                await asyncio.sleep(self.poll_interval_s)
                continue
            sends = []
            for entry in entries:
                event = entry.event
                intended, committed = self.command_times.get(event.event_id, (0, 0))
                sends.append(
                    asyncio.ensure_future(self._publish(shard, event, intended, committed))
                )
            outcomes = await asyncio.gather(*sends)
            crash = self.crash
            now = time.monotonic_ns()
            if crash is not None and not self._crashed[shard] and now >= crash[0]:
                # Died after publishing, before marking: after the restart, the batch is
                # fetched and published again (at least once; the guard makes it once).
                self._crashed[shard] = True
                self.totals.relay_restarts += 1
                await asyncio.sleep(max(0, crash[1] - now) / 1e9)
                continue
            failed: set[str] = set()
            done: list[OutboxEntry] = []
            for entry, ok in zip(entries, outcomes, strict=True):
                aggregate = entry.event.aggregate_id
                # After a failure, an aggregate's later entries wait too: order per aggregate.
                if ok and aggregate not in failed:
                    done.append(entry)
                else:
                    failed.add(aggregate)
            if done:
                try:
                    await store.outbox_mark([entry.position for entry in done])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Published, not marked: they go out again (at least once).
                    self.count_error(f"relay:{type(exc).__name__}")
                    failed.add("")
                else:
                    for entry in done:
                        self.command_times.pop(entry.event.event_id, None)
                        self.unmarked.pop(entry.event.event_id, None)
            if failed:
                # The broker refused: back off (doubling, up to RELAY_BACKOFF_MAX_S) rather than
                # spin on it; the entries stay in the outbox and go out again in order.
                failures += 1
                await asyncio.sleep(min(self.poll_interval_s * 2**failures, RELAY_BACKOFF_MAX_S))
            else:
                failures = 0


class Projection:
    """The consuming side: every message applied to the read model, its outcome counted and
    its stages timed."""

    def __init__(
        self,
        read_model: Any,
        guard: bool,
        aggregate_type: str,
        times: StageTimes,
        totals: PipelineTotals,
        count_error: Callable[[str], None],
    ) -> None:
        self.read_model = read_model
        self.guard = guard
        self.aggregate_type = aggregate_type
        self.times = times
        self.totals = totals
        self.count_error = count_error
        self.ledger = ConsumerLedger()
        self.applied_count: dict[str, int] = {}

    async def apply(self, msg: Message, consumed: int) -> None:
        """Apply one delivery (its audit record is made on arrival, by the consumer's
        callback), count the outcome, time the stages of a first application."""
        decoded = decode(msg, self.aggregate_type)
        totals = self.totals
        if decoded is None:
            totals.foreign += 1
            return
        event, committed, published = decoded
        totals.consumed += 1
        failures = 0
        while True:
            try:
                outcome = await self.read_model.apply_event(event, self.guard)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The read model's database is away: the event is applied when it is back
                # (a projection never skips an event; without the guard, a failure after its
                # commit applies it twice, as a naive projection would).
                self.count_error(f"projection:{type(exc).__name__}")
                failures += 1
                await asyncio.sleep(min(0.01 * 2**failures, RELAY_BACKOFF_MAX_S))
        applied = time.monotonic_ns()
        if outcome in (APPLIED, DUPLICATE_APPLIED):
            counts = self.applied_count
            counts[event.event_id] = counts.get(event.event_id, 0) + 1
            if outcome == APPLIED:
                totals.applied += 1
                if committed and msg.intended_ns:  # 0: committed elsewhere, untimed
                    times = self.times
                    times.intended.append(msg.intended_ns)
                    times.published.append(published)
                    times.consumed.append(consumed)
                    times.applied.append(applied)
            else:
                totals.duplicates_applied += 1
        elif outcome == DUPLICATE_SKIPPED:
            totals.duplicates_skipped += 1
        elif outcome == OUT_OF_ORDER:
            totals.out_of_order += 1


class Pipeline:
    """One worker's pipeline after the command side: the relays (or the dual write), the
    broker's consumers, the appliers and the read-your-writes queries. The writers are the
    store workload's; ``attach`` hooks their commits in."""

    def __init__(
        self,
        store: StoreDriver,
        stream: Any,
        topology: Any,
        options: Any,
        aggregate_type: str,
        count_error: Callable[[str], None],
    ) -> None:
        self.store = store
        self.stream = stream
        self.topology = topology
        self.options = options
        self.count_error = count_error
        self.guard = options.idempotency != "none"
        self.times = StageTimes()
        self.totals = PipelineTotals()
        if isinstance(store, ReadModel):
            self.read_model: Any = store
            self.read_model_where = "store"
        else:
            self.read_model = MemoryReadModel()
            self.read_model_where = "worker memory"
        self.projection = Projection(
            self.read_model, self.guard, aggregate_type, self.times, self.totals, count_error
        )
        self.appliers = max(1, int(options.appliers))
        self._queues: list[asyncio.Queue[tuple[Message, int]]] = [
            asyncio.Queue() for _ in range(self.appliers)
        ]
        self.received_ids: set[str] = set()  # events delivered at least once
        self._applying = 0  # deliveries an applier is applying now
        self.relays: Relays | None = None
        self.consumers: list[Any] = []
        self.producers: list[Producer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._recent: list[tuple[str, int]] = []  # (aggregate, version) just committed
        self._crash: tuple[float, float] | None = None  # (at_s, for_s) from the load's start
        self._settled = False
        # [seconds from the load's start, outbox entries pending (None: no outbox), deliveries
        # waiting for an applier], every BACKLOG_EVERY_S.
        self.backlog_samples: list[list[float | int | None]] = []

    # ------------------------------------------------------------------ setup
    def before_prepare(self) -> None:
        """Before the store is prepared: the outbox is created with it."""
        if self.options.relay == "outbox":
            if not isinstance(self.store, Outbox):
                raise TypeError("the store has no outbox")
            self.store.use_outbox()

    async def setup(self, consumer_ids: Sequence[int], relays: int, first_relay: int = 0) -> None:
        """The read model, the consumers (started together) and one producer per relay (the
        audit's producers ``first_relay`` onwards)."""
        await self.read_model.prepare_read_model(self.guard)
        for consumer_id in consumer_ids:
            self.consumers.append(
                await self.stream.consumer(self.topology, consumer_id, self._on_message)
            )
        await asyncio.gather(*(consumer.start() for consumer in self.consumers))
        for relay in range(relays):
            self.producers.append(await self.stream.producer(self.topology, first_relay + relay))
        self.relays = Relays(
            self.store,
            self.producers,
            self.options.relay,
            float(self.options.poll_interval),
            int(self.options.relay_batch),
            self.times,
            self.totals,
            self.count_error,
            first_relay,
        )

    def attach(self, writers: Any) -> None:
        """Hook the writers' commits: stage times, the dual write, the queries' targets."""
        assert self.relays is not None
        relays = self.relays
        recent = self._recent

        async def on_commit(events: list[StoredEvent], intended: int, committed: int) -> None:
            recent.append((events[-1].aggregate_id, events[-1].version))
            if len(recent) > 4096:
                del recent[:2048]
            await relays.on_commit(events, intended, committed)

        writers.on_commit = on_commit

    def crash_after(self, at_s: float, for_s: float) -> None:
        """A relay crash ``at_s`` after the load's start, for ``for_s`` (see ``Relays``)."""
        self._crash = (at_s, for_s)

    def start(self, start_ns: int) -> None:
        """The relay tasks (outbox mode), the appliers, the queries and the backlog sampler;
        ``start_ns`` is the load's start on the monotonic clock."""
        assert self.relays is not None
        if self._crash is not None:
            at_ns = start_ns + int(self._crash[0] * 1e9)
            self.relays.crash = (at_ns, at_ns + int(self._crash[1] * 1e9))
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sample_backlog(start_ns)))
        if self.options.relay == "outbox":
            for shard in range(len(self.producers)):
                self._tasks.append(
                    loop.create_task(self.relays.run_outbox(shard), name=f"relay-{shard}")
                )
        for queue in self._queues:
            self._tasks.append(loop.create_task(self._applier(queue)))
        if self.options.queries_per_s:
            self._tasks.append(loop.create_task(self._queries()))

    # ------------------------------------------------------------------ consuming
    def _on_message(self, msg: Message) -> None:
        now = time.monotonic_ns()
        self.projection.ledger.record(msg.producer_id, msg.seq, msg.key, msg.key_seq)
        self.received_ids.add(msg.event_id)
        self._queues[partition_of(msg.key, self.appliers)].put_nowait((msg, now))

    async def _applier(self, queue: asyncio.Queue[tuple[Message, int]]) -> None:
        projection = self.projection
        while True:
            msg, consumed = await queue.get()
            self._applying += 1  # taken off the queue, not applied yet: still outstanding
            try:
                await projection.apply(msg, consumed)
            finally:
                self._applying -= 1
                queue.task_done()

    async def _queries(self) -> None:
        """Read the summary of an aggregate just written: did the read model reflect it yet
        (read-your-writes)?"""
        interval = 1.0 / float(self.options.queries_per_s)
        totals = self.totals
        while True:
            await asyncio.sleep(interval)
            if not self._recent:
                continue
            aggregate, version = self._recent[-1]
            try:
                row = await self.read_model.read_summary(aggregate)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.count_error(f"query:{type(exc).__name__}")
                continue
            totals.queries += 1
            if row is None or int(row.get("version", 0)) < version:
                totals.queries_stale += 1

    async def _sample_backlog(self, start_ns: int) -> None:
        """Every BACKLOG_EVERY_S: the outbox rows pending, the deliveries waiting for an
        applier, and every BROKER_LAG_EVERY samples what the broker holds for the consumers
        (a broker with ``ConsumerLag``; None between its samples and where it cannot tell)."""
        outbox = self.store if self.options.relay == "outbox" else None
        lag_of = self.stream if isinstance(self.stream, ConsumerLag) else None
        delay = (start_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tick = 0
        while True:
            pending: int | None = None
            if isinstance(outbox, Outbox):
                try:
                    pending = await outbox.outbox_pending()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.count_error(f"outbox:{type(exc).__name__}")
            waiting = sum(queue.qsize() for queue in self._queues)
            at_s = round((time.monotonic_ns() - start_ns) / 1e9, 3)
            held: int | None = None
            if lag_of is not None and tick % BROKER_LAG_EVERY == 0:
                try:
                    held = await asyncio.wait_for(lag_of.consumer_lag(self.topology), 2.0)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the broker's own figure is best effort: None, never a guess
                    held = None
            tick += 1
            if len(self.backlog_samples) < BACKLOG_SAMPLES_KEPT:
                self.backlog_samples.append([at_s, pending, waiting, held])
            await asyncio.sleep(BACKLOG_EVERY_S)

    # ------------------------------------------------------------------ the end
    def outstanding(self) -> int:
        """Events the broker acknowledged and no consumer received yet, plus deliveries not
        yet applied."""
        acked = len(self.relays.acked_ids) if self.relays is not None else 0
        waiting = sum(queue.qsize() for queue in self._queues) + self._applying
        return max(0, acked - len(self.received_ids)) + waiting

    async def drain(self, deadline_s: float) -> bool:
        """After the writers: the relays empty the outbox, every acknowledged publish arrives
        and is applied, or ``deadline_s`` passes. True when everything arrived."""
        assert self.relays is not None
        self.relays.stopping = True
        deadline = time.monotonic() + deadline_s
        relay_tasks = [t for t in self._tasks if t.get_name().startswith("relay-")]
        while time.monotonic() < deadline:
            relays_done = all(task.done() for task in relay_tasks)
            if relays_done and self.outstanding() == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    def settle(self) -> None:
        """After the consumers stopped: sort the broker's deduplicated republishes out of the
        audit (``Relays.settle_republished``). Once."""
        if self.relays is not None and not self._settled:
            self._settled = True
            self.relays.settle_republished(self.projection.ledger.received)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self.consumers:
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception as exc:
                self.count_error(f"consumer_stop:{type(exc).__name__}")
        for producer in self.producers:
            try:
                await asyncio.wait_for(producer.close(), 10)
            except Exception as exc:
                self.count_error(f"producer_close:{type(exc).__name__}")

    async def check(self, committed_ids: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        assert self.relays is not None
        return await check_pipeline(
            self.store, self.read_model, committed_ids, self.projection, self.relays
        )


async def check_pipeline(
    store: StoreDriver,
    read_model: Any,
    committed_ids: Sequence[str],
    projection: Projection,
    relays: Relays,
) -> tuple[list[str], dict[str, Any]]:
    """The invariants after the drain, and the figures behind them.

    * every committed event reaches the read model exactly once (lost and applied-twice are
      counted by id);
    * nothing applied that was not committed: not in the writers' ledger and not in the store
      either. One the store holds that its writer never saw commit (the store went away
      between the commit and its answer: the command failed, the event is there) is counted
      as ``committed_unacknowledged``, not as a violation: it was committed;
    * the read model equals the fold of the store, for every aggregate;
    * the outbox is empty at the end (outbox mode).
    """
    problems: list[str] = []
    committed = set(committed_ids)
    counts = projection.applied_count
    never = [event_id for event_id in committed_ids if event_id not in counts]
    twice = {event_id: n for event_id, n in counts.items() if n > 1}
    unledgered = [event_id for event_id in counts if event_id not in committed]
    if never:
        lost_in_crash = relays.totals.not_published
        why = (
            f"{lost_in_crash} of them committed inside the crash window and never published, "
            "the rest held back behind a missing version; "
            if lost_in_crash
            else ""
        )
        problems.append(
            f"{len(never)} committed events never reached the read model "
            f"({why}e.g. {', '.join(never[:3])})"
        )
    if twice:
        extra = sum(n - 1 for n in twice.values())
        problems.append(
            f"{extra} duplicate applications of {len(twice)} events changed the read model "
            f"(e.g. {', '.join(list(twice)[:3])})"
        )
    if projection.totals.out_of_order:
        problems.append(
            f"{projection.totals.out_of_order} events arrived ahead of their aggregate's next "
            "version and were rejected by the version check"
        )
    rows = await read_model.read_summaries()
    aggregates = sorted({*rows, *relays.committed_aggregates})
    differ: list[str] = []
    stored_ids: set[str] = set()
    for aggregate in aggregates:
        stored = await store.load(aggregate)
        folded = OrderState()
        for event in stored:
            stored_ids.add(event.event_id)
            fold(folded, event.event_type, event_data(event.payload))
        row = rows.get(aggregate)
        if (row or OrderState().as_dict()) != folded.as_dict():
            differ.append(aggregate)
    if differ:
        problems.append(
            f"the read model differs from the fold of the store for {len(differ)} of "
            f"{len(aggregates)} aggregates (e.g. {', '.join(differ[:3])})"
        )
    foreign = [event_id for event_id in unledgered if event_id not in stored_ids]
    unacknowledged = [event_id for event_id in unledgered if event_id in stored_ids]
    if foreign:
        problems.append(
            f"{len(foreign)} events were applied that no command committed and the store does "
            f"not hold (e.g. {', '.join(foreign[:3])})"
        )
    pending = None
    if relays.mode == "outbox" and isinstance(store, Outbox):
        pending = await store.outbox_pending()
        if pending:
            problems.append(f"{pending} outbox entries were never published")
    figures = {
        "committed_events": len(committed),
        "never_applied": len(never),
        "never_applied_ids": never[:SAMPLES_KEPT],
        "applied_twice": len(twice),
        "applied_twice_ids": list(twice)[:SAMPLES_KEPT],
        "applied_not_committed": len(foreign),
        # Committed although the writer saw its command fail (the answer to COMMIT was lost).
        "committed_unacknowledged": len(unacknowledged),
        "committed_unacknowledged_ids": unacknowledged[:SAMPLES_KEPT],
        "aggregates_checked": len(aggregates),
        "aggregates_differing": len(differ),
        "aggregates_differing_ids": differ[:SAMPLES_KEPT],
        "outbox_pending": pending,
    }
    return problems, figures


__all__ = [
    "STAGES",
    "MemoryReadModel",
    "Pipeline",
    "PipelineTotals",
    "Projection",
    "ReadModel",
    "Relays",
    "StageTimes",
    "check_pipeline",
]
