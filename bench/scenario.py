"""Scenario files: the models, TOML loading and validation, overrides, and matrix expansion.

A scenario file has these tables::

    [scenario]        name, description, duration, warmup, seed, drain_timeout, …
    [workload]        rate, schedule, payload_bytes, aggregates, keys, event_types, …
    [targets.NAME]    driver = "memory" | "kafka" | …, plus that driver's own options
    [matrix]          "workload.rate" = [1000, 5000]   (dotted path -> list; cross product)
    [slo]             "e2e.p99" = "50ms"
    [verdict]         max_error_rate = "0.1%", allow_duplicates, allow_reordering
    [[faults]]        at = "20s", action = "kill" | "restart" | "pause" | "disconnect", down_for
                      (or "kill_consumer" | "restart_consumer": the point's own consumers)

Everything is validated: a bad file is a ScenarioError naming the file, the field and the
problem (exit code 2). Each target's options are validated by the driver's own pydantic model,
so a typo in a driver option is caught before anything runs.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bench.drivers.base import (
    DriverConfig,
    HistoryStore,
    Outbox,
    PartitionKey,
    SagaStateStore,
    consumer_faults_unsupported,
    driver_kind,
    load_driver,
    topic_of,
)
from bench.errors import DriverNotFound, ScenarioError
from bench.redaction import MASK, redact, redact_text, shows_input
from bench.units import ByteSize, Duration, format_duration, parse_duration_s

# response: intended send -> acknowledged or failed (a failure counts at no less than the send
# timeout); response_ok: the acknowledged sends alone; service: send -> ack; schedule_lag:
# intended -> actual send; e2e: intended -> consumed.
LATENCY_KINDS = ("response", "response_ok", "service", "schedule_lag", "e2e")
# A pipeline's stages (workload.kind = "pipeline"; bench/engine/pipeline.py), each a latency kind
# of its points too: SLOs may name them ("visible.p99").
PIPELINE_STAGES = ("append", "relay", "broker", "apply", "visible")
# A saga point's latency kinds (workload.kind = "saga"; bench/engine/saga.py): the saga from its
# intended start to its final state (all, and per final state), and compensation. SLOs may
# name them ("saga.p99"); a saga point has no other latency kind.
SAGA_LATENCY_KINDS = (
    "saga",
    "saga_completed",
    "saga_compensated",
    "saga_failed",
    "compensation",
)
SLO_STATS = ("p50", "p90", "p99", "p999", "max", "mean")
EXACT_PACING_MAX_RATE = 2000.0
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # fullmatch: "$" lets a final "\n" in
# Event and aggregate type names go verbatim into each event's JSON and into message headers:
# no quote, backslash, space or control character.
_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_TYPE_RULE = "use letters, digits, '_', '-', '.' and ':' only (it is written into every event)"
# Bounds on text a user writes: names become directories, topics and ids; a description is a
# paragraph. A longer text is a mistake (a pasted file), refused at once, before anything
# scans it.
NAME_MAX_CHARS = 80
MAX_TOPICS = 1000  # workload.topics: OMB's largest stock workloads have hundreds
DESCRIPTION_MAX_CHARS = 4096
# A driver option's text: a URL, a DSN, a file path (PATH_MAX is 4096).
OPTION_MAX_CHARS = 4096
# The largest seed numpy's generators take from a TOML integer: 0 .. 2**63 - 1.
SEED_MAX = 2**63 - 1
_KEYS_RE = re.compile(
    r"^(uniform|round_robin|zipf:(?P<s>\d+(\.\d+)?)"
    r"|hot:(?P<f>0?\.\d+|1(\.0+)?):(?P<share>0?\.\d+|1(\.0+)?))$"
)
PAYLOAD_FILE_MAX_BYTES = 64 * 1024 * 1024
PAYLOAD_POOL_MAX_BYTES = 256 * 1024 * 1024  # payload_pool x payload_bytes, per producer


def _shown(value: Any) -> str:
    """A rejected value quoted in an error: its first 40 characters (a pasted file stays one
    short line)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}...{text[-1]}"


def _bounded_text(value: Any, limit: int) -> Any:
    """Refuse a text longer than ``limit`` before anything else looks at it."""
    if isinstance(value, str) and len(value) > limit:
        raise ValueError(f"is {len(value):,} characters long: at most {limit:,} are allowed")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioMeta(_Model):
    name: str = Field(min_length=1, max_length=NAME_MAX_CHARS)
    description: str = Field(default="", max_length=DESCRIPTION_MAX_CHARS)
    duration: Duration = 10.0
    warmup: Duration = 2.0
    # Seeds every generator (numpy's refuse a negative seed, in the workers, mid-run).
    seed: int = Field(default=1, ge=0, le=SEED_MAX, strict=True)
    drain_timeout: Duration = 10.0
    # The drain ends early once no delivery happened for this long after the last ack.
    drain_quiet: Duration = 1.0
    interval: Duration = 1.0
    # Remove topics/queues/streams that prepare created, after each point.
    cleanup: bool = True

    @field_validator("name", "description", mode="before")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        limit = DESCRIPTION_MAX_CHARS if info.field_name == "description" else NAME_MAX_CHARS
        return _bounded_text(value, limit)

    @field_validator("name")
    @classmethod
    def _name_is_a_slug(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("use letters, digits, '-', '_' and '.' only (it names directories)")
        return value

    @field_validator("duration", "interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s")
        return value


class PayloadDistribution(_Model):
    """Payload sizes drawn per event: uniform between min and max, or lognormal."""

    distribution: Literal["uniform", "lognormal"] = "uniform"
    min: int = Field(default=64, ge=0)
    max: int = Field(default=4096, ge=1)
    mean: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sigma: float = Field(default=0.5, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> PayloadDistribution:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        if self.distribution == "lognormal" and self.mean is None:
            raise ValueError("a lognormal distribution needs 'mean' (bytes)")
        return self


class StoreOptions(_Model):
    """The event-store workload (``workload.kind = "store"``): how writers retry and read."""

    # OrderItemAdded events one AddItem command appends (a range [min, max] draws per command).
    events_per_append: int | tuple[int, int] = 1
    max_retries: int = Field(default=5, ge=0, le=1000)
    backoff: Duration = 0.001  # first retry waits up to this (full jitter), doubling each time
    backoff_max: Duration = 0.05
    # On a conflict, reload the aggregate and decide again (True), or retry the same decision
    # at the version the store reported (False: a blind retry).
    reload_on_conflict: bool = True
    snapshots: bool = True  # load through snapshots and write them, where the driver can
    projector: bool = True  # tail the store into a read model and record projection lag
    projector_interval: Duration = 0.02
    # Replay part of what the projector processed through the idempotent consumer, to count
    # the duplicates it skips (0 turns the idempotent consumer off).
    redeliver_fraction: float = Field(default=0.05, ge=0.0, le=1.0)

    @field_validator("events_per_append")
    @classmethod
    def _events(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        low, high = (value, value) if isinstance(value, int) else value
        if not 1 <= low <= high <= 1000:
            raise ValueError("give 1..1000 events, or a range [min, max] within it")
        return value


REPLAY_READERS = ("strict", "upcast", "upcast_and_rewrite")
MAX_SEEDED_EVENTS = 10_000_000
MAX_FOLDED_EVENTS = 200_000_000


class ReplayOptions(_Model):
    """A seeded history read back by the current code (``workload.kind = "replay"``;
    ``bench/engine/replay.py`` and ``bench/schema_evolution.py`` say what each part is)."""

    streams: int = Field(default=1000, ge=1, le=10_000_000)
    events_per_stream: int = Field(default=20, ge=1, le=1_000_000)
    # The share of each stream written before the schema changed (its first events).
    old_fraction: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    # "strict": stop at the first old event; "upcast": upcast on read; "upcast_and_rewrite":
    # migrate the store once (upcast and store back), then replay it strictly.
    reader: Literal["strict", "upcast", "upcast_and_rewrite"] = "upcast"
    rewrite_batch: int = Field(default=100, ge=1, le=100_000)  # streams per migration step
    # "replay": every stream read back once (the reader's cost); "load": aggregates loaded
    # `loads` times, each read and folded, through the snapshot policy `snapshots`.
    measure: Literal["replay", "load"] = "replay"
    # "none"; "every N": each stream has the snapshot a store taking one every N events holds,
    # the streams spread evenly over the interval (0 to N-1 events after the snapshot; none
    # below version N); "stale N": one interval older (the snapshotter fell behind).
    snapshots: str = "none"
    loads: int = Field(default=500, ge=1, le=10_000_000)
    # Aggregates whose snapshot plus tail is checked against a full replay, every run.
    check_sample: int = Field(default=20, ge=1, le=1_000_000)
    # After the loads: move what the snapshots cover to an archive, and load again.
    archive: bool = False

    @field_validator("snapshots")
    @classmethod
    def _snapshots(cls, value: str) -> str:
        if value == "none" or re.fullmatch(r"(every|stale) [1-9][0-9]{0,6}", value):
            return value
        raise ValueError(
            f'{_shown(value)}: give "none", "every N" or "stale N" (N events, at least 1)'
        )

    def snapshot_policy(self) -> tuple[int, int]:
        """(interval, intervals behind): (0, 0) for none."""
        if self.snapshots == "none":
            return 0, 0
        kind, n = self.snapshots.split()
        return int(n), 1 if kind == "stale" else 0

    @model_validator(mode="after")
    def _load_options(self) -> ReplayOptions:
        if self.measure == "replay" and (self.snapshots != "none" or self.archive):
            raise ValueError('snapshots and archive shape aggregate loads: set measure = "load"')
        if self.measure == "load" and self.reader != "upcast":
            raise ValueError(
                f'reader: aggregate loads read through the upcasters (reader = "upcast"); '
                f'{self.reader!r} is a replay\'s (measure = "replay")'
            )
        return self

    @model_validator(mode="after")
    def _size(self) -> ReplayOptions:
        # The memory store holds about 750 bytes per seeded event; a load folds its stream at
        # a few µs per event. Beyond these a run would exhaust this class of machine or last
        # for hours, with no word until then.
        total = self.streams * self.events_per_stream
        if total > MAX_SEEDED_EVENTS:
            raise ValueError(
                f"streams x events_per_stream = {total:,} events: at most "
                f"{MAX_SEEDED_EVENTS:,} are seeded"
            )
        folded = self.loads * self.events_per_stream
        if self.measure == "load" and folded > MAX_FOLDED_EVENTS:
            raise ValueError(
                f"loads x events_per_stream = {folded:,} events to fold: at most "
                f"{MAX_FOLDED_EVENTS:,} (fewer loads, or shorter streams)"
            )
        return self


DEFAULT_SAGA_STEPS = ("CreateOrder", "ReserveInventory", "ProcessPayment", "ShipOrder")


class SagaOptions(_Model):
    """Sagas (``workload.kind = "saga"``; ``bench/engine/saga.py`` says what runs): a chain of
    steps across participant services, each with a compensation run in reverse when a later
    step fails. Per-step knobs are tables of step name -> value."""

    mode: Literal["orchestration", "choreography"] = "orchestration"
    steps: list[str] = Field(default_factory=lambda: list(DEFAULT_SAGA_STEPS))
    # The chance that a step fails (its participant says no: the saga compensates).
    failure: dict[str, float] = {}
    # The chance that a participant does its step and its reply never comes (a timeout).
    no_reply: dict[str, float] = {}
    # The chance that a compensation fails (the saga goes to the dead-letter queue).
    compensation_failure: dict[str, float] = {}
    # Extra time a participant takes per step: a fixed duration, or per step.
    step_latency: Duration | dict[str, Duration] = 0.0
    timeout: Duration = 2.0  # a step's reply not here by then: retried, then failed
    retries: int = Field(default=1, ge=0, le=10)
    # After the load, a saga not final within this long is reported stuck.
    stuck_after: Duration = 10.0
    # Where an orchestrator persists each saga's state before it publishes the command the
    # state leads to: a store target of this file (postgres: a saga_state table; memory: a
    # dict). None: the orchestrator's memory only. Every other target is a broker.
    store: str | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[str]) -> list[str]:
        if not 1 <= len(value) <= 20:
            raise ValueError("give 1 to 20 steps")
        for name in value:
            if not _NAME_RE.fullmatch(name):
                raise ValueError(f"step {_shown(name)}: use letters, digits, '-', '_' only")
        if len(set(value)) != len(value):
            raise ValueError("step names must differ")
        return value

    @model_validator(mode="after")
    def _knobs_name_steps(self) -> SagaOptions:
        tables: dict[str, dict[str, Any]] = {
            "failure": self.failure,
            "no_reply": self.no_reply,
            "compensation_failure": self.compensation_failure,
        }
        if isinstance(self.step_latency, dict):
            tables["step_latency"] = self.step_latency
        for name, table in tables.items():
            for step, value in table.items():
                if step not in self.steps:
                    raise ValueError(
                        f"{name}.{_shown(step)}: not a step (steps: {', '.join(self.steps)})"
                    )
                if name != "step_latency" and not (
                    isinstance(value, int | float) and 0.0 <= value <= 1.0
                ):
                    raise ValueError(f"{name}.{step}: a probability from 0 to 1 (got {value!r})")
        if self.timeout <= 0:
            raise ValueError("timeout: must be longer than 0s")
        if self.store is not None and self.mode == "choreography":
            raise ValueError(
                "store: a choreography has no orchestrator, so no central saga state to "
                'persist; set mode = "orchestration", or remove store'
            )
        return self

    def latency_of(self, step: str) -> float:
        if isinstance(self.step_latency, dict):
            return float(self.step_latency.get(step, 0.0))
        return float(self.step_latency)


class PipelineOptions(_Model):
    """The CQRS pipeline (``workload.kind = "pipeline"``): command -> store -> relay -> broker
    -> projection -> read model. ``bench/engine/pipeline.py`` says what each stage is."""

    # The target the commands append to (a store target of this file). Every other target is
    # a broker the pipeline runs through, one point each; a file whose only target is the
    # store (the memory target) runs through that target's broker. Or a table of broker target
    # -> store target: one point per broker named, each with its own store (a target may be
    # both, as the memory target is).
    store: str | dict[str, str] | None = None
    # "outbox": the transactional outbox and a relay; "dual_write": publish after the commit,
    # outside the transaction (the negative control: a crash in between loses the event).
    relay: Literal["outbox", "dual_write"] = "outbox"
    relays: int = Field(default=2, ge=1, le=64)  # relay shards (producers), per aggregate order
    relay_batch: int = Field(default=256, ge=1, le=100_000)  # outbox entries per fetch
    poll_interval: Duration = 0.002  # how long an idle relay waits before polling again
    # "processed_events": a processed-events record in the read model's transaction skips a
    # redelivered event; "none": a redelivery is applied again (the negative control).
    idempotency: Literal["processed_events", "none"] = "processed_events"
    appliers: int = Field(default=4, ge=1, le=256)  # concurrent appliers, by aggregate
    queries_per_s: float = Field(default=0.0, ge=0.0, le=100_000.0, allow_inf_nan=False)
    # A relay crash on the timeline (from the load's start): dual write loses what commits
    # during it; an outbox relay stops, and after it publishes again what it had not marked.
    crash_at: Duration | None = None
    crash_for: Duration = 0.5

    @field_validator("poll_interval", "crash_for")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("store")
    @classmethod
    def _store_names(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        names = [value] if isinstance(value, str) else [*(value or {}), *(value or {}).values()]
        for name in names:
            if not name or len(name) > NAME_MAX_CHARS:
                raise ValueError(f"{_shown(name)} is not a target name")
        return value

    def store_of(self, broker: str) -> str | None:
        """The store target of ``broker``'s point (None: the broker has no point)."""
        if isinstance(self.store, dict):
            return self.store.get(broker)
        return self.store


class Workload(_Model):
    kind: Literal["stream", "store", "pipeline", "replay", "saga"] = "stream"
    rate: float | Literal["max"] = 1000.0
    concurrency: int = Field(default=16, ge=1, le=100_000)
    schedule: Literal["constant", "poisson"] = "constant"
    payload_bytes: int | PayloadDistribution = 1024
    # The message body OMB's way (issue 20), instead of a JSON domain event of payload_bytes:
    # this file's bytes, every message the same (OMB's payloadFile; a relative path is the
    # scenario file's directory's) ...
    payload_file: str | None = Field(default=None, min_length=1, max_length=4096)
    # ... or payload_bytes-long bodies whose first payload_random share is random bytes and the
    # rest zero bytes, each drawn from a pool of payload_pool of them (OMB's
    # useRandomizedPayloads, randomBytesRatio, randomizedPayloadPoolSize): compressible or not.
    payload_random: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    payload_pool: int = Field(default=1000, ge=1, le=100_000)
    aggregates: int = Field(default=1000, ge=1, le=100_000_000)
    aggregate_type: str = Field(default="Order", min_length=1, max_length=NAME_MAX_CHARS)
    keys: str = "uniform"
    event_types: dict[str, float] = Field(
        default_factory=lambda: {"OrderPlaced": 0.6, "OrderConfirmed": 0.3, "OrderShipped": 0.1}
    )
    producers: int = Field(default=1, ge=1, le=10_000)
    consumers: int = Field(default=1, ge=0, le=10_000)
    # Independent consumer groups on the topic (fan-out; OMB's subscriptionsPerTopic), each
    # with ``consumers`` members and each receiving every message: the delivery audit is exact
    # per subscription, and e2e latency merges them all.
    subscriptions: int = Field(default=1, ge=1, le=64)
    # Topics (OMB's topics), each with ``partitions`` partitions. Producers and consumers are
    # totals, spread evenly over the topics (producer or consumer i works on topic i % topics),
    # so both are multiples of topics.
    topics: int = Field(default=1, ge=1, le=MAX_TOPICS)
    # Backlog build and drain (OMB's consumerBacklogSizeGB and backlogDrainRatio): consumers
    # are held back while producers build this many bytes of backlog, then started to read it
    # at full speed while producers keep sending (bench/engine/backlog.py).
    backlog: ByteSize | None = None
    # The share of the backlog the consumers must read for it to count as drained.
    backlog_drain_ratio: float | None = Field(default=None, allow_inf_nan=False)
    workers: int = Field(default=1, ge=1, le=256)
    # Worker processes that only consume (the others only produce), so that consuming never
    # caps producing on a multi-core machine. 0: every worker produces and consumes. Also
    # written ``workers = { producers = P, consumers = C }`` (workers = P + C).
    consumer_workers: int = Field(default=0, ge=0, le=255)
    max_in_flight: int = Field(default=64, ge=1, le=1_000_000)
    partitions: int = Field(default=8, ge=1, le=100_000)
    # What producers partition by: "aggregate" keeps each aggregate's events in one partition
    # (per-key order); "none" sends no key (round robin, as a misconfigured producer does) and
    # "event_id" keys by the event: both spread an aggregate over partitions (issue 18's
    # order-inversion failure, counted by the audit and the order projection).
    partition_key: PartitionKey = "aggregate"
    # What the consumers do with a delivery besides the audit (issue 18's redelivery failure):
    # "none" nothing; "naive" applies it to an in-memory read model (a redelivery is applied
    # again); "guarded" puts a processed-events set (event ids) in front of that read model (a
    # redelivery is skipped and counted). Timed from receipt to applied: the "apply" latency.
    apply: Literal["none", "naive", "guarded"] = "none"
    send_timeout: Duration = 30.0
    # Wake each send exactly on its intended time by busy-waiting its last 100 µs. "auto": on
    # while a worker paces at most EXACT_PACING_MAX_RATE events/s (it costs up to ~100 µs of
    # CPU per send); off, a send starts as late as the OS wakes the loop (tens of µs), which is
    # recorded as schedule lag either way.
    exact_pacing: bool | Literal["auto"] = "auto"
    store: StoreOptions = StoreOptions()
    pipeline: PipelineOptions = PipelineOptions()
    replay: ReplayOptions = ReplayOptions()
    saga: SagaOptions = SagaOptions()

    @model_validator(mode="before")
    @classmethod
    def _worker_roles(cls, data: Any) -> Any:
        """``workers = { producers = P, consumers = C }``: P producing and C consuming worker
        processes, i.e. ``workers = P + C`` and ``consumer_workers = C``."""
        if not isinstance(data, dict) or not isinstance(data.get("workers"), dict):
            return data
        roles = dict(data["workers"])
        unknown = sorted(set(roles) - {"producers", "consumers"})
        if unknown:
            raise ValueError(
                f"workers.{_shown(unknown[0])}: unknown role; give workers = "
                "{ producers = P, consumers = C } or a number of workers"
            )
        counts = {}
        for role in ("producers", "consumers"):
            value = roles.get(role)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 128:
                raise ValueError(
                    f"workers.{role}: give a number of worker processes from 1 to 128 "
                    f"(got {_shown(value)})"
                )
            counts[role] = value
        if "consumer_workers" in data:
            raise ValueError(
                "give either workers = { producers = P, consumers = C } or consumer_workers, "
                "not both"
            )
        return {
            **data,
            "workers": counts["producers"] + counts["consumers"],
            "consumer_workers": counts["consumers"],
        }

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "max":
            raise ValueError(f'{_shown(value)} is not a rate: give events per second, or "max"')
        if isinstance(value, bool):
            raise ValueError('give events per second, or "max"')
        if isinstance(value, int | float) and not (0 < value < math.inf):
            # Written "not (0 < value < inf)" so that NaN is refused too.
            raise ValueError(f"must be more than 0 events/s, a finite number (got {value})")
        return value

    @field_validator("aggregate_type", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return _bounded_text(value, NAME_MAX_CHARS)

    @field_validator("aggregate_type")
    @classmethod
    def _aggregate_type(cls, value: str) -> str:
        if not _TYPE_RE.fullmatch(value):
            raise ValueError(_TYPE_RULE)
        return value

    @field_validator("send_timeout")
    @classmethod
    def _send_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s: every send would time out at once")
        return value

    @field_validator("payload_bytes")
    @classmethod
    def _payload(cls, value: int | PayloadDistribution) -> int | PayloadDistribution:
        if isinstance(value, int) and not 0 <= value <= 64 * 1024 * 1024:
            raise ValueError(f"must be between 0 and 64 MiB (got {value})")
        return value

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: str) -> str:
        match = _KEYS_RE.fullmatch(value)
        if not match:
            raise ValueError(
                f'{_shown(value)} is not a key distribution: use "uniform", "round_robin" '
                '(each producer cycles through the aggregates), "zipf:S" (S > 0) or '
                '"hot:FRACTION:SHARE" (for example "hot:0.01:0.9")'
            )
        if match.group("s") is not None and float(match.group("s")) <= 0:
            raise ValueError("the zipf exponent must be more than 0")
        if match.group("f") is not None and float(match.group("f")) <= 0:
            raise ValueError("the hot fraction must be more than 0")
        return value

    @field_validator("event_types")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("give at least one event type with a weight")
        for name, weight in value.items():
            if len(name) > NAME_MAX_CHARS:
                raise ValueError(
                    f"an event type name is {len(name):,} characters long: "
                    f"at most {NAME_MAX_CHARS:,} are allowed"
                )
            if not _TYPE_RE.fullmatch(name):
                raise ValueError(f"event type {_shown(name)}: {_TYPE_RULE}")
            if not (0 < weight < math.inf):
                raise ValueError(
                    f"the weight of {name!r} must be more than 0, a finite number (got {weight})"
                )
        return value

    @model_validator(mode="after")
    def _subscriptions(self) -> Workload:
        if self.subscriptions == 1:
            return self
        if self.kind != "stream":
            raise ValueError(
                f"subscriptions: fan-out to several consumer groups is for streams (kind is "
                f"{self.kind!r})"
            )
        if self.consumers < 1:
            raise ValueError(
                f"subscriptions = {self.subscriptions} needs consumers (each subscription's "
                "members): give consumers >= 1"
            )
        if self.apply != "none":
            raise ValueError(
                "apply: the read model runs on one consumer group; with subscriptions > 1 set "
                'apply = "none"'
            )
        return self

    @model_validator(mode="after")
    def _topics(self) -> Workload:
        if self.topics == 1:
            return self
        if self.kind != "stream":
            raise ValueError(f"topics: many topics are for streams (kind is {self.kind!r})")
        if self.producers % self.topics:
            raise ValueError(
                f"producers = {self.producers} is the total over topics = {self.topics}, which "
                f"share them evenly: give a multiple of {self.topics} (e.g. "
                f"{self.topics * max(1, -(-self.producers // self.topics))})"
            )
        if self.consumers % self.topics:
            raise ValueError(
                f"consumers = {self.consumers} is the total (per subscription) over topics = "
                f"{self.topics}, which share them evenly: give 0 or a multiple of {self.topics} "
                f"(e.g. {self.topics * max(1, -(-self.consumers // self.topics))})"
            )
        if self.apply != "none":
            raise ValueError(
                'apply: the read model reads one topic; with topics > 1 set apply = "none"'
            )
        return self

    @model_validator(mode="after")
    def _backlog(self) -> Workload:
        if self.backlog_drain_ratio is not None:
            if self.backlog is None:
                raise ValueError(
                    "backlog_drain_ratio: the share of a backlog to drain needs a backlog; "
                    'give backlog = "1GiB" (a size), or remove it'
                )
            if not 0 < self.backlog_drain_ratio <= 1:
                raise ValueError(
                    f"backlog_drain_ratio: give a share of the backlog above 0 and at most 1 "
                    f"(got {self.backlog_drain_ratio:g})"
                )
        if self.backlog is None:
            return self
        if self.kind != "stream":
            raise ValueError(
                f"backlog: consumers held back behind a backlog is for streams (kind is "
                f"{self.kind!r})"
            )
        if self.consumers < 1:
            raise ValueError("backlog: a backlog needs consumers to drain it: give consumers >= 1")
        if self.closed_loop:
            raise ValueError(
                "backlog: producers keep sending at the rate while consumers catch up: give "
                'rate in events/s, not "max"'
            )
        if self.backlog_messages() < 1:
            raise ValueError("backlog: give at least one message's worth of bytes (got 0)")
        return self

    def mean_payload_bytes(self) -> float:
        """The mean message body in bytes, as the producers make it: payload_file's size,
        payload_bytes (a JSON event is padded to it; a random body is that long), or the
        mean of a size distribution."""
        if self.payload_file is not None:
            try:
                return float(max(1, Path(self.payload_file).stat().st_size))
            except OSError:
                pass  # the point's check names an unreadable file; sized as payload_bytes here
        size = self.payload_bytes
        if isinstance(size, int):
            return float(max(1, size))
        if size.distribution == "uniform":
            return max(1.0, (size.min + size.max) / 2)
        assert size.mean is not None
        return max(1.0, min(max(size.mean, size.min), size.max))

    def backlog_messages(self) -> int:
        """The backlog in messages: ceil(backlog / mean payload bytes); 0 without one."""
        if self.backlog is None:
            return 0
        return math.ceil(self.backlog / self.mean_payload_bytes())

    @model_validator(mode="after")
    def _raw_payloads(self) -> Workload:
        """payload_file and payload_random make raw bodies, which only a stream carries (an
        event store, a pipeline, a read model need the JSON event)."""
        raw = "payload_file" if self.payload_file is not None else None
        if self.payload_random is not None:
            if raw:
                raise ValueError("give payload_file or payload_random, not both")
            raw = "payload_random"
            if not isinstance(self.payload_bytes, int):
                raise ValueError(
                    "payload_random: random bodies have one size: give payload_bytes as a "
                    "number of bytes"
                )
            if self.payload_pool * self.payload_bytes > PAYLOAD_POOL_MAX_BYTES:
                raise ValueError(
                    f"payload_pool: {self.payload_pool:,} bodies of {self.payload_bytes:,} "
                    f"bytes is more than {PAYLOAD_POOL_MAX_BYTES // 2**20} MiB per producer"
                )
        if self.keys == "round_robin" and self.kind != "stream":
            raise ValueError(
                f'keys = "round_robin" is for streams (OMB\'s KEY_ROUND_ROBIN); a {self.kind} '
                'workload draws its aggregates ("uniform", "zipf:S", "hot:F:S")'
            )
        if raw and self.kind != "stream":
            raise ValueError(
                f"{raw}: raw message bodies are for streams; a {self.kind} workload writes JSON "
                "events"
            )
        if raw and self.apply != "none":
            raise ValueError(
                f"{raw}: the read model (apply = {self.apply!r}) needs JSON events; set "
                'apply = "none"'
            )
        return self

    @model_validator(mode="after")
    def _saga_options_need_sagas(self) -> Workload:
        if self.kind != "saga" and self.saga != SagaOptions():
            raise ValueError(
                f"saga: this table configures sagas, and kind is {self.kind!r}: set "
                'kind = "saga", or remove the table'
            )
        if self.kind != "saga":
            return self
        if self.workers != 1:
            raise ValueError(
                f"workers: sagas run in one process for now, the orchestrator and every "
                f"participant (got {self.workers})"
            )
        if self.closed_loop:
            raise ValueError('rate: sagas start on an open-loop schedule: give sagas/s, not "max"')
        return self

    @model_validator(mode="after")
    def _replay_options_need_a_replay(self) -> Workload:
        if self.kind != "replay" and self.replay != ReplayOptions():
            raise ValueError(
                f"replay: this table configures a replay, and kind is {self.kind!r}: set "
                'kind = "replay", or remove the table'
            )
        if self.kind == "replay" and self.workers != 1:
            raise ValueError(
                f"workers: a replay is one reader in the coordinator process (got {self.workers})"
            )
        if self.kind == "replay":
            # A replay seeds and reads back: the load's fields would change nothing. (Compared
            # with the defaults: a dumped scenario carries them.)
            defaults = Workload.model_construct()
            for name in ("rate", "producers", "consumers", "store", "pipeline", "schedule"):
                if getattr(self, name) != getattr(defaults, name):
                    raise ValueError(
                        f"{name}: a replay has no load, so {name} would change nothing; remove it"
                    )
        return self

    @model_validator(mode="after")
    def _pipeline_options_need_a_pipeline(self) -> Workload:
        # [workload.pipeline] on another kind would be ignored, and the run would not be the
        # one the file describes. (Compared with the defaults, not the fields set: a dumped
        # scenario, as the points and the Locust wire rebuild it, carries the defaults.)
        if self.kind != "pipeline" and self.pipeline != PipelineOptions():
            raise ValueError(
                f"pipeline: this table configures a pipeline, and kind is "
                f'{self.kind!r}: set kind = "pipeline", or remove the table'
            )
        return self

    @model_validator(mode="after")
    def _partition_key_needs_a_broker(self) -> Workload:
        if self.kind == "store" and self.partition_key != "aggregate":
            raise ValueError(
                "partition_key: a store workload publishes nothing; it applies to stream and "
                "pipeline workloads"
            )
        return self

    @model_validator(mode="after")
    def _apply_needs_consumers(self) -> Workload:
        if self.apply != "none" and (self.kind != "stream" or not self.consumers):
            raise ValueError(
                f"apply: the consumers of a stream workload apply what they receive (kind is "
                f"{self.kind!r}, consumers = {self.consumers}); a pipeline has "
                "pipeline.idempotency"
            )
        return self

    @model_validator(mode="after")
    def _roles_fit(self) -> Workload:
        if not self.consumer_workers:
            return self
        if self.kind != "stream":
            raise ValueError(
                f"workers: a {self.kind} workload has no consuming-only workers; give "
                "workers as a number"
            )
        if self.consumer_workers >= self.workers:
            raise ValueError(
                f"consumer_workers: {self.consumer_workers} of {self.workers} workers would "
                "consume, leaving none to produce"
            )
        if self.consumers < self.consumer_workers:
            raise ValueError(
                f"consumers: {self.consumers} consumers cannot fill {self.consumer_workers} "
                "consuming workers (give at least one consumer per consuming worker)"
            )
        if self.producers < self.producer_workers:
            raise ValueError(
                f"producers: {self.producers} producers cannot fill {self.producer_workers} "
                "producing workers (give at least one producer per producing worker)"
            )
        return self

    @property
    def producer_workers(self) -> int:
        """The worker processes that run producers (all of them unless roles are split)."""
        return self.workers - self.consumer_workers

    @property
    def closed_loop(self) -> bool:
        return self.rate == "max"

    def window_warnings(self, duration_s: float) -> list[str]:
        """What a measurement window of ``duration_s`` at this rate will not measure: a rate
        so low that the window holds no event is a warning, not an error (the point runs)."""
        if self.closed_loop:
            return []
        assert isinstance(self.rate, float | int)
        window = format_duration(duration_s)
        events = self.rate * duration_s
        if events < 1:
            return [
                f"workload.rate = {self.rate:g}/s over a scenario.duration of {window} "
                f"schedules {events:g} events: the measurement window may hold no event "
                "(raise the rate or the duration)"
            ]
        per_producer = events / self.producers
        if per_producer < 1:
            return [
                f"workload.rate = {self.rate:g}/s split over {self.producers} producers "
                f"schedules {per_producer:g} events per producer in {window}: some producers "
                "send nothing in the measurement window (use fewer producers)"
            ]
        return []

    def pacing_is_exact(self) -> bool:
        if self.closed_loop:
            return False
        if self.exact_pacing == "auto":
            assert isinstance(self.rate, float)
            return self.rate / self.producer_workers <= EXACT_PACING_MAX_RATE
        return bool(self.exact_pacing)


FAULT_ACTIONS = ("kill", "restart", "pause", "disconnect", "kill_consumer", "restart_consumer")
# Faults on the harness's own consumers, acted out inside the workers for every driver.
CONSUMER_FAULTS = ("kill_consumer", "restart_consumer")


class Fault(_Model):
    """One scheduled fault against the point's target (see ``bench/faults/``).

    ``at`` counts from the start of the load (warm-up included, as ``timeseries.csv``'s t_s).
    ``kill`` is SIGKILL, then a restart after ``down_for``; ``restart`` is a graceful stop and
    a start (``down_for`` waits between them); ``pause`` is SIGSTOP, then SIGCONT after
    ``down_for``; ``disconnect`` drops the harness's connections to the target.

    ``kill_consumer`` and ``restart_consumer`` act on the point's consumers, not the target:
    a kill stops every consumer at once without committing or acknowledging what it processed
    since its last commit (a crashed consumer process), a restart stops them gracefully
    (committing); both start new members of the same group ``down_for`` later. What the
    killed consumers had not committed comes again: the audit counts it as **redelivered**.
    """

    at: Duration
    action: Literal["kill", "restart", "pause", "disconnect", "kill_consumer", "restart_consumer"]
    down_for: Duration | None = None
    # What it acts on: the point's target (a pipeline's broker), or a pipeline's store.
    on: Literal["target", "store"] = "target"

    @model_validator(mode="after")
    def _down_for(self) -> Fault:
        if self.action == "disconnect" and self.down_for:
            raise ValueError("disconnect takes no down_for: the client reconnects by itself")
        if self.action in ("kill", "pause") and self.down_for == 0:
            raise ValueError(f"{self.action} needs down_for longer than 0s")
        if self.action in CONSUMER_FAULTS and self.on != "target":
            raise ValueError(f"{self.action} acts on the point's consumers: it takes no 'on'")
        return self

    @property
    def on_consumers(self) -> bool:
        return self.action in CONSUMER_FAULTS

    @property
    def down_for_s(self) -> float:
        """How long the target (or the consumers) stays down (defaults: kill and pause 5s,
        kill_consumer 1s, restart and restart_consumer 0s)."""
        if self.down_for is not None:
            return float(self.down_for)
        if self.action == "kill_consumer":
            return 1.0
        return 5.0 if self.action in ("kill", "pause") else 0.0


class VerdictRules(_Model):
    """``[verdict]``: what the target must do for a point to pass (bench/verdict.py judges)."""

    # Failed and skipped events over everything scheduled in the window; "0.1%" or 0.001.
    max_error_rate: float = Field(default=0.001, ge=0.0, le=1.0)
    # At-least-once delivery may duplicate by design; a scenario says when that is acceptable.
    allow_duplicates: bool = False
    allow_reordering: bool = False

    @field_validator("max_error_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.endswith("%"):
                try:
                    return float(text[:-1]) / 100.0
                except ValueError:
                    raise ValueError(
                        f"{_shown(value)} is not a percentage such as '0.1%'"
                    ) from None
            raise ValueError(f"{_shown(value)}: write a fraction (0.001) or a percentage ('0.1%')")
        return value


class ChooseSuite(_Model):
    """``[choose]``: the suite ``bench choose`` runs on every target (bench/capacity/choose.py):
    a find-max under the SLO, a sweep at ``fractions`` of that maximum, a point at the common
    load, and a ``fault`` (kill or restart of the broker) under load at ``fault_fraction`` of the
    maximum, where the target can be faulted. Every duration is the scenario's to keep short."""

    probe_duration: Duration = 5.0  # each find-max probe's window
    warmup: Duration | None = None  # of every point of the suite (None: scenario.warmup)
    precision: float = Field(default=0.10, gt=0.0, lt=1.0)  # find-max's bracket; "10%" or 0.1
    max_probes: int = Field(default=12, ge=3, le=200)
    max_rate: float | None = Field(default=None, gt=0.0)  # never probe above (events/s)
    verify_duration: Duration = 0.0  # a confirming run of the answer this long (0: none)
    fractions: list[float] = Field(default=[0.25, 0.5, 0.75, 0.9], min_length=1, max_length=20)
    point_duration: Duration | None = None  # sweep and load points' window (None: duration)
    fault: Literal["kill", "restart", "none"] = "kill"
    fault_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    fault_duration: Duration | None = None  # the fault point's window (None: point_duration)
    fault_at: Duration | None = None  # from the load's start (None: warm-up + a third)
    fault_down_for: Duration = 2.0

    @field_validator("precision", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100.0
            except ValueError:
                raise ValueError(f"{_shown(value)} is not a percentage such as '10%'") from None
        return value

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < f <= 1.0 for f in value):
            raise ValueError("give fractions of the maximum above 0 and up to 1")
        return value

    @field_validator("probe_duration", "point_duration", "fault_duration")
    @classmethod
    def _window(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than 0s")
        return value


class Scenario(_Model):
    """A validated scenario (one file, overrides applied, matrix not yet expanded)."""

    scenario: ScenarioMeta
    workload: Workload = Workload()
    targets: dict[str, dict[str, Any]]
    matrix: dict[str, list[Any]] = {}
    slo: dict[str, Duration] = {}
    verdict: VerdictRules = VerdictRules()
    faults: list[Fault] = []
    choose: ChooseSuite = ChooseSuite()
    # The targets that --target chose (None: every one); load_scenario sets it.
    _selected: tuple[str, ...] | None = PrivateAttr(default=None)

    @property
    def selected_targets(self) -> list[str]:
        """The targets that run, in file order: the ones --target named, else every one.
        Only their drivers are loaded and only their points are expanded."""
        if self._selected is None:
            return list(self.targets)
        return [name for name in self.targets if name in self._selected]

    @model_validator(mode="after")
    def _faults_fit_the_load(self) -> Scenario:
        load_s = self.scenario.warmup + self.scenario.duration
        previous_end = -1.0
        for i, fault in enumerate(self.faults):
            if fault.at >= load_s:
                raise ValueError(
                    f"faults[{i}].at = {format_duration(fault.at)} is not inside the load "
                    f"(warmup + duration = {format_duration(load_s)})"
                )
            if fault.at < previous_end:
                raise ValueError(
                    f"faults[{i}].at = {format_duration(fault.at)} starts before the previous "
                    f"fault ends ({format_duration(previous_end)}): list faults in time order, "
                    "one at a time"
                )
            previous_end = fault.at + fault.down_for_s
        if self.workload.kind == "replay" and self.faults:
            raise ValueError(
                "faults: a replay reads a seeded history back, with no load to fault; remove "
                "[[faults]]"
            )
        if self.workload.kind == "replay" and self.slo:
            raise ValueError("slo: a replay is judged by what it read, not by SLOs; remove [slo]")
        if self.workload.kind == "replay":
            defaults = ScenarioMeta.model_construct()
            for name in ("duration", "warmup"):
                if getattr(self.scenario, name) != getattr(defaults, name):
                    raise ValueError(
                        f"scenario.{name}: a replay has no load to time, so {name} would "
                        "change nothing; remove it"
                    )
        if self.faults and self.workload.topics > 1:
            raise ValueError(
                "faults: the per-fault audit follows one topic for now; run faults with topics = 1"
            )
        if self.faults and self.workload.subscriptions > 1:
            raise ValueError(
                "faults: the per-fault audit follows one consumer group for now; run faults "
                "with subscriptions = 1"
            )
        if self.faults and self.workload.backlog is not None:
            raise ValueError(
                "faults: faults during a backlog build and drain are not built yet; run faults "
                "without workload.backlog"
            )
        on_consumers = [i for i, f in enumerate(self.faults) if f.on_consumers]
        if on_consumers:
            first = on_consumers[0]
            if self.workload.kind != "stream" or not self.workload.consumers:
                raise ValueError(
                    f"faults[{first}].action = {self.faults[first].action!r} acts on the "
                    f"consumers of a stream workload (kind is {self.workload.kind!r}, "
                    f"consumers = {self.workload.consumers})"
                )
            if len(on_consumers) < len(self.faults):
                other = next(i for i in range(len(self.faults)) if i not in on_consumers)
                raise ValueError(
                    f"faults[{other}].action = {self.faults[other].action!r}: faults on the "
                    "target and on the consumers cannot share a timeline yet; fault one of "
                    "them per scenario"
                )
        return self

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not value:
            raise ValueError("add at least one [targets.NAME] table with a driver")
        for name, options in value.items():
            if len(name) > NAME_MAX_CHARS:
                raise ValueError(
                    f"a target name is {len(name):,} characters long: "
                    f"at most {NAME_MAX_CHARS:,} are allowed"
                )
            if not _NAME_RE.fullmatch(name):
                raise ValueError(f"target name {name!r}: use letters, digits, '-', '_' only")
            if not isinstance(options, dict):
                raise ValueError(f"[targets.{name}] must be a table")
            if "driver" not in options:
                raise ValueError(f'[targets.{name}] needs driver = "..."')
        return value

    @field_validator("slo", mode="before")
    @classmethod
    def _slo(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key in value:
            kind, _, stat = key.partition(".")
            kinds = (*LATENCY_KINDS, *PIPELINE_STAGES, *SAGA_LATENCY_KINDS)
            if kind not in kinds or stat not in SLO_STATS:
                raise ValueError(
                    f"{_shown(key)} is not a latency SLO: use KIND.STAT with KIND in "
                    f"{', '.join(LATENCY_KINDS)} (a pipeline's stages too: "
                    f"{', '.join(PIPELINE_STAGES)}; a saga's: {', '.join(SAGA_LATENCY_KINDS)}) "
                    f"and STAT in {', '.join(SLO_STATS)}"
                )
        return value

    @model_validator(mode="after")
    def _crash_inside_the_load(self) -> Scenario:
        crash_at = self.workload.pipeline.crash_at
        load_s = self.scenario.warmup + self.scenario.duration
        if self.workload.kind == "pipeline" and crash_at is not None and crash_at >= load_s:
            raise ValueError(
                f"workload.pipeline.crash_at = {format_duration(crash_at)} is not inside the "
                f"load (warmup + duration = {format_duration(load_s)}): the relay would never "
                "crash"
            )
        return self

    @model_validator(mode="after")
    def _store_faults_need_a_pipeline(self) -> Scenario:
        for i, fault in enumerate(self.faults):
            saga_store = self.workload.kind == "saga" and self.workload.saga.store is not None
            if fault.on == "store" and self.workload.kind != "pipeline" and not saga_store:
                raise ValueError(
                    f"faults[{i}].on = \"store\" acts on a pipeline's store or on a saga's "
                    f"state store (workload.saga.store), and workload.kind is "
                    f"{self.workload.kind!r}"
                    + (" with no saga.store" if self.workload.kind == "saga" else "")
                )
        return self

    @model_validator(mode="after")
    def _stage_slos_need_a_pipeline(self) -> Scenario:
        for key in self.slo:
            kind = key.partition(".")[0]
            if kind in PIPELINE_STAGES and self.workload.kind != "pipeline":
                raise ValueError(
                    f"slo.{key}: {kind} is a pipeline stage, and workload.kind is "
                    f"{self.workload.kind!r}"
                )
            if (kind in SAGA_LATENCY_KINDS) != (self.workload.kind == "saga"):
                raise ValueError(
                    f"slo.{key}: {kind} is a saga's latency, and workload.kind is "
                    f"{self.workload.kind!r}"
                    if kind in SAGA_LATENCY_KINDS
                    else f"slo.{key}: a saga point measures {', '.join(SAGA_LATENCY_KINDS)}, "
                    f"not {kind}"
                )
        return self


def _check_option_lengths(value: Any, source: str, field: str) -> None:
    """Every text in a target's table (a URL, a list of servers, a path) is bounded."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _check_option_lengths(inner, source, f"{field}.{key}")
    elif isinstance(value, list):
        for inner in value:
            _check_option_lengths(inner, source, field)
    elif isinstance(value, str) and len(value) > OPTION_MAX_CHARS:
        raise ScenarioError(
            source,
            field,
            f"is {len(value):,} characters long: at most {OPTION_MAX_CHARS:,} are allowed",
        )


@dataclass(frozen=True)
class RunPoint:
    """One target at one point of the matrix: what the engine runs."""

    index: int
    target: str
    driver: str
    driver_config: DriverConfig
    scenario: Scenario
    params: dict[str, Any]  # the matrix values of this point (dotted path -> value)
    # A pipeline point: ``target`` is its broker, and these its store (workload.pipeline.store).
    store_target: str | None = None
    store_driver: str | None = None
    store_config: DriverConfig | None = None

    @property
    def workload(self) -> Workload:
        return self.scenario.workload

    @property
    def label(self) -> str:
        parts = [self.target] + [
            f"{k.split('.')[-1]}={_param(k, v)}" for k, v in self.params.items()
        ]
        return " ".join(parts)

    @property
    def warnings(self) -> list[str]:
        """What this point will run but not measure well (``bench validate`` and ``bench run``
        print each as a ``warning:`` line)."""
        return self.workload.window_warnings(self.scenario.scenario.duration)

    @property
    def slug(self) -> str:
        raw = "-".join(
            [f"{self.index:03d}", self.target]
            + [f"{k.split('.')[-1]}{_param(k, v)}" for k, v in self.params.items()]
        )
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", raw)[:120]


def _param(key: str, value: Any) -> str:
    """A matrix value as a point's label and directory name show it: a secret never."""
    from bench.redaction import MASK, is_secret_field, redact_text

    return MASK if is_secret_field(key.split(".")[-1]) else redact_text(_short(value))


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- loading


# The most points a matrix may expand to unless --max-points or --allow-large-matrix says
# otherwise: every point is validated and held in memory before the first one runs.
MAX_MATRIX_POINTS = 10_000


def topics_without_consumers(workload: Workload) -> list[tuple[int, int]]:
    """(worker, topic) pairs where a worker has a producer on a topic and no consumer of it.

    Producer or consumer i runs in worker i % workers (engine/runner.py) and works on topic
    i % topics (``topic_of``): an in-process target, one broker per worker, would hold such a
    topic's messages with nobody to read them."""
    if workload.kind != "stream" or not workload.consumers or workload.consumer_workers:
        return []
    workers, topics = workload.workers, workload.topics
    read = {(c % workers, topic_of(c, topics)) for c in range(workload.consumers)}
    written = sorted({(p % workers, topic_of(p, topics)) for p in range(workload.producers)})
    return [pair for pair in written if pair not in read]


def load_scenario(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    max_points: int | None = MAX_MATRIX_POINTS,
    targets: Sequence[str] | None = None,
    omb: Any = None,
) -> Scenario:
    """Read, override (``--set a.b=v``) and validate a scenario file, driver options included
    (and every matrix point: refused when there are more than ``max_points``, None: no limit).

    ``targets`` (``--target``) selects targets before their drivers are loaded: a target that
    is not selected needs no client library installed.

    An OMB workload file (``.yaml``; bench/omb/workload.py) is imported first: its targets are
    the ``omb`` sources' driver files (``OmbSources``) and ``targets`` naming eventbench
    drivers; what the import decided is printed."""
    path = Path(path)
    source = str(path)
    from bench.omb.workload import SOURCES, is_omb_workload, load_omb

    if is_omb_workload(path):
        imported = load_omb(path, list(targets or []), omb or SOURCES.get())
        print_omb_notes(source, imported.notes)
        return scenario_from_dict(
            imported.raw, source, overrides, max_points=max_points, targets=targets
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            source, None, "no such file", hint="bench run scenarios/quickstart.toml"
        ) from None
    except IsADirectoryError:
        raise ScenarioError(source, None, "is a directory, not a scenario file") from None
    except UnicodeDecodeError:
        raise ScenarioError(source, None, "is not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(source, None, f"cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, None, f"invalid TOML: {exc}") from None
    _resolve_payload_file(raw, path.parent)
    return scenario_from_dict(raw, source, overrides, max_points=max_points, targets=targets)


def print_omb_notes(source: str, notes: list[str]) -> None:
    """What an OMB import decided, one line each, on stderr (never mixed into results)."""
    from rich.markup import escape

    from bench.console import err_console

    for note in notes:
        err_console.print(f"[dim]{escape(source)}:[/] {escape(note)}", soft_wrap=True)


def _resolve_payload_file(raw: dict[str, Any], base: Path) -> None:
    """A file's relative ``workload.payload_file`` is its directory's (one given with --set
    is the current directory's)."""
    workload = raw.get("workload")
    if isinstance(workload, dict) and isinstance(workload.get("payload_file"), str):
        given = Path(workload["payload_file"]).expanduser()
        if not given.is_absolute():
            workload["payload_file"] = str(base / given)


def scenario_from_dict(
    raw: dict[str, Any],
    source: str,
    overrides: list[str] | None = None,
    *,
    max_points: int | None = MAX_MATRIX_POINTS,
    targets: Sequence[str] | None = None,
) -> Scenario:
    raw = copy.deepcopy(raw)
    for override in overrides or []:
        apply_override(raw, override, source)
    matrix = raw.get("matrix")
    for override in overrides or []:
        path = override.partition("=")[0].strip()
        if isinstance(matrix, dict) and path in matrix:
            # The matrix sets it at every point: the override would change nothing, while
            # the run's manifest and report would say it was applied.
            raise ScenarioError(
                "--set",
                path,
                f"the matrix of {source} sets {path} at every point, so this override would "
                "change nothing",
                hint=f"override the axis instead: --set 'matrix.{path}=[...]'",
            )
    scenario = _validate(raw, source)
    if targets:
        unknown = set(targets) - set(scenario.targets)
        if unknown:
            raise ScenarioError(source, "--target", f"no target named {sorted(unknown)[0]!r}")
        scenario._selected = tuple(targets)
    for name in scenario.selected_targets:
        validate_target(name, scenario.targets[name], source)
    _check_matrix(scenario, raw, source, max_points)
    return scenario


def _validate(raw: dict[str, Any], source: str) -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _scenario_error(exc, source) from None


def _scenario_error(exc: ValidationError, source: str, prefix: str = "") -> ScenarioError:
    errors = exc.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"] if not _is_union_tag(part)]
    field = ".".join(filter(None, [prefix, *loc])) or None
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; see `bench validate --help`)"
    elif first["type"] == "missing":
        message = "is required"
    message = message.removeprefix("Value error, ")
    named = re.match(r"([a-z_]+): (.+)", message, re.S)
    if not (named and isinstance(first.get("input"), dict) and named[1] in first["input"]):
        named = None
    if named:
        # A table's own check names one of its fields: point the user at that field.
        field = ".".join(filter(None, [field, named[1]]))
        message = named[2]
    if "input" in first and not named and first["type"] not in ("missing", "extra_forbidden"):
        rejected = first["input"]
        if shows_input([*(prefix.split(".") if prefix else []), *loc]):
            shown = repr(redact(rejected))
            if len(shown) <= 60 and "got" not in message and shown not in message:
                message = f"{message} (got {shown})"
        elif isinstance(rejected, str | int | float) and str(rejected):
            # A validator's own words may quote a secret value: never echo it.
            message = message.replace(str(rejected), MASK)
    message = redact_text(message)
    more = len(errors) - 1
    if more:
        message += f" (+{more} more problem{'s' if more > 1 else ''})"
    return ScenarioError(source, field, message)


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member into the location ("int", "function-after[...]").
    return isinstance(part, str) and (
        part in {"int", "float", "str", "bool", "PayloadDistribution"}
        or part.startswith(("function-", "literal[", "constrained-"))
    )


def validate_target(name: str, options: dict[str, Any], source: str) -> DriverConfig:
    """Validate one target's options with its driver's own model."""
    driver = options.get("driver")
    if not isinstance(driver, str):
        raise ScenarioError(source, f"targets.{name}.driver", "must be a driver name (a string)")
    try:
        cls = load_driver(driver)
    except DriverNotFound as exc:
        raise ScenarioError(source, f"targets.{name}.driver", exc.message, hint=exc.hint) from None
    model: type[DriverConfig] = getattr(cls, "config_model")  # noqa: B009 (a Protocol attr)
    _check_option_lengths(options, source, f"targets.{name}")
    resolved = {
        key: resolve_reference(value, source, f"targets.{name}.{key}")
        for key, value in options.items()
    }
    try:
        return model.model_validate(resolved)
    except ValidationError as exc:
        raise _scenario_error(exc, source, prefix=f"targets.{name}") from None


_REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


def resolve_reference(value: Any, source: str, field: str) -> Any:
    """``"${env:NAME}"`` -> that environment variable; ``"${file:PATH}"`` -> that file's text
    (stripped). Credentials stay out of scenario files this way, and the scenario as recorded
    in the results keeps the reference, never the value; other values pass through."""
    if isinstance(value, list):
        return [resolve_reference(v, source, field) for v in value]
    if not isinstance(value, str):
        return value
    match = _REFERENCE.match(value.strip())
    if not match:
        return value
    kind, name = match.group(1), match.group(2).strip()
    if kind == "env":
        if name not in os.environ:
            raise ScenarioError(
                source, field, f"environment variable {name} is not set", hint=f"export {name}=..."
            )
        return os.environ[name]
    path = Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ScenarioError(source, field, f"cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ScenarioError(source, field, f"{path} is not UTF-8 text") from None


# --------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (5000, 0.5, true, [1,2], "x"); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _split_path(path: str) -> list[str]:
    # [matrix] and [slo] keys are themselves dotted ("workload.rate", "e2e.p99").
    head, _, rest = path.partition(".")
    if head in ("matrix", "slo") and rest:
        return [head, rest]
    return path.split(".")


def apply_override(raw: dict[str, Any], override: str, source: str = "--set") -> None:
    """Apply ``dotted.path=value`` to a raw scenario dict."""
    path, sep, value = override.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ScenarioError(
            "--set",
            None,
            f"{_shown(override)} is not PATH=VALUE",
            hint="--set workload.rate=5000",
        )
    parts = _split_path(path)
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ScenarioError("--set", path, f"{part!r} is not a table in {source}")
        node = child
    node[parts[-1]] = parse_value(value.strip())


# --------------------------------------------------------------------------- matrix


def matrix_limit(max_points: int | None = None, allow_large: bool = False) -> int | None:
    """The point limit the CLI options ask for: None (no limit) with --allow-large-matrix."""
    if allow_large:
        return None
    return MAX_MATRIX_POINTS if max_points is None else max_points


def point_count(scenario: Scenario) -> int:
    """Targets x the product of the matrix list lengths: counted, never expanded."""
    return len(scenario.targets) * math.prod(len(values) for values in scenario.matrix.values())


def _check_point_count(scenario: Scenario, source: str, max_points: int | None) -> None:
    count = point_count(scenario)
    if max_points is None or count <= max_points:
        return
    factors = " x ".join(str(len(values)) for values in scenario.matrix.values())
    raise ScenarioError(
        source,
        "matrix",
        f"{count:,} points ({len(scenario.targets)} target(s) x {factors} values) is more than "
        f"the limit of {max_points:,}: pass --allow-large-matrix (or --max-points N) to "
        "expand it",
    )


def _check_matrix(
    scenario: Scenario, raw: dict[str, Any], source: str, max_points: int | None
) -> None:
    for key, values in scenario.matrix.items():
        field = f"matrix.{key}"
        if not values:
            raise ScenarioError(source, field, "is an empty list: give at least one value")
        parts = key.split(".")
        if parts[0] not in ("scenario", "workload", "targets", "target") or len(parts) < 2:
            raise ScenarioError(
                source,
                field,
                "unknown path: use scenario.X, workload.X, target.X (every target) "
                "or targets.NAME.X",
            )
        if parts[0] == "targets" and parts[1] not in scenario.targets:
            raise ScenarioError(source, field, f"no target named {parts[1]!r}")
    _check_point_count(scenario, source, max_points)
    # Validate every point now, so a bad matrix value fails before anything runs (one at a
    # time: the points are not kept).
    for _ in _points(scenario, source, raw):
        pass


def expand(
    scenario: Scenario,
    source: str = "scenario",
    raw: dict[str, Any] | None = None,
    *,
    max_points: int | None = MAX_MATRIX_POINTS,
) -> list[RunPoint]:
    """The run points: each selected target x the cross product of the matrix (in file
    order; a point keeps the index it has in the whole file).

    Refused (ScenarioError on ``matrix``) when there would be more than ``max_points``
    (None: no limit); the count comes first, so nothing large is built to find that out.
    """
    _check_point_count(scenario, source, max_points)
    return list(_points(scenario, source, raw))


def _points(scenario: Scenario, source: str, raw: dict[str, Any] | None) -> Iterator[RunPoint]:
    """Each point, validated as a whole scenario (cross-field checks included), in order."""
    base = raw if raw is not None else scenario.model_dump(mode="json")
    base = {name: value for name, value in base.items() if name != "matrix"}
    keys = list(scenario.matrix)
    # Looking a driver up scans every installed package's entry points (~6 ms; it made a
    # point cost 12 ms): once per target's distinct options, not twice per point.
    configs: dict[tuple[str, str], tuple[DriverConfig, type]] = {}
    per_target = math.prod(len(scenario.matrix[k]) for k in keys)
    selected = scenario.selected_targets
    stores = pipeline_stores(scenario, source)
    index = 0
    for target in scenario.targets:
        if target not in selected or (stores is not None and target not in stores):
            index += per_target
            continue
        store = stores.get(target) if stores is not None else None
        for combo in itertools.product(*(scenario.matrix[k] for k in keys)):
            params = dict(zip(keys, combo, strict=True))
            point_raw = dict(base)  # shallow: _set_point_value copies the tables it changes
            for key, value in params.items():
                _set_point_value(point_raw, key, value, target, source)
            point = _validate(point_raw, source)
            config, driver_cls = _target_config(target, point.targets[target], source, configs)
            _check_point(point, config, driver_cls, target, source)
            store_config = None
            if store is not None:
                store_config, store_cls = _target_config(
                    store, point.targets[store], source, configs
                )
                if point.workload.kind == "saga":
                    _check_saga_store(point, store, store_cls, driver_cls, source)
                else:
                    _check_pipeline_point(point, store, store_cls, target, driver_cls, source)
            yield RunPoint(
                index=index,
                target=target,
                driver=config.driver,
                driver_config=config,
                scenario=point,
                params=params,
                store_target=store,
                store_driver=store_config.driver if store_config is not None else None,
                store_config=store_config,
            )
            index += 1


def _target_config(
    target: str,
    options: dict[str, Any],
    source: str,
    cache: dict[tuple[str, str], tuple[DriverConfig, type]],
) -> tuple[DriverConfig, type]:
    """A target's validated options and driver class, validated once per distinct options."""
    key = (target, repr(options))
    if key not in cache:
        config = validate_target(target, options, source)
        cache[key] = (config, load_driver(config.driver))
    return cache[key]


def _set_point_value(
    raw: dict[str, Any], key: str, value: Any, target: str, source: str = "scenario"
) -> None:
    """Set a matrix value in a point's raw scenario. The point shares the file's tables, so
    each table on the path is copied before it changes (cheaper than a deep copy)."""
    parts = key.split(".")
    if parts[0] == "target":
        parts = ["targets", target, *parts[1:]]
    elif parts[0] == "targets" and parts[1] != target:
        return
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part, {})
        if not isinstance(child, dict):
            raise ScenarioError(
                source, f"matrix.{key}", f"{'.'.join(parts[: depth + 1])} is not a table"
            )
        node[part] = dict(child)
        node = node[part]
    node[parts[-1]] = value


def pipeline_stores(scenario: Scenario, source: str = "scenario") -> dict[str, str] | None:
    """A pipeline scenario's points as broker target -> store target (None for any other
    kind), from ``workload.pipeline.store``: a table of them; or one store target, every other
    target a broker; or, unnamed, the only target as both. ScenarioError naming the field when
    a name is not a target of the file, or there is no broker to run through."""
    workload = scenario.workload
    targets = list(scenario.targets)
    if workload.kind == "saga" and workload.saga.store is not None:
        # Sagas with persisted state: every other target is a broker they run through.
        named_store = workload.saga.store
        if named_store not in scenario.targets:
            raise ScenarioError(
                source,
                "workload.saga.store",
                f"{_shown(named_store)} is not a target of this file",
                hint=f"give one of {', '.join(targets)}",
            )
        brokers = {t: named_store for t in targets if t != named_store}
        if not brokers:
            raise ScenarioError(
                source,
                "workload.saga.store",
                "the saga state's target is the only target: add a broker target to run "
                "the sagas through",
            )
        return brokers
    if workload.kind != "pipeline":
        return None
    named = workload.pipeline.store
    field = "workload.pipeline.store"
    if named is None:
        if len(targets) == 1:
            return {targets[0]: targets[0]}
        raise ScenarioError(
            source,
            field,
            f"a pipeline with {len(targets)} targets needs the name of its store target",
            hint=f"give workload.pipeline.store = one of {', '.join(targets)}, or a table of "
            "broker = store",
        )
    pairs = named if isinstance(named, dict) else {t: named for t in targets if t != named}
    if isinstance(named, str) and not pairs:
        pairs = {named: named}  # the only target: its own broker
    for broker, store in pairs.items():
        for what, name in (("broker", broker), ("store", store)):
            if name not in scenario.targets:
                where = field if isinstance(named, str) else f"{field}.{broker}"
                raise ScenarioError(
                    source,
                    where,
                    f"{what} {_shown(name)} is not a target of this file",
                    hint=f"give one of {', '.join(targets)}",
                )
    return pairs


def _check_saga_store(
    point: Scenario, store: str, store_cls: type, broker_cls: type, source: str
) -> None:
    if not issubclass(store_cls, SagaStateStore):
        raise ScenarioError(
            source,
            "workload.saga.store",
            f"target {store!r} cannot keep saga state (no SagaStateStore): give a postgres or "
            "memory target",
        )
    store_faults = [i for i, f in enumerate(point.faults) if f.on == "store"]
    if store_faults and getattr(store_cls, "in_process", False):
        raise ScenarioError(
            source,
            f"faults.{store_faults[0]}.on",
            f"the saga state's target {store!r} runs inside eventbench: a store fault acts on "
            "a service bench up manages (postgres)",
        )
    mixed = store_faults and len(store_faults) < len(point.faults)
    if mixed and getattr(broker_cls, "in_process", False):
        raise ScenarioError(
            source,
            "faults",
            "the broker runs inside eventbench and acts out its faults itself; faults on the "
            "saga state's store and on an in-process broker cannot share a timeline",
            hint="fault one of them per scenario",
        )


def _check_pipeline_point(
    point: Scenario, store: str, store_cls: type, broker: str, broker_cls: type, source: str
) -> None:
    """A pipeline point's store and broker, and the limits of this first version."""
    workload = point.workload
    if driver_kind(store_cls) not in ("store", "both"):
        raise ScenarioError(
            source,
            "workload.pipeline.store",
            f"target {store!r} is a {driver_kind(store_cls)} target, not an event store",
        )
    if driver_kind(broker_cls) not in ("stream", "both"):
        raise ScenarioError(
            source,
            f"targets.{broker}",
            f"target {broker!r} is a {driver_kind(broker_cls)} target: a pipeline runs through "
            "a broker (memory, kafka, rabbitmq, nats)",
        )
    if workload.pipeline.relay == "outbox" and not issubclass(store_cls, Outbox):
        raise ScenarioError(
            source,
            "workload.pipeline.relay",
            f"target {store!r} keeps no transactional outbox",
            hint='use relay = "dual_write", or a store with an outbox (memory, postgres)',
        )
    in_process = getattr(store_cls, "in_process", False) and getattr(
        broker_cls, "in_process", False
    )
    if workload.workers != 1 and not in_process:
        raise ScenarioError(
            source,
            "workload.workers",
            f"a pipeline on {store!r} and {broker!r} runs in one worker process for now (got "
            f"{workload.workers}): its relays time each event from the commit its own writers "
            "saw. Several workers need a store and a broker inside each worker (memory)",
        )
    if workload.producers < workload.workers:
        raise ScenarioError(
            source,
            "workload.producers",
            f"a pipeline needs a command writer group in each worker ({workload.producers} < "
            f"workers = {workload.workers})",
        )
    if workload.consumers < workload.workers:
        raise ScenarioError(
            source,
            "workload.consumers",
            f"a pipeline needs a projection consumer in each worker ({workload.consumers} < "
            f"workers = {workload.workers})",
        )
    store_faults = [i for i, f in enumerate(point.faults) if f.on == "store"]
    if store_faults and getattr(store_cls, "in_process", False):
        raise ScenarioError(
            source,
            f"faults.{store_faults[0]}.on",
            f"store {store!r} runs inside the worker: a fault acts on a service bench up "
            "manages (postgres)",
        )
    mixed = store_faults and len(store_faults) < len(point.faults)
    if mixed and getattr(broker_cls, "in_process", False):
        raise ScenarioError(
            source,
            "faults",
            f"broker {broker!r} runs inside the worker and acts out its faults there; "
            "faults on the store and on an in-process broker cannot share a timeline",
            hint="fault one of them per scenario",
        )


def _check_payload_file(workload: Workload, source: str) -> None:
    if workload.payload_file is None:
        return
    path = Path(workload.payload_file)
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    if size is None:
        raise ScenarioError(
            source,
            "workload.payload_file",
            f"{_shown(workload.payload_file)} is not a readable file",
        )
    if size > PAYLOAD_FILE_MAX_BYTES:
        raise ScenarioError(
            source,
            "workload.payload_file",
            f"is {size:,} bytes: at most {PAYLOAD_FILE_MAX_BYTES // 2**20} MiB per message",
        )


def _check_point(
    point: Scenario, config: DriverConfig, driver_cls: type, target: str, source: str
) -> None:
    workload = point.workload
    _check_payload_file(workload, source)
    kind = getattr(driver_cls, "kind", "stream")
    if workload.kind == "pipeline":
        return  # _check_pipeline_point checks the store and the broker
    if workload.kind == "replay" and not issubclass(driver_cls, HistoryStore):
        raise ScenarioError(
            source,
            "workload.kind",
            f"target {target!r} (driver {config.driver!r}) cannot be seeded with a history: a "
            "replay needs a store with seed_history and rewrite_events (memory, postgres)",
        )
    wanted = {"replay": "store", "saga": "stream"}.get(workload.kind, workload.kind)
    if wanted not in (kind, "both") and kind != "both":
        raise ScenarioError(
            source,
            "workload.kind",
            f"target {target!r} (driver {config.driver!r}) is a {kind} target, but the workload "
            f"is {workload.kind!r}",
            hint='set workload.kind = "store" for event stores, "stream" for brokers',
        )

    if getattr(driver_cls, "in_process", False) and workload.consumer_workers:
        raise ScenarioError(
            source,
            "workload.consumer_workers",
            f"target {target!r} runs inside each worker process, so a worker's consumers can only "
            "read what its own producers sent: producers and consumers cannot be split over "
            "workers (give workers as a number)",
        )
    if getattr(driver_cls, "in_process", False) and workload.kind == "stream":
        # An in-process target lives inside each worker: every worker needs both sides.
        if workload.producers < workload.workers:
            raise ScenarioError(
                source,
                "workload.producers",
                f"target {target!r} runs inside each worker process, so it needs at least one "
                f"producer per worker ({workload.producers} < workers = {workload.workers})",
            )
        if 0 < workload.consumers < workload.workers:
            raise ScenarioError(
                source,
                "workload.consumers",
                f"target {target!r} runs inside each worker process, so it needs at least one "
                f"consumer per worker ({workload.consumers} < workers = {workload.workers})",
            )
        lonely = topics_without_consumers(workload)
        if lonely:
            worker, topic = lonely[0]
            raise ScenarioError(
                source,
                "workload.topics",
                f"target {target!r} runs inside each worker process, and worker {worker} would "
                f"produce to topic {topic} with none of its consumers: with topics = "
                f"{workload.topics} over workers = {workload.workers}, give producers and "
                "consumers as multiples of topics x workers",
            )
    # A graceful restart (stop, which commits, then start) works on any driver; a kill needs a
    # consumer that owes what it did not commit.
    consumer_faults = [i for i, f in enumerate(point.faults) if f.action == "kill_consumer"]
    if consumer_faults:
        why = consumer_faults_unsupported(driver_cls, config)
        if why:
            raise ScenarioError(
                source,
                f"faults.{consumer_faults[0]}.action",
                f"target {target!r}: {point.faults[consumer_faults[0]].action} {why}",
            )
    if not workload.closed_loop and isinstance(workload.rate, float):
        per_producer = workload.rate / workload.producers
        if per_producer > 5_000_000:
            raise ScenarioError(
                source, "workload.rate", f"{per_producer:.0f} events/s per producer is beyond reach"
            )


def slo_thresholds(scenario: Scenario) -> dict[str, float]:
    """SLOs as (kind.stat -> microseconds)."""
    return {key: seconds * 1e6 for key, seconds in scenario.slo.items()}


__all__ = [
    "LATENCY_KINDS",
    "MAX_MATRIX_POINTS",
    "PIPELINE_STAGES",
    "SAGA_LATENCY_KINDS",
    "RunPoint",
    "Scenario",
    "ScenarioMeta",
    "VerdictRules",
    "Workload",
    "apply_override",
    "expand",
    "load_scenario",
    "matrix_limit",
    "parse_duration_s",
    "parse_value",
    "point_count",
    "scenario_from_dict",
    "slo_thresholds",
]
