"""The interval merge: every worker's interval histograms into the point's ``.hlog`` files, its
``timeseries.csv`` row, the live progress line, and the measurement window's histograms.

Histograms are merged, never their percentiles. The window's histograms (by intended time)
are what summary.json, every table and every plot of the point describe; ``close`` writes them
into each ``.hlog`` as its ``Tag=window`` line.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hdrh.histogram import HdrHistogram

from bench.engine.pool import WorkerState
from bench.engine.workers import latency_kinds
from bench.metrics.hlog import HlogWriter
from bench.metrics.recorder import encode, merge_into, new_histogram, value_at_percentiles
from bench.scenario import ScenarioMeta, Workload

TIMESERIES_COLUMNS = (
    "interval",
    "t_s",
    "phase",
    "sent_per_s",
    "acked_per_s",
    "received_per_s",
    "errors",
    "in_flight",
    "response_p50_us",
    "response_p99_us",
    "service_p99_us",
    "schedule_lag_p99_us",
    "e2e_p50_us",
    "e2e_p99_us",
    "e2e_max_us",
    "loop_lag_max_us",
    "cpu_pct",
    # Acknowledged but not yet delivered at the interval's end, summed over the subscriptions
    # (each owes every message): the consumer backlog.
    "backlog",
)
EPSILON_S = 1e-9  # interval boundaries are compared with this slack


@dataclass
class IntervalView:
    """One merged interval, as the live progress line shows it."""

    index: int
    t_s: float
    phase: str
    sent_per_s: float
    acked_per_s: float
    received_per_s: float
    response_p99_us: float | None
    e2e_p99_us: float | None
    errors: int
    in_flight: int
    cpu_pct: float


class IntervalMerger:
    """Merges the workers' intervals in order, as soon as every worker sent the same one."""

    def __init__(
        self,
        point_dir: Path,
        meta: ScenarioMeta,
        workload: Workload,
        on_interval: Callable[[IntervalView], None],
    ) -> None:
        self.dir = point_dir
        self.meta = meta
        self.workload = workload
        self.on_interval = on_interval
        # The measurement window's histograms, by intended time, and the harness's health.
        self.kinds = latency_kinds(workload)
        self.hlog_kinds = (*self.kinds, "loop_lag")
        self.measured = {kind: new_histogram() for kind in self.kinds}
        self.loop_lag = new_histogram()
        self.cpu_samples: list[float] = []  # the busiest worker's CPU, per measured interval
        self.errors_timeline: dict[str, int] = {}
        self.t0_ns = 0
        self._hlogs: dict[str, HlogWriter] = {}
        self._timeseries_file: IO[str] | None = None
        self._timeseries: Any = None
        self._emitted = 0
        self._last_end_s = 0.0
        self._acked_total = 0
        self._delivered_total = 0

    def open(self, t0_ns: int, epoch_at_t0: float) -> None:
        self.t0_ns = t0_ns
        self._hlogs = {
            kind: HlogWriter(self.dir / f"{kind}.hlog", epoch_at_t0, kind)
            for kind in self.hlog_kinds
        }
        self._timeseries_file = (self.dir / "timeseries.csv").open("w", newline="")
        self._timeseries = csv.writer(self._timeseries_file)
        self._timeseries.writerow(TIMESERIES_COLUMNS)

    def close(self) -> None:
        for kind, writer in self._hlogs.items():
            # The window's histogram (by intended time) as a tagged line: the one population
            # that summary.json, every table and every plot of this point describe.
            hist = self.loop_lag if kind == "loop_lag" else self.measured[kind]
            writer.write_window(
                self.meta.warmup, self.meta.duration, encode(hist), hist.get_max_value()
            )
            writer.close()
        self._hlogs = {}
        if self._timeseries_file is not None:
            self._timeseries_file.close()
            self._timeseries_file = None

    def emit_ready(self, states: list[WorkerState], flush_all: bool = False) -> None:
        """Merge each interval every worker has sent (``flush_all``: whoever sent it)."""
        while True:
            k = self._emitted + 1
            have = [s.intervals.get(k) for s in states]
            if not any(have):
                return
            if not all(have) and not flush_all:
                return
            for s in states:
                s.intervals.pop(k, None)
            self._emit(k, [p for p in have if p is not None])
            self._emitted = k

    def _phase(self, k: int) -> str:
        # From the nominal interval boundaries: a worker flushes a little after them.
        interval_s = self.meta.interval
        nominal_end = k * interval_s
        nominal_start = nominal_end - interval_s
        warmup_s = self.meta.warmup
        if nominal_end <= warmup_s + EPSILON_S:
            return "warmup"
        if nominal_start < warmup_s + self.meta.duration - EPSILON_S:
            return "measure"
        return "drain"

    def _emit(self, k: int, payloads: list[dict[str, Any]]) -> None:
        end_s = max((p["end_ns"] - self.t0_ns) / 1e9 for p in payloads)
        start_s = self._last_end_s
        length_s = max(end_s - start_s, 1e-6)
        self._last_end_s = end_s
        merged: dict[str, HdrHistogram] = {}
        for kind in self.hlog_kinds:
            hist = new_histogram()
            for p in payloads:
                merge_into(hist, p["hist"][kind] if kind != "loop_lag" else p["loop_lag"])
            merged[kind] = hist
            self._hlogs[kind].write(start_s, length_s, encode(hist), hist.get_max_value())
        for p in payloads:
            for kind in self.kinds:
                merge_into(self.measured[kind], p["measured"][kind])
            merge_into(self.loop_lag, p["loop_lag_measured"])
        phase = self._phase(k)
        cpu = max(p["cpu_pct"] for p in payloads)
        if phase == "measure":
            self.cpu_samples.append(cpu)
        errors = 0
        for p in payloads:
            for name, count in p["errors"].items():
                self.errors_timeline[name] = self.errors_timeline.get(name, 0) + count
                errors += count

        def pct(kind: str, p: float) -> float | None:
            hist = merged[kind]
            return value_at_percentiles(hist, (p,))[0] / 1e3 if hist.total_count else None

        sent = sum(p["sent"] for p in payloads) / length_s
        acked = sum(p["acked"] for p in payloads) / length_s
        received = sum(p["delivered"] for p in payloads) / length_s
        in_flight = sum(p["in_flight"] for p in payloads)
        self._acked_total += sum(p["acked"] for p in payloads)
        self._delivered_total += sum(p["delivered"] for p in payloads)
        consuming = self.workload.kind == "stream" and self.workload.consumers > 0
        # Each subscription owes every acknowledged message (fan-out).
        owed = self._acked_total * self.workload.subscriptions
        backlog = max(0, owed - self._delivered_total) if consuming else ""
        e2e_max = merged["e2e"].get_max_value() / 1e3 if merged["e2e"].total_count else None
        self._timeseries.writerow(
            [
                k,
                round(end_s, 3),
                phase,
                round(sent, 1),
                round(acked, 1),
                round(received, 1),
                errors,
                in_flight,
                _r(pct("response", 50)),
                _r(pct("response", 99)),
                _r(pct("service", 99)),
                _r(pct("schedule_lag", 99)),
                _r(pct("e2e", 50)),
                _r(pct("e2e", 99)),
                _r(e2e_max),
                _r(merged["loop_lag"].get_max_value() / 1e3),
                round(cpu, 1),
                backlog,
            ]
        )
        assert self._timeseries_file is not None
        self._timeseries_file.flush()
        self.on_interval(
            IntervalView(
                index=k,
                t_s=end_s,
                phase=phase,
                sent_per_s=sent,
                acked_per_s=acked,
                received_per_s=received,
                response_p99_us=pct("response", 99),
                e2e_p99_us=pct("e2e", 99),
                errors=errors,
                in_flight=in_flight,
                cpu_pct=cpu,
            )
        )


def _r(value: float | None) -> float | str:
    return "" if value is None else round(value, 1)
