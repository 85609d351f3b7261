"""Pipelined JetStream publishing for the NATS driver: a window of PubAcks on one reply inbox.

nats-py's ``publish_async`` costs several tasks and timers per message (a ``wait_for`` around
its window semaphore, a NUID and random token per inbox, a done-callback per future), and the
driver had to serialise it behind a lock to keep call order. ``AckWindow`` does the same job
with the client's public API only (``new_inbox``, ``subscribe``, ``publish(reply=...)``):

* one wildcard reply subscription per producer, ``<inbox>.<n>``, where ``n`` is an integer
  token counting the producer's publishes;
* one future per publish, resolved (or failed) by the reply handler;
* a window of ``size`` publishes awaiting their PubAck. A send that finds room publishes at
  once, without awaiting anything first, so sends reach the client library (and the wire) in
  call order. A send that finds the window full, or others already waiting, queues; a freed
  slot goes to the oldest waiter (FIFO), so call order holds there too;
* no flush per publish: nats-py's flusher task writes everything pending when it next runs,
  which coalesces the publishes made in one turn of the loop into one socket write.

The one header a publish carries, ``Nats-Msg-Id``, goes through nats-py's ``publish()`` at a
cost of a regex check, a strip and a translate per message (about 2.5 us here, a tenth of a
producer's CPU). When the connection is up, ``AckWindow`` builds the ``HPUB`` frame itself, the
same bytes nats-py would build (a test compares them), and hands it to the client's pending
buffer the way ``publish()`` does (``_send_command``, then a kick of the flusher when none is
queued). Those are nats-py internals: ``start()`` checks they exist and otherwise every publish
goes through ``publish()``, as does any publish while the connection is not up (nats-py's
reconnect buffering and errors apply unchanged) or with an id containing a line break.

A send has no timer of its own (the engine bounds each send with ``send_timeout``). A reaper
task, once per ``tick``, fails the publishes whose PubAck is older than ``timeout_s`` with
``TimeoutError`` so that nothing waits for ever even without that bound; it costs nothing per
message. Cancelling a send (the engine's timeout) frees its slot and forgets its token: a
PubAck that arrives later is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

H_MSG_ID = "Nats-Msg-Id"
# The nats-py internals the hand-built frames rely on (checked once, in start()).
_CLIENT_INTERNALS = ("_send_command", "_flush_queue", "_flush_pending", "stats", "_max_payload")


def hpub_frame(subject: str, reply: str, msg_id: str, payload: bytes) -> bytes:
    """``HPUB`` with one header, ``Nats-Msg-Id: <msg_id>``, as nats-py encodes it (the id must
    hold no CR or LF, and the subject and reply no space)."""
    header = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id.strip().encode()
    size = len(header)
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject.encode(),
        reply.encode(),
        size,
        size + len(payload),
        header,
        payload,
    )


# A reply with this status header: no stream captures the subject (no responders).
_NO_RESPONDERS = "503"


class NoStreamError(Exception):
    """The server answered that no stream captures the subject."""


class PubAckError(Exception):
    """JetStream refused the message (the PubAck carried an error)."""


class AckWindow:
    """Up to ``size`` publishes awaiting their PubAck, on one reply inbox."""

    def __init__(self, nc: NatsClient, size: int, timeout_s: float) -> None:
        self._nc = nc
        self.size = size
        self._timeout_s = timeout_s
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._next_token = 0
        self._prefix = ""
        self._prefix_len = 0
        self._sub: Any = None
        self._reaper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fast = False  # HPUB frames built here (see the module's docstring)
        self.peak = 0
        self.expired = 0  # publishes the reaper failed for want of a PubAck

    @property
    def in_flight(self) -> int:
        """Slots taken: publishes awaiting their PubAck (and ones handed a slot just now)."""
        return self.size - self._free

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    @property
    def tokens(self) -> int:
        """Publishes whose PubAck is still awaited (a cancelled send forgets its own)."""
        return len(self._acks)

    async def start(self) -> None:
        """Subscribe to the reply inbox (before the first send, so no send awaits it)."""
        self._loop = asyncio.get_running_loop()
        self.fast = all(hasattr(self._nc, name) for name in _CLIENT_INTERNALS)
        inbox = self._nc.new_inbox()
        self._prefix = inbox + "."
        self._prefix_len = len(self._prefix)
        # A PubAck is small and the window bounds how many can queue: no slow-consumer limit
        # beyond nats-py's defaults is needed.
        self._sub = await self._nc.subscribe(inbox + ".*", cb=self._on_reply)
        self._reaper = self._loop.create_task(self._reap(), name="nats-pubacks-reaper")

    async def publish(self, subject: str, payload: bytes, msg_id: str | None) -> None:
        """Publish one message and return once JetStream stored it; raise when it did not."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            await self._take_slot()
        token = self._next_token
        self._next_token = token + 1
        assert self._loop is not None, "AckWindow.start() must run first"
        future: asyncio.Future[None] = self._loop.create_future()
        acks = self._acks
        acks[token] = future
        in_flight = self.size - self._free
        if in_flight > self.peak:
            self.peak = in_flight
        try:
            # The message reaches nats-py's pending buffer before anything here or in
            # publish() can suspend, so the order of publish() calls is the order on the wire.
            reply = self._prefix + str(token)
            nc = self._nc
            if (
                self.fast
                and msg_id is not None
                and nc.is_connected
                and len(payload) <= nc._max_payload
                and "\n" not in msg_id
                and "\r" not in msg_id
            ):
                stats = nc.stats
                stats["out_msgs"] += 1
                stats["out_bytes"] += len(payload)
                await nc._send_command(hpub_frame(subject, reply, msg_id, payload))
                flush_queue = nc._flush_queue
                if flush_queue is not None and flush_queue.empty():
                    await nc._flush_pending()
            else:
                headers = {H_MSG_ID: msg_id} if msg_id is not None else None
                await nc.publish(subject, payload, reply=reply, headers=headers)
            await future
        finally:
            del acks[token]
            self._release()

    async def _take_slot(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just as the send was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        """A publish is done with its slot: hand it to the oldest waiter, or free it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def _on_reply(self, msg: Msg) -> None:
        try:
            token = int(msg.subject[self._prefix_len :])
        except ValueError:
            return
        future = self._acks.get(token)
        if future is None or future.done():
            return  # given up already (cancelled or expired)
        headers = msg.headers
        if headers and headers.get("Status") == _NO_RESPONDERS:
            future.set_exception(NoStreamError())
            return
        data = msg.data
        # A PubAck is {"stream":...,"seq":...}; an error reply starts with "error". Parse only
        # what may be an error (a stream may be named "error", hence the parse).
        if b'"error"' in data:
            try:
                error = json.loads(data).get("error")
            except (ValueError, AttributeError):
                error = {"description": "unreadable PubAck"}
            if error:
                description = error.get("description", error) if isinstance(error, dict) else error
                future.set_exception(PubAckError(str(description)))
                return
        if not data:
            future.set_exception(PubAckError("empty PubAck"))
            return
        future.set_result(None)

    async def _reap(self) -> None:
        """Fail the publishes whose PubAck is overdue. Tokens grow with time, so a mark of the
        next token taken each tick says which publishes are older than the tick."""
        tick = min(1.0, max(0.05, self._timeout_s / 4))
        marks: deque[tuple[float, int]] = deque()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            marks.append((now, self._next_token))
            overdue_below = -1
            while marks and now - marks[0][0] >= self._timeout_s:
                overdue_below = marks.popleft()[1]
            if overdue_below < 0 or not self._acks:
                continue
            for token, future in list(self._acks.items()):
                if token < overdue_below and not future.done():
                    self.expired += 1
                    future.set_exception(TimeoutError())

    async def close(self) -> None:
        """Let the PubAcks already on their way land (up to the timeout), then unsubscribe."""
        deadline = time.monotonic() + self._timeout_s
        while self._acks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
