"""Pull consuming for the NATS driver: pull requests on one inbox, acks in batches.

nats-py's ``PullSubscription.fetch`` waits for each message of a batch with ``next_msg``, which
creates two tasks and a timer (and a uuid) per message. ``PullReader`` asks for messages with
the JetStream pull API directly, through the client's public API: it subscribes a callback to
``<inbox>.*`` and publishes pull requests (``{"batch": n, "expires": ns}``) to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``, each with its own reply subject
``<inbox>.<n>``, so a status reply (408 request expired, 409, 404) says which request ended.

A new request goes out when the messages still owed (requested, minus delivered, minus what
an expired request reports unfilled in its 408 status) fall to half a batch, so at most about
two are open and delivery does not stop for a round trip at each batch boundary. Data
messages carry their stream subject, not the request's, so only statuses name a request.

Messages are handed to ``on_message`` in arrival order (nats-py runs one subscription's
callback for one message at a time). Acknowledgement happens after ``on_message`` returned:

* ``explicit``: each message is acknowledged (an empty payload to its reply subject) without
  waiting for anything: the acks of one burst of deliveries leave in one socket write;
* ``all``: the last message handled is acknowledged each time the reader tops up its
  requests (about every half batch) and when it stops; that acknowledges everything before
  it (AckAll);
* ``none``: nothing.

A request the server never ends (a reconnect lost it) is forgotten ``expires + 1s`` later. A
request that ends in trouble (no responders, consumer deleted, leadership change) is counted
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

# Forget a request this long after its expiry when the server never said it ended.
LOST_REQUEST_GRACE_S = 1.0


class PullReader:
    """Reads one JetStream pull consumer with continuous pull requests."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        handle: Callable[[Msg], None],
        batch: int,
        expires_s: float,
        ack_policy: Literal["explicit", "none", "all"],
        on_error: Callable[[str], None],
        api_prefix: str = "$JS.API",
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
        # Open requests: id -> when it expires (monotonic). What they still owe in all:
        self._open: dict[int, float] = {}
        self._owed = 0
        self._next_id = 0
        self._trouble = False  # a request ended badly: back off before the next
        self._last_unacked: Msg | None = None  # ack "all": the last message not yet covered
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
        self._open[request_id] = time.monotonic() + self._expires_s
        self._owed += self._batch
        body = json.dumps({"batch": self._batch, "expires": int(self._expires_s * 1e9)})
        try:
            await self._nc.publish(
                self._next_subject, body.encode(), reply=self._prefix + str(request_id)
            )
        except BaseException:
            # Not sent (a reconnect's full buffer, a closed connection): nothing is owed.
            self._open.pop(request_id, None)
            self._owed -= self._batch
            raise

    def _ended(self, request_id: int, unfilled: int | None, trouble: bool = False) -> None:
        """A request ended with a status; ``unfilled`` is what it still owed, when said.
        ``trouble``: not a plain expiry (no responders, consumer deleted, leadership change):
        the next request waits a while, rather than spin against a consumer that is gone."""
        if trouble:
            self._trouble = True
        if self._open.pop(request_id, None) is None:
            return
        if not self._open:
            self._owed = 0  # nothing open: nothing owed
        elif unfilled is not None:
            self._owed = max(0, self._owed - unfilled)
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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._expires_s):
                    await self._wake.wait()
            if self._ack_policy == "all":
                await self._ack_all()
            now = time.monotonic()
            for request_id, expires_at in list(self._open.items()):
                if now > expires_at + LOST_REQUEST_GRACE_S:
                    self._ended(request_id, None)  # the server never said: lost

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
                unfilled = headers.get("Nats-Pending-Messages")
                # 408: the request expired; 404: nothing to deliver. Anything else is trouble.
                trouble = status not in ("408", "404")
                self._ended(request_id, int(unfilled) if unfilled else None, trouble)
            return
        self.received += 1
        self._handle(msg)
        if self._ack_policy == "explicit":
            await self._nc.publish(reply)
        elif self._ack_policy == "all":
            self._last_unacked = msg
        owed = self._owed = self._owed - 1
        if owed <= self._batch // 2:
            if owed <= 0:
                # Every open request was filled (a filled request sends no status).
                self._owed = 0
                self._open.clear()
            self._wake.set()

    async def _ack_all(self) -> None:
        last, self._last_unacked = self._last_unacked, None
        if last is not None and last.reply:
            await self._nc.publish(last.reply)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if self._ack_policy == "all":
            with contextlib.suppress(nats.errors.Error):
                await self._ack_all()
