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
import ctypes
import heapq
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

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
    """Runs callbacks at absolute monotonic-ns times on the event loop, to ~tens of µs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
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

    def call_at_ns(self, when_ns: int, callback: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (when_ns, next(self._counter), callback, args))
        if self._armed_ns is None or when_ns < self._armed_ns:
            self._arm(when_ns)

    def _arm(self, when_ns: int) -> None:
        self._armed_ns = when_ns
        if self._fd >= 0:
            spec = _Itimerspec()
            # A zero it_value disarms a timerfd: never arm at or before the epoch of the clock.
            when_ns = max(when_ns, 1)
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(when_ns, 1_000_000_000)
            self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
        else:
            if self._handle is not None:
                self._handle.cancel()
            delay_s = (when_ns - time.monotonic_ns()) / 1e9
            self._handle = self._loop.call_at(self._loop.time() + delay_s, self._on_fire)

    def _on_fire(self) -> None:
        if self._fd >= 0:
            try:
                os.read(self._fd, 8)
            except BlockingIOError:
                pass
        self._armed_ns = None
        heap = self._heap
        now = time.monotonic_ns()
        while heap and heap[0][0] <= now:
            _, _, callback, args = heapq.heappop(heap)
            callback(*args)
        if heap:
            self._arm(heap[0][0])

    @staticmethod
    def mechanism() -> str:
        return "timerfd" if sys.platform.startswith("linux") else "loop.call_at"

    def sleep_until(self, when_ns: int) -> asyncio.Future[None]:
        """A future that completes at ``when_ns`` (await it to sleep precisely)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self.call_at_ns(when_ns, _resolve, fut)
        return fut

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
        self._heap.clear()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
