"""The driver seam: the protocols every target implements, the message envelope, and the registry.

A driver is the only place that knows a broker's or database's client library. The engine talks
to drivers through the small protocols below (modelled on OpenMessaging Benchmark's narrow
async API), and drivers are found through the ``bench.drivers`` entry-point group, the
built-in ones included, so a third party adds a driver with a ``pip install``.

Two shapes of driver exist:

* **stream drivers** (memory, kafka, rabbitmq, nats) move ``Message`` objects from producers
  to consumers;
* **store drivers** (memory, postgres) append events to aggregates with an expected version.

Every driver declares a pydantic config model (``extra="forbid"``) so that a typo in a scenario
file is an error naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import sys
import zlib
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from bench.errors import DriverError, DriverNotFound
from bench.units import Duration

ENTRY_POINT_GROUP = "bench.drivers"


# --------------------------------------------------------------------------- message envelope


@dataclass(slots=True)
class Message:
    """One event on the wire, plus the harness's timing and audit fields.

    ``value`` is the encoded domain event (JSON, padded to the requested payload size).
    The audit identifies every message by (producer_id, seq); ``key_seq`` is the sequence of
    the message within its (producer, key) and is what per-key ordering is checked against.
    ``intended_ns`` is the scheduled send time on the clock named by the run (monotonic on one
    host), and is what response and end-to-end latency are measured from.
    """

    key: str
    value: bytes
    event_type: str
    event_id: str
    correlation_id: str
    producer_id: int
    seq: int
    key_seq: int
    intended_ns: int


# The harness's audit and timing fields travel packed in one header, "eb" =
# "producer:seq:key_seq:intended_ns": every header costs encoding and parsing on both sides,
# in Python, for every message. The domain headers stay separate and readable.
H_ENVELOPE = "eb"
H_EVENT_TYPE = "event-type"
H_EVENT_ID = "event-id"
H_CORRELATION = "correlation-id"


def message_headers(msg: Message) -> dict[str, str]:
    """The headers that carry a message's envelope fields (strings; drivers encode as needed)."""
    return {
        H_ENVELOPE: f"{msg.producer_id}:{msg.seq}:{msg.key_seq}:{msg.intended_ns}",
        H_EVENT_TYPE: msg.event_type,
        H_EVENT_ID: msg.event_id,
        H_CORRELATION: msg.correlation_id,
    }


def message_from_headers(
    key: str, value: bytes, headers: Mapping[str, str | bytes]
) -> Message | None:
    """Rebuild a Message from received headers; None when the message is not one of ours."""

    def text(name: str) -> str:
        raw = headers[name]
        return raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)

    try:
        producer_id, seq, key_seq, intended_ns = text(H_ENVELOPE).split(":")
        return Message(
            key,
            value,
            text(H_EVENT_TYPE),
            text(H_EVENT_ID),
            text(H_CORRELATION),
            int(producer_id),
            int(seq),
            int(key_seq),
            int(intended_ns),
        )
    except (KeyError, ValueError):
        return None


def envelope_ids(raw: str | bytes | None) -> tuple[int, int] | None:
    """(producer_id, seq) from an envelope header's value; None when it is not one of ours.

    A re-read needs only the audit's identity of each stored message, so it parses this much
    of the envelope rather than rebuilding a whole Message."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes | bytearray) else raw
    producer_id, _, rest = text.partition(":")
    seq, _, _ = rest.partition(":")
    try:
        return int(producer_id), int(seq)
    except ValueError:
        return None


def partition_of(key: str, partitions: int) -> int:
    """The partition (queue, subject) that carries ``key``: crc32, stable across processes and
    runs (Python's ``hash`` is salted per process), so an aggregate always lands in one."""
    return zlib.crc32(key.encode()) % partitions


# What a producer partitions by (the workload's ``partition_key``): the aggregate (each
# aggregate's events in one partition, in order), the event id, or nothing at all (no key: the
# misconfigured producer whose events of one aggregate spread over every partition).
PartitionKey = Literal["aggregate", "none", "event_id"]

# The aggregate travels in this header when it is not the record's key (Kafka), so that the
# consumer's audit and projection still know whose event it is.
H_AGGREGATE = "aggregate-id"


def partition_chooser(mode: str, partitions: int) -> Callable[[Message], int]:
    """The partition of each message, for drivers that pick it themselves (NATS subjects,
    RabbitMQ queues, the memory broker): by the aggregate's crc32, by the event id's, or round
    robin over the partitions (per chooser: one per producer, as a client's own partitioner)."""
    partitions = max(1, partitions)
    if mode == "event_id":
        return lambda msg: zlib.crc32(msg.event_id.encode()) % partitions
    if mode == "none":
        turn = itertools.cycle(range(partitions)).__next__
        return lambda msg: turn()
    cache: dict[str, int] = {}

    def by_aggregate(msg: Message) -> int:
        index = cache.get(msg.key)
        if index is None:
            index = cache[msg.key] = zlib.crc32(msg.key.encode()) % partitions
        return index

    return by_aggregate


def assigned_partitions(consumer_id: int, consumers: int, partitions: int) -> list[int]:
    """The partitions consumer ``consumer_id`` of ``consumers`` reads; each gets >= 1 reader.

    With more consumers than partitions several share one (competing consumers); with fewer,
    each reads a disjoint set, which keeps per-key order.
    """
    if consumers >= partitions:
        return [consumer_id % partitions]
    return [p for p in range(partitions) if p % consumers == consumer_id % consumers]


# --------------------------------------------------------------------------- configuration


class DriverConfig(BaseModel):
    """Base for every driver's options. Subclasses add their own fields.

    ``driver`` selects the driver; everything else in a ``[targets.NAME]`` table is validated by
    the driver's own model, so an unknown key is an error that names it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str
    connect_timeout: Duration = 10.0
    # The target's own metrics (bench/engine/scrape.py): a Prometheus text endpoint, or for
    # NATS its monitoring address (http://127.0.0.1:8222); and the names to sample there
    # (None: the driver's defaults; "NORMALISED=NAME" maps a name to a normalised one).
    metrics_url: str | None = None
    metrics: list[str] | None = None

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        # The words never quote the URL: it may carry a password.
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError(
                "the port is not a number from 1 to 65535: write http://host:port/path"
            ) from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL (e.g. http://127.0.0.1:8222)")
        if not parts.hostname:
            raise ValueError("has no host: write http://host:port/path")
        if port == 0:
            raise ValueError("the port is out of range: use 1-65535")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str] | None) -> list[str] | None:
        # Imported here: the scraper's HTTP machinery stays out of every driver's import.
        from bench.engine.scrape import metric_problem

        for entry in value or ():
            problem = metric_problem(entry)
            if problem:
                raise ValueError(problem)
        return value


@dataclass(frozen=True, slots=True)
class Topology:
    """What a run point needs to exist on the target before load starts.

    ``name`` is unique per run point (topic, queue or stream name); ``partitions`` is the
    number of partitions (Kafka), queues (RabbitMQ) or the memory broker's partitions.
    """

    name: str
    partitions: int
    producers: int
    consumers: int  # per subscription (consumer group)
    consumer_group: str
    partition_key: str = "aggregate"  # PartitionKey: what producers partition by
    # Fan-out: how many independent consumer groups read the topic (each gets every message),
    # and which of them this topology's consumers are in (``subscription_topology``).
    subscriptions: int = 1
    subscription: int = 0
    # Many topics (OMB's topics): how many the point has, and which one this topology is
    # (``topic_topology``). A driver sees one topic at a time; only the engine knows of others.
    topics: int = 1
    topic: int = 0


def topic_topology(topology: Topology, topic: int) -> Topology:
    """The topology of topic ``topic`` of a point with ``topology.topics`` topics: its own name
    and consumer group, and its share of the producers and consumers (the workload gives them
    as multiples of the topics). One topic is what it always was."""
    if topology.topics == 1:
        return topology
    name = f"{topology.name}-t{topic}"
    return dataclasses.replace(
        topology,
        name=name,
        consumer_group=f"{name}-g",
        producers=max(1, topology.producers // topology.topics),
        consumers=topology.consumers // topology.topics,
        topic=topic,
    )


def topic_topologies(topology: Topology) -> list[Topology]:
    """Every topic's topology, in order."""
    return [topic_topology(topology, t) for t in range(topology.topics)]


def topic_of(client_id: int, topics: int) -> int:
    """The topic producer or consumer ``client_id`` works on: clients go round the topics, so
    each topic gets the same number of them (OMB's producers per topic, consumers per
    subscription)."""
    return client_id % topics


def member_of(client_id: int, topics: int) -> int:
    """A client's index among its topic's clients (what a driver's partition assignment
    counts)."""
    return client_id // topics


def subscription_topology(topology: Topology, subscription: int) -> Topology:
    """The topology of one subscription's consumers: its own consumer group (the first keeps
    the topology's name, so one subscription is what it always was)."""
    if subscription == 0:
        return topology
    return dataclasses.replace(
        topology,
        consumer_group=f"{topology.consumer_group}-s{subscription}",
        subscription=subscription,
    )


@dataclass(slots=True)
class DriverContext:
    """What the engine gives a driver: a way to count errors on the run's timeline.

    Drivers call ``count_error("reconnect")`` (or "timeout", "broker_error", …) instead of
    raising for problems the run survives; the counts appear in the interval timeseries and in
    the summary's ``errors``.
    """

    count_error: Callable[[str], None] = field(default=lambda kind: None)
    # Where a driver may keep files (local broker state, certificates). None: nowhere.
    state_dir: str | None = None


# --------------------------------------------------------------------------- stream drivers


OnMessage = Callable[[Message], None]


@runtime_checkable
class Producer(Protocol):
    async def send(self, msg: Message) -> None:
        """Send one message; return when the target acknowledged it, raise on failure."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Consumer(Protocol):
    async def start(self) -> None:
        """Begin delivering messages to the callback given at creation; return once subscribed."""
        ...

    async def stop(self) -> None: ...


@runtime_checkable
class Driver(Protocol):
    """What every driver is: a class built from its validated options and the engine's
    context, that connects, describes its target and closes. ``load_driver`` returns one."""

    name: ClassVar[str]
    kind: ClassVar[Literal["stream", "store", "both"]]
    config_model: ClassVar[type[DriverConfig]]

    def __init__(self, config: Any, context: DriverContext) -> None: ...

    async def connect(self) -> None:
        """Reach the target within ``connect_timeout``; raise DriverError with one clear line."""
        ...

    async def describe(self) -> dict[str, Any]:
        """What answered: product, version, cluster id, effective settings. No secrets."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class StreamDriver(Driver, Protocol):
    """A target that moves messages: the memory broker, Kafka, RabbitMQ, NATS JetStream."""

    async def prepare(self, topology: Topology) -> None:
        """Create or purge what the run point needs (idempotent). Called once per point."""
        ...

    async def producer(self, topology: Topology, producer_id: int) -> Producer: ...

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> Consumer: ...

    async def cleanup(self, topology: Topology) -> None:
        """Remove what prepare created, when the scenario asks for it."""
        ...


# A batch of stored messages as the audit names them: (producer_id, seq).
StoredIds = list[tuple[int, int]]


@runtime_checkable
class Rereadable(Protocol):
    """An optional capability of a stream driver: read a run point's topic again, from the start.

    After the drain the engine compares what the target still stores with what the consumers
    missed, to tell a message the target lost (*not stored*) from one it kept but never
    delivered (*not delivered*). The re-read uses a fresh reader that leaves the run's consumer
    group and its positions alone, and stops at the end the topic had when the re-read began.
    """

    # How the driver re-reads, in words, for the summary ("a reader outside any group ...").
    reread_method: ClassVar[str]

    def reread_unsupported(self, topology: Topology) -> str | None:
        """Why this target, as configured, cannot re-read ``topology``; None when it can."""
        ...

    def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """Every message stored in the topic, in batches; ending means the read is complete."""
        ...


# --------------------------------------------------------------------------- store drivers


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as an event store keeps it."""

    event_id: str
    aggregate_id: str
    aggregate_type: str
    event_type: str
    version: int
    payload: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of one append attempt: committed, or a conflict with the version found."""

    committed: bool
    # The aggregate's version after the append (committed) or as found (conflict), when known.
    version: int | None = None


@runtime_checkable
class StoreDriver(Driver, Protocol):
    """A target that stores events per aggregate with optimistic concurrency."""

    async def prepare_store(self) -> None:
        """Create (or empty) the store. A ``SharedStore`` is given the point's namespace."""
        ...

    async def append(
        self, aggregate_id: str, events: list[StoredEvent], expected_version: int
    ) -> AppendResult: ...

    async def load(self, aggregate_id: str) -> list[StoredEvent]: ...

    async def verify(self) -> list[str]:
        """The store's invariants; each violation as one sentence. Empty: all hold."""
        ...


def as_stream(driver: Driver) -> StreamDriver:
    """The driver as a stream driver; DriverError when it is not one."""
    if not isinstance(driver, StreamDriver):
        raise DriverError(f"driver {driver.name!r} is not a stream driver (kind {driver.kind!r})")
    return driver


def as_store(driver: Driver) -> StoreDriver:
    """The driver as a store driver; DriverError when it is not one."""
    if not isinstance(driver, StoreDriver):
        raise DriverError(f"driver {driver.name!r} is not a store driver (kind {driver.kind!r})")
    return driver


# --------------------------------------------------------------------------- optional capabilities
#
# Beyond the protocols above, a driver may offer the capabilities below. It declares one by
# implementing its methods; the engine asks for it by type (``isinstance(driver, Snapshots)``),
# never by probing for a method name. The rule when one is missing:
#
# * a workload option that uses a capability (``snapshots``, ``projector``,
#   ``redeliver_fraction``) applies where the driver has it. The store summary lists the
#   driver's capabilities (``store.capabilities``), and the counts of what the option did
#   (``snapshots_written``, ``projected``, ``redelivered``) read 0 where it could not apply;
# * faults on an in-process target that cannot act them out read as failed (the verdict is
#   inconclusive), never as done;
# * a check the harness makes with a capability (every acknowledged append stored once, the
#   server's own counters, sorting lost messages) is reported as *not made*, with the reason, in
#   the summary when the driver lacks it. It is never skipped in silence, and never counted as
#   passed.


@runtime_checkable
class SharedStore(Protocol):
    """A store that lives outside the workers: the coordinator prepares one namespace per run
    point (``prepare_store(namespace)``), each worker attaches to it, the coordinator drops it.
    A store that is not shared is prepared with ``prepare_store()``, inside each worker."""

    async def prepare_store(self, namespace: str | None = None) -> None: ...

    async def attach_store(self, namespace: str) -> None: ...

    async def drop_store(self) -> None: ...


@runtime_checkable
class ConsumerLag(Protocol):
    """What the broker still holds for a topology's consumers: messages stored and not yet
    delivered (or delivered and not yet acknowledged), summed over its partitions. The
    coordinator asks from its own connection during the drain, so a drain does not end on
    ``drain_quiet`` while the broker says messages are still on their way. ``None``: the broker
    cannot tell (never a guess)."""

    async def consumer_lag(self, topology: Topology) -> int | None: ...


@runtime_checkable
class ServerCounters(Protocol):
    """The server's own cumulative counters (commits, rollbacks, …): the engine reads them
    before and after a run point and reports the difference."""

    async def server_counters(self) -> dict[str, int]: ...


@runtime_checkable
class Snapshots(Protocol):
    """Snapshots of an aggregate's folded state, to shorten loads of long streams."""

    def snapshot_every(self) -> int:
        """Take a snapshot each time a stream grows by this many events (0: never)."""
        ...

    async def load_with_snapshot(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        """(snapshot or None, the snapshot's version, the events after it)."""
        ...

    async def save_snapshot(
        self, aggregate_id: str, version: int, state: dict[str, Any]
    ) -> None: ...


@runtime_checkable
class SagaStateStore(Protocol):
    """Where an orchestrator persists its sagas' state (``workload.saga.store``): one row per
    saga, its status and step, written before the command it leads to is published."""

    async def prepare_saga_state(self, namespace: str) -> None: ...

    async def save_saga_state(self, saga_id: str, status: str, step: int, version: int) -> None:
        """Store the saga's state unless the stored one has ``version`` or a later one (the
        orchestrator numbers each saga's writes: a late retry never overwrites a later
        state)."""
        ...

    async def load_saga_states(self) -> dict[str, tuple[str, int]]: ...

    async def drop_saga_state(self) -> None: ...


@runtime_checkable
class HistoryStore(Protocol):
    """A store that can be seeded with a history in bulk and have events rewritten in place
    (``workload.kind = "replay"``: issue 18's schema evolution). Seeding bypasses the append
    path (no expected-version check, as a restore or an import would)."""

    async def seed_history(self, events: Sequence[StoredEvent]) -> None:
        """Store these events (whole streams, in version order) as fast as the store can."""
        ...

    async def rewrite_events(self, events: Sequence[StoredEvent]) -> None:
        """Replace the payload and metadata of stored events (same id, stream and version), in
        one transaction: a migration step."""
        ...

    async def seed_snapshots(self, snapshots: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        """Store (aggregate, version, state) snapshots in bulk, replacing any there."""
        ...

    async def load_snapshot_tail(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        """(the snapshot's state or None, its version or 0, the live events after it), in one
        read, whatever the store's own snapshot setting."""
        ...

    async def archive_before_snapshots(self) -> int:
        """Move every event at or below its stream's snapshot version to an archive, in one
        transaction; how many moved. Loads then read the live table only."""
        ...

    async def load_archived(self, aggregate_id: str) -> list[StoredEvent]:
        """The archived events of a stream, in version order."""
        ...

    async def table_bytes(self) -> dict[str, int]:
        """``{"live": bytes, "archive": bytes}``: what the events take, as the store counts."""
        ...


@runtime_checkable
class Projector(Protocol):
    """A read model the store projects into, tailing the committed events."""

    async def project(self) -> int:
        """One pass over what was committed since the last: the number of events projected."""
        ...

    def take_projection_lags(self) -> list[int]:
        """Commit-to-projection lags (ns) measured since the last call."""
        ...


@runtime_checkable
class IdempotentConsumer(Protocol):
    """A consumer that handles each event id exactly once (a processed-events table)."""

    async def consume_idempotently(
        self, consumer: str, event_ids: Sequence[str]
    ) -> tuple[int, int]:
        """(events processed, duplicates skipped)."""
        ...


# --------------------------------------------------------------------------- pipeline capabilities
# (``workload.kind = "pipeline"``: command -> event store -> outbox -> broker -> read model;
# bench/engine/pipeline.py composes them with a stream driver.)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One committed event waiting in the outbox: ``position`` is the outbox's own order,
    increasing in commit order (per aggregate, the event versions' order)."""

    position: int
    event: StoredEvent


@runtime_checkable
class Outbox(Protocol):
    """A store that writes each committed append's events to an outbox **in the append's
    transaction** (the transactional outbox), for a relay to publish and then mark."""

    def use_outbox(self) -> None:
        """From now on (before ``prepare_store``), every committed append also writes its events
        to the outbox, atomically with the append; a conflicted one writes nothing."""
        ...

    async def outbox_fetch(self, shard: int, shards: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unpublished entries of the aggregates in ``shard`` of ``shards``
        (``partition_of(aggregate_id, shards) == shard``), in position order. An entry stays
        unpublished (fetched again) until ``outbox_mark``."""
        ...

    async def outbox_mark(self, positions: Sequence[int]) -> None:
        """Mark these entries published (or delete them): they are never fetched again."""
        ...

    async def outbox_pending(self) -> int:
        """Entries not yet marked published: the outbox backlog."""
        ...


APPLIED = "applied"  # the read model changed
DUPLICATE_SKIPPED = "duplicate_skipped"  # the guard knew the event id: nothing changed
DUPLICATE_APPLIED = "duplicate_applied"  # no guard, an event already applied: applied again
OUT_OF_ORDER = "out_of_order"  # ahead of the next version: rejected, nothing changed


@runtime_checkable
class ReadModel(Protocol):
    """A read model of order summaries (status, item count, total, last version) that a
    projection applies events to, kept where the store keeps its data. A store without one is
    projected into the engine's own in-memory read model (bench/engine/pipeline.py)."""

    async def prepare_read_model(self, guard: bool) -> None:
        """Create (or empty) the read model, with a processed-events table when ``guard``."""
        ...

    async def apply_event(self, event: StoredEvent, guard: bool) -> str:
        """Apply one event in one transaction; return APPLIED, DUPLICATE_SKIPPED (``guard``:
        its event id was processed, recorded in the same transaction as the update),
        DUPLICATE_APPLIED (no guard, version <= the row's last version: applied again, as a
        naive projection does) or OUT_OF_ORDER (version > last + 1: rejected, not applied)."""
        ...

    async def read_summary(self, aggregate_id: str) -> dict[str, Any] | None:
        """The aggregate's row (``bench.domain.OrderState.as_dict()``), None when it has none."""
        ...

    async def read_summaries(self) -> dict[str, dict[str, Any]]:
        """Every row, by aggregate id: the invariant check compares them with the store."""
        ...


@runtime_checkable
class StoreLedgerCheck(Protocol):
    """Checks the engine's ledger in the store itself (the fast way, for large stores)."""

    async def check_ledger(
        self, acknowledged: Iterable[str], conflicted: Iterable[str]
    ) -> list[str]: ...


@runtime_checkable
class StoredEventIds(Protocol):
    """Lists every stored event id: the engine checks its ledger against them."""

    async def stored_event_ids(self) -> set[str]: ...


@runtime_checkable
class InProcessFaults(Protocol):
    """An in-process target that acts out faults itself (a broker outside the workers is
    faulted by ``bench/faults`` through the service bench started)."""

    def arm_faults(self) -> None:
        """Faults are scheduled: track what a fault needs (publishes in flight) from now on."""
        ...

    async def inject_fault(self, action: str, down_for_s: float) -> str:
        """Act out one fault now; return when the target is back, saying what was done."""
        ...


@runtime_checkable
class KillableConsumer(Protocol):
    """A consumer that can die the way a crashed consumer process does (the ``kill_consumer``
    fault): at once, committing and acknowledging nothing more. What it had handed to the
    engine since its last commit or acknowledgement, the broker delivers again to the group's
    next member: the audit counts those as **redelivered**, apart from the broker's own
    duplicates. (A graceful ``restart_consumer`` is ``stop()``, which commits.)"""

    async def kill(self) -> list[tuple[int, int]]:
        """Die now; return ``(producer_id, seq)`` of every message delivered to the engine and
        not committed or acknowledged (what the broker owes the group again)."""
        ...


def consumer_faults_unsupported(cls: type, config: Any) -> str | None:
    """Why a driver's consumers cannot be killed with these options (None: they can). A driver
    says so with a ``consumer_faults_unsupported(config)`` static method; one without it has
    consumers that can be stopped and started again, and, where they are
    ``KillableConsumer``, killed."""
    check = getattr(cls, "consumer_faults_unsupported", None)
    return check(config) if callable(check) else None


@runtime_checkable
class BenchService(Protocol):
    """A target that ``bench up`` can start here, which faults can then act on (kill, pause,
    restart): the service's name among ``bench up``'s services."""

    @classmethod
    def service_name(cls) -> str: ...


@dataclass(frozen=True, slots=True)
class Sizing:
    """What ``bench plan`` needs to know of how a stream target scales out."""

    # What one partition is called on this target ("partitions", "queues", "subjects").
    partition_noun: str = "partitions"
    # Why consumers beyond the partition count sit idle, when they do (None: they share).
    one_consumer_per_partition: str | None = None
    # What to say when the plan extrapolates beyond the measured total (None: nothing).
    scale_out_advice: str | None = None


@runtime_checkable
class SizingAdvice(Protocol):
    """A stream target that tells ``bench plan`` how it scales (partition noun, consumer limits,
    advice beyond the measured rate). Without it, the plan uses ``Sizing()``'s defaults."""

    @classmethod
    def sizing(cls) -> Sizing: ...


def sizing_of(cls: type | None) -> Sizing:
    """The driver class's sizing facts, or the defaults."""
    if cls is not None and issubclass(cls, SizingAdvice):
        return cls.sizing()
    return Sizing()


@runtime_checkable
class BoundedSends(Protocol):
    """A target whose every send completes or fails by itself, within a bound it keeps (the
    memory target): the engine sets no ``send_timeout`` timer per send, the largest cost of
    the in-process hot path. Any other target's sends are bounded by ``send_timeout``."""

    def sends_are_bounded(self) -> bool: ...


@runtime_checkable
class ErrorKinds(Protocol):
    """Names an error the way the target does (a database's SQLSTATE), for the error counts."""

    def error_kind(self, exc: BaseException) -> str:
        """e.g. ``UniqueViolationError:23505``; the exception's class name at least."""
        ...


STREAM_MEMBERS = ("connect", "prepare", "producer", "consumer", "cleanup", "describe", "close")
STORE_MEMBERS = ("connect", "prepare_store", "append", "load", "verify", "describe", "close")

STORE_CAPABILITIES: tuple[type, ...] = (
    SharedStore,
    HistoryStore,
    SagaStateStore,
    ServerCounters,
    Snapshots,
    Projector,
    IdempotentConsumer,
    StoreLedgerCheck,
    StoredEventIds,
    ErrorKinds,
    Outbox,
    ReadModel,
)


def capabilities_of(cls: type, candidates: tuple[type, ...] = STORE_CAPABILITIES) -> list[str]:
    """The names of the optional capabilities a driver class implements."""
    return [cap.__name__ for cap in candidates if issubclass(cls, cap)]


def runs_in_process(cls: type) -> bool:
    """Whether the target lives inside each worker process (``in_process = True``)."""
    return getattr(cls, "in_process", False) is True


def driver_kind(cls: type) -> str:
    """``stream``, ``store`` or ``both``: what the driver class declares (stream if nothing)."""
    kind = getattr(cls, "kind", "stream")
    return kind if kind in ("stream", "store", "both") else "stream"


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class DriverInfo:
    name: str
    target: str  # "module:Class" as registered
    cls: type[Driver] | None
    problem: str | None  # why it cannot be loaded (client library missing, incomplete, …)


def _registered() -> dict[str, str]:
    # Scanning every installed distribution's entry points costs milliseconds, and validating
    # a matrix asks once per point: keep the answer for as long as the import path is the same.
    return dict(_registered_on(tuple(sys.path)))


@functools.lru_cache(maxsize=8)
def _registered_on(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def available_drivers() -> list[DriverInfo]:
    """Every registered driver, loaded where possible, with the reason where not."""
    infos = []
    for name, target in sorted(_registered().items()):
        try:
            cls = _load(target)
        except ImportError as exc:
            infos.append(DriverInfo(name, target, None, _missing_hint(name, exc)))
            continue
        missing = missing_members(cls)
        if missing:
            infos.append(DriverInfo(name, target, None, f"incomplete: lacks {', '.join(missing)}"))
        else:
            infos.append(DriverInfo(name, target, cls, None))
    return infos


def load_driver(name: str) -> type[Driver]:
    """The driver class registered as ``name``; DriverNotFound with a hint otherwise."""
    registered = _registered()
    if not registered:
        raise DriverNotFound(
            "no drivers are registered (the bench.drivers entry points are missing)",
            hint="install the project: pip install -e '.[all]'",
        )
    if name not in registered:
        known = ", ".join(sorted(registered))
        raise DriverNotFound(f"unknown driver {name!r}", hint=f"known drivers: {known}")
    try:
        cls = _load(registered[name])
    except ImportError as exc:
        raise DriverNotFound(_missing_hint(name, exc)) from exc
    missing = missing_members(cls)
    if missing:
        raise DriverNotFound(
            f"driver {name!r} ({registered[name]}) is not a complete {driver_kind(cls)} driver: "
            f"it lacks {', '.join(missing)}",
            hint="see docs/writing-a-driver.md",
        )
    return cls


def _load(target: str) -> type[Driver]:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    if not isinstance(cls, type):
        raise ImportError(f"{target} is not a class")
    # Checked by name just after (missing_members): a complete driver for its kind.
    return cast("type[Driver]", cls)


def missing_members(cls: type) -> list[str]:
    """The methods of its kind's protocol a driver class lacks (not callable counts as lacking),
    and ``config_model`` when it is not a DriverConfig model."""
    kind = driver_kind(cls)
    names = {
        "stream": STREAM_MEMBERS,
        "store": STORE_MEMBERS,
        "both": tuple(dict.fromkeys((*STREAM_MEMBERS, *STORE_MEMBERS))),
    }[kind]
    missing = [f"{name}()" for name in names if not callable(getattr(cls, name, None))]
    model = getattr(cls, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, DriverConfig)):
        missing.append("config_model (a DriverConfig subclass)")
    return missing


def _missing_hint(name: str, exc: ImportError) -> str:
    missing = getattr(exc, "name", None) or str(exc)
    return f"driver {name!r} needs {missing}: pip install 'eventbench[{name}]'"
