"""Kafka producers and consumers on confluent-kafka (librdkafka), for ``client = "confluent"``.

librdkafka does its network work in its own threads and reports back through callbacks served
by ``poll()``/``consume()``. Here each client has one thread of ours that blocks in those calls
(the GIL released while it waits) and hands what they returned to the event loop in one
``call_soon_threadsafe`` per call, never per message, and never by polling the loop in a
busy loop:

- a producer's delivery reports resolve one asyncio future per message, so each send still
  returns on its own record's acknowledgement (the delivery report), and a failure raises an
  exception named after librdkafka's error (``_MSG_TIMED_OUT`` counts as a timeout);
- a consumer's thread hands each ``consume()`` batch to the loop, which calls the engine's
  callback for every record, and only then are the batch's offsets stored (``commit =
  "auto"``: librdkafka commits stored offsets every second and on close) or committed
  (``"explicit"``), so a committed offset never runs ahead of a delivered record.

Keys go to partitions by Kafka's murmur2 (``partitioner = "murmur2_random"``), the same
partition as the aiokafka path and the Java client. ``produce()`` only appends to librdkafka's
queue, in call order; when that queue is full, the sender and every later one wait in line
(FIFO) for room, so a send never overtakes an earlier one of its key.

The admin work (topics, the consumer-lag query, the re-read, describe) stays on aiokafka in
``driver``; only the data path changes library.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, cast

import confluent_kafka
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition

from bench.drivers.base import (
    H_AGGREGATE,
    H_CORRELATION,
    H_ENVELOPE,
    H_EVENT_ID,
    H_EVENT_TYPE,
    DriverContext,
    Message,
    OnMessage,
    Topology,
    message_from_headers,
)
from bench.drivers.kafka.config import KafkaConfig, where
from bench.drivers.kafka.failures import no_assignment, reason
from bench.errors import DriverError
from bench.units import format_duration

log = logging.getLogger(__name__)

LIBRARY = "confluent-kafka"

# How long a client thread blocks in poll()/consume() before it looks at its stop flag: the
# most a close waits for the thread, not a latency (a call returns as soon as events arrive).
_THREAD_WAIT_S = 0.1


def client_info() -> dict[str, str]:
    """The client library, its version and the librdkafka it runs on (for describe)."""
    return {
        "library": LIBRARY,
        "version": str(
            getattr(confluent_kafka, "__version__", None) or _first(confluent_kafka.version())
        ),
        "librdkafka": str(_first(confluent_kafka.libversion())),
    }


def _first(value: object) -> object:
    # version() and libversion() answer (text, number); some releases answer the text alone.
    return value[0] if isinstance(value, tuple) else value


# LOGGED: librdkafka's own log lines go to Python logging (the worker's log file), served by
# our threads' poll()/consume(); without a logger librdkafka prints them on stderr, and a
# broker going away printed hundreds of "Connection refused" lines among the progress lines.

# Batches a consumer thread may have handed to the loop and not yet seen delivered.
_BATCHES_AHEAD = 2


# --------------------------------------------------------------------------- settings


def common_settings(config: KafkaConfig, *, secrets: bool = True) -> dict[str, Any]:
    """What every librdkafka client of the target is given: address, timeouts, TLS, SASL.
    ``secrets=False`` leaves the password out (for describe and results)."""
    out: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "socket.timeout.ms": int(config.request_timeout * 1000),
        "security.protocol": config.security_protocol.lower(),
        # librdkafka leaves Nagle on; every small produce or fetch would then wait for the
        # peer's delayed ACK (aiokafka, like Kafka's Java client, sets TCP_NODELAY).
        "socket.nagle.disable": True,
    }
    if config.security_protocol in ("SSL", "SASL_SSL") and config.ssl_cafile:
        out["ssl.ca.location"] = config.ssl_cafile
    if config.security_protocol.startswith("SASL_"):
        out["sasl.mechanism"] = config.sasl_mechanism
        out["sasl.username"] = config.sasl_username
        if secrets:
            assert config.sasl_password is not None  # the model requires it with SASL
            out["sasl.password"] = config.sasl_password.get_secret_value()
    return out


def producer_settings(config: KafkaConfig) -> dict[str, Any]:
    """The librdkafka producer properties the config sets."""
    timeout_ms = int(config.request_timeout * 1000)
    return {
        "acks": -1 if config.acks == "all" else config.acks,
        "enable.idempotence": config.enable_idempotence,
        "linger.ms": config.linger_ms,
        "batch.size": config.max_batch_bytes,
        "compression.type": config.compression,
        # Kafka's murmur2 of the key, as aiokafka's default partitioner and the Java client.
        "partitioner": "murmur2_random",
        # One produce request in flight per broker connection, as aiokafka: with linger 0 a
        # batch is what queued while the previous request was out, and a retried request can
        # never land behind a later one of its partition (per-key order without idempotence).
        # librdkafka's default (1,000,000) with linger 0 sends nearly every record in a request
        # of its own: measured on Tansu, raw publish 15.7k msgs/s against 39.0k with 1.
        "max.in.flight.requests.per.connection": 1,
        "request.timeout.ms": timeout_ms,
        # A record not acknowledged within this fails its send (aiokafka: request_timeout_ms).
        "message.timeout.ms": timeout_ms,
    }


def consumer_settings(
    config: KafkaConfig, group: str = "<the run point's group>"
) -> dict[str, Any]:
    """The librdkafka consumer properties the config sets (a member of the run point's group)."""
    return {
        "group.id": group,
        "enable.auto.commit": config.commit == "auto",
        # As the aiokafka path: the drain reads the group's committed lag, so commit each second.
        "auto.commit.interval.ms": 1000,
        # Offsets are stored by us once the engine has been handed the records, never before.
        "enable.auto.offset.store": False,
        "auto.offset.reset": config.auto_offset_reset,
        "fetch.wait.max.ms": config.fetch_max_wait_ms,
        "fetch.min.bytes": config.fetch_min_bytes,
        "isolation.level": "read_committed" if config.transactional else "read_uncommitted",
        "session.timeout.ms": config.session_timeout_ms,
        # aiokafka's default assignor: members of a group get the same partitions either way.
        "partition.assignment.strategy": "roundrobin",
        "heartbeat.interval.ms": min(1000, config.session_timeout_ms // 3),
    }


# --------------------------------------------------------------------------- failures


class ConfluentDeliveryError(Exception):
    """A record librdkafka could not deliver; subclasses are named after its error code."""


class ConfluentDeliveryTimeout(ConfluentDeliveryError, TimeoutError):
    """No acknowledgement within message.timeout.ms (counted as a timeout, as the engine's)."""


@functools.cache
def _error_class(name: str) -> type[ConfluentDeliveryError]:
    # The engine counts a failed send under its exception's class name: name it after the
    # broker's or librdkafka's error (NOT_LEADER_FOR_PARTITION, _TRANSPORT, ...).
    return type(name.lstrip("_") or "ConfluentDeliveryError", (ConfluentDeliveryError,), {})


def delivery_error(err: RdKafkaError) -> ConfluentDeliveryError:
    """The exception a send raises for a failed delivery report."""
    text = f"{err.name()}: {err.str()}"
    if err.code() == RdKafkaError._MSG_TIMED_OUT:
        return ConfluentDeliveryTimeout(text)
    return _error_class(err.name())(text)


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    """Run fn(*args) on the loop from a client thread; False once the loop is gone."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop closed: nobody is waiting any more
        return False
    return True


# --------------------------------------------------------------------------- producer

Headers = list[tuple[str, str | bytes | None]]


def record_headers(msg: Message) -> Headers:
    """The message's envelope as record headers (``base.message_headers``' fields, as a list
    librdkafka encodes itself)."""
    return [
        (H_ENVELOPE, f"{msg.producer_id}:{msg.seq}:{msg.key_seq}:{msg.intended_ns}"),
        (H_EVENT_TYPE, msg.event_type),
        (H_EVENT_ID, msg.event_id),
        (H_CORRELATION, msg.correlation_id),
    ]


async def start_producer(
    config: KafkaConfig, topology: Topology, producer_id: int
) -> ConfluentProducer:
    """A started producer for the run point's topic; DriverError if the broker cannot be
    reached within connect_timeout (librdkafka itself connects lazily)."""
    if config.transactional:  # the config model refuses this; a guard for direct callers
        raise DriverError("kafka: transactional is not supported with client = 'confluent'")
    loop = asyncio.get_running_loop()
    producer = ConfluentProducer(config, topology.name, producer_id, loop, topology.partition_key)
    try:
        await asyncio.wait_for(producer.connect(), config.connect_timeout)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.close(), config.connect_timeout)
        raise DriverError(
            f"{where(config)}: producer did not start within "
            f"{format_duration(config.connect_timeout)} ({reason(exc)})"
        ) from exc
    return producer


class ConfluentProducer:
    """One librdkafka producer for one harness producer; any number of sends in flight."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        producer_id: int,
        loop: asyncio.AbstractEventLoop,
        partition_key: str = "aggregate",
    ) -> None:
        self._config = config
        self._topic = topic
        self._partition_key = partition_key
        self._loop = loop
        self._client = RdProducer(
            {
                **common_settings(config),
                **producer_settings(config),
                "client.id": f"{config.client_id}-p{producer_id}",
                "error_cb": self._on_client_error,
                "logger": log,  # see LOGGED
            }
        )
        self._produce = self._client.produce
        # Delivery reports gathered by callbacks run in the poll thread, handed over per poll.
        self._reports: list[tuple[asyncio.Future[None], RdKafkaError | None]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Senders waiting for room in librdkafka's queue, in call order (see send).
        self._waiting = 0
        self._line = asyncio.Lock()
        self._room = asyncio.Event()

    async def connect(self) -> None:
        """Start the delivery thread and wait for the topic's metadata (a first round trip)."""
        self._thread = threading.Thread(
            target=self._serve, name=f"kafka-delivery-{self._topic}", daemon=True
        )
        self._thread.start()
        timeout = self._config.connect_timeout
        metadata = await asyncio.to_thread(self._client.list_topics, self._topic, timeout)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise DriverError(
                f"kafka: topic {self._topic!r} has no metadata "
                f"({topic.error.str() if topic is not None and topic.error else 'not listed'})"
            )

    async def send(self, msg: Message) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        on_delivery = functools.partial(self._delivered, future)
        headers = record_headers(msg)
        key: str | None = msg.key
        if self._partition_key != "aggregate":
            # Not keyed by the aggregate: by the event id, or no key (librdkafka spreads the
            # records); the aggregate travels in a header.
            headers.append((H_AGGREGATE, msg.key))
            key = msg.event_id if self._partition_key == "event_id" else None
        if self._waiting:
            await self._produce_in_line(msg, key, headers, on_delivery)
        else:
            try:
                self._produce(self._topic, msg.value, key, headers=headers, on_delivery=on_delivery)
            except BufferError:
                await self._produce_in_line(msg, key, headers, on_delivery)
        await future

    async def _produce_in_line(
        self, msg: Message, key: str | None, headers: Headers, on_delivery: Callable[..., None]
    ) -> None:
        """librdkafka's queue is full: wait for room behind every earlier waiting sender."""
        self._waiting += 1
        try:
            async with self._line:
                while True:
                    try:
                        self._produce(
                            self._topic,
                            msg.value,
                            key,
                            headers=headers,
                            on_delivery=on_delivery,
                        )
                        return
                    except BufferError:
                        # Room comes back with delivery reports, which set the event.
                        self._room.clear()
                        await self._room.wait()
        finally:
            self._waiting -= 1

    # The delivery thread -------------------------------------------------------------------

    def _serve(self) -> None:
        poll = self._client.poll
        while not self._stopping.is_set():
            poll(_THREAD_WAIT_S)  # serves every queued delivery report, appending to _reports
            self._hand_over()
        # Closing: whatever is still queued is delivered or fails within message.timeout.ms.
        self._client.flush(self._config.request_timeout)
        self._hand_over()

    def _delivered(
        self, future: asyncio.Future[None], err: RdKafkaError | None, _record: object
    ) -> None:
        self._reports.append((future, err))

    def _hand_over(self) -> None:
        reports = self._reports
        if reports:
            self._reports = []
            _post(self._loop, self._resolve, reports)

    def _resolve(self, reports: list[tuple[asyncio.Future[None], RdKafkaError | None]]) -> None:
        for future, err in reports:
            if future.done():  # cancelled by the engine's send_timeout
                continue
            if err is None:
                future.set_result(None)
            else:
                future.set_exception(delivery_error(err))
        self._room.set()

    def _on_client_error(self, err: RdKafkaError) -> None:
        # Connection trouble is retried by librdkafka; what it cannot get past fails the sends
        # through their delivery reports. Logged, not counted twice.
        log.debug("kafka producer (confluent): %s", err)

    async def close(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join)
            self._thread = None


# --------------------------------------------------------------------------- consumer


# librdkafka errors a consumer reports that cost the run something (the rest it retries).
_COUNTED_CONSUMER_ERRORS = {
    RdKafkaError._ALL_BROKERS_DOWN,
    RdKafkaError._AUTHENTICATION,
    RdKafkaError._FATAL,
}


class ConfluentConsumer:
    """One member of the run point's consumer group, delivering records to the callback."""

    def __init__(
        self,
        config: KafkaConfig,
        topology: Topology,
        consumer_id: int,
        on_message: OnMessage,
        context: DriverContext,
    ) -> None:
        self._config = config
        self._topic = topology.name
        self._settings = {
            **common_settings(config),
            **consumer_settings(config, topology.consumer_group),
            "logger": log,  # see LOGGED
            "client.id": f"{config.client_id}-c{consumer_id}",
            "error_cb": self._on_client_error,
        }
        self._on_message = on_message
        self._context = context
        self._client: RdConsumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._assigned: asyncio.Future[None] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._ahead = threading.Semaphore(1)
        # Offsets of batches the loop delivered, for the consumer thread to store.
        self._delivered: collections.deque[list[RdTopicPartition]] = collections.deque()

    def count_error(self, kind: str) -> None:
        if self._loop is not None:
            _post(self._loop, self._context.count_error, kind)

    async def start(self) -> None:
        """Join the group and return once this member has its assignment (see the aiokafka
        consumer: returning earlier would let ``auto_offset_reset = "latest"`` skip records)."""
        loop = self._loop = asyncio.get_running_loop()
        self._assigned = loop.create_future()
        try:
            client = self._client = RdConsumer(self._settings)
            client.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        except KafkaException as exc:
            raise DriverError(f"kafka: consumer could not join its group: {reason(exc)}") from exc
        self._thread = threading.Thread(
            target=self._serve, name=f"kafka-consume-{self._topic}", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._assigned), self._config.setup_timeout)
        except TimeoutError:
            await self._shut()
            raise no_assignment(self._topic, self._config.setup_timeout) from None

    # Rebalance callbacks (run in the consumer thread, inside consume()) ----------------------

    def _on_assign(self, client: RdConsumer, partitions: list[RdTopicPartition]) -> None:
        """Pin each new partition's start: the committed offset, or where auto_offset_reset
        resolves now, committed at once (as the aiokafka path), so a later rebalance that
        moves the partition before anything was consumed does not re-resolve ``latest``."""
        if partitions:
            timeout = self._config.setup_timeout
            try:
                positions = client.committed(partitions, timeout=timeout)
                unpinned = []
                for tp in positions:
                    if tp.offset < 0:
                        low, high = client.get_watermark_offsets(tp, timeout=timeout, cached=False)
                        tp.offset = low if self._config.auto_offset_reset == "earliest" else high
                        unpinned.append(tp)
                if unpinned:
                    client.commit(offsets=unpinned, asynchronous=False)
                client.assign(positions)
            except KafkaException:
                self.count_error("commit")
                client.assign(partitions)
        if self._loop is not None and self._assigned is not None:
            _post(self._loop, self._set_assigned)

    def _set_assigned(self) -> None:
        if self._assigned is not None and not self._assigned.done():
            self._assigned.set_result(None)

    def _on_revoke(self, client: RdConsumer, partitions: list[RdTopicPartition]) -> None:
        # Offsets are stored or committed only after delivery, so what is committed here
        # (explicit; auto commits stored offsets by itself) is what the engine was handed.
        if self._config.commit == "explicit":
            self._commit(client, None)

    def _commit(self, client: RdConsumer, offsets: list[RdTopicPartition] | None) -> None:
        try:
            if offsets is None:
                client.commit(asynchronous=False)
            else:
                client.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == RdKafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit
            self.count_error("commit")

    def _on_client_error(self, err: RdKafkaError) -> None:
        if err.code() in _COUNTED_CONSUMER_ERRORS or err.fatal():
            self.count_error("consumer_fetch")
        else:
            log.debug("kafka consumer (confluent): %s", err)

    # The consumer thread ------------------------------------------------------------------

    def _serve(self) -> None:
        client = self._client
        loop = self._loop
        assert client is not None and loop is not None
        limit = self._config.max_poll_records
        explicit = self._config.commit == "explicit"
        topic = self._topic
        stopping = self._stopping
        # Batches handed to the loop and not yet delivered: with commit = "auto" the thread
        # fetches the next batch while the loop delivers this one (the loop stores the
        # offsets); "explicit" commits each batch before fetching the next, as on aiokafka.
        ahead = self._ahead = threading.Semaphore(1 if explicit else _BATCHES_AHEAD)
        while not stopping.is_set():
            if not ahead.acquire(timeout=_THREAD_WAIT_S):
                continue
            if not explicit:
                self._store_delivered(client)
            try:
                # consume(n, t) returns only once n records arrived or t passed: asking for a
                # whole batch would hold every record up to 100 ms at modest rates (e2e p50 65
                # ms against aiokafka's 11 at 2,000/s). Wait for one, then take what is there.
                records = client.consume(1, _THREAD_WAIT_S)
                if records and limit > 1:
                    records += client.consume(limit - 1, 0)
            except (KafkaException, RuntimeError):
                ahead.release()
                if stopping.is_set():
                    return
                self.count_error("consumer_fetch")
                stopping.wait(0.1)
                continue
            if not records:
                ahead.release()
                continue
            batch: list[Message] = []
            ends: dict[int, int] = {}
            errors = 0
            for record in records:
                if record.error() is not None:
                    errors += 1
                    continue
                ends[record.partition() or 0] = (record.offset() or 0) + 1
                pairs = cast(list[tuple[str, bytes | None]], record.headers() or ())
                headers = {name: raw for name, raw in pairs if raw is not None}
                # Not keyed by the aggregate (partition_key): the aggregate is a header.
                key = headers.get(H_AGGREGATE) or record.key()
                if key is None:
                    continue
                msg = message_from_headers(
                    key.decode("utf-8", "replace"), record.value() or b"", headers
                )
                if msg is not None:
                    batch.append(msg)
            offsets = [RdTopicPartition(topic, p, end) for p, end in ends.items()]
            if not _post(loop, self._deliver, batch, errors, offsets):
                return
            if explicit:
                # The offsets are committed only once the loop handed every record over.
                while not ahead.acquire(timeout=_THREAD_WAIT_S):
                    if stopping.is_set():
                        return
                ahead.release()
                if self._failure is not None:
                    return
                if offsets:
                    self._commit(client, offsets)

    def _store_delivered(self, client: RdConsumer) -> None:
        """Store the offsets of the batches the loop has delivered (commit = "auto")."""
        delivered = self._delivered
        while delivered:
            try:
                client.store_offsets(offsets=delivered.popleft())
            except KafkaException:
                self.count_error("commit")

    def _deliver(self, batch: list[Message], errors: int, offsets: list[RdTopicPartition]) -> None:
        try:
            deliver = self._on_message
            for msg in batch:
                deliver(msg)
            for _ in range(errors):
                self._context.count_error("consumer_fetch")
            if offsets:
                # The thread stores them (librdkafka blocked a store made from this thread
                # while its consumer thread ran); committed each second and on close.
                self._delivered.append(offsets)
        except Exception as exc:
            # The callback raised: a harness bug; the consumer stops, and stop() raises it.
            self._failure = exc
            self._stopping.set()
        finally:
            self._ahead.release()

    async def stop(self) -> None:
        await self._shut()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _shut(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        client, self._client = self._client, None
        if client is not None:
            if self._config.commit == "auto":
                # What the loop delivered after the thread's last turn (the thread is gone).
                await asyncio.to_thread(self._store_delivered, client)
            # Leaves the group; with commit = "auto" it commits the stored offsets first.
            try:
                await asyncio.wait_for(asyncio.to_thread(client.close), self._config.setup_timeout)
            except (TimeoutError, KafkaException, RuntimeError):
                self._context.count_error("consumer_close")
