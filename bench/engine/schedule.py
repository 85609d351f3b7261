"""Open-loop schedules: the intended send time of every event.

A schedule is a small object with ``next() -> int | None`` (Rally's idea): the next intended
time in monotonic nanoseconds, or None once the schedule has passed its end. Latency is
measured from these intended times, never from when the harness got round to sending, so a
stalled target cannot hide behind a harness that waited for it (coordinated omission).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ConstantSchedule:
    """Evenly spaced sends at ``rate_per_s``."""

    def __init__(self, rate_per_s: float, start_ns: int, end_ns: int, seed: int = 0) -> None:
        self.interval_ns = 1e9 / rate_per_s
        self.start_ns = start_ns
        self.end_ns = end_ns
        self._n = 0

    def next(self) -> int | None:
        t = self.start_ns + int(self._n * self.interval_ns)
        if t >= self.end_ns:
            return None
        self._n += 1
        return t

    def remaining(self) -> int:
        """How many intended times are left (and consume them)."""
        total = int(np.ceil((self.end_ns - self.start_ns) / self.interval_ns))
        left = max(0, total - self._n)
        self._n = total
        return left


class PoissonSchedule:
    """Sends as a Poisson process at ``rate_per_s`` (exponential gaps), seeded."""

    _BATCH = 4096

    def __init__(self, rate_per_s: float, start_ns: int, end_ns: int, seed: int = 0) -> None:
        self._scale_ns = 1e9 / rate_per_s
        self._rng = np.random.default_rng(seed)
        self.end_ns = end_ns
        self._t = float(start_ns)
        self._gaps: list[float] = []
        self._pos = 0

    def next(self) -> int | None:
        if self._pos >= len(self._gaps):
            self._gaps = self._rng.exponential(self._scale_ns, self._BATCH).tolist()
            self._pos = 0
        t = int(self._t)
        if t >= self.end_ns:
            return None
        self._t += self._gaps[self._pos]
        self._pos += 1
        return t

    def remaining(self) -> int:
        """How many intended times are left (and consume them), counted in numpy batches."""
        if self._t >= self.end_ns:
            return 0
        left = 1  # the pending self._t itself
        t = self._t
        while True:
            times = t + np.cumsum(self._rng.exponential(self._scale_ns, 65536))
            inside = int(np.searchsorted(times, self.end_ns, side="left"))
            left += inside
            if inside < times.size:
                break
            t = float(times[-1])
        self._t = float(self.end_ns)
        return left


Schedule = ConstantSchedule | PoissonSchedule
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": ConstantSchedule,
    "poisson": PoissonSchedule,
}


def make_schedule(kind: str, rate_per_s: float, start_ns: int, end_ns: int, seed: int) -> Schedule:
    return SCHEDULES[kind](rate_per_s, start_ns, end_ns, seed)
