"""The Kafka stream driver: topics, producers, consumer groups and server identification.

This module owns everything eventbench knows about the Kafka protocol and its client library
(aiokafka): the ``KafkaConfig`` model a ``[targets.NAME]`` table with ``driver = "kafka"`` is
validated against, topic creation and deletion per run point, keyed producers that keep many
acknowledged sends in flight, optional transactional batching, consumer-group members that
hand every record to the engine's callback, and ``describe()``, which asks the cluster what it
is (ApiVersions, metadata, broker configs) so a result names the server that produced it.

It works against Apache Kafka and against Tansu (a Kafka-protocol broker in Rust). Where the
two differ (idempotent producers, broker configs), the differences are reported, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, ClassVar, Literal

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka import codec as kafka_codec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import collect_hosts
from aiokafka.errors import ConsumerStoppedError, KafkaError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.api import Request, RequestStruct, Response, ResponseHeader_v0
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)
from pydantic import Field, SecretStr, field_validator, model_validator

from bench.drivers.base import (
    H_ENVELOPE,
    Consumer,
    DriverConfig,
    DriverContext,
    Message,
    OnMessage,
    Producer,
    StoredIds,
    Topology,
    envelope_ids,
    message_from_headers,
    message_headers,
)
from bench.errors import DriverError
from bench.redaction import redact_text
from bench.units import Duration, format_duration

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

# A re-read whose positions stay put this long is stuck (a broker that never hands out the
# records below an end offset it reported), not slow.
REREAD_STALL_S = 5.0

# Kafka error codes that prepare/cleanup treat as outcomes rather than failures.
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3

# What each codec needs that aiokafka cannot use without it.
_CODEC_CHECKS: dict[str, tuple[Callable[[], bool], str]] = {
    "gzip": (kafka_codec.has_gzip, "the standard library's gzip"),
    "lz4": (kafka_codec.has_lz4, "the python package 'lz4'"),
    "zstd": (kafka_codec.has_zstd, "the python package 'zstandard' (or 'backports.zstd')"),
    "snappy": (kafka_codec.has_snappy, "the python package 'cramjam' (or 'python-snappy')"),
}


def available_compressions() -> list[str]:
    """The compression settings aiokafka can use in this environment."""
    return ["none", *(name for name, (check, _) in _CODEC_CHECKS.items() if check())]


class KafkaConfig(DriverConfig):
    """Options of a Kafka target. Client settings map one to one onto aiokafka's."""

    driver: Literal["kafka"] = "kafka"
    bootstrap_servers: str = Field(
        default_factory=lambda: os.environ.get("BENCH_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        validate_default=True,
    )
    client_id: str = "eventbench"
    # Kafka's own producer default since 3.0; on one broker it costs nothing over acks=1.
    acks: Literal[0, 1, "all"] = "all"
    enable_idempotence: bool = False
    linger_ms: int = Field(default=0, ge=0)
    max_batch_bytes: int = Field(default=16384, gt=0)
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    # Publish in transactions of this many events (0: no transactions).
    transactional: int = Field(default=0, ge=0)
    # Commit a transaction with fewer than `transactional` events once no event has joined
    # it for this long, so the end of a run or a slow rate does not hold events forever.
    transaction_linger_ms: int = Field(default=100, ge=0)
    request_timeout: Duration = 30.0
    # aiokafka's default (500 ms) makes brokers that hold fetches for the full wait (Tansu)
    # look 100+ ms slow at moderate rates; 10 ms keeps end-to-end latency honest.
    fetch_max_wait_ms: int = Field(default=10, ge=0)
    fetch_min_bytes: int = Field(default=1, ge=1)
    max_poll_records: int = Field(default=500, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit: Literal["auto", "explicit"] = "auto"
    # Tansu holds a JoinGroup for half the session timeout, so this also sets how long a
    # consumer's start() takes there (5 s at aiokafka's 10 s). Kafka's minimum is 6 s.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    replication_factor: int = Field(default=1, ge=1)
    recreate_topic: bool = True
    # Bound on topic creation/deletion and on a consumer's group join.
    setup_timeout: Duration = 30.0
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # aiokafka cannot log in with "user:secret@host:port"; it would only carry the secret
        # into error lines and results. The message names the problem, never the value.
        if "@" in value:
            raise ValueError(
                "holds credentials (a user before an @): Kafka takes them as sasl_username "
                "and sasl_password, with security_protocol = 'SASL_PLAINTEXT' or 'SASL_SSL'"
            )
        return value

    @field_validator("compression")
    @classmethod
    def _compression_usable(cls, value: str) -> str:
        if value != "none":
            check, needs = _CODEC_CHECKS[value]
            if not check():
                raise ValueError(
                    f"{value!r} needs {needs}, which is not installed here "
                    f"(usable: {', '.join(available_compressions())})"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError("acks: must be 'all' when enable_idempotence is true")
        if self.transactional and not self.enable_idempotence:
            raise ValueError(
                "transactional: needs enable_idempotence = true (and acks = 'all'); "
                "Kafka transactions are built on the idempotent producer"
            )
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise ValueError(f"sasl_mechanism: required with {self.security_protocol}")
            if self.sasl_username is None or self.sasl_password is None:
                raise ValueError(
                    f"sasl_username and sasl_password: required with {self.sasl_mechanism}"
                )
        return self

    def settings(self) -> dict[str, Any]:
        """Every option as given or defaulted, secrets left out (for describe and results)."""
        out = self.model_dump(mode="json", exclude={"sasl_password"})
        out["sasl_password_set"] = self.sasl_password is not None
        return out


# --------------------------------------------------------------------------- ApiVersions v3
# aiokafka negotiates with ApiVersions v0-v2, whose answer carries no feature levels. v3 adds
# the finalized features (KIP-584); Apache Kafka in KRaft mode reports "metadata.version"
# there, which is the nearest thing the protocol has to a server version.


class _ApiVersionsResponseV3(Response):
    API_KEY = 18
    API_VERSION = 3
    SCHEMA = Schema(
        ("error_code", Int16),
        (
            "api_versions",
            CompactArray(
                ("api_key", Int16),
                ("min_version", Int16),
                ("max_version", Int16),
                ("tags", TaggedFields),
            ),
        ),
        ("throttle_time_ms", Int32),
        ("tags", TaggedFields),
    )


class _ApiVersionsRequestV3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 18
    API_VERSION = 3
    RESPONSE_TYPE = _ApiVersionsResponseV3
    SCHEMA = Schema(
        ("client_software_name", CompactString("utf-8")),
        ("client_software_version", CompactString("utf-8")),
        ("tags", TaggedFields),
    )

    def parse_response_header(self, read_buffer: BytesIO | bytes) -> ResponseHeader_v0:
        # ApiVersions responses keep header v0 even in flexible versions, so that a client
        # can always read the answer to its first request.
        return ResponseHeader_v0.decode(read_buffer)


class _ApiVersionsV3(Request[_ApiVersionsRequestV3]):
    API_KEY = 18

    def build(self, request_struct_class: type[_ApiVersionsRequestV3]) -> _ApiVersionsRequestV3:
        return request_struct_class(
            client_software_name="eventbench",
            client_software_version=aiokafka.__version__,
            tags={},
        )


# Tag 2 of the v3 response: FinalizedFeatures [name, max_version_level, min_version_level].
_FINALIZED_FEATURES = CompactArray(
    ("name", CompactString("utf-8")),
    ("max_version_level", Int16),
    ("min_version_level", Int16),
    ("tags", TaggedFields),
)

# metadata.version feature level -> Apache Kafka release that introduced it. It is a floor:
# a cluster may run newer software at an older metadata.version.
_METADATA_VERSION_RELEASE = {
    1: "3.0",
    2: "3.1",
    3: "3.2",
    **dict.fromkeys(range(4, 8), "3.3"),
    8: "3.4",
    **dict.fromkeys(range(9, 12), "3.5"),
    **dict.fromkeys(range(12, 15), "3.6"),
    **dict.fromkeys(range(15, 20), "3.7"),
    20: "3.8",
    21: "3.9",
}

_API_NAMES = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    22: "InitProducerId",
    23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    27: "WriteTxnMarkers",
    28: "TxnOffsetCommit",
    29: "DescribeAcls",
    30: "CreateAcls",
    31: "DeleteAcls",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs",
    36: "SaslAuthenticate",
    37: "CreatePartitions",
    38: "CreateDelegationToken",
    39: "RenewDelegationToken",
    40: "ExpireDelegationToken",
    41: "DescribeDelegationToken",
    42: "DeleteGroups",
    43: "ElectLeaders",
    44: "IncrementalAlterConfigs",
    45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments",
    47: "OffsetDelete",
    48: "DescribeClientQuotas",
    49: "AlterClientQuotas",
    50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials",
    55: "DescribeQuorum",
    57: "UpdateFeatures",
    60: "DescribeCluster",
    61: "DescribeProducers",
    64: "UnregisterBroker",
    65: "DescribeTransactions",
    66: "ListTransactions",
    68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
    71: "GetTelemetrySubscriptions",
    72: "PushTelemetry",
    74: "ListClientMetricsResources",
    75: "DescribeTopicPartitions",
}


def _finalized_features(tags: dict[int, bytes]) -> dict[str, int]:
    raw = tags.get(2)
    if not raw:
        return {}
    entries = _FINALIZED_FEATURES.decode(BytesIO(raw)) or []
    return {name: max_level for name, max_level, _min_level, _tags in entries}


# --------------------------------------------------------------------------- helpers


def _reason(exc: BaseException) -> str:
    """One short phrase for why a connection failed."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer"
    text = redact_text(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _headers(msg: Message) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in message_headers(msg).items()]


def _envelope_of(headers: Iterable[tuple[str, bytes]]) -> tuple[int, int] | None:
    for name, value in headers:
        if name == H_ENVELOPE:
            return envelope_ids(value)
    return None


def _check_topic_errors(pairs: Iterable[tuple[Any, ...]], allowed: set[int], what: str) -> None:
    for entry in pairs:
        topic, code = entry[0], entry[1]
        if code and code not in allowed:
            error = for_code(code)
            raise DriverError(
                f"kafka: {what} topic {topic!r} failed: {error.__name__} (code {code})"
            )


@dataclass(frozen=True, slots=True)
class _ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[dict[str, Any]]


# --------------------------------------------------------------------------- producers


class KafkaProducer:
    """One aiokafka producer for one harness producer; any number of sends in flight."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, msg: Message) -> None:
        # send() only queues the record (waiting if the batch buffer is full); the future it
        # returns resolves on the broker's ack. Concurrent callers share batches, which is
        # what makes many sends in flight cheap.
        ack = await self._producer.send(
            self._topic, msg.value, key=msg.key.encode(), headers=_headers(msg)
        )
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
        self, producer: AIOKafkaProducer, topic: str, per_txn: int, linger_s: float
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._per_txn = per_txn
        self._linger_s = linger_s
        self._join_lock = asyncio.Lock()
        self._batch: _TxnBatch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ending: set[asyncio.Task[None]] = set()

    async def send(self, msg: Message) -> None:
        batch = await self._join()
        try:
            ack = await self._producer.send(
                self._topic, msg.value, key=msg.key.encode(), headers=_headers(msg)
            )
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


# --------------------------------------------------------------------------- consumers


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
        await self._owner.commit_quietly()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._owner.client
        try:
            positions = {tp: await consumer.position(tp) for tp in assigned}
            if positions:
                await consumer.commit(positions)
        except KafkaError:
            self._owner.count_error("commit")
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

    def count_error(self, kind: str) -> None:
        self._context.count_error(kind)

    async def commit_quietly(self) -> None:
        if self._config.commit == "explicit":
            try:
                await self.client.commit()
            except KafkaError:
                self.count_error("commit")

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
            raise DriverError(
                f"kafka: consumer did not get its assignment of {self._topic!r} within "
                f"{format_duration(self._config.setup_timeout)}",
                hint="is the group coordinator available? raise setup_timeout if the "
                "cluster is slow to rebalance",
            ) from None
        except KafkaError as exc:
            await self._stop_client()
            raise DriverError(f"kafka: consumer could not join its group: {_reason(exc)}") from exc
        self._task = asyncio.create_task(self._run(), name=f"kafka-consume-{self._topic}")

    async def _run(self) -> None:
        consumer = self.client
        deliver = self._on_message
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
                    if record.key is None:
                        continue
                    msg = message_from_headers(
                        record.key.decode("utf-8", "replace"), record.value, dict(record.headers)
                    )
                    if msg is not None:
                        deliver(msg)
            if batches:
                await self.commit_quietly()

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


# --------------------------------------------------------------------------- the driver


class KafkaDriver:
    """The Kafka stream driver (aiokafka). See the module docstring."""

    name: ClassVar[str] = "kafka"
    kind: ClassVar[Literal["stream", "store", "both"]] = "stream"
    config_model: ClassVar[type[DriverConfig]] = KafkaConfig

    def __init__(self, config: KafkaConfig, context: DriverContext) -> None:
        self.config = config
        self.context = context
        self._admin: AIOKafkaAdminClient | None = None
        self._client: AIOKafkaClient | None = None
        self._producers: list[KafkaProducer | KafkaTransactionalProducer] = []
        self._consumers: list[KafkaConsumer] = []

    # ----------------------------------------------------------------- client settings

    def _common(self) -> dict[str, Any]:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "bootstrap_servers": cfg.bootstrap_servers,
            "request_timeout_ms": int(cfg.request_timeout * 1000),
            "security_protocol": cfg.security_protocol,
        }
        if cfg.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = create_ssl_context(cafile=cfg.ssl_cafile)
        if cfg.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = cfg.sasl_mechanism
            kwargs["sasl_plain_username"] = cfg.sasl_username
            assert cfg.sasl_password is not None  # the model requires it with SASL
            kwargs["sasl_plain_password"] = cfg.sasl_password.get_secret_value()
        return kwargs

    def _producer_settings(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "acks": cfg.acks,
            "enable_idempotence": cfg.enable_idempotence,
            "linger_ms": cfg.linger_ms,
            "max_batch_size": cfg.max_batch_bytes,
            "compression_type": None if cfg.compression == "none" else cfg.compression,
        }

    def _consumer_settings(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "enable_auto_commit": cfg.commit == "auto",
            "auto_offset_reset": cfg.auto_offset_reset,
            "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
            "fetch_min_bytes": cfg.fetch_min_bytes,
            "max_poll_records": cfg.max_poll_records,
            # Transactional events are only delivered once committed (aborted ones never).
            "isolation_level": "read_committed" if cfg.transactional else "read_uncommitted",
            "session_timeout_ms": cfg.session_timeout_ms,
            # A new member waits for the others to notice the rebalance on their heartbeat;
            # aiokafka's 3 s makes every consumer start slow.
            "heartbeat_interval_ms": min(1000, cfg.session_timeout_ms // 3),
        }

    def _where(self) -> str:
        return f"kafka at {redact_text(self.config.bootstrap_servers)}"

    # ----------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        timeout = self.config.connect_timeout
        try:
            await asyncio.wait_for(self._connect(), timeout)
        except Exception as exc:
            await self._close_admin()
            raise DriverError(
                f"{self._where()}: cannot connect within {format_duration(timeout)} "
                f"({_reason(exc)})",
                hint="is the broker running? `bench up kafka` starts a local one; otherwise "
                "set bootstrap_servers (or BENCH_KAFKA_BOOTSTRAP)",
            ) from None

    async def _connect(self) -> None:
        # A plain TCP attempt first: aiokafka reports an unreachable address as a generic
        # "Unable to bootstrap", while the socket error says what is wrong.
        reasons = []
        for host, port, _family in collect_hosts(self.config.bootstrap_servers):
            try:
                _reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                reasons.append(exc)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break
        else:
            raise reasons[-1] if reasons else OSError(errno.EINVAL, "no bootstrap servers")
        common = self._common()
        self._client = AIOKafkaClient(client_id=f"{self.config.client_id}-meta", **common)
        await self._client.bootstrap()
        self._admin = AIOKafkaAdminClient(client_id=f"{self.config.client_id}-admin", **common)
        await self._admin.start()

    def _require_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise DriverError(f"{self._where()}: not connected", hint="call connect() first")
        return self._admin

    async def prepare(self, topology: Topology) -> None:
        admin = self._require_admin()
        try:
            async with asyncio.timeout(self.config.setup_timeout):
                await self._prepare(admin, topology)
        except TimeoutError:
            raise DriverError(
                f"{self._where()}: topic {topology.name!r} not ready within "
                f"{format_duration(self.config.setup_timeout)}",
                hint="raise setup_timeout if the cluster is slow to create or delete topics",
            ) from None
        except KafkaError as exc:
            raise DriverError(
                f"{self._where()}: preparing topic {topology.name!r} failed: {_reason(exc)}"
            ) from exc

    async def _prepare(self, admin: AIOKafkaAdminClient, topology: Topology) -> None:
        exists = topology.name in await admin.list_topics()
        if exists and self.config.recreate_topic:
            await self._delete_topic(admin, topology.name)
            exists = False
        if exists:
            partitions = await self._partitions(admin, topology.name)
            if len(partitions) != topology.partitions:
                raise DriverError(
                    f"{self._where()}: topic {topology.name!r} exists with {len(partitions)} "
                    f"partitions, the run point needs {topology.partitions}",
                    hint="set recreate_topic = true, or delete the topic",
                )
        else:
            await self._create_topic(admin, topology)
        # The broker answers CreateTopics before every partition has a leader; producing
        # before then fails with NotLeaderForPartition on Apache Kafka.
        while True:
            partitions = await self._partitions(admin, topology.name)
            if len(partitions) == topology.partitions and all(
                p["error_code"] == 0 and p["leader"] >= 0 for p in partitions
            ):
                return
            await asyncio.sleep(0.1)

    async def _partitions(self, admin: AIOKafkaAdminClient, topic: str) -> list[dict[str, Any]]:
        described = await admin.describe_topics([topic])
        for entry in described:
            if entry["topic"] == topic and entry["error_code"] == 0:
                return list(entry["partitions"])
        return []

    async def _create_topic(self, admin: AIOKafkaAdminClient, topology: Topology) -> None:
        new = NewTopic(topology.name, topology.partitions, self.config.replication_factor)
        while True:
            response = await admin.create_topics([new])
            codes = {code for _topic, code, *_rest in response.topic_errors}
            if _TOPIC_ALREADY_EXISTS not in codes:
                _check_topic_errors(response.topic_errors, set(), "creating")
                return
            # A topic being deleted still "exists" on Apache Kafka for a moment.
            await asyncio.sleep(0.2)

    async def _delete_topic(self, admin: AIOKafkaAdminClient, topic: str) -> None:
        response = await admin.delete_topics([topic])
        _check_topic_errors(response.topic_error_codes, {_UNKNOWN_TOPIC}, "deleting")
        # Deletion is asynchronous on Apache Kafka: wait until metadata no longer lists it.
        while topic in await admin.list_topics():
            await asyncio.sleep(0.1)

    async def cleanup(self, topology: Topology) -> None:
        admin = self._require_admin()
        try:
            async with asyncio.timeout(self.config.setup_timeout):
                await self._delete_topic(admin, topology.name)
        except TimeoutError:
            raise DriverError(
                f"{self._where()}: topic {topology.name!r} not deleted within "
                f"{format_duration(self.config.setup_timeout)}"
            ) from None
        except KafkaError as exc:
            raise DriverError(
                f"{self._where()}: deleting topic {topology.name!r} failed: {_reason(exc)}"
            ) from exc

    async def producer(self, topology: Topology, producer_id: int) -> Producer:
        # One AIOKafkaProducer per harness producer: aiokafka keeps one produce request in
        # flight per broker connection, so separate producers overlap their requests.
        # Measured on Tansu, 256 in flight: 4 producers ~30-45k msgs/s, 1 shared ~17-34k.
        self._require_admin()
        cfg = self.config
        transactional_id = (
            f"{cfg.client_id}-{topology.name}-{producer_id}" if cfg.transactional else None
        )
        client = AIOKafkaProducer(
            client_id=f"{cfg.client_id}-p{producer_id}",
            transactional_id=transactional_id,
            **self._common(),
            **self._producer_settings(),
        )
        try:
            await asyncio.wait_for(client.start(), cfg.connect_timeout)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), cfg.connect_timeout)
            if cfg.enable_idempotence and isinstance(exc, KafkaError):
                raise DriverError(
                    f"{self._where()}: the broker refused an idempotent producer "
                    f"(InitProducerId: {_reason(exc)})",
                    hint="this broker does not support idempotent or transactional producers "
                    "through aiokafka (Tansu does not): set enable_idempotence = false and "
                    "transactional = 0",
                ) from exc
            raise DriverError(
                f"{self._where()}: producer did not start within "
                f"{format_duration(cfg.connect_timeout)} ({_reason(exc)})"
            ) from exc
        producer: KafkaProducer | KafkaTransactionalProducer
        if cfg.transactional:
            producer = KafkaTransactionalProducer(
                client, topology.name, cfg.transactional, cfg.transaction_linger_ms / 1000
            )
        else:
            producer = KafkaProducer(client, topology.name)
        self._producers.append(producer)
        return producer

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> Consumer:
        self._require_admin()
        cfg = self.config
        client = AIOKafkaConsumer(
            client_id=f"{cfg.client_id}-c{consumer_id}",
            group_id=topology.consumer_group,
            **self._common(),
            **self._consumer_settings(),
        )
        consumer = KafkaConsumer(client, topology.name, on_message, cfg, self.context)
        self._consumers.append(consumer)
        return consumer

    # ----------------------------------------------------------------- re-read (Rereadable)

    reread_method: ClassVar[str] = (
        "a reader outside any group read every partition from its first offset to its end "
        "when the re-read began (the later of ListOffsets' answer and the first fetch's "
        "high watermark)"
    )

    def reread_unsupported(self, topology: Topology) -> str | None:
        return None

    async def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """Every record of the topic as (producer, seq): a consumer without a group (so no
        commit and no rebalance touches the run's group) assigned every partition, from the
        beginning to the partition's end when the re-read began.

        The end is the later of ListOffsets' latest offset and the high watermark of the first
        fetch that answers for the partition: Tansu 0.6.0 answers ListOffsets with an offset
        behind the records it serves (238 for a partition holding 300), so ListOffsets alone
        would call stored records lost.
        """
        admin = self._require_admin()
        cfg = self.config
        if topology.name not in await admin.list_topics():
            # Gone with everything in it (and a reader's metadata request could create it
            # again on a broker that auto-creates topics).
            return
        committed_only = bool(cfg.transactional)
        client = AIOKafkaConsumer(
            client_id=f"{cfg.client_id}-reread",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            max_poll_records=max(cfg.max_poll_records, 2000),
            # What a read_committed consumer of the run could ever be given.
            isolation_level="read_committed" if committed_only else "read_uncommitted",
            **self._common(),
        )
        try:
            await asyncio.wait_for(client.start(), cfg.connect_timeout)
            partitions = [TopicPartition(topology.name, p) for p in range(topology.partitions)]
            client.assign(partitions)
            ends: dict[TopicPartition, int] = dict(await client.end_offsets(partitions))
            await client.seek_to_beginning(*partitions)
            remaining = set(partitions)
            fetched: set[TopicPartition] = set()  # partitions whose end a fetch confirmed
            positions = {tp: -1 for tp in partitions}
            moved_at = time.monotonic()
            while remaining:
                if time.monotonic() - moved_at > REREAD_STALL_S:
                    behind = {tp.partition: (positions[tp], ends[tp]) for tp in remaining}
                    raise DriverError(
                        f"{self._where()}: re-reading {topology.name!r} made no progress for "
                        f"{format_duration(REREAD_STALL_S)} (partition: (offset, end) {behind})"
                    )
                batches = await client.getmany(*remaining, timeout_ms=200)
                for tp in remaining - fetched:
                    mark = client.last_stable_offset(tp) if committed_only else client.highwater(tp)
                    if mark is not None:
                        ends[tp] = max(ends[tp], mark)
                        fetched.add(tp)
                ids: StoredIds = []
                for tp, records in batches.items():
                    end = ends[tp]
                    for record in records:
                        if record.offset >= end:
                            break
                        found = _envelope_of(record.headers)
                        if found is not None:
                            ids.append(found)
                for tp in list(remaining):
                    position = await client.position(tp)
                    if position != positions[tp]:
                        positions[tp] = position
                        moved_at = time.monotonic()
                    if tp in fetched and position >= ends[tp]:
                        remaining.discard(tp)
                if ids:
                    yield ids
        except KafkaError as exc:
            raise DriverError(
                f"{self._where()}: re-reading topic {topology.name!r} failed: {_reason(exc)}"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), cfg.connect_timeout)

    async def describe(self) -> dict[str, Any]:
        admin = self._require_admin()
        try:
            async with asyncio.timeout(self.config.setup_timeout):
                return await self._describe(admin)
        except (TimeoutError, KafkaError) as exc:
            raise DriverError(f"{self._where()}: describe failed ({_reason(exc)})") from exc

    async def _describe(self, admin: AIOKafkaAdminClient) -> dict[str, Any]:
        cluster = await self._cluster(admin)
        node_id = cluster.controller_id
        if node_id is None or all(b["node_id"] != node_id for b in cluster.brokers):
            node_id = cluster.brokers[0]["node_id"] if cluster.brokers else None
        api_versions: dict[str, str] = {}
        features: dict[str, int] = {}
        broker_config_keys: list[str] = []
        if node_id is not None:
            api_versions, features = await self._api_versions(node_id)
            broker_config_keys = await self._broker_config_keys(admin, node_id)
        product, version, evidence = _identify(cluster, features, broker_config_keys)
        if product == "Tansu" and version is None:
            version, evidence = await _local_tansu_version(cluster.brokers, evidence)
        return {
            "product": product,
            "version": version,
            "product_evidence": evidence,
            "cluster_id": cluster.cluster_id,
            "broker_count": len(cluster.brokers),
            "brokers": cluster.brokers,
            "controller_id": cluster.controller_id,
            "api_versions_of_node": node_id,
            "api_versions": api_versions,
            "features": features,
            "broker_config_entries": len(broker_config_keys),
            "client": {"library": "aiokafka", "version": aiokafka.__version__},
            "settings": self.config.settings(),
            "effective": {
                "producer": {
                    **self._producer_settings(),
                    "one_client_per_producer": True,
                    "transactional_ids": bool(self.config.transactional),
                },
                "consumer": self._consumer_settings(),
                "fetch_max_wait_ms": self.config.fetch_max_wait_ms,
                "compressions_usable": available_compressions(),
            },
        }

    async def _cluster(self, admin: AIOKafkaAdminClient) -> _ClusterInfo:
        meta = await admin.describe_cluster()
        brokers = [
            {"node_id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
            for b in meta.get("brokers", [])
        ]
        controller = meta.get("controller_id")
        return _ClusterInfo(
            cluster_id=meta.get("cluster_id"),
            controller_id=controller if controller is not None and controller >= 0 else None,
            brokers=sorted(brokers, key=lambda b: b["node_id"]),
        )

    async def _api_versions(self, node_id: int) -> tuple[dict[str, str], dict[str, int]]:
        assert self._client is not None
        try:
            response = await self._client.send(node_id, _ApiVersionsV3())
        except KafkaError:
            response = None
        if response is None or response.error_code != 0:
            # Brokers older than Kafka 2.4 have no v3: fall back to what aiokafka negotiated.
            conn = await self._client._get_conn(node_id)
            versions = dict(getattr(conn, "_versions", {}) or {})
            rows = [(key, lo, hi) for key, (lo, hi) in versions.items()]
            features: dict[str, int] = {}
        else:
            rows = [(key, lo, hi) for key, lo, hi, _tags in response.api_versions]
            features = _finalized_features(response.tags)
        api = {_API_NAMES.get(key, f"api_key_{key}"): f"{lo}-{hi}" for key, lo, hi in sorted(rows)}
        return api, features

    async def _broker_config_keys(self, admin: AIOKafkaAdminClient, node_id: int) -> list[str]:
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.BROKER, str(node_id))]
            )
        except KafkaError:
            return []
        keys: list[str] = []
        for response in responses:
            for resource in response.resources:
                # (error_code, error_message, resource_type, resource_name, config_entries)
                keys.extend(entry[0] for entry in resource[4])
        return keys

    async def close(self) -> None:
        bound = self.config.setup_timeout
        closers: list[Awaitable[None]] = [
            *(c.stop() for c in self._consumers),
            *(p.close() for p in self._producers),
        ]
        self._consumers.clear()
        self._producers.clear()
        results = await asyncio.gather(
            *(asyncio.wait_for(c, bound) for c in closers), return_exceptions=True
        )
        await self._close_admin()
        for result in results:
            if isinstance(result, BaseException):
                # Close must finish; a failed close is counted, not raised.
                self.context.count_error("close")
                log.debug("kafka close: %r", result)

    async def _close_admin(self) -> None:
        for closer in (self._admin, self._client):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer.close(), 10)
        self._admin = None
        self._client = None


def _identify(
    cluster: _ClusterInfo, features: dict[str, int], broker_config_keys: list[str]
) -> tuple[str, str | None, str]:
    """Product, version (when the protocol tells) and why we think so.

    The Kafka protocol has no "server software" field, so this reads the fingerprints each
    implementation leaves: Apache Kafka in KRaft mode finalizes ``metadata.version``; Apache
    Kafka and Redpanda answer DescribeConfigs with hundreds of broker settings (Redpanda's
    prefixed ``redpanda.``); Tansu finalizes no features and reports no broker configs.
    """
    if any(key.startswith("redpanda.") for key in broker_config_keys):
        return "Redpanda", None, "broker configs include redpanda.* keys"
    level = features.get("metadata.version")
    if level is not None:
        release = _METADATA_VERSION_RELEASE.get(level)
        if release is not None:
            version = f">={release} (metadata.version level {level})"
        elif level > max(_METADATA_VERSION_RELEASE):
            version = f">3.9 (metadata.version level {level})"
        else:
            version = f"metadata.version level {level}"
        return "Apache Kafka", version, "KRaft feature metadata.version is finalized"
    if broker_config_keys:
        return (
            "Apache Kafka",
            None,
            f"{len(broker_config_keys)} broker configs, no finalized features (ZooKeeper mode)",
        )
    if cluster.cluster_id and "tansu" in cluster.cluster_id.lower():
        return "Tansu", None, "no broker configs, no finalized features, cluster id names tansu"
    return (
        "unknown Kafka-protocol broker (Tansu-like)",
        None,
        "no broker configs and no finalized features; cluster id is not Tansu's default",
    )


async def _local_tansu_version(
    brokers: list[dict[str, Any]], evidence: str
) -> tuple[str | None, str]:
    """The Kafka protocol does not say Tansu's version; for a broker on this host, the process
    listening on its port does (``bench.infra`` knows how to ask it)."""
    if not brokers or str(brokers[0].get("host")) not in ("127.0.0.1", "localhost", "::1"):
        return None, evidence
    from bench import infra

    status = await asyncio.to_thread(infra.status, "kafka")
    if status.running and status.version and "Tansu" in status.product:
        return status.version, f"{evidence}; version from the local tansu binary on that port"
    return None, evidence
