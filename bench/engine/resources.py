"""What a local target spends serving the load: CPU, memory, disk and descriptors, per interval.

A target on this host (a broker ``bench up`` started, or any process listening on a port the
target's settings name) is found by that port (engine/host.py's ``local_ports``), with
everything it forked: RabbitMQ's beam.smp and its helpers, the PostgreSQL postmaster and its
backends, nats-server, tansu. The coordinator reads the tree with psutil at every interval
boundary and at the measurement window's edges, on the load's own timeline; nothing here runs in
a worker, so the reading never shows in the load loops' lag.

Counters are summed per process from one reading to the next: a process present at both counts
what it spent in between, one born since counts all it spent, and one that exited takes its last
partial interval with it (its parent's ``children_*`` times are not added, as they would count a
reaped backend twice). So the accumulated CPU and disk figures only ever grow, and any two
readings give a consistent difference.

Memory is the proportional set size where the kernel gives it (``/proc/PID/smaps_rollup``):
pages shared by the tree's processes (PostgreSQL's shared buffers, in every backend) are divided
among them rather than counted once per process. Where it does not, it is the resident set size.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from bench.engine.scrape import Sample, Scraper
from bench.errors import BenchError

GIVE_UP_AFTER = 2  # failed scrapes in a row, after which a remote source is not read again
RESOURCES_CSV = "resources.csv"  # in the point's directory, next to timeseries.csv
RESOURCE_COLUMNS = (
    "interval",
    "t_s",
    "phase",
    "cpu_pct",  # of one core: 150 is one and a half cores
    "cpu_user_s",
    "cpu_system_s",
    "mem_bytes",
    "disk_read_per_s",
    "disk_write_per_s",
    "fds",
    "processes",
)


@dataclass(frozen=True)
class Reading:
    """The tree at one moment: CPU and disk accumulated since the first reading, memory and
    descriptors as they are."""

    at_s: float  # time.monotonic()
    cpu_user_s: float
    cpu_system_s: float
    mem_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    fds: int | None  # None: not readable here
    processes: int

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s


@dataclass
class _Counters:
    user: float = 0.0
    system: float = 0.0
    read: int = 0
    write: int = 0


@dataclass
class _Seen:
    counters: _Counters
    created: float


def _counters(proc: psutil.Process) -> _Counters:
    times = proc.cpu_times()
    counters = _Counters(user=float(times.user), system=float(times.system))
    with contextlib.suppress(psutil.Error, AttributeError, NotImplementedError):
        io = proc.io_counters()
        counters.read, counters.write = int(io.read_bytes), int(io.write_bytes)
    return counters


def _memory(proc: psutil.Process) -> tuple[int, str]:
    with contextlib.suppress(psutil.Error, AttributeError, NotImplementedError):
        full = proc.memory_full_info()
        pss = getattr(full, "pss", None)
        if pss is not None:
            return int(pss), "pss"
    return int(proc.memory_info().rss), "rss"


class TargetProcesses:
    """The process tree of a target listening on this host, read on demand. Reading never
    raises: a tree that cannot be read gives None (and ``why`` says why)."""

    def __init__(self, ports: set[int], exclude: Callable[[], Iterable[int]]) -> None:
        self.ports = ports
        self.exclude = exclude
        self.roots: list[psutil.Process] = []
        self.names: list[str] = []
        self.mem_kind = "rss"
        self.why: str | None = None
        self._seen: dict[int, _Seen] = {}
        self._total = _Counters()
        self._last_at: float | None = None

    def find(self) -> bool:
        """Find the processes listening on the target's ports (not the harness's own)."""
        if not self.ports:
            self.why = "the target names no port on this host"
            return False
        own = {os.getpid(), *self.exclude()}
        roots: dict[int, psutil.Process] = {}
        try:
            for conn in psutil.net_connections(kind="tcp"):
                listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid
                if listening and conn.laddr.port in self.ports and conn.pid not in own:
                    with contextlib.suppress(psutil.Error):
                        roots[conn.pid] = psutil.Process(conn.pid)
        except (psutil.Error, OSError) as exc:
            self.why = f"the listening processes could not be read ({type(exc).__name__})"
            return False
        # A root that is another root's descendant is read once, as part of that tree.
        nested: set[int] = set()
        for root in roots.values():
            with contextlib.suppress(psutil.Error):
                nested.update(child.pid for child in root.children(recursive=True))
        self.roots = [proc for pid, proc in roots.items() if pid not in nested]
        if not self.roots:
            ports = ", ".join(str(p) for p in sorted(self.ports))
            self.why = f"no process on this host listens on port {ports}"
            return False
        self.why = None
        return True

    def _tree(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                for proc in [root, *root.children(recursive=True)]:
                    found[proc.pid] = proc
        return list(found.values())

    def read(self) -> Reading | None:
        if not self.ports:
            return None
        try:
            return self._read()
        except Exception as exc:  # a reading is a figure, never a failure of the run
            self.why = f"the target's processes could not be read ({type(exc).__name__}: {exc})"
            return None

    def _read(self) -> Reading:
        now = time.monotonic()
        tree = self._tree()
        if not tree and self.find():
            # The target was restarted (a fault, a supervisor): its new processes, whose every
            # CPU-second since their start is counted as the load's.
            tree = self._tree()
        if not tree:
            raise LookupError(self.why or "the target's processes exited")
        seen: dict[int, _Seen] = {}
        mem = 0
        fds: int | None = 0
        names: set[str] = set()
        kinds: set[str] = set()
        for proc in tree:
            try:
                counters = _counters(proc)
                created = proc.create_time()
                size, kind = _memory(proc)
                names.add(proc.name())
            except psutil.Error:
                continue  # exited between the listing and the reading
            mem += size
            kinds.add(kind)
            if fds is not None:
                try:
                    fds += proc.num_fds()
                except (psutil.Error, AttributeError):
                    fds = None
            before = self._seen.get(proc.pid)
            if before is not None and before.created == created:
                self._add(counters, before.counters)
            elif self._last_at is not None:
                # New to the tree since the last reading: born during the load (a backend for
                # a new connection; the kernel's start times are too coarse to tell more), so
                # everything it spent is the load's.
                self._add(counters, _Counters())
            seen[proc.pid] = _Seen(counters, created)
        self._seen = seen
        self._last_at = now
        self.names = sorted(names)
        self.mem_kind = "pss" if kinds == {"pss"} else "rss"
        total = self._total
        return Reading(
            at_s=now,
            cpu_user_s=total.user,
            cpu_system_s=total.system,
            mem_bytes=mem,
            disk_read_bytes=total.read,
            disk_write_bytes=total.write,
            fds=fds,
            processes=len(seen),
        )

    def _add(self, now: _Counters, before: _Counters) -> None:
        self._total.user += max(0.0, now.user - before.user)
        self._total.system += max(0.0, now.system - before.system)
        self._total.read += max(0, now.read - before.read)
        self._total.write += max(0, now.write - before.write)


class RemoteTarget:
    """A target read through its own metrics endpoint (engine/scrape.py): NATS monitoring,
    PostgreSQL's statistics views, a Prometheus text endpoint. Its readings carry what the
    source reports: CPU from a cumulative ``cpu_s``, or integrated from NATS's ``cpu_pct``
    gauge over each interval; memory from ``rss_bytes``; disk from ``disk_*_bytes`` or, for
    PostgreSQL, the WAL bytes written; descriptors from ``open_fds``; and the broker's own
    consumer lag (``broker_lag``) where it reports one."""

    mem_kind = "rss"

    def __init__(self, scraper: Scraper) -> None:
        self.scraper = scraper
        self.names = [scraper.source]
        self.why: str | None = None
        self.broker_lag: float | None = None
        self.reported: frozenset[str] = frozenset()  # of "cpu", "mem", "disk"
        self.values: dict[str, float] = {}  # the last sample, every name the source gave
        self.missing: tuple[str, ...] = ()  # names asked for (metrics) the source lacks
        self._cpu_s = 0.0
        self._last: Sample | None = None
        self._failures = 0

    def find(self) -> bool:
        return self.read() is not None

    def read(self) -> Reading | None:
        if self._failures >= GIVE_UP_AFTER:
            return None  # each failed scrape held the coordinator up to its timeout
        try:
            sample = self.scraper.sample()
        except BenchError as exc:
            self.why = exc.message
            self._failures += 1
            return None
        self._failures = 0
        values = sample.values
        self.values = dict(values)
        self.missing = tuple(sample.missing)
        if "cpu_s" in values:
            self._cpu_s = values["cpu_s"]
        elif "cpu_pct" in values and self._last is not None:
            self._cpu_s += values["cpu_pct"] / 100.0 * (sample.at_s - self._last.at_s)
        self._last = sample
        self.broker_lag = values.get("broker_lag")
        self.reported = frozenset(
            figure
            for figure, names in (
                ("cpu", ("cpu_s", "cpu_pct")),
                ("mem", ("rss_bytes",)),
                ("disk", ("disk_write_bytes", "wal_bytes")),
            )
            if any(name in values for name in names)
        )
        written = values.get("disk_write_bytes", values.get("wal_bytes", 0.0))
        fds = values.get("open_fds")
        return Reading(
            at_s=sample.at_s,
            cpu_user_s=self._cpu_s,
            cpu_system_s=0.0,
            mem_bytes=int(values.get("rss_bytes", 0)),
            disk_read_bytes=int(values.get("disk_read_bytes", 0)),
            disk_write_bytes=int(written),
            fds=None if fds is None else int(fds),
            processes=1,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.scraper.close()


@dataclass
class ResourceTimeline:
    """A local target's readings on the point's timeline: one ``resources.csv`` row per
    interval, and the measurement window's figures for summary.json."""

    target: TargetProcesses | RemoteTarget
    interval_s: float
    warmup_s: float
    duration_s: float
    path: Path
    rows: int = 0
    # Every reading after the window's start, its end reading included.
    window: list[Reading] = field(default_factory=list)
    window_start: Reading | None = None
    window_end: Reading | None = None
    _t0: float = 0.0
    _next: int = 0  # the next interval boundary to read at
    _last: Reading | None = None
    _file: IO[str] | None = None
    _csv: Any = None
    _values_at_start: dict[str, float] = field(default_factory=dict)

    def open(self, t0_monotonic: float) -> bool:
        """Find the target and take the first reading, at the load's start."""
        self._t0 = t0_monotonic
        if not self.target.find():
            return False
        self._last = self.target.read()
        if self._last is None:
            return False
        self._file = self.path.open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(RESOURCE_COLUMNS)
        self._next = 1
        return True

    @property
    def active(self) -> bool:
        return self._file is not None

    def poll(self, now: float) -> None:
        """Read at every boundary passed since the last poll (the coordinator polls every
        50 ms), and at the window's edges."""
        if self._file is None:
            return
        edges = (self._t0 + self.warmup_s, self._t0 + self.warmup_s + self.duration_s)
        if self.window_start is None and now >= edges[0]:
            self.window_start = self._reading(now)
            if isinstance(self.target, RemoteTarget):
                self._values_at_start = dict(self.target.values)
        boundary = self._t0 + self._next * self.interval_s
        if now >= boundary:
            reading = self._reading(now)
            if reading is not None and self._last is not None:
                self._row(self._next, reading, self._last)
                self._last = reading
            self._next = int((now - self._t0) // self.interval_s) + 1
        if self.window_end is None and self.window_start is not None and now >= edges[1]:
            self.window_end = self._reading(now)

    def _reading(self, now: float) -> Reading | None:
        reading = self.target.read()
        if reading is not None and self.window_start is not None and self.window_end is None:
            self.window.append(reading)
        return reading

    def _phase(self, k: int) -> str:
        end = k * self.interval_s
        start = end - self.interval_s
        if end <= self.warmup_s + 1e-9:
            return "warmup"
        if start < self.warmup_s + self.duration_s - 1e-9:
            return "measure"
        return "drain"

    def _row(self, k: int, now: Reading, before: Reading) -> None:
        span = max(now.at_s - before.at_s, 1e-6)
        # A remote source's figures it does not report are empty cells (not measured), never 0.
        reported = (
            self.target.reported
            if isinstance(self.target, RemoteTarget)
            else frozenset({"cpu", "mem", "disk"})
        )
        cpu = "cpu" in reported
        disk = "disk" in reported
        self._csv.writerow(
            [
                k,
                f"{now.at_s - self._t0:.3f}",
                self._phase(k),
                f"{100.0 * (now.cpu_s - before.cpu_s) / span:.1f}" if cpu else "",
                f"{now.cpu_user_s - before.cpu_user_s:.4f}" if cpu else "",
                f"{now.cpu_system_s - before.cpu_system_s:.4f}" if cpu else "",
                now.mem_bytes if "mem" in reported else "",
                round((now.disk_read_bytes - before.disk_read_bytes) / span) if disk else "",
                round((now.disk_write_bytes - before.disk_write_bytes) / span) if disk else "",
                "" if now.fds is None else now.fds,
                now.processes,
            ]
        )
        self.rows += 1

    def close(self) -> None:
        """The last reading, at the load's end: it ends the window when the load finished (or
        was interrupted) before the window's nominal end, as the last producer's last send
        can come a moment before it."""
        if self._file is None:
            return
        now = time.monotonic()
        self.poll(now)
        if self.window_start is not None and self.window_end is None:
            self.window_end = self._reading(now)
        self._file.close()
        self._file = None
        if isinstance(self.target, RemoteTarget):
            self.target.close()

    def figures(self, acked_in_window: int, payload_bytes: float) -> dict[str, Any] | None:
        """The window's figures for summary.json (None: the target was not read here)."""
        start, end = self.window_start, self.window_end
        if start is None or end is None or end.at_s <= start.at_s:
            return None
        remote = isinstance(self.target, RemoteTarget)
        figures = window_figures(
            start,
            end,
            self.window,
            acked_in_window,
            payload_bytes,
            source="remote" if remote else "local",
            processes=self.target.names,
            mem_kind=self.target.mem_kind,
        )
        if isinstance(self.target, RemoteTarget):
            # What the source does not report is not measured, never a zero.
            unreported = {
                "cpu": ("cpu_s", "cpu_user_s", "cpu_system_s", "cpu_pct", "cpu_s_per_mev"),
                "mem": ("mem_peak_bytes", "mem_mean_bytes"),
                "disk": (
                    "disk_read_bytes",
                    "disk_write_bytes",
                    "disk_write_per_event",
                    "write_amplification",
                ),
            }
            for figure, keys in unreported.items():
                if figure not in self.target.reported:
                    figures.update(dict.fromkeys(keys))
            figures["broker_lag"] = self.target.broker_lag
            # Every name the source gave, at the window's start and end (counters and gauges
            # alike: the source's own vocabulary, docs/drivers.md "Broker metrics").
            end_values = self.target.values
            figures["metrics"] = {
                name: {"start": self._values_at_start.get(name), "end": value}
                for name, value in sorted(end_values.items())
            }
            figures["metrics_missing"] = list(self.target.missing)
        return figures


def window_figures(
    start: Reading,
    end: Reading,
    readings: list[Reading],
    acked_in_window: int,
    payload_bytes: float,
    *,
    source: str,
    processes: list[str],
    mem_kind: str,
) -> dict[str, Any]:
    """CPU, memory and disk over a window, and per acknowledged event."""
    window_s = end.at_s - start.at_s
    cpu_s = end.cpu_s - start.cpu_s
    written = end.disk_write_bytes - start.disk_write_bytes
    mems = [r.mem_bytes for r in readings] or [end.mem_bytes]
    fds = [r.fds for r in readings if r.fds is not None]
    per_event = acked_in_window if acked_in_window > 0 else None
    body_bytes = acked_in_window * payload_bytes
    return {
        "source": source,
        "processes": processes,
        "window_s": round(window_s, 3),
        "cpu_s": round(cpu_s, 4),
        "cpu_user_s": round(end.cpu_user_s - start.cpu_user_s, 4),
        "cpu_system_s": round(end.cpu_system_s - start.cpu_system_s, 4),
        "cpu_pct": round(100.0 * cpu_s / window_s, 1),  # of one core
        "cpu_s_per_mev": None if per_event is None else round(cpu_s * 1e6 / per_event, 3),
        "mem_kind": mem_kind,
        "mem_peak_bytes": max(mems),
        "mem_mean_bytes": round(sum(mems) / len(mems)),
        "disk_read_bytes": end.disk_read_bytes - start.disk_read_bytes,
        "disk_write_bytes": written,
        "disk_write_per_event": None if per_event is None else round(written / per_event, 1),
        # Bytes written to disk per payload byte acknowledged (mean payload x acknowledged).
        "write_amplification": round(written / body_bytes, 3) if body_bytes > 0 else None,
        "fds_peak": max(fds) if fds else None,
        "events_in_window": acked_in_window,
    }
