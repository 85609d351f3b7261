"""Pull consuming for the NATS driver: pull requests on one inbox, acks in batches.

nats-py's ``PullSubscription.fetch`` waits for each message of a batch with ``next_msg``, which
creates two tasks and a timer (and a uuid) per message. ``PullReader`` asks for messages with
the JetStream pull API directly, through the client's public API: it subscribes a callback to
``<inbox>.*`` and publishes pull requests (``{"batch": n, "expires": ns}``) to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``, each with its own reply subject
``<inbox>.<n>``, so a status reply (408 request expired, 409, 404) says which request ended.

A new request goes out when the messages still owed fall to half a batch, so at most about
two are open and delivery does not stop for a round trip at each batch boundary. Data
messages carry their stream subject, not the request's, so only statuses name a request; the
server fills its waiting requests oldest first, so each delivery counts against the oldest
open one, and what is owed is exactly what the open requests still owe. A request leaves
that count when it is filled, when its status says it ended, or, as the server does not
always send a 408 for a request that expired partly filled, ``LOST_REQUEST_GRACE_S`` after
its expiry. (Counting such a request as owing its rest until a 1 s grace ran out stalled a
reader for up to 2 s at low rates: e2e p99 1.5 s at 300/s, blamed on the broker.)

Messages are handed to ``on_message`` in arrival order (nats-py runs one subscription's
callback for one message at a time). Acknowledgement happens after ``on_message`` returned:

* ``explicit``: each message is acknowledged (an empty payload to its reply subject) without
  waiting for anything: the acks of one burst of deliveries leave in one socket write (with
  ``ack_every`` N, the acks wait until N are pending, and a kill leaves them unsent);
* ``all``: the last message handled is acknowledged each time the reader tops up its
  requests (about every half batch) and when it stops; that acknowledges everything before
  it (AckAll);
* ``none``: nothing.

A request that ends in trouble (no responders, consumer deleted, leadership change) is counted
as a ``fetch_error``, and the next one waits ``expires``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Literal

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from bench.drivers.base import Message

# Forget a request this long after its expiry when the server never said it ended (a status
# comes within a millisecond or two of the expiry when it comes at all). Forgetting one early
# only asks for more sooner; forgetting it late is a stall: the reader waits for messages
# nobody will send (100 ms here made e2e max 100 ms at 300/s).
LOST_REQUEST_GRACE_S = 0.02


class PullReader:
    """Reads one JetStream pull consumer with continuous pull requests."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        handle: Callable[[Msg], Message | None],
        batch: int,
        expires_s: float,
        ack_policy: Literal["explicit", "none", "all"],
        on_error: Callable[[str], None],
        api_prefix: str = "$JS.API",
        ack_every: int = 1,
        ack_wait_s: float = 30.0,
    ) -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._handle = handle
        self._batch = batch
        self._expires_s = expires_s
        self._ack_policy = ack_policy
        self._on_error = on_error
        self._prefix = ""
        self._prefix_len = 0
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Open requests, oldest first: id -> [when it expires (monotonic), what it still owes].
        # What they owe in all:
        self._open: dict[int, list[float]] = {}
        self._owed = 0
        self._next_id = 0
        self._trouble = False  # a request ended badly: back off before the next
        self._last_unacked: Msg | None = None  # ack "all": the last message not yet covered
        # ack "all": the (producer, seq) handled and not covered by an ack yet (what a kill owes)
        self._unacked_ids: list[tuple[int, int]] = []
        # ack "explicit" with ack_every > 1: the reply subjects of handled messages whose acks
        # wait to be sent together (and their ids, what a kill owes).
        self._ack_every = ack_every
        self._pending_acks: list[str] = []
        # Held acks go out by half the consumer's ack_wait at the latest, so JetStream never
        # redelivers a message because the harness held its ack (only a kill leaves them).
        self._ack_hold_s = ack_wait_s / 2
        self._acks_held_since = 0.0
        self.received = 0

    async def start(self, name: str) -> None:
        inbox = self._nc.new_inbox()
        self._prefix = inbox + "."
        self._prefix_len = len(self._prefix)
        # The consumer's max_ack_pending and the batch bound what can queue here; nats-py's
        # default per-subscription limits would call a burst a slow consumer.
        self._sub = await self._nc.subscribe(
            inbox + ".*", cb=self._on_msg, pending_msgs_limit=0, pending_bytes_limit=0
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def _request(self) -> None:
        request_id = self._next_id
        self._next_id += 1
        self._open[request_id] = [time.monotonic() + self._expires_s, self._batch]
        self._owed += self._batch
        body = json.dumps({"batch": self._batch, "expires": int(self._expires_s * 1e9)})
        try:
            await self._nc.publish(
                self._next_subject, body.encode(), reply=self._prefix + str(request_id)
            )
        except BaseException:
            # Not sent (a reconnect's full buffer, a closed connection): nothing is owed.
            self._ended(request_id)
            raise

    def _ended(self, request_id: int, trouble: bool = False) -> None:
        """A request ended (a status, or its expiry passed): it owes nothing more.
        ``trouble``: not a plain expiry (no responders, consumer deleted, leadership change):
        the next request waits a while, rather than spin against a consumer that is gone."""
        if trouble:
            self._trouble = True
        entry = self._open.pop(request_id, None)
        if entry is None:
            return
        self._owed -= int(entry[1])
        self._wake.set()

    async def _run(self) -> None:
        half = self._batch // 2
        while True:
            if self._trouble:
                self._trouble = False
                self._on_error("fetch_error")
                await asyncio.sleep(self._expires_s)
            try:
                while self._owed <= half:
                    await self._request()
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                return
            except nats.errors.Error:
                self._on_error("fetch_error")
            self._wake.clear()
            # Wake for a delivery or a status, or when the oldest request is past its expiry.
            wait = self._expires_s
            for expires_at, _ in self._open.values():
                wait = max(0.0, expires_at + LOST_REQUEST_GRACE_S - time.monotonic())
                break
            if self._pending_acks:
                held_until = self._acks_held_since + self._ack_hold_s
                wait = min(wait, max(0.0, held_until - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            if self._ack_policy == "all":
                await self._ack_all()
            elif (
                self._pending_acks and time.monotonic() - self._acks_held_since >= self._ack_hold_s
            ):
                await self._send_acks()
            now = time.monotonic()
            for request_id, (expires_at, _) in list(self._open.items()):
                if now > expires_at + LOST_REQUEST_GRACE_S:
                    self._ended(request_id)  # the server never said: it is over all the same

    async def _on_msg(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply:
            # A status on the request's own reply subject (408 expired, 409, 404), or a
            # heartbeat (100). A data message carries the stream subject instead.
            headers = msg.headers or {}
            status = headers.get("Status", "")
            if status and status != "100":
                try:
                    request_id = int(msg.subject[self._prefix_len :])
                except ValueError:
                    return
                # 408: the request expired; 404: nothing to deliver. Anything else is trouble.
                self._ended(request_id, trouble=status not in ("408", "404"))
            return
        self.received += 1
        handled = self._handle(msg)
        if self._ack_policy == "explicit":
            if self._ack_every == 1:
                await self._nc.publish(reply)
            else:
                if not self._pending_acks:
                    self._acks_held_since = time.monotonic()
                self._pending_acks.append(reply)
                if handled is not None:  # the pair only where acks are held
                    self._unacked_ids.append((handled.producer_id, handled.seq))
                if len(self._pending_acks) >= self._ack_every:
                    await self._send_acks()
        elif self._ack_policy == "all":
            self._last_unacked = msg
            if handled is not None:
                self._unacked_ids.append((handled.producer_id, handled.seq))
        # The oldest open request delivered it (the server fills them in order).
        for request_id, entry in self._open.items():
            self._owed -= 1
            entry[1] -= 1
            if entry[1] <= 0:
                del self._open[request_id]  # filled: a filled request sends no status
            break
        if self._owed <= self._batch // 2:
            self._wake.set()

    async def _send_acks(self) -> None:
        replies, self._pending_acks = self._pending_acks, []
        self._unacked_ids.clear()
        for reply in replies:
            await self._nc.publish(reply)

    async def _ack_all(self) -> None:
        last, self._last_unacked = self._last_unacked, None
        self._unacked_ids.clear()
        if last is not None and last.reply:
            await self._nc.publish(last.reply)

    async def kill(self) -> list[tuple[int, int]]:
        """Stop reading at once and acknowledge nothing more: JetStream redelivers what was
        handled and not acknowledged once the consumer's ack_wait passes."""
        self._ack_policy = "none"  # nothing from here on acknowledges
        owed, self._unacked_ids = self._unacked_ids, []
        self._last_unacked = None
        self._pending_acks = []
        await self._stop_reading()
        return owed

    async def _stop_reading(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def stop(self) -> None:
        await self._stop_reading()
        if self._ack_policy == "all":
            with contextlib.suppress(nats.errors.Error):
                await self._ack_all()
        if self._pending_acks:
            with contextlib.suppress(nats.errors.Error):
                await self._send_acks()
