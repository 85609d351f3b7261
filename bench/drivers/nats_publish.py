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
        inbox = self._nc.new_inbox()
        self._prefix = inbox + "."
        self._prefix_len = len(self._prefix)
        # A PubAck is small and the window bounds how many can queue: no slow-consumer limit
        # beyond nats-py's defaults is needed.
        self._sub = await self._nc.subscribe(inbox + ".*", cb=self._on_reply)
        self._reaper = self._loop.create_task(self._reap(), name="nats-pubacks-reaper")

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None) -> None:
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
            # nats-py appends the message to its pending buffer before anything in publish()
            # can suspend, so the order of publish() calls is the order on the wire.
            await self._nc.publish(
                subject, payload, reply=self._prefix + str(token), headers=headers
            )
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
