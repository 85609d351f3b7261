"""The NATS JetStream stream driver (nats-py): stream layout, publishing, consumers.

This module owns everything eventbench knows about NATS: the ``NatsConfig`` options, how a run
point's topology maps to one JetStream stream with per-partition subjects and consumers,
synchronous versus pipelined publishing, and what ``describe()`` reports about the server.

Layout
    ``prepare(topology)`` creates a stream (named after ``topology.name``, with characters
    JetStream forbids in names replaced) that captures ``<name>.>``. A message is published
    to ``<name>.<p>`` with ``p = crc32(key) % topology.partitions``, so one aggregate always
    uses one subject (a stable hash: Python's ``hash()`` is salted per process). ``prepare``
    purges the stream when its configuration matches and deletes and re-adds it otherwise,
    then (re)creates one consumer per partition, ``<group>-p<p>``, filtered to that subject.
    Creating consumers up front means nothing published before a consumer subscribes is
    missed, which matters for ``retention = "interest"`` (a message with no interested
    consumer is discarded at once).

Publishing
    The envelope (audit and timing fields, key, event type, event id, correlation id) travels
    at the head of the message body (``encode_body``), not in headers, which nats-py encodes
    and parses in Python for every message. Every message carries one header,
    ``Nats-Msg-Id = event_id`` (``msg_id = true``, the default), so JetStream drops a re-sent
    copy within ``dedup_window``; ``msg_id = false`` sends no header and gives up server-side
    dedup. ``publish = "sync"`` sends one message
    at a time per producer and waits for its PubAck (a lock serialises concurrent ``send()``
    calls). ``publish = "pipelined"`` keeps up to ``publish_window`` publishes per producer
    awaiting their PubAck (``nats_publish.AckWindow``): a send publishes at once when the
    window has room, otherwise it waits its turn (FIFO), so sends reach the wire in call
    order; the publishes of one turn of the loop leave in one socket write. A send has no
    timer of its own: the engine bounds it with ``send_timeout``, and a PubAck older than
    ``publish_timeout`` fails its send with ``TimeoutError`` anyway. ``inflight_peak``
    records the most acks a producer was waiting for.

Consuming and ordering
    JetStream keeps order per subject, so per-key order holds when each partition's consumer
    is read by one client: consumer ``i`` of ``C`` reads partition ``i % P`` when ``C >= P`` and
    otherwise every partition ``p`` with ``p % C == i``. With ``C > P`` several clients share a
    partition's consumer and per-key order is not guaranteed. ``consumer_type = "ordered"``
    uses ephemeral ordered consumers that each read a whole partition, so it needs ``C <= P``.
    Redeliveries (ack timeout) can reorder and duplicate; the audit counts them. Pull
    consumers are read with continuous pull requests (``nats_pull.PullReader``), acks sent
    without waiting for each.

Lag
    ``consumer_lag(topology)`` sums ``num_pending + num_ack_pending`` over the partitions'
    consumers, so the drain can wait for what the broker still holds.

Errors
    ``connect()`` gives up after ``connect_timeout`` with a one-line ``DriverError`` naming the
    servers and the last error. During a run nats-py reconnects; disconnects, reconnects and
    asynchronous errors are counted through ``context.count_error``. Publishes that fail raise
    from ``send()`` (``TimeoutError`` for a missing PubAck, ``DriverError`` for a refusal).
    Credentials never appear in ``describe()``, logs or errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import ssl
import time
from collections.abc import AsyncGenerator
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from pydantic import Field, SecretStr, field_validator, model_validator

from bench.drivers.base import (
    DriverConfig,
    DriverContext,
    Message,
    OnMessage,
    Sizing,
    StoredIds,
    Topology,
    assigned_partitions,
    partition_chooser,
    subscription_topology,
)
from bench.drivers.nats_publish import H_MSG_ID, AckWindow, NoStreamError, PubAckError
from bench.drivers.nats_pull import PullReader
from bench.errors import DriverError
from bench.redaction import redact_text, without_user_info
from bench.units import Duration

DEFAULT_SERVERS = "nats://127.0.0.1:4222"

# The envelope travels at the head of the message body, not in headers: nats-py encodes each
# header with a regex check, strip and translate, and parses every header block back into a
# dict, in Python, for every message (about a fifth of the worker's CPU with five headers).
# The body is
#
#     eb1 US producer:seq:key_seq:intended_ns US key US type US event_id US correlation RS value
#
# (US = 0x1f, RS = 0x1e, the ASCII unit and record separators; the fields in UTF-8). NATS has
# no message key, so the aggregate key travels there too (the subject only names the
# partition). Only Nats-Msg-Id, a JetStream feature, stays a header (``msg_id = true``).
BODY_MAGIC = "eb1"
_US = "\x1f"
_RS = "\x1e"
_MAGIC_US = BODY_MAGIC + _US
_MAGIC_BYTES = _MAGIC_US.encode()
_RS_BYTE = _RS.encode()[0]


def encode_body(msg: Message) -> bytes:
    """The message's body on the wire: its envelope, then its value."""
    head = (
        f"{_MAGIC_US}{msg.producer_id}:{msg.seq}:{msg.key_seq}:{msg.intended_ns}{_US}"
        f"{msg.key}{_US}{msg.event_type}{_US}{msg.event_id}{_US}{msg.correlation_id}{_RS}"
    )
    if head.count(_US) != 5 or head.count(_RS) != 1:
        raise DriverError(
            "nats: a key, event type, event id or correlation id contains the byte 0x1e or 0x1f, "
            "which separate the envelope's fields in the message body"
        )
    return head.encode() + msg.value


def decode_body(data: bytes) -> Message | None:
    """The Message a body carries; None when it is not one of ours."""
    if not data.startswith(_MAGIC_BYTES):
        return None
    end = data.find(_RS_BYTE)
    if end < 0:
        return None
    try:
        _, envelope, key, event_type, event_id, correlation = data[:end].decode().split(_US)
        producer_id, seq, key_seq, intended_ns = envelope.split(":")
        return Message(
            key,
            data[end + 1 :],
            event_type,
            event_id,
            correlation,
            int(producer_id),
            int(seq),
            int(key_seq),
            int(intended_ns),
        )
    except ValueError:  # a wrong number of fields, a number that is not one, bad UTF-8
        return None


def body_ids(data: bytes) -> tuple[int, int] | None:
    """(producer_id, seq) from a body's envelope (what a re-read needs); None when it is not
    one of ours."""
    if not data.startswith(_MAGIC_BYTES):
        return None
    end = data.find(_US.encode(), len(_MAGIC_BYTES))
    if end < 0:
        return None
    producer_id, _, rest = data[len(_MAGIC_BYTES) : end].partition(b":")
    seq, _, _ = rest.partition(b":")
    try:
        return int(producer_id), int(seq)
    except ValueError:
        return None


# A re-read fetches this many messages per request, and gives up when its position stays put
# this long below the stream's last sequence (stuck, not slow).
REREAD_BATCH = 1000
REREAD_STALL_S = 5.0


def _default_servers() -> list[str]:
    raw = os.environ.get("BENCH_NATS_URL", DEFAULT_SERVERS)
    return [s.strip() for s in raw.split(",") if s.strip()]


_SERVER_FORM = "write nats://host:4222 (or tls://, ws://, wss://)"


def server_problem(server: str) -> str | None:
    """What nats-py would choke on in one server URL (None when it is sound), in words that
    never quote the URL or its password. The defaults are nats-py's own: a URL without a
    scheme is nats://, one without a port uses 4222."""
    if not server.strip():
        return f"is empty: {_SERVER_FORM}"
    scheme, sep, _ = server.partition("://")
    if sep and scheme not in ("nats", "tls", "ws", "wss"):
        return without_user_info(
            f"has the scheme {scheme!r}: use nats://, tls://, ws:// or wss://", server
        )
    try:
        parts = urlsplit(server if sep else f"nats://{server}")
        port = parts.port
    except ValueError as exc:
        reason = str(exc)
        if "out of range" in reason:
            return "the port is out of range: use 1-65535"
        if "Port" in reason:
            encode = " (percent-encode '/', '@' and ':' in a password)" if "@" in server else ""
            return f"the port is not a number: {_SERVER_FORM}{encode}"
        return without_user_info(f"is not a valid URL: {reason}", server)
    if not parts.hostname or parts.hostname == "none":
        return f"has no host: {_SERVER_FORM}"
    if port is not None and not 1 <= port <= 65535:
        return "the port is out of range: use 1-65535"
    return None


class NatsConfig(DriverConfig):
    """Options of a ``driver = "nats"`` target."""

    driver: Literal["nats"] = "nats"
    # Validated when it comes from BENCH_NATS_URL too: a bad one fails validate, not a run.
    servers: list[str] = Field(
        default_factory=_default_servers, min_length=1, validate_default=True
    )
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: str | None = None
    tls_cafile: str | None = None
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(default=1, ge=1, le=5)
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    max_msgs: int = Field(default=-1, ge=-1)
    max_bytes: int = Field(default=-1, ge=-1)
    publish: Literal["sync", "pipelined"] = "pipelined"
    publish_window: int = Field(default=256, ge=1)
    publish_timeout: Duration = 10.0
    dedup_window: Duration = 120.0
    # Nats-Msg-Id = event_id on every message, so JetStream drops a copy re-sent within
    # dedup_window (the server keeps an id per message for that long). False: no id, no
    # server-side dedup, a re-sent message is stored twice (and the audit counts it).
    msg_id: bool = True
    consumer_type: Literal["pull", "push", "ordered"] = "pull"
    fetch_batch: int = Field(default=256, ge=1)
    fetch_timeout: Duration = 1.0
    max_ack_pending: int = Field(default=4096, ge=1)
    ack_wait: Duration = 30.0
    ack_policy: Literal["explicit", "none", "all"] = "explicit"
    # Pull consumers, ack_policy = "explicit": send the acks of handled messages once this
    # many are waiting (1: each at once). What a killed consumer (the kill_consumer fault) had
    # not acknowledged, JetStream redelivers after ack_wait.
    ack_every: int = Field(default=1, ge=1, le=1_000_000)
    durable: bool = True
    inactive_threshold: Duration = 300.0
    max_reconnect_attempts: int = Field(default=60, ge=-1)
    reconnect_wait: Duration = 1.0

    @field_validator("servers", mode="before")
    @classmethod
    def _servers_text(cls, value: Any) -> Any:
        # One text, as BENCH_NATS_URL is written: "nats://a:4222" or "nats://a:4222,nats://b:4222".
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for i, server in enumerate(value):
            problem = server_problem(server)
            if problem is None:
                continue
            if len(value) > 1:
                problem = f"server {i + 1} of {len(value)}: {problem}"
            if value == _default_servers() and "BENCH_NATS_URL" in os.environ:
                problem += " (from BENCH_NATS_URL)"
            raise ValueError(problem)
        kinds = {s.partition("://")[0] in ("ws", "wss") for s in value}
        if len(kinds) > 1:
            raise ValueError("mixes websocket (ws://, wss://) and nats:// servers: use one kind")
        return value

    @field_validator("publish_timeout")
    @classmethod
    def _publish_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s: every publish would time out at once")
        return value

    @model_validator(mode="after")
    def _check(self) -> NatsConfig:
        if self.password is not None and self.user is None:
            raise ValueError("password needs user")
        if self.consumer_type == "ordered" and self.ack_policy != "none":
            raise ValueError("ordered consumers do not acknowledge: set ack_policy = 'none'")
        if self.ack_every > 1:
            if self.consumer_type != "pull" or self.ack_policy != "explicit":
                raise ValueError(
                    "ack_every applies to pull consumers with ack_policy = 'explicit' (got "
                    f"consumer_type = {self.consumer_type!r}, ack_policy = {self.ack_policy!r})"
                )
            if self.ack_every > self.max_ack_pending:
                raise ValueError(
                    f"ack_every ({self.ack_every}) is larger than max_ack_pending "
                    f"({self.max_ack_pending}): JetStream would stop delivering before the "
                    "first ack"
                )
        if self.retention == "workqueue" and self.ack_policy == "none":
            raise ValueError(
                "workqueue retention removes a message on ack: ack_policy 'none' "
                "would never remove anything"
            )
        return self


_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")


def stream_name(topology: Topology) -> str:
    """JetStream stream names may not contain '.', '*', '>', spaces or path separators."""
    return _NAME_FORBIDDEN.sub("_", topology.name)


def subject_prefix(topology: Topology) -> str:
    # One subject token keeps "<prefix>.>" capturing exactly the partition subjects.
    return stream_name(topology)


def public_server(url: str) -> str:
    """A server URL without user information."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


_ACK_POLICIES = {
    "explicit": api.AckPolicy.EXPLICIT,
    "none": api.AckPolicy.NONE,
    "all": api.AckPolicy.ALL,
}


class NatsProducer:
    """One producer. Pipelined: its own window of PubAcks (``AckWindow``), ``publish_window``
    wide."""

    def __init__(self, driver: NatsDriver, topology: Topology) -> None:
        self._driver = driver
        self._config = driver.config
        self._prefix = subject_prefix(topology)
        self._stream = stream_name(topology)
        self._partitions = max(1, topology.partitions)
        # The partition subjects, made once: a send only indexes them.
        self._subjects = [f"{self._prefix}.{p}" for p in range(self._partitions)]
        self._partition = partition_chooser(topology.partition_key, self._partitions)
        self._js: JetStreamContext = driver.client.jetstream(timeout=self._config.publish_timeout)
        self._window = AckWindow(
            driver.client, self._config.publish_window, self._config.publish_timeout
        )
        self._msg_id = self._config.msg_id
        self._lock = asyncio.Lock()
        self.inflight_peak = 0

    async def start(self) -> None:
        if self._config.publish == "pipelined":
            await self._window.start()

    async def send(self, msg: Message) -> None:
        subject = self._subjects[self._partition(msg)]
        body = encode_body(msg)
        # Nats-Msg-Id is the event id, for JetStream's dedup; the consumer reads the event id
        # from the body like everything else.
        msg_id = msg.event_id if self._msg_id else None
        try:
            if self._config.publish == "sync":
                async with self._lock:
                    self._observe(1)
                    await self._js.publish(
                        subject,
                        body,
                        timeout=self._config.publish_timeout,
                        headers={H_MSG_ID: msg_id} if msg_id is not None else None,
                    )
                return
            window = self._window
            try:
                await window.publish(subject, body, msg_id)
            finally:
                if window.peak > self.inflight_peak:
                    self._observe(window.peak)
        except (TimeoutError, nats.errors.TimeoutError):
            raise TimeoutError(
                f"nats: no PubAck for {subject} within {self._config.publish_timeout:g}s"
            ) from None
        except (nats.js.errors.NoStreamResponseError, NoStreamError):
            raise DriverError(
                f"nats: no stream captures {subject}; prepare() must run before producers start"
            ) from None
        except PubAckError as exc:
            raise DriverError(f"nats: publish to {subject} refused: {exc}") from None
        except (nats.js.errors.APIError, nats.errors.Error) as exc:
            raise DriverError(f"nats: publish to {subject} failed: {exc}") from None

    @property
    def in_flight(self) -> int:
        """Publishes awaiting their PubAck (pipelined), or 0."""
        return self._window.in_flight

    @property
    def waiting(self) -> int:
        """Sends queued for a slot in a full window."""
        return self._window.waiting

    def _observe(self, inflight: int) -> None:
        if inflight > self.inflight_peak:
            self.inflight_peak = inflight
            self._driver.note_inflight(inflight)

    async def close(self) -> None:
        if self._config.publish == "pipelined":
            # Let acks already on their way land rather than cancel them mid-flight.
            await self._window.close()


class NatsConsumer:
    """One consumer client: reads its assigned partitions' JetStream consumers."""

    def __init__(
        self,
        driver: NatsDriver,
        topology: Topology,
        partitions: list[int],
        on_message: OnMessage,
    ) -> None:
        self._driver = driver
        self._config = driver.config
        self._topology = topology
        self._stream = stream_name(topology)
        self._prefix = subject_prefix(topology)
        self._partitions = partitions
        self._on_message = on_message
        self._js = driver.client.jetstream(timeout=driver.config.publish_timeout)
        self._readers: list[PullReader] = []
        self._subs: list[Any] = []
        self.received = 0
        self.foreign = 0
        self._killed = False

    @property
    def partitions(self) -> list[int]:
        return list(self._partitions)

    def _handle(self, msg: Msg) -> Message | None:
        """Hand a delivery to the engine; the message handed, None for a foreign one."""
        if self._killed:
            return None  # delivered to a consumer that died: JetStream redelivers it
        decoded = decode_body(msg.data)
        if decoded is None:
            self.foreign += 1
            return None
        self.received += 1
        self._on_message(decoded)
        return decoded

    async def start(self) -> None:
        try:
            for partition in self._partitions:
                name = self._driver.consumer_name(self._topology, partition)
                subject = f"{self._prefix}.{partition}"
                if self._config.consumer_type == "pull":
                    # Binding checks that the consumer exists (NotFoundError otherwise).
                    await self._js.consumer_info(self._stream, name)
                    reader = PullReader(
                        self._driver.client,
                        self._stream,
                        name,
                        self._handle,
                        batch=self._config.fetch_batch,
                        expires_s=self._config.fetch_timeout,
                        ack_policy=self._config.ack_policy,
                        on_error=self._driver.context.count_error,
                        ack_every=self._config.ack_every,
                        ack_wait_s=self._config.ack_wait,
                    )
                    await reader.start(f"nats-pull-{name}")
                    self._readers.append(reader)
                elif self._config.consumer_type == "push":
                    info = await self._js.consumer_info(self._stream, name)
                    sub = await self._js.subscribe_bind(
                        stream=self._stream,
                        config=info.config,
                        consumer=name,
                        cb=self._push_callback,
                        manual_ack=True,
                    )
                    self._subs.append(sub)
                else:
                    sub = await self._js.subscribe(
                        subject,
                        stream=self._stream,
                        cb=self._push_callback,
                        ordered_consumer=True,
                    )
                    self._subs.append(sub)
        except nats.js.errors.NotFoundError:
            await self.stop()
            raise DriverError(
                f"nats: stream or consumer for {self._topology.name!r} missing; "
                "prepare() must run before consumers start"
            ) from None

    async def _push_callback(self, msg: Msg) -> None:
        # nats-py runs one subscription's callbacks one after another, so order is kept.
        self._handle(msg)
        if self._config.consumer_type != "ordered" and self._config.ack_policy != "none":
            # Push delivery has no batch boundary, so AckAll acks every message too.
            # An ack is an empty message to the reply subject; nothing to wait for.
            await self._driver.client.publish(msg.reply)

    async def kill(self) -> list[tuple[int, int]]:
        """Die without acknowledging (pull consumers): what was handled and not acknowledged
        comes again after the consumer's ack_wait."""
        self._killed = True
        readers, self._readers = self._readers, []
        owed: list[tuple[int, int]] = []
        for reader in readers:
            owed.extend(await reader.kill())
        return owed

    async def stop(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            await reader.stop()
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                await sub.unsubscribe()


class NatsDriver:
    """NATS JetStream through nats-py: one connection per driver."""

    name: ClassVar[str] = "nats"
    kind: ClassVar[Literal["stream", "store", "both"]] = "stream"
    config_model: ClassVar[type[DriverConfig]] = NatsConfig

    @staticmethod
    def consumer_faults_unsupported(config: NatsConfig) -> str | None:
        """Why ``kill_consumer`` cannot act on these consumers (None: it can)."""
        if config.consumer_type != "pull":
            return f"acts on pull consumers (consumer_type = {config.consumer_type!r})"
        if config.ack_policy != "explicit":
            return (
                "needs ack_policy = 'explicit' (with ack_every): without acks nothing is owed "
                "again, and with 'all' a replacement's first ack covers what the killed one "
                "left (JetStream never redelivers it)"
            )
        return None

    @classmethod
    def service_name(cls) -> str:
        """The ``bench up`` service this target runs on, here."""
        return "nats"

    @classmethod
    def sizing(cls) -> Sizing:
        """For ``bench plan``: the driver's partitions are subjects of one stream, which one
        leader writes."""
        return Sizing(
            partition_noun="subjects",
            scale_out_advice=(
                "the subjects share one JetStream stream, written through one leader: beyond "
                "the measured total, split the load over streams rather than subjects"
            ),
        )

    def __init__(self, config: NatsConfig, context: DriverContext) -> None:
        self.config = config
        self.context = context
        self._nc: NatsClient | None = None
        self._connected_once = False
        self._last_error: BaseException | None = None
        self._streams: dict[str, dict[str, Any]] = {}
        self.inflight_peak = 0

    # ------------------------------------------------------------------ connection

    @property
    def client(self) -> NatsClient:
        if self._nc is None or not self._nc.is_connected:
            raise DriverError("nats: not connected (call connect() first)")
        return self._nc

    @property
    def where(self) -> str:
        return ", ".join(public_server(s) for s in self.config.servers)

    def _tls(self) -> ssl.SSLContext | None:
        cfg = self.config
        if not (cfg.tls_cafile or cfg.tls_certfile):
            return None
        context = ssl.create_default_context(cafile=cfg.tls_cafile)
        if cfg.tls_certfile:
            context.load_cert_chain(cfg.tls_certfile, cfg.tls_keyfile)
        return context

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        if self._connected_once:
            kind = (
                "slow_consumer" if isinstance(exc, nats.errors.SlowConsumerError) else "nats_error"
            )
            self.context.count_error(kind)

    async def _on_disconnected(self) -> None:
        if self._connected_once:
            self.context.count_error("disconnect")

    async def _on_reconnected(self) -> None:
        self.context.count_error("reconnect")

    async def connect(self) -> None:
        cfg = self.config
        timeout_s = cfg.connect_timeout
        try:
            tls = self._tls()
        except (OSError, ssl.SSLError) as exc:
            raise DriverError(f"nats: cannot load TLS files: {exc}") from None
        options: dict[str, Any] = {
            "servers": cfg.servers,
            "name": "eventbench",
            "connect_timeout": timeout_s,
            "allow_reconnect": True,
            "max_reconnect_attempts": cfg.max_reconnect_attempts,
            "reconnect_time_wait": cfg.reconnect_wait,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            # Every subject the driver publishes to is built from sanitised names and inboxes;
            # nats-py's check of each one is a regex per publish.
            "skip_subject_validation": True,
        }
        if cfg.user is not None:
            options["user"] = cfg.user
        if cfg.password is not None:
            options["password"] = cfg.password.get_secret_value()
        if cfg.token is not None:
            options["token"] = cfg.token.get_secret_value()
        if cfg.creds_file is not None:
            options["user_credentials"] = cfg.creds_file
        if tls is not None:
            options["tls"] = tls
        nc = NatsClient()
        # nats-py retries a refused server in a loop of its own (up to max_reconnect_attempts
        # with reconnect_wait between tries), so the overall deadline is enforced here.
        try:
            await asyncio.wait_for(nc.connect(**options), timeout_s)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise DriverError(
                f"cannot reach NATS at {self.where} within {timeout_s:g}s: {self._reason(exc)}",
                hint="check servers, that nats-server runs (with -js), and credentials",
            ) from None
        self._nc = nc
        self._connected_once = True

    def _reason(self, exc: BaseException) -> str:
        cause: BaseException = exc
        if isinstance(exc, TimeoutError | nats.errors.NoServersError) and self._last_error:
            cause = self._last_error
        if isinstance(cause, nats.errors.AuthorizationError):
            return "authorization refused"
        text = str(cause).strip() or type(cause).__name__
        # Credentials are never part of these texts, but passwords in server URLs could be.
        for secret in (self.config.password, self.config.token):
            if secret is not None:
                text = text.replace(secret.get_secret_value(), "***")
        return redact_text(text.splitlines()[0])

    def note_inflight(self, inflight: int) -> None:
        if inflight > self.inflight_peak:
            self.inflight_peak = inflight

    # ------------------------------------------------------------------ topology

    def consumer_name(self, topology: Topology, partition: int) -> str:
        return _NAME_FORBIDDEN.sub("_", f"{topology.consumer_group}-p{partition}")

    def _stream_config(self, topology: Topology) -> api.StreamConfig:
        cfg = self.config
        return api.StreamConfig(
            name=stream_name(topology),
            subjects=[f"{subject_prefix(topology)}.>"],
            retention=api.RetentionPolicy(cfg.retention),
            storage=api.StorageType(cfg.storage),
            num_replicas=cfg.replicas,
            max_msgs=cfg.max_msgs,
            max_bytes=cfg.max_bytes,
            duplicate_window=cfg.dedup_window,
        )

    @staticmethod
    def _same_stream(have: api.StreamConfig, want: api.StreamConfig) -> bool:
        fields = ("subjects", "retention", "storage", "num_replicas", "max_msgs", "max_bytes")
        if any(getattr(have, f) != getattr(want, f) for f in fields):
            return False
        return abs((have.duplicate_window or 0) - want.duplicate_window) < 1e-6

    def _consumer_config(self, topology: Topology, partition: int) -> api.ConsumerConfig:
        cfg = self.config
        name = self.consumer_name(topology, partition)
        config = api.ConsumerConfig(
            name=name,
            durable_name=name if cfg.durable else None,
            filter_subject=f"{subject_prefix(topology)}.{partition}",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=_ACK_POLICIES[cfg.ack_policy],
            ack_wait=cfg.ack_wait,
            max_ack_pending=cfg.max_ack_pending,
            # A non-durable consumer is removed by the server once idle this long.
            inactive_threshold=None if cfg.durable else cfg.inactive_threshold,
        )
        if cfg.consumer_type == "push":
            # A deliver group lets several clients share one push consumer.
            config.deliver_subject = f"_eb.deliver.{stream_name(topology)}.{partition}"
            config.deliver_group = name
        return config

    async def prepare(self, topology: Topology) -> None:
        partitions = max(1, topology.partitions)
        if self.config.consumer_type == "ordered" and topology.consumers > partitions:
            raise DriverError(
                f"nats: {topology.consumers} ordered consumers on {partitions} partitions would "
                "each read every message of a shared partition",
                hint=f"use partitions >= {topology.consumers} or consumer_type = 'pull'",
            )
        if self.config.retention == "workqueue" and topology.subscriptions > 1:
            raise DriverError(
                f"nats: a workqueue stream gives each message to one consumer, not to each of "
                f"{topology.subscriptions} subscriptions",
                hint="use retention = 'limits' or 'interest' for fan-out",
            )
        js = self.client.jetstream(timeout=self.config.connect_timeout)
        name = stream_name(topology)
        want = self._stream_config(topology)
        try:
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                info = None
            if info is not None and self._same_stream(info.config, want):
                for consumer in await js.consumers_info(name):
                    await js.delete_consumer(name, consumer.name)
                await js.purge_stream(name)
            else:
                if info is not None:
                    await js.delete_stream(name)
                await js.add_stream(config=want)
            if self.config.consumer_type != "ordered":
                # A durable consumer per partition, for each subscription (its own group).
                for subscription in range(topology.subscriptions):
                    group = subscription_topology(topology, subscription)
                    for partition in range(partitions):
                        await js.add_consumer(name, config=self._consumer_config(group, partition))
            created = await js.stream_info(name)
        except (nats.js.errors.Error, nats.errors.Error) as exc:
            raise DriverError(f"nats: cannot prepare stream {name!r}: {exc}") from None
        self._streams[name] = _public_stream_config(created.config)

    async def producer(self, topology: Topology, producer_id: int) -> NatsProducer:
        producer = NatsProducer(self, topology)
        try:
            await producer.start()
        except nats.errors.Error as exc:
            raise DriverError(f"nats: cannot subscribe to the PubAck inbox: {exc}") from None
        return producer

    async def consumer(
        self, topology: Topology, consumer_id: int, on_message: OnMessage
    ) -> NatsConsumer:
        partitions = max(1, topology.partitions)
        consumers = max(1, topology.consumers)
        mine = assigned_partitions(consumer_id, consumers, partitions)
        return NatsConsumer(self, topology, mine, on_message)

    async def cleanup(self, topology: Topology) -> None:
        name = stream_name(topology)
        js = self.client.jetstream(timeout=self.config.connect_timeout)
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        except (nats.js.errors.Error, nats.errors.Error) as exc:
            raise DriverError(f"nats: cannot delete stream {name!r}: {exc}") from None
        self._streams.pop(name, None)

    # ------------------------------------------------------------------ lag (ConsumerLag)

    async def consumer_lag(self, topology: Topology) -> int | None:
        """Messages the run's JetStream consumers still owe: stored and not yet delivered
        (``num_pending``) plus delivered and not yet acknowledged (``num_ack_pending``), summed
        over the partitions' consumers. None when the server cannot tell: ordered consumers
        are ephemeral and unnamed, and a missing consumer or stream has no count."""
        if self.config.consumer_type == "ordered":
            return None
        name = stream_name(topology)
        js = self.client.jetstream(timeout=self.config.connect_timeout)
        lag = 0
        try:
            for partition in range(max(1, topology.partitions)):
                info = await js.consumer_info(name, self.consumer_name(topology, partition))
                lag += (info.num_pending or 0) + (info.num_ack_pending or 0)
        except (nats.js.errors.Error, nats.errors.Error, TimeoutError):
            return None
        return lag

    # ------------------------------------------------------------------ re-read (Rereadable)

    reread_method: ClassVar[str] = (
        "an ordered consumer (no acknowledgements) read the stream from its first "
        "sequence to the last sequence it had when the re-read began (a workqueue stream: "
        "message by message, as it allows no second consumer)"
    )

    def reread_unsupported(self, topology: Topology) -> str | None:
        return None

    async def reread(self, topology: Topology) -> AsyncGenerator[StoredIds, None]:
        """Every message the stream holds as (producer, seq), up to its last sequence at the
        start. The run's durable consumers are left as they are: the reader is a consumer of
        its own (ack policy none, removed when done) or, on a workqueue stream, which refuses
        a consumer overlapping theirs, direct gets by sequence."""
        name = stream_name(topology)
        js = self.client.jetstream(timeout=self.config.connect_timeout)
        try:
            state = (await js.stream_info(name)).state
            if not state.messages:
                return
            if self.config.retention == "workqueue":
                reader = self._reread_by_get(js, name, topology, state.first_seq, state.last_seq)
            else:
                reader = self._reread_by_consumer(js, name, topology, state.last_seq)
            async with contextlib.aclosing(reader) as batches:
                async for ids in batches:
                    yield ids
        except (nats.js.errors.Error, nats.errors.Error) as exc:
            raise DriverError(f"nats: re-reading stream {name!r} failed: {exc}") from None

    async def _reread_by_consumer(
        self, js: JetStreamContext, name: str, topology: Topology, last_seq: int
    ) -> AsyncGenerator[StoredIds, None]:
        # An ordered push consumer (ack none, flow control, in memory, removed when idle):
        # pull fetches cost nats-py a wait per message, several times slower.
        ids: StoredIds = []
        seen = [0]  # the highest stream sequence delivered
        arrived = asyncio.Event()

        async def on_message(msg: Msg) -> None:
            seq = msg.metadata.sequence.stream
            if seq <= last_seq:
                found = body_ids(msg.data)
                if found is not None:
                    ids.append(found)
            if seq > seen[0]:
                seen[0] = seq
            if len(ids) >= REREAD_BATCH or seq >= last_seq:
                arrived.set()

        sub = await js.subscribe(
            f"{subject_prefix(topology)}.>",
            stream=name,
            cb=on_message,
            ordered_consumer=True,
            idle_heartbeat=1.0,
        )
        moved_at = time.monotonic()
        progress = 0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 1.0)
                arrived.clear()
                done = seen[0] >= last_seq
                batch, ids[:] = list(ids), []
                if batch:
                    yield batch
                if done:
                    return
                if seen[0] != progress:
                    progress, moved_at = seen[0], time.monotonic()
                    continue
                # Quiet: done if nothing is left to deliver (what lay up to last_seq may have
                # been removed meanwhile), stuck if something is and never comes.
                info = await sub.consumer_info()
                if not info.num_pending and not info.num_ack_pending:
                    return
                if time.monotonic() - moved_at > REREAD_STALL_S:
                    raise DriverError(
                        f"nats: re-reading stream {name!r} made no progress for "
                        f"{REREAD_STALL_S:g}s ({info.num_pending} messages pending)"
                    )
        finally:
            # The server would drop the idle consumer after a while; a kept stream should
            # not show it meanwhile.
            consumer: str | None = None
            with contextlib.suppress(nats.js.errors.Error, nats.errors.Error, TimeoutError):
                consumer = (await sub.consumer_info()).name
            with contextlib.suppress(nats.js.errors.Error, nats.errors.Error, TimeoutError):
                await sub.unsubscribe()
            if consumer is not None:
                with contextlib.suppress(nats.js.errors.Error, nats.errors.Error, TimeoutError):
                    await js.delete_consumer(name, consumer)

    async def _reread_by_get(
        self, js: JetStreamContext, name: str, topology: Topology, first_seq: int, last_seq: int
    ) -> AsyncGenerator[StoredIds, None]:
        subjects = f"{subject_prefix(topology)}.>"
        seq = max(1, first_seq)
        ids: StoredIds = []
        while seq <= last_seq:
            try:
                raw = await js.get_msg(name, seq=seq, subject=subjects, next=True)
            except nats.js.errors.NotFoundError:
                break  # nothing stored at or after seq
            if raw.seq is None or raw.seq > last_seq:
                break
            found = body_ids(raw.data or b"")
            if found is not None:
                ids.append(found)
            if len(ids) >= REREAD_BATCH:
                yield ids
                ids = []
            seq = raw.seq + 1
        if ids:
            yield ids

    # ------------------------------------------------------------------ reporting

    async def describe(self) -> dict[str, Any]:
        nc = self.client
        # nats-py keeps the server's INFO only in a private attribute; it is the one place
        # with the server name, cluster and JetStream flag.
        info: dict[str, Any] = dict(getattr(nc, "_server_info", {}) or {})
        jetstream = bool(info.get("jetstream"))
        account: dict[str, Any] | None = None
        if jetstream:
            with contextlib.suppress(nats.js.errors.Error, nats.errors.Error):
                acct = await nc.jetstream(timeout=self.config.connect_timeout).account_info()
                account = {
                    "streams": acct.streams,
                    "consumers": acct.consumers,
                    "domain": acct.domain,
                }
        settings = self.config.model_dump(mode="json", exclude={"password", "token", "servers"})
        settings["servers"] = [public_server(s) for s in self.config.servers]
        settings["password_set"] = self.config.password is not None
        settings["token_set"] = self.config.token is not None
        return {
            "product": "NATS Server",
            "version": info.get("version"),
            "server_name": info.get("server_name"),
            "cluster": info.get("cluster"),
            "go": info.get("go"),
            "jetstream": jetstream,
            "jetstream_account": account,
            "connected_url": public_server(_url_text(nc)),
            "client": {
                "library": "nats-py",
                "version": _package_version("nats-py"),
                "nats-py": _package_version("nats-py"),
                "hot_path": _hot_path(self.config),
            },
            "settings": settings,
            # Only a driver that prepared streams names them: a worker's describe() at the end
            # is merged over the coordinator's, and an empty dict there hid the streams.
            **({"streams": dict(self._streams)} if self._streams else {}),
            "publish_inflight_peak": self.inflight_peak,
        }

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            self._connected_once = False  # the disconnect that follows is ours
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), self.config.connect_timeout)


def _hot_path(config: NatsConfig) -> str:
    """How messages move through nats-py, in words, for describe()."""
    if config.publish == "pipelined":
        publish = f"nc.publish, one PubAck inbox per producer, window {config.publish_window}"
    else:
        publish = "js.publish, one request per message"
    consume = {
        "pull": "pull requests on an inbox (PullReader)",
        "push": "push subscription",
        "ordered": "ordered push consumer",
    }[config.consumer_type]
    return f"{publish}; {consume}, ack {config.ack_policy}"


def _url_text(nc: NatsClient) -> str:
    url = nc.connected_url
    return url.geturl() if url is not None else ""


def _public_stream_config(config: api.StreamConfig) -> dict[str, Any]:
    """The stream configuration as the server reports it, as plain JSON-ready values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        if hasattr(value, "value"):  # enums
            value = value.value
        out[f.name] = value
    return out
