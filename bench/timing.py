"""Precise timing on the event loop: callbacks and sleeps at absolute monotonic-ns times.

asyncio's timers (and uvloop's) wake up to a millisecond late, because epoll's timeout is in
whole milliseconds. That is harmless for most programs and ruinous for a latency harness: a
0.5 ms average wake-up error shows up as schedule lag, and a 2 ms injected service time would
read as 2.5 ms. On Linux a timerfd registered with the loop wakes it within tens of
microseconds; elsewhere this falls back to ``loop.call_at``.

All times are ``time.monotonic_ns()`` values (CLOCK_MONOTONIC, shared by every process on
one host).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1
_PR_SET_TIMERSLACK = 29


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class PreciseTimer:
    """Runs callbacks at absolute monotonic-ns times on the event loop, to ~tens of µs.

    One timer is shared by everything on a loop (``acquire``/``release``), so that the engine's
    send wake-ups and a simulated target's acknowledgements come from one ordered heap.
    Callbacks scheduled with ``exact=True`` are also woken ``EXACT_SPIN_NS`` early and the rest
    is busy-waited: exact to about a microsecond, at the price of that much CPU per wake-up.
    The memory target uses that for the delays it promises; the engine's pacing does not (it
    records its own lateness as schedule lag instead), but any send due inside a spin window is
    served exactly too, because the heap is shared.
    """

    EXACT_SPIN_NS = 100_000
    _shared: ClassVar[dict[asyncio.AbstractEventLoop, tuple[PreciseTimer, int]]] = {}

    @classmethod
    def acquire(cls, loop: asyncio.AbstractEventLoop | None = None) -> PreciseTimer:
        loop = loop or asyncio.get_running_loop()
        timer, users = cls._shared.get(loop, (None, 0))
        if timer is None:
            timer = cls(loop)
        cls._shared[loop] = (timer, users + 1)
        return timer

    def release(self) -> None:
        timer, users = self._shared.get(self._loop, (None, 0))
        if timer is not self:
            self.close()
            return
        if users <= 1:
            del self._shared[self._loop]
            self.close()
        else:
            self._shared[self._loop] = (self, users - 1)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[int, int, bool, Callable[..., None], tuple[Any, ...]]] = []
        # Due times of pending exact callbacks (a subset of the heap's, popped in step).
        self._exact: list[int] = []
        self._counter = itertools.count()
        self._armed_ns: int | None = None
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            # Linux delays timer expiry by up to the thread's "timer slack" (50 µs by default)
            # to batch wake-ups; a latency harness wants them on time.
            libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
            self._settime = libc.timerfd_settime
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._on_fire)
        except (OSError, AttributeError):
            self._fd = -1

    def call_at_ns(
        self, when_ns: int, callback: Callable[..., None], *args: Any, exact: bool = False
    ) -> None:
        heapq.heappush(self._heap, (when_ns, next(self._counter), exact, callback, args))
        wake = when_ns
        if exact:
            heapq.heappush(self._exact, when_ns)
            wake -= self.EXACT_SPIN_NS
        if self._armed_ns is None or wake < self._armed_ns:
            self._arm(wake)

    def sleep_until(self, when_ns: int, exact: bool = False) -> asyncio.Future[None]:
        """A future that completes at ``when_ns`` (await it to sleep precisely)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self.call_at_ns(when_ns, _resolve, fut, exact=exact)
        return fut

    def _arm(self, wake_ns: int) -> None:
        self._armed_ns = wake_ns
        if self._fd >= 0:
            spec = _Itimerspec()
            # A zero it_value disarms a timerfd: never arm at or before the clock's epoch.
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(max(wake_ns, 1), 1_000_000_000)
            self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
        else:
            if self._handle is not None:
                self._handle.cancel()
            delay_s = (wake_ns - time.monotonic_ns()) / 1e9
            self._handle = self._loop.call_at(self._loop.time() + delay_s, self._on_fire)

    def _on_fire(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.read(self._fd, 8)
        self._armed_ns = None
        heap, exact = self._heap, self._exact
        now = time.monotonic_ns()
        served = False
        while heap:
            when, _, is_exact, callback, args = heap[0]
            if when > now:
                # Busy-wait only for an exact callback at the head, and only before anything
                # was served: what we just woke must not wait behind a spin for the next one
                # (the timer re-arms in the past, so the loop comes straight back here).
                if served or not is_exact or when - now > self.EXACT_SPIN_NS:
                    break
                while now < when:
                    now = time.monotonic_ns()
            heapq.heappop(heap)
            if is_exact:
                heapq.heappop(exact)
            served = True
            callback(*args)
        if heap:
            wake = heap[0][0]
            if exact:
                wake = min(wake, exact[0] - self.EXACT_SPIN_NS)
            self._arm(wake)

    @staticmethod
    def mechanism() -> str:
        return "timerfd" if sys.platform.startswith("linux") else "loop.call_at"

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
        self._heap.clear()
        self._exact.clear()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
