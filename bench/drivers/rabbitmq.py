"""The RabbitMQ stream driver (aio-pika): exchange and queue layout, publishing, consuming.

This module owns everything eventbench knows about RabbitMQ: the ``RabbitMQConfig`` options,
how a run point's topology maps to one exchange and N queues, publisher confirms, consumer QoS
and acknowledgements, and what ``describe()`` reports about the server.

Layout
    ``prepare(topology)`` declares one exchange named ``topology.name`` and N queues
    ``<name>.0`` … ``<name>.<N-1>``, each bound with the routing key equal to its own name.
    N is ``queues`` from the config when set, else ``topology.partitions``. A message goes to
    queue ``crc32(key) % N``, so every event of one aggregate lands in the same queue (a stable
    hash: Python's ``hash()`` is salted per process and workers are separate processes).

Publishing
    Each producer has its own channel. With ``confirms`` on, the channel is in confirm mode and
    ``send()`` resolves when the broker acks that message (a nack, an unroutable message or a
    channel error raises ``DriverError``; no confirm within ``publish_timeout`` raises
    ``TimeoutError``). ``confirm_window`` bounds a producer's unconfirmed publishes; overlap
    comes from the engine's concurrent sends on the same channel. With ``confirms`` off,
    ``send()`` resolves once the frame is queued for the socket: nothing was acknowledged, and
    reports must say so. The hot paths (publish, delivery, batched acks) are in
    ``rabbitmq_clients``; the socket writer that sends a loop turn's frames in one write is in
    ``rabbitmq_transport``.

Consuming and ordering
    Consumer ``i`` of ``C`` reads queue ``i % N`` when ``C >= N`` and otherwise every queue
    ``q`` with ``q % C == i``, so every queue has at least one consumer.
    RabbitMQ delivers a queue's messages in order, but with several consumers on one queue
    (``C > N``) they compete: neighbouring messages of one key go to different consumers and
    are processed concurrently, so **per-key order is not guaranteed**. To keep per-key order,
    use one consumer per queue (``queues >= consumers``) or set ``single_active_consumer``,
    which makes the broker deliver each queue to one consumer at a time (the others stand by).
    Redeliveries after a consumer failure can still reorder and duplicate; the audit counts it.
    With ``ack = "manual"`` a delivery is acknowledged after it was handed to the engine, in
    batches (one ``multiple`` ack per up to ``prefetch / 4`` deliveries, or per loop turn).
    Stream queues (``queue_type = "stream"``) are not competing queues at all: every consumer
    reads every message, so they need ``queues >= consumers``.

Lag
    ``consumer_lag()`` (the ``ConsumerLag`` capability) sums the *ready* messages of the
    topology's queues from passive declares: AMQP does not report unacknowledged ones.

Errors
    ``connect()`` gives up after ``connect_timeout`` with a one-line ``DriverError``. During a
    run the connection is robust: a lost connection is re-established and channels and
    consumers are restored, each event counted through ``context.count_error`` ("reconnect",
    "channel_closed", "connection_lost"). Publishes that fail meanwhile raise from ``send()``;
    they are not replayed. Credentials never appear in ``describe()``, logs or errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
import uuid
from collections.abc import AsyncGenerator
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar, Literal

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from bench.drivers.base import (
    H_ENVELOPE,
    DriverConfig,
    DriverContext,
    OnMessage,
    Sizing,
    StoredIds,
    Topology,
    assigned_partitions,
    envelope_ids,
    subscription_topology,
)
from bench.drivers.rabbitmq_clients import RabbitMQConsumer, RabbitMQProducer
from bench.drivers.rabbitmq_transport import CoalescingTransportFactory
from bench.errors import DriverError
from bench.redaction import redact_text, without_user_info
from bench.units import Duration

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

# A re-read of a stream queue reads up to a marker message it appends first, carrying this
# header: AMQP does not say how long a stream is (a stream queue's message count is 0).
H_REREAD_END = "eb-reread-end"
REREAD_PREFETCH = 1000
# A re-read that receives nothing this long before its marker is stuck, not slow.
REREAD_STALL_S = 5.0

# aiormq logs a failed connect ("error when creating transport: ...") at ERROR and then
# raises; connect() turns the exception into one DriverError line. Where no logging is set
# up (the coordinator's prepare and verify), Python's last-resort handler would print the
# record to the terminal as a second, raw error line. A NullHandler stops that; records
# still propagate to the root logger, so a worker's log file keeps them.
logging.getLogger("aiormq").addHandler(logging.NullHandler())
logging.getLogger("aio_pika").addHandler(logging.NullHandler())


def _default_url() -> SecretStr:
    return SecretStr(os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_URL))


class RabbitMQTLS(BaseModel):
    """TLS settings passed to the client's SSL context (``amqps://`` is implied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True


URL_SCHEMES = ("amqp", "amqps")
_URL_FORM = "write amqp://host:5672/vhost"


def url_problem(text: str) -> str | None:
    """What the client would choke on in an AMQP URL (None when it is sound), in words that
    never quote the URL or its password."""
    if "://" not in text:
        return f"has no scheme: {_URL_FORM}"
    try:
        url = URL(text)
    except ValueError as exc:
        reason = str(exc)
        if "port can't be converted" in reason:
            # "amqp://user:pa/ss@host" splits at the "/": the port is then "pa".
            encode = " (percent-encode '/', '@' and ':' in a password)" if "@" in text else ""
            return f"the port is not a number: {_URL_FORM}{encode}"
        if "out of range" in reason:
            return "the port is out of range: use 1-65535"
        return without_user_info(
            f"is not a valid URL: {reason.removeprefix('Invalid URL: ')}", text
        )
    if url.scheme not in URL_SCHEMES:
        return without_user_info(f"has the scheme {url.scheme!r}: use amqp:// or amqps://", text)
    if not url.host:
        return f"has no host: {_URL_FORM}"
    if url.explicit_port is not None and not 1 <= url.explicit_port <= 65535:
        return "the port is out of range: use 1-65535"
    return None


class RabbitMQConfig(DriverConfig):
    """Options of a ``driver = "rabbitmq"`` target."""

    driver: Literal["rabbitmq"] = "rabbitmq"
    # Validated when it comes from BENCH_RABBITMQ_URL too: a bad one fails validate, not a run.
    url: SecretStr = Field(default_factory=_default_url, validate_default=True)
    exchange_type: Literal["direct", "topic", "fanout"] = "direct"
    queue_type: Literal["classic", "quorum", "stream"] = "classic"
    durable: bool = True
    persistent: bool = True
    confirms: bool = True
    confirm_window: int = Field(default=64, ge=1)
    publish_timeout: Duration = 30.0
    prefetch: int = Field(default=256, ge=0)
    ack: Literal["manual", "auto"] = "manual"
    # One multiple ack per this many deliveries, and no sooner (at most prefetch: the broker
    # stops delivering when the window is full). Unset: a quarter of the prefetch window, or
    # at the end of the loop turn in which deliveries stopped, whichever comes first. What a
    # killed consumer (the kill_consumer fault) had not acknowledged is redelivered.
    ack_every: int | None = Field(default=None, ge=1)
    queues: int | None = Field(default=None, ge=1)
    single_active_consumer: bool = False
    reconnect_interval: Duration = 1.0
    tls: RabbitMQTLS | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        problem = url_problem(text)
        if problem and text == os.environ.get("BENCH_RABBITMQ_URL"):
            problem += " (from BENCH_RABBITMQ_URL)"
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("publish_timeout")
    @classmethod
    def _publish_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s: every publish would time out at once")
        return value

    @model_validator(mode="after")
    def _check_queue_type(self) -> RabbitMQConfig:
        if self.queue_type in ("quorum", "stream") and not self.durable:
            raise ValueError(
                f"queue_type {self.queue_type!r} queues are always durable: remove durable = false"
            )
        if self.ack_every is not None:
            if self.ack != "manual":
                raise ValueError("ack_every needs ack = 'manual'")
            if self.prefetch and self.ack_every > self.prefetch:
                raise ValueError(
                    f"ack_every ({self.ack_every}) is larger than prefetch ({self.prefetch}): "
                    "the broker would stop delivering before the first ack"
                )
        if self.queue_type == "stream":
            if self.ack != "manual":
                raise ValueError("stream queues need ack = 'manual'")
            if self.prefetch < 1:
                raise ValueError("stream queues need prefetch >= 1")
            if self.single_active_consumer:
                raise ValueError(
                    "single_active_consumer is not available on stream queues over AMQP 0.9.1"
                )
        return self


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def public_url(url: URL) -> str:
    """The URL without user information (guest's password is its user name, so both go)."""
    return str(url.with_user(None))


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class _Scrubber:
    """Removes the password from error text that client libraries build from the URL."""

    def __init__(self, url: URL) -> None:
        self._secrets = [s for s in (url.password, url.raw_password) if s]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_text(text)


class RabbitMQDriver:
    """RabbitMQ through aio-pika: one robust connection per driver, a channel per client."""

    name: ClassVar[str] = "rabbitmq"
    kind: ClassVar[Literal["stream", "store", "both"]] = "stream"
    config_model: ClassVar[type[DriverConfig]] = RabbitMQConfig

    @classmethod
    def service_name(cls) -> str:
        """The ``bench up`` service this target runs on, here."""
        return "rabbitmq"

    @classmethod
    def sizing(cls) -> Sizing:
        """For ``bench plan``: a partition is a queue."""
        return Sizing(partition_noun="queues")

    @staticmethod
    def consumer_faults_unsupported(config: RabbitMQConfig) -> str | None:
        """Why ``kill_consumer`` cannot act on these consumers (None: it can)."""
        if config.ack != "manual":
            return "needs ack = 'manual': with auto acks nothing is owed again after a kill"
        if config.queue_type == "stream":
            return (
                "cannot act on stream queues: AMQP keeps no stream offset for a consumer, so a "
                "new one reads from the first message again"
            )
        return None

    def __init__(self, config: RabbitMQConfig, context: DriverContext) -> None:
        self.config = config
        self.context = context
        url = URL(config.url.get_secret_value())
        if config.tls is not None and url.scheme == "amqp":
            url = url.with_scheme("amqps")
            if url.explicit_port is None:
                url = url.with_port(5671)
        self._url = url
        self.scrub = _Scrubber(url)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._server_properties: dict[str, Any] = {}
        self._closing = False
        # Channels being closed on purpose, whose close callbacks are not failures.
        self._closing_ids: set[int] = set()
        self._queue_counts: dict[str, int] = {}
        self.inflight_peak = 0
        # consumer_lag()'s own channel, opened on first use and again after a failed ask.
        self._lag_channel: aiormq.abc.AbstractChannel | None = None

    # ------------------------------------------------------------------ connection

    @property
    def where(self) -> str:
        return f"{self._url.host}:{self._url.port}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if tls is None:
            return None
        context = ssl.create_default_context(cafile=tls.cafile)
        if tls.certfile:
            context.load_cert_chain(tls.certfile, tls.keyfile)
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self) -> None:
        timeout_s = self.config.connect_timeout
        try:
            ssl_context = self._ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise DriverError(f"rabbitmq: cannot load TLS files: {exc}") from None
        connection = aio_pika.RobustConnection(
            self._url,
            ssl_context=ssl_context,
            client_properties={"connection_name": "eventbench"},
            reconnect_interval=self.config.reconnect_interval,
            # Fail the first attempt instead of retrying forever; retries are for runs.
            fail_fast=True,
        )
        # aiormq's transport hook, kept across reconnects (aio-pika passes its kwargs on).
        self._transport = CoalescingTransportFactory(tls=self._url.scheme == "amqps")
        connection.kwargs["transport_factory"] = self._transport
        try:
            await asyncio.wait_for(connection.connect(timeout=timeout_s), timeout_s)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 1.0)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise DriverError(
                f"cannot reach RabbitMQ at {self.where} within {timeout_s:g}s: {self._reason(exc)}",
                hint="check the url, that the broker runs, and credentials",
            ) from None
        self._connection = connection
        underlay = connection.transport.connection if connection.transport else None
        self._server_properties = dict(underlay.server_properties) if underlay else {}
        connection.reconnect_callbacks.add(self._on_reconnect)
        connection.close_callbacks.add(self._on_connection_close)

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return "timed out"
        if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
            return "authentication refused"
        text = str(exc) or type(exc).__name__
        return self.scrub(text.splitlines()[0] if text else type(exc).__name__)

    def _on_reconnect(self, *_: Any) -> None:
        self.context.count_error("reconnect")

    def _on_connection_close(self, _sender: Any, exc: BaseException | None = None) -> None:
        if not self._closing and exc is not None:
            self.context.count_error("connection_lost")

    def _require(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None:
            raise DriverError("rabbitmq: not connected (call connect() first)")
        return self._connection

    async def open_channel(self, *, publisher_confirms: bool) -> aio_pika.abc.AbstractRobustChannel:
        connection = self._require()
        # With confirms, an unroutable (returned) message fails its send(); without them there
        # is nothing to fail, so returns are counted instead of vanishing.
        channel = await connection.channel(
            publisher_confirms=publisher_confirms, on_return_raises=publisher_confirms
        )
        assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
        if not publisher_confirms:
            channel.return_callbacks.add(lambda *_: self.context.count_error("unroutable"))

        def closed(_sender: Any, exc: BaseException | None = None) -> None:
            # A channel we did not close ourselves was closed by the broker (or the
            # connection dropped); the robust channel tries to reopen it.
            if exc is not None and not self._closing and id(channel) not in self._closing_ids:
                self.context.count_error("channel_closed")

        def reopened(*_: Any) -> None:
            self.context.count_error("channel_reopened")

        channel.close_callbacks.add(closed)
        channel.reopen_callbacks.add(reopened)
        return channel

    async def close_channel(self, channel: aio_pika.abc.AbstractChannel) -> None:
        self._closing_ids.add(id(channel))
        try:
            if not channel.is_closed:
                with contextlib.suppress(
                    aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError
                ):
                    await asyncio.wait_for(channel.close(), self.config.publish_timeout)
        finally:
            self._closing_ids.discard(id(channel))

    def note_inflight(self, inflight: int) -> None:
        if inflight > self.inflight_peak:
            self.inflight_peak = inflight

    # ------------------------------------------------------------------ topology

    def queue_count(self, topology: Topology) -> int:
        return self.config.queues or max(1, topology.partitions)

    def queue_names(self, topology: Topology) -> list[str]:
        """The queues of the topology's subscription: ``<topic>.<i>`` for the first, and
        ``<topic>.s<n>.<i>`` for subscription n, each bound with routing key ``<topic>.<i>``
        (so each subscription gets every message)."""
        sub = f".s{topology.subscription}" if topology.subscription else ""
        return [f"{topology.name}{sub}.{i}" for i in range(self.queue_count(topology))]

    def _all_queue_names(self, topology: Topology) -> list[str]:
        """Every subscription's queues."""
        return [
            name
            for subscription in range(topology.subscriptions)
            for name in self.queue_names(subscription_topology(topology, subscription))
        ]

    def _queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": self.config.queue_type}
        if self.config.single_active_consumer:
            arguments["x-single-active-consumer"] = True
        return arguments

    async def prepare(self, topology: Topology) -> None:
        count = self.queue_count(topology)
        if self.config.exchange_type == "fanout" and count > 1:
            raise DriverError(
                f"rabbitmq: a fanout exchange copies every message to all {count} queues",
                hint="use exchange_type = 'direct' or 'topic', or queues = 1",
            )
        if self.config.queue_type == "stream" and topology.consumers > count:
            raise DriverError(
                f"rabbitmq: {topology.consumers} consumers on {count} stream queues would each "
                "read every message of a shared queue",
                hint=f"set queues >= {topology.consumers} for stream queues",
            )
        channel = await self.open_channel(publisher_confirms=False)
        try:
            # Delete and redeclare rather than purge: RabbitMQ answers a declaration whose type
            # or arguments differ with a channel error, stream queues cannot be purged, and a
            # fresh queue also drops consumers and bindings left by an earlier point.
            for name in self._all_queue_names(topology):
                await channel.queue_delete(name)
            await channel.exchange_delete(topology.name)
            exchange = await channel.declare_exchange(
                topology.name,
                aio_pika.ExchangeType(self.config.exchange_type),
                durable=self.config.durable,
            )
            routing_keys = self.queue_names(subscription_topology(topology, 0))
            for subscription in range(topology.subscriptions):
                names = self.queue_names(subscription_topology(topology, subscription))
                for name, routing_key in zip(names, routing_keys, strict=True):
                    queue = await channel.declare_queue(
                        name, durable=self.config.durable, arguments=self._queue_arguments()
                    )
                    await queue.bind(exchange, routing_key=routing_key)
        except aiormq.exceptions.AMQPError as exc:
            raise DriverError(
                f"rabbitmq: cannot prepare {topology.name!r}: {self.scrub(str(exc))}"
            ) from None
        finally:
            await self.close_channel(channel)
        self._queue_counts[topology.name] = count

    async def producer(self, topology: Topology, producer_id: int) -> RabbitMQProducer:
        channel = await self.open_channel(publisher_confirms=self.config.confirms)
        try:
            await channel.get_exchange(topology.name, ensure=True)
        except aiormq.exceptions.AMQPError as exc:
            await self.close_channel(channel)
            raise DriverError(
                f"rabbitmq: exchange {topology.name!r} missing ({type(exc).__name__}); "
                "prepare() must run before producers start"
            ) from None
        return RabbitMQProducer(
            self, channel, topology.name, self.queue_count(topology), topology.partition_key
        )

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> RabbitMQConsumer:
        names = self.queue_names(topology)
        consumers = max(1, topology.consumers)
        mine = [names[q] for q in assigned_partitions(consumer_id, consumers, len(names))]
        return RabbitMQConsumer(self, mine, on_message)

    async def cleanup(self, topology: Topology) -> None:
        channel = await self.open_channel(publisher_confirms=False)
        try:
            for name in self._all_queue_names(topology):
                await channel.queue_delete(name)
            await channel.exchange_delete(topology.name)
        except aiormq.exceptions.AMQPError as exc:
            raise DriverError(
                f"rabbitmq: cannot clean up {topology.name!r}: {self.scrub(str(exc))}"
            ) from None
        finally:
            await self.close_channel(channel)
        self._queue_counts.pop(topology.name, None)

    # ------------------------------------------------------------------ re-read (Rereadable)

    reread_method: ClassVar[str] = (
        'a stream consumer read each queue from offset "first" up to a marker message '
        "appended to it when the re-read began"
    )

    def reread_unsupported(self, topology: Topology) -> str | None:
        if self.config.queue_type != "stream":
            return (
                f"rabbitmq {self.config.queue_type} queues cannot be re-read (a queue keeps no "
                'history; queue_type = "stream" does)'
            )
        return None

    async def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """Every message of every stream queue as (producer, seq), one queue after the other.

        A stream queue is read from its first offset by a new consumer (stream offsets are
        per consumer, so the run's consumers are not affected). AMQP does not tell a stream's
        length, so a marker is appended to each queue first and each read ends at its marker;
        consumers of a kept topic ignore it (it has no envelope). Messages are acknowledged
        only once their batch is handed on, so the prefetch bounds what is held in memory.
        """
        channel = await self.open_channel(publisher_confirms=True)
        marker = uuid.uuid4().hex
        try:
            await channel.set_qos(prefetch_count=REREAD_PREFETCH)
            for name in self.queue_names(topology):
                await channel.default_exchange.publish(
                    aio_pika.Message(body=b"", headers={H_REREAD_END: marker}),
                    name,
                    mandatory=True,
                    timeout=self.config.publish_timeout,
                )
            for name in self.queue_names(topology):
                async with contextlib.aclosing(self._reread_queue(channel, name, marker)) as read:
                    async for ids in read:
                        yield ids
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.DeliveryError) as exc:
            raise DriverError(
                f"rabbitmq: re-reading {topology.name!r} failed: {self.scrub(repr(exc))}"
            ) from None
        except TimeoutError:
            raise DriverError(
                f"rabbitmq: re-reading {topology.name!r}: no publisher confirm for the end "
                f"marker within {self.config.publish_timeout:g}s"
            ) from None
        finally:
            await self.close_channel(channel)

    async def _reread_queue(
        self, channel: aio_pika.abc.AbstractChannel, name: str, marker: str
    ) -> AsyncGenerator[StoredIds, None]:
        pending: list[tuple[int, int]] = []
        last: list[aio_pika.abc.AbstractIncomingMessage] = []
        arrived = asyncio.Event()
        ended = False
        deliveries = 0

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal ended, deliveries
            deliveries += 1
            headers = incoming.headers or {}
            end = headers.get(H_REREAD_END)
            if end is not None and _text(end) == marker:
                ended = True
            else:
                found = envelope_ids(_text(headers.get(H_ENVELOPE)))
                if found is not None:
                    pending.append(found)
            last[:] = [incoming]
            # Wake the reader per half window, not per message: each wake costs an ack.
            if ended or len(pending) >= REREAD_PREFETCH // 2:
                arrived.set()

        queue = await channel.get_queue(name, ensure=True)
        tag = await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        moved_at, seen = time.monotonic(), 0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.2)
                arrived.clear()
                if deliveries != seen:
                    moved_at, seen = time.monotonic(), deliveries
                elif time.monotonic() - moved_at > REREAD_STALL_S:
                    raise DriverError(
                        f"rabbitmq: re-reading queue {name!r} received nothing for "
                        f"{REREAD_STALL_S:g}s before its end marker"
                    )
                # Taken together, with no await between: whatever came before the marker is
                # in this batch (deliveries keep arriving while the ack below is awaited).
                done = ended
                batch, pending[:] = list(pending), []
                through, last[:] = list(last), []
                if batch:
                    yield batch
                if through:
                    # One ack for everything up to here frees the prefetch window.
                    await through[0].ack(multiple=True)
                if done:
                    return
        finally:
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, TimeoutError):
                await queue.cancel(tag, timeout=self.config.publish_timeout)

    # ------------------------------------------------------------------ lag (ConsumerLag)

    async def consumer_lag(self, topology: Topology) -> int | None:
        """Messages ready in the topology's queues, i.e. stored and not yet delivered to a consumer.

        A passive ``queue.declare`` per queue, on a channel of this driver's own: the
        declare-ok's ``message_count`` is the queue's *ready* messages. AMQP 0-9-1 does not
        report delivered-but-unacknowledged messages (those are only in the management API,
        which may not be enabled), so they are not counted: at most ``prefetch`` per consumer
        channel, already in the consumer's hands. ``None`` for stream queues (a stream's count
        is not its consumers' lag) and whenever the broker does not answer (a missing queue, a
        closed channel, no answer within ``connect_timeout``).
        """
        if self.config.queue_type == "stream":
            return None
        timeout_s = self.config.connect_timeout
        try:
            channel = self._lag_channel
            if channel is None or channel.is_closed:
                # A plain aiormq channel: nothing in it needs restoring after a reconnect.
                underlay = self._require().transport
                if underlay is None:
                    return None
                channel = await asyncio.wait_for(underlay.connection.channel(), timeout_s)
                self._lag_channel = channel
            ready = 0
            for name in self.queue_names(topology):
                declared = await channel.queue_declare(name, passive=True, timeout=timeout_s)
                ready += declared.message_count or 0
            return ready
        except (
            aiormq.exceptions.AMQPError,
            aiormq.exceptions.ChannelInvalidStateError,
            ConnectionError,
            TimeoutError,
        ):
            # A passive declare of a missing queue closes the channel: open another next time.
            self._lag_channel = None
            return None

    # ------------------------------------------------------------------ reporting

    async def describe(self) -> dict[str, Any]:
        self._require()
        props = self._server_properties

        def text(name: str) -> str | None:
            value = props.get(name)
            if value is None:
                return None
            return value.decode() if isinstance(value, bytes | bytearray) else str(value)

        settings = self.config.model_dump(mode="json", exclude={"url"})
        return {
            "product": text("product") or "RabbitMQ",
            "version": text("version"),
            "cluster_name": text("cluster_name"),
            "erlang": text("platform"),
            "server": public_url(self._url),
            # aio-pika owns the connection and channels; publishes, deliveries and acks go
            # through its aiormq channels directly, with pamqp encoding the frames.
            "client": {
                "library": "aio-pika",
                "version": _package_version("aio-pika"),
                "aio-pika": _package_version("aio-pika"),
                "aiormq": _package_version("aiormq"),
                "pamqp": _package_version("pamqp"),
                "hot_path": "aiormq channel (basic_publish, basic_consume, multiple basic_ack)",
            },
            "settings": settings,
            "queues_per_topology": dict(self._queue_counts),
            "publish_inflight_peak": self.inflight_peak,
        }

    async def close(self) -> None:
        self._closing = True
        self._lag_channel = None
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self.config.connect_timeout)
