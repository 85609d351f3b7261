"""The Kafka driver class: connection, topics per run point, and the seam the engine calls.

It owns the admin clients and the producers and consumers it hands out; how a producer,
a consumer, the re-read and describe() talk to the broker lives in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncGenerator, Awaitable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import aiokafka
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

from bench.drivers.base import (
    Consumer,
    DriverConfig,
    DriverContext,
    OnMessage,
    Producer,
    Sizing,
    StoredIds,
    Topology,
)
from bench.drivers.kafka.config import (
    KafkaConfig,
    available_compressions,
    bootstrap_hosts,
    client_settings,
    consumer_settings,
    producer_settings,
    where,
)
from bench.drivers.kafka.consumer import KafkaConsumer, new_consumer
from bench.drivers.kafka.failures import reason
from bench.drivers.kafka.identify import describe_server
from bench.drivers.kafka.producer import KafkaProducer, KafkaTransactionalProducer, start_producer
from bench.drivers.kafka.reread import REREAD_METHOD, reread_topic
from bench.errors import DriverError
from bench.units import format_duration

if TYPE_CHECKING:
    from bench.drivers.kafka.confluent import ConfluentConsumer, ConfluentProducer

log = logging.getLogger(__name__)

# Fetch isolation levels (the Fetch API's numbers).
_READ_UNCOMMITTED = 0
_READ_COMMITTED = 1

# Kafka error codes that prepare/cleanup treat as outcomes rather than failures.
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3


def _check_topic_errors(pairs: Iterable[tuple[Any, ...]], allowed: set[int], what: str) -> None:
    for entry in pairs:
        topic, code = entry[0], entry[1]
        if code and code not in allowed:
            error = for_code(code)
            raise DriverError(
                f"kafka: {what} topic {topic!r} failed: {error.__name__} (code {code})"
            )


class KafkaDriver:
    """The Kafka stream driver (aiokafka, or confluent-kafka for producers and consumers with
    ``client = "confluent"``). See the package docstring."""

    name: ClassVar[str] = "kafka"
    kind: ClassVar[Literal["stream", "store", "both"]] = "stream"
    config_model: ClassVar[type[DriverConfig]] = KafkaConfig

    @classmethod
    def service_name(cls) -> str:
        """The ``bench up`` service this target runs on, here."""
        return "kafka"

    @classmethod
    def sizing(cls) -> Sizing:
        """For ``bench plan``: a consumer group gives each partition to one member, so members
        beyond the partition count sit idle."""
        return Sizing(
            partition_noun="partitions",
            one_consumer_per_partition="one member per partition in a consumer group",
        )

    @staticmethod
    def consumer_faults_unsupported(config: KafkaConfig) -> str | None:
        """Why ``kill_consumer`` cannot act on these consumers (None: it can)."""
        if config.client == "confluent":
            return "is not implemented for client = 'confluent' yet: use client = 'aiokafka'"
        if config.commit != "explicit":
            return (
                "needs commit = 'explicit' (with commit_every or commit_interval): an auto-"
                "committing client commits what it delivered as it closes, so nothing is owed"
            )
        return None

    def __init__(self, config: KafkaConfig, context: DriverContext) -> None:
        self.config = config
        self.context = context
        self._admin: AIOKafkaAdminClient | None = None
        self._client: AIOKafkaClient | None = None
        self._producers: list[KafkaProducer | KafkaTransactionalProducer | ConfluentProducer] = []
        self._consumers: list[KafkaConsumer | ConfluentConsumer] = []

    def _where(self) -> str:
        return where(self.config)

    # ----------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        timeout = self.config.connect_timeout
        try:
            await asyncio.wait_for(self._connect(), timeout)
        except Exception as exc:
            await self._close_admin()
            raise DriverError(
                f"{self._where()}: cannot connect within {format_duration(timeout)} "
                f"({reason(exc)})",
                hint="is the broker running? `bench up kafka` starts a local one; otherwise "
                "set bootstrap_servers (or BENCH_KAFKA_BOOTSTRAP)",
            ) from None

    async def _connect(self) -> None:
        # A plain TCP attempt first: aiokafka reports an unreachable address as a generic
        # "Unable to bootstrap", while the socket error says what is wrong.
        reasons = []
        for host, port in bootstrap_hosts(self.config.bootstrap_servers):
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
        common = client_settings(self.config)
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
                f"{self._where()}: preparing topic {topology.name!r} failed: {reason(exc)}"
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
                f"{self._where()}: deleting topic {topology.name!r} failed: {reason(exc)}"
            ) from exc

    async def producer(self, topology: Topology, producer_id: int) -> Producer:
        self._require_admin()
        producer: KafkaProducer | KafkaTransactionalProducer | ConfluentProducer
        if self.config.client == "confluent":
            # Imported here: confluent-kafka is an optional extra (kafka-confluent).
            from bench.drivers.kafka import confluent

            producer = await confluent.start_producer(self.config, topology, producer_id)
        else:
            producer = await start_producer(self.config, topology, producer_id)
        self._producers.append(producer)
        return producer

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> Consumer:
        self._require_admin()
        consumer: KafkaConsumer | ConfluentConsumer
        if self.config.client == "confluent":
            from bench.drivers.kafka import confluent

            consumer = confluent.ConfluentConsumer(
                self.config, topology, consumer_id, on_message, self.context
            )
        else:
            consumer = new_consumer(self.config, topology, consumer_id, on_message, self.context)
        self._consumers.append(consumer)
        return consumer

    # ----------------------------------------------------------------- re-read (Rereadable)

    reread_method: ClassVar[str] = REREAD_METHOD

    def reread_unsupported(self, topology: Topology) -> str | None:
        return None

    def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """Every record of the topic as (producer, seq); see ``reread.reread_topic``."""
        return reread_topic(self._require_admin(), self.config, topology)

    # ----------------------------------------------------------------- lag (ConsumerLag)

    async def consumer_lag(self, topology: Topology) -> int | None:
        """Messages stored in the topic beyond the consumer group's *committed* offsets:
        the sum over partitions of (end offset - committed offset).

        It measures commits, not deliveries: the run's consumers commit every second
        (``commit = "auto"``) or after every batch (``"explicit"``), and when they stop, so
        between commits it also counts messages already delivered and not yet committed. It
        over-states, never under-states, what is still on its way. The end offset is each
        partition's high watermark from a Fetch (the last stable offset for a transactional
        run, which is all a read_committed consumer can reach), not ListOffsets, which Tansu
        0.6.0 answers behind the records it serves. None when the broker cannot tell: a
        partition without a committed offset or without a leader, an error answer, or no
        answer within ``setup_timeout``.
        """
        admin = self._require_admin()
        try:
            async with asyncio.timeout(self.config.setup_timeout):
                return await self._consumer_lag(admin, topology)
        except (TimeoutError, KafkaError, DriverError) as exc:
            log.debug("kafka consumer_lag of %s: %r", topology.name, exc)
            return None

    async def _consumer_lag(self, admin: AIOKafkaAdminClient, topology: Topology) -> int | None:
        assert self._client is not None  # connect() made both
        partitions = await self._partitions(admin, topology.name)
        if len(partitions) != topology.partitions:
            return None
        tps = [TopicPartition(topology.name, p["partition"]) for p in partitions]
        committed = await admin.list_consumer_group_offsets(topology.consumer_group, partitions=tps)
        offsets = {tp: committed[tp].offset for tp in tps if tp in committed}
        if len(offsets) != len(tps) or min(offsets.values()) < 0:
            return None
        ends = await self._end_offsets(partitions, topology.name, offsets)
        if ends is None or set(ends) != set(offsets):
            return None
        return sum(max(0, ends[tp] - offsets[tp]) for tp in tps)

    async def _end_offsets(
        self, partitions: list[dict[str, Any]], topic: str, starts: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int] | None:
        """Each partition's end as a Fetch from ``starts`` answers it (one request per
        leader); None if any partition is missing from the answers or answered an error."""
        assert self._client is not None
        by_leader: dict[int, list[int]] = {}
        for p in partitions:
            if p["leader"] < 0:
                return None
            by_leader.setdefault(p["leader"], []).append(p["partition"])
        committed_only = bool(self.config.transactional)
        isolation = _READ_COMMITTED if committed_only else _READ_UNCOMMITTED
        ends: dict[TopicPartition, int] = {}
        for leader, numbers in by_leader.items():
            # Room for one byte: the answer carries the watermarks and (almost) no records.
            # A 1 ms wait, not 0: Tansu 0.6.0 answers a 0 ms fetch with no partitions at all.
            wanted = [(n, starts[TopicPartition(topic, n)], 1) for n in numbers]
            request = FetchRequest(1, 1, 1, isolation, [(topic, wanted)])
            response = await self._client.send(leader, request)
            for name, answers in response.topics:
                for number, error_code, highwater, *rest in answers:
                    if name != topic or error_code:
                        return None
                    end = highwater
                    if committed_only:
                        if response.API_VERSION < 4 or rest[0] is None or rest[0] < 0:
                            return None
                        end = rest[0]
                    ends[TopicPartition(topic, number)] = end
        return ends

    # ----------------------------------------------------------------- describe

    async def describe(self) -> dict[str, Any]:
        admin = self._require_admin()
        try:
            async with asyncio.timeout(self.config.setup_timeout):
                return await self._describe(admin)
        except (TimeoutError, KafkaError) as exc:
            raise DriverError(f"{self._where()}: describe failed ({reason(exc)})") from exc

    async def _describe(self, admin: AIOKafkaAdminClient) -> dict[str, Any]:
        assert self._client is not None  # connect() made both
        if self.config.client == "confluent":
            from bench.drivers.kafka import confluent

            client = {**confluent.client_info(), "admin": f"aiokafka {aiokafka.__version__}"}
            effective = {
                "producer": {
                    **confluent.common_settings(self.config, secrets=False),
                    **confluent.producer_settings(self.config),
                    "one_client_per_producer": True,
                },
                "consumer": confluent.consumer_settings(self.config),
                "fetch_max_wait_ms": self.config.fetch_max_wait_ms,
                "compressions_usable": ["none", "gzip", "lz4", "zstd", "snappy"],
            }
        else:
            client = {"library": "aiokafka", "version": aiokafka.__version__}
            effective = {
                "producer": {
                    **producer_settings(self.config),
                    "one_client_per_producer": True,
                    "transactional_ids": bool(self.config.transactional),
                },
                "consumer": consumer_settings(self.config),
                "fetch_max_wait_ms": self.config.fetch_max_wait_ms,
                "compressions_usable": available_compressions(),
            }
        return {
            **await describe_server(admin, self._client),
            "client": client,
            "settings": self.config.settings(),
            "effective": effective,
        }

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
