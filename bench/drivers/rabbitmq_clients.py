"""The RabbitMQ driver's hot paths: one producer's publishes and one consumer's deliveries.

Both talk to aiormq's channel (the channel under aio-pika's robust channel) directly. aio-pika
builds an ``aio_pika.Message`` per publish and an ``IncomingMessage`` plus two tasks per
delivery, and acknowledges each delivery on its own; here a publish is one pamqp
``Basic.Properties`` and a delivery one task (aiormq's), and acknowledgements are batched.
aio-pika still owns the connection and the channels, so they are restored after a reconnect.

Wire format
    The routing key names the queue. The event's type, id and correlation id travel as the
    AMQP properties ``type``, ``message_id`` and ``correlation_id``; the harness's envelope
    (``eb``) and the aggregate key (``eb-key``) are the only headers, because every header is
    encoded and decoded in Python on each side.

Publishing
    ``send()`` resolves with the broker's confirm of *that* message (aiormq keeps a future per
    delivery tag, and resolves each one of a ``multiple`` confirm on its own). A nack, a return
    (``mandatory``: the message was unroutable) or a closed channel raises ``DriverError``; no
    confirm within ``publish_timeout`` raises ``TimeoutError``. ``confirm_window`` bounds the
    unconfirmed publishes of a producer.

Acknowledging
    With ``ack = "manual"`` a delivery is acknowledged only after ``on_message`` has run for it.
    Deliveries of a channel are handled in delivery-tag order (aiormq creates their tasks in
    order and ``on_message`` runs before the first await), so one ``basic.ack`` with
    ``multiple`` for the latest handled tag covers exactly the handled ones. It is sent when
    ``ack_every`` deliveries are pending, or at the end of the loop turn in which deliveries
    stopped arriving, whichever comes first (with the ``ack_every`` option: only every that
    many). A consumer that dies before that ack gets those messages redelivered: ``kill()``
    (the kill_consumer fault) closes the channel unacknowledged and returns them, and the
    audit counts them as redelivered. After the channel is reopened, the
    tags of the old channel are void: they are dropped, not acknowledged, and the broker
    redelivers those messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import TYPE_CHECKING, Any, cast

import aio_pika.abc
import aio_pika.exceptions
import aiormq.abc
import aiormq.exceptions
from pamqp.commands import Basic

from bench.drivers.base import (
    H_CORRELATION,
    H_ENVELOPE,
    H_EVENT_ID,
    H_EVENT_TYPE,
    Message,
    OnMessage,
    message_from_headers,
    message_headers,
    partition_chooser,
)
from bench.errors import DriverError

if TYPE_CHECKING:
    from bench.drivers.rabbitmq import RabbitMQDriver

# AMQP has no message key; the aggregate key travels as a header so consumers can rebuild the
# Message (the routing key only names the queue).
H_KEY = "eb-key"

PERSISTENT = 2
NOT_PERSISTENT = 1

# What a publish or an ack on a channel that closed (or a connection that dropped) raises.
CHANNEL_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)
_PROPERTY_FLAGS = Basic.Properties.flags
_HEADERS_KEYS = (H_ENVELOPE.encode(), H_KEY.encode())  # a table's keys go sorted
assert list(_HEADERS_KEYS) == sorted(_HEADERS_KEYS)
_SHORT_MAX = 255
_pack_long = struct.Struct(">I").pack


class EnvelopeProperties(Basic.Properties):
    """The properties of one published event, encoded once, by hand.

    pamqp encodes properties generically (a type look-up and a ``struct`` call per field and
    per header), about a tenth of a publish's CPU. This class holds the same fields and
    encodes to the same bytes (the tests compare it with pamqp's own encoding) for the fields
    a publish sets: the ``eb`` and ``eb-key`` headers as long strings, ``delivery_mode``, and
    ``correlation_id``, ``message_id`` and ``type`` as short strings (omitted when empty, as
    pamqp does). Anything it cannot encode (a short string over 255 bytes) is left to pamqp,
    which raises.
    """

    def __init__(
        self,
        envelope: str,
        key: str,
        delivery_mode: int,
        message_id: str,
        correlation_id: str,
        message_type: str,
    ) -> None:
        super().__init__(
            headers={H_ENVELOPE: envelope, H_KEY: key},
            delivery_mode=delivery_mode,
            message_id=message_id,
            correlation_id=correlation_id,
            message_type=message_type,
        )
        flags = _PROPERTY_FLAGS["headers"] | _PROPERTY_FLAGS["delivery_mode"]
        table = b"".join(
            (
                b"\x02",
                _HEADERS_KEYS[0],
                b"S",
                _long(envelope),
                b"\x06",
                _HEADERS_KEYS[1],
                b"S",
                _long(key),
            )
        )
        parts = [b"", _pack_long(len(table)), table, bytes((delivery_mode,))]
        for name, value in (
            ("correlation_id", correlation_id),
            ("message_id", message_id),
            ("message_type", message_type),
        ):
            if value:
                raw = value.encode()
                if len(raw) > _SHORT_MAX:
                    self._wire: bytes | None = None
                    return
                flags |= _PROPERTY_FLAGS[name]
                parts.append(bytes((len(raw),)))
                parts.append(raw)
        parts[0] = flags.to_bytes(2, "big")
        self._wire = b"".join(parts)

    def marshal(self) -> bytes:
        return self._wire if self._wire is not None else super().marshal()


def _long(value: str) -> bytes:
    raw = value.encode()
    return _pack_long(len(raw)) + raw


class RabbitMQProducer:
    """One producer: a channel (in confirm mode when configured) bound to the run's exchange."""

    def __init__(
        self,
        driver: RabbitMQDriver,
        channel: aio_pika.abc.AbstractRobustChannel,
        topology_name: str,
        queues: int,
        partition_key: str = "aggregate",
    ) -> None:
        self._driver = driver
        self._config = driver.config
        self._channel = channel
        self._exchange = topology_name
        self._queues = queues
        self._routing_keys = [f"{topology_name}.{q}" for q in range(queues)]
        self._queue_of = partition_chooser(partition_key, queues)
        self._window = asyncio.Semaphore(driver.config.confirm_window)
        self._delivery_mode = PERSISTENT if driver.config.persistent else NOT_PERSISTENT
        self._timeout = driver.config.publish_timeout
        self._confirms = driver.config.confirms
        self._underlay: aiormq.Channel | None = None
        self.inflight = 0
        self.inflight_peak = 0

    async def send(self, msg: Message) -> None:
        properties = EnvelopeProperties(
            message_headers(msg)[H_ENVELOPE],
            msg.key,
            self._delivery_mode,
            msg.event_id,
            msg.correlation_id,
            msg.event_type,
        )
        routing_key = self._routing_keys[self._queue_of(msg)]
        async with self._window:
            self.inflight += 1
            if self.inflight > self.inflight_peak:
                self.inflight_peak = self.inflight
                self._driver.note_inflight(self.inflight)
            try:
                channel = self._underlay
                if channel is None or channel.is_closed:
                    channel = await self._reopened()
                # wait=False: the publish does not wait for its frame to be flushed to the
                # socket; with confirms it waits for the broker's confirm, which comes later.
                result = await channel.basic_publish(
                    msg.value,
                    exchange=self._exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    timeout=self._timeout,
                    wait=False,
                )
            except TimeoutError:
                raise TimeoutError(
                    f"rabbitmq: no publisher confirm for {routing_key} within {self._timeout:g}s"
                ) from None
            except aiormq.exceptions.DeliveryError as exc:
                # A nack, or (PublishError) a return: the broker did not take the message.
                raise DriverError(
                    f"rabbitmq: broker refused the message for {routing_key} ({type(exc).__name__})"
                ) from None
            except CHANNEL_ERRORS as exc:
                raise DriverError(
                    f"rabbitmq: publish to {routing_key} failed: {self._driver.scrub(repr(exc))}"
                ) from None
            finally:
                self.inflight -= 1
        if self._confirms and not isinstance(result, Basic.Ack):
            # Never a success without the broker's ack (e.g. a returned message handed back).
            raise DriverError(
                f"rabbitmq: no ack for the message to {routing_key} ({type(result).__name__})"
            )

    async def _reopened(self) -> aiormq.Channel:
        """The channel under the robust one, once it is open again (bounded: during a
        reconnect aio-pika would wait for ever)."""
        underlay = await asyncio.wait_for(self._channel.get_underlay_channel(), self._timeout)
        # aiormq's Channel (its abstract type lacks basic_publish's ``wait``).
        self._underlay = cast(aiormq.Channel, underlay)
        return self._underlay

    async def close(self) -> None:
        self._underlay = None
        await self._driver.close_channel(self._channel)


class RabbitMQConsumer:
    """One consumer: a channel with QoS, subscribed to its assigned queues."""

    def __init__(
        self,
        driver: RabbitMQDriver,
        queue_names: list[str],
        on_message: OnMessage,
    ) -> None:
        self._driver = driver
        self._config = driver.config
        self._queue_names = queue_names
        self._on_message = on_message
        self._manual = driver.config.ack == "manual"
        # A multiple ack per this many deliveries at most: a quarter of the prefetch window, so
        # the broker can keep sending while an ack is on its way.
        self.ack_every = driver.config.ack_every or (
            max(1, driver.config.prefetch // 4) if driver.config.prefetch else 64
        )
        # ack_every set: one ack per that many deliveries, never at the end of a loop turn.
        self._ack_at_turn_end = driver.config.ack_every is None
        # (producer, seq) handed to the engine and not acknowledged yet: what a kill owes.
        self._owed: list[tuple[int, int]] = []
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._tags: list[str] = []
        # The channel of the latest handled delivery, its tag, and the tag acknowledged through.
        self._ack_channel: aiormq.abc.AbstractChannel | None = None
        self._ack_tag = 0
        self._acked_through = 0
        self._ack_lock = asyncio.Lock()
        # A channel on which on_message failed once: acknowledged one delivery at a time.
        self._single_ack_channel: aiormq.abc.AbstractChannel | None = None
        self._unacked = 0
        self._ack_scheduled = False
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._killed = False  # a killed consumer hands nothing more to the engine
        self.received = 0
        self.foreign = 0
        self.acks_sent = 0

    @property
    def queue_names(self) -> list[str]:
        return list(self._queue_names)

    async def start(self) -> None:
        channel = await self._driver.open_channel(publisher_confirms=False)
        self._channel = channel
        if self._config.prefetch:
            await channel.set_qos(prefetch_count=self._config.prefetch)
        try:
            for name in self._queue_names:
                # A passive declare: a missing queue fails here with a clear error.
                await channel.get_queue(name, ensure=True)
            await self._subscribe()
        except aio_pika.exceptions.ChannelNotFoundEntity as exc:
            raise DriverError(
                f"rabbitmq: queue missing ({exc.reason if hasattr(exc, 'reason') else exc}); "
                "prepare() must run before consumers start"
            ) from None
        # aio-pika restores its own consumers on a reopened channel, not these: subscribe
        # again (the reopened channel already has the QoS back).
        channel.reopen_callbacks.add(self._on_reopen)

    async def _subscribe(self) -> None:
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        self._underlay = underlay
        # Stream queues are logs: a consumer chooses where to start; "first" means nothing
        # published after prepare() is missed, whenever the consumer subscribes.
        arguments: dict[str, Any] | None = (
            {"x-stream-offset": "first"} if self._config.queue_type == "stream" else None
        )
        self._tags = []
        for name in self._queue_names:
            ok = await underlay.basic_consume(
                name, self._deliver, no_ack=not self._manual, arguments=arguments
            )
            assert ok.consumer_tag is not None
            self._tags.append(ok.consumer_tag)

    async def _on_reopen(self, *_: Any) -> None:
        if self._stopping:
            return
        # Tags of the old channel mean nothing on the new one.
        self._ack_channel, self._ack_tag, self._acked_through, self._unacked = None, 0, 0, 0
        self._owed.clear()  # the broker redelivers those itself: its duplicates, not a kill's
        await self._subscribe()

    async def _deliver(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        # aiormq runs each delivery in its own task, created in delivery order; on_message runs
        # before the first await here, so the callback sees a queue's messages in order.
        if self._killed:
            return  # delivered to a consumer that died: the broker redelivers it
        properties = delivered.header.properties
        headers = properties.headers or {}
        msg = message_from_headers(
            _text(headers.get(H_KEY)) or "",
            delivered.body,
            {
                H_ENVELOPE: _text(headers.get(H_ENVELOPE)) or "",
                H_EVENT_TYPE: properties.message_type or "",
                H_EVENT_ID: properties.message_id or "",
                H_CORRELATION: properties.correlation_id or "",
            },
        )
        if msg is None:
            self.foreign += 1
        else:
            self.received += 1
            if self._manual:
                self._owed.append((msg.producer_id, msg.seq))
            try:
                self._on_message(msg)
            except BaseException:
                if self._manual:
                    await self._stop_batching(delivered.channel)
                raise
        if not self._manual:
            return
        tag: int = delivered.delivery.delivery_tag  # type: ignore[union-attr,assignment]
        channel = delivered.channel
        if channel is self._single_ack_channel:
            await self._ack_one(channel, tag)
            return
        if channel is not self._ack_channel:
            # The first delivery on a (re)opened channel.
            self._ack_channel, self._acked_through, self._unacked = channel, 0, 0
        self._ack_tag = tag
        self._unacked += 1
        if self._unacked >= self.ack_every:
            await self._ack()
        elif self._ack_at_turn_end and not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_soon(self._ack_soon)

    async def _stop_batching(self, channel: aiormq.abc.AbstractChannel) -> None:
        """``on_message`` failed for a delivery: it must stay unacknowledged (the broker
        redelivers it when the channel closes), so no multiple ack may cover it. What was
        handled before it is acknowledged now, and each later delivery on its own."""
        # Set first: a later delivery handled while the ack below waits is acked on its own.
        self._single_ack_channel = channel
        if channel is self._ack_channel:
            await self._ack()

    async def _ack_one(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        async with self._ack_lock:
            try:
                await channel.basic_ack(tag, wait=False)
                self.acks_sent += 1
            except CHANNEL_ERRORS:
                self._driver.context.count_error("ack_failed")

    def _ack_soon(self) -> None:
        self._ack_scheduled = False
        if self._unacked:
            task = asyncio.get_running_loop().create_task(self._ack())
            self._ack_tasks.add(task)
            task.add_done_callback(self._ack_tasks.discard)

    async def _ack(self) -> None:
        # One ack at a time, each for a later tag than the last: acking a tag twice (or below
        # an earlier multiple ack) is a channel error in AMQP.
        async with self._ack_lock:
            channel, tag = self._ack_channel, self._ack_tag
            if channel is None or tag <= self._acked_through:
                return
            self._unacked = 0
            self._acked_through = tag
            self._owed.clear()  # everything handled so far: the tag is the latest handled one
            try:
                await channel.basic_ack(tag, multiple=True, wait=False)
                self.acks_sent += 1
            except CHANNEL_ERRORS:
                # The channel closed: the broker redelivers what this ack would have covered.
                self._driver.context.count_error("ack_failed")

    async def kill(self) -> list[tuple[int, int]]:
        """Die the way a crashed consumer does: close the channel without acknowledging, so
        the broker requeues (and redelivers) what was handled since the last ack."""
        channel = self._channel
        self._stopping = self._killed = True
        owed, self._owed = self._owed, []
        if channel is None:
            return owed
        self._ack_channel = None  # a scheduled ack finds nothing to acknowledge
        self._channel = self._underlay = None
        await self._driver.close_channel(channel)
        return owed

    async def stop(self) -> None:
        channel = self._channel
        if channel is None:
            return
        self._stopping = True
        underlay = self._underlay
        if underlay is not None and not underlay.is_closed:
            for tag in self._tags:
                with contextlib.suppress(*CHANNEL_ERRORS, TimeoutError):
                    await underlay.basic_cancel(tag, timeout=self._config.publish_timeout)
        self._tags.clear()
        # What was handled is acknowledged before the channel closes; the rest is requeued.
        if self._ack_tasks:
            await asyncio.wait(self._ack_tasks, timeout=self._config.publish_timeout)
        await self._ack()
        self._channel = self._underlay = None
        await self._driver.close_channel(channel)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
