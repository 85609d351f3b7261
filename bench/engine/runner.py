"""The coordinator of one run point: prepare, start workers, merge, drain, audit, summarise.

The coordinator runs in the ``bench`` process and never sits on the hot path. It spawns the
worker processes (``engine/workers.py``), gives them one absolute start time, and then only
reads what they send: interval histograms (merged, never their percentiles, into the ``.hlog``
files and ``timeseries.csv``), drain progress, and at the end their audit ledgers. It decides
when the drain is over, merges the audit, and writes ``summary.json``.

Phases: warm-up (discarded, by intended time) → measure → drain (until every acknowledged
message arrived, deliveries stayed quiet for ``drain_quiet``, or ``drain_timeout`` passed) →
audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import multiprocessing as mp
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from hdrh.histogram import HdrHistogram

from bench import verdict as verdict_mod
from bench.drivers.base import (
    DriverContext,
    ServerCounters,
    SharedStore,
    Topology,
    capabilities_of,
    load_driver,
    runs_in_process,
)
from bench.engine import reread
from bench.engine.messages import (
    Control,
    Failed,
    Final,
    Finish,
    Interval,
    Produced,
    Progress,
    Ready,
    Report,
    Start,
    Stop,
)
from bench.engine.store import (
    StoreTotals,
    check_store,
    load_latency_by_length,
    unchecked_invariants,
)
from bench.engine.workers import KINDS, WorkerSpec, worker_main
from bench.errors import BenchError, DriverError
from bench.faults import figures as fault_figures
from bench.faults.inject import FaultInjector, check_faultable
from bench.metrics import audit as audit_mod
from bench.metrics.hlog import HlogWriter
from bench.metrics.recorder import (
    encode,
    merge_into,
    new_histogram,
    stats_us,
    value_at_percentiles,
)
from bench.scenario import RunPoint, slo_thresholds
from bench.store import SCHEMA_VERSION, SUMMARY, atomic_write_json
from bench.units import format_count, format_latency_us
from bench.workload import key_namer

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
    # Acknowledged but not yet delivered at the interval's end (consumer backlog, all groups).
    "backlog",
)
READY_TIMEOUT_S = 60.0
REREAD_BUDGET_S = 60.0  # how long sorting the lost messages may re-read a shared target
FINAL_TIMEOUT_S = 30.0
REAP_TIMEOUT_S = 10.0  # a worker that reported its results: time to close its clients
UNFINISHED_REAP_TIMEOUT_S = 1.5  # a worker stopped before it reported: time to leave
# Harness health thresholds for the client_bound verdict.
CPU_SATURATED_PCT = 90.0
# Sustained lateness (p90), not the p99: every interval flush blocks the loop for a few ms by
# design, which is about 1% of the 10 ms probes, so a p99 rule flags an idle harness.
LOOP_LAG_P90_LIMIT_NS = 5_000_000
SCHEDULE_MISS_FRACTION = 0.95


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


class WorkerProcess(Protocol):
    """What the coordinator needs of a worker's process: a local one (multiprocessing) or a
    Locust worker's stand-in (bench/locust/cluster.py)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


@dataclass
class WorkerState:
    index: int
    process: WorkerProcess
    conn: Connection
    ready: bool = False
    produced: bool = False
    progressed: bool = False  # a drain progress report arrived after ``produced``
    final: dict[str, Any] | None = None
    acked: int = 0
    received_unique: int = 0
    delivered: int = 0
    intervals: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_interval: int = 1


class PointRunner:
    def __init__(
        self,
        point: RunPoint,
        run_id: str,
        point_dir: Path,
        stop_requested: Callable[[], bool],
        on_interval: Callable[[IntervalView], None] | None = None,
        launcher: Callable[[list[WorkerSpec]], list[WorkerState]] | None = None,
    ) -> None:
        # launcher: starts the workers of a point (default: local processes; ``bench locust``
        # hands out Locust workers instead) and returns their states.
        self.launcher = launcher
        self.point = point
        self.run_id = run_id
        self.dir = point_dir
        self.stop_requested = stop_requested
        self.on_interval = on_interval or (lambda view: None)
        self.meta = point.scenario.scenario
        self.workload = point.workload
        self.measured = {kind: new_histogram() for kind in KINDS}
        self.loop_lag = new_histogram()
        self.cpu_samples: list[float] = []
        self.errors_timeline: dict[str, int] = {}
        self.status = "ok"
        self.problems: list[str] = []
        self.describe: dict[str, Any] | None = None
        self.t0_ns = 0
        self.finished_ns = 0  # when the drain ended and workers were told to finish
        self.epoch_at_t0 = 0.0
        self.states: list[WorkerState] = []
        self.invariants: list[str] | None = None
        self.invariants_not_checked: list[str] = []
        self.server_counters_before: dict[str, int] | None = None
        self.server_counters_after: dict[str, int] | None = None
        self.faults = list(point.scenario.faults)
        self.fault_handle: Any = None  # infra.ServiceFaults of the target's service
        self.injector: FaultInjector | None = None
        self.loss: dict[str, Any] | None = None  # the lost messages sorted (engine/reread.py)
        self.lost: dict[int, np.ndarray] = {}  # producer -> lost seqs, for the re-read

    # ------------------------------------------------------------------ topology and workers
    def _topology(self) -> Topology:
        # A random token too: two runs with the same id (same scenario, same second, other
        # results directories) must never prepare, purge or read each other's topics.
        token = secrets.token_hex(3)
        raw = f"eb-{self.run_id}-{self.point.index}-{token}"
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", raw)[-200:]
        return Topology(
            name=name,
            partitions=self.workload.partitions,
            producers=self.workload.producers,
            consumers=self.workload.consumers,
            consumer_group=f"{name}-g",
        )

    def _specs(self, topology: Topology, in_process: bool) -> list[WorkerSpec]:
        w = self.workload
        workers = w.workers
        producer_ids = [list(range(i, w.producers, workers)) for i in range(workers)]
        consumers = w.consumers if w.kind == "stream" else 0
        consumer_ids = [list(range(i, consumers, workers)) for i in range(workers)]
        if w.closed_loop:
            rate_per_producer = None
            slots = max(1, w.concurrency // w.producers)
        else:
            assert isinstance(w.rate, float)
            rate_per_producer = w.rate / w.producers
            slots = w.max_in_flight
        specs = []
        for i in range(workers):
            local = topology
            if in_process:
                # Each worker has its own broker: its topology counts only its own clients.
                local = Topology(
                    name=topology.name,
                    partitions=topology.partitions,
                    producers=len(producer_ids[i]),
                    consumers=len(consumer_ids[i]),
                    consumer_group=topology.consumer_group,
                )
            specs.append(
                WorkerSpec(
                    index=i,
                    driver=self.point.driver,
                    driver_config=self.point.driver_config,
                    workload=w,
                    topology=local,
                    producer_ids=tuple(producer_ids[i]),
                    consumer_ids=tuple(consumer_ids[i]),
                    seed=self.meta.seed,
                    rate_per_producer=rate_per_producer,
                    slots_per_producer=slots,
                    warmup_ns=int(self.meta.warmup * 1e9),
                    duration_ns=int(self.meta.duration * 1e9),
                    backlog_ns=int(self.meta.drain_timeout * 1e9),
                    interval_ns=int(self.meta.interval * 1e9),
                    exact_pacing=w.pacing_is_exact(),
                    prepare_here=in_process,
                    describe=(i == 0),
                    log_path=str(self.dir / f"worker-{i}.log"),
                    timeline=bool(self.faults),
                    faults=tuple((float(f.at), f.action, f.down_for_s) for f in self.faults)
                    if in_process
                    else (),
                )
            )
        return specs

    async def _remote(self, action: str, topology: Topology) -> dict[str, Any] | None:
        """Prepare (or clean up) a shared target from the coordinator, once per point."""
        cls = load_driver(self.point.driver)
        driver = cls(self.point.driver_config, DriverContext())
        timeout = self.point.driver_config.connect_timeout
        try:
            await asyncio.wait_for(driver.connect(), timeout + 5)
            store = self.workload.kind == "store"
            if action == "prepare":
                if store:
                    await asyncio.wait_for(driver.prepare_store(topology.name), timeout + 60)
                    if isinstance(driver, ServerCounters):
                        self.server_counters_before = await driver.server_counters()
                else:
                    await asyncio.wait_for(driver.prepare(topology), timeout + 60)
                return await asyncio.wait_for(driver.describe(), timeout + 5)
            if action == "classify":
                self.loss = await reread.classify_losses(
                    driver, topology, self.lost, REREAD_BUDGET_S
                )
                return None
            if action == "verify":
                if isinstance(driver, SharedStore):
                    await driver.attach_store(topology.name)
                merged = self._merged_store_totals()
                self.invariants = await asyncio.wait_for(check_store(driver, merged), timeout + 300)
                self.invariants_not_checked = unchecked_invariants(driver)
                if isinstance(driver, ServerCounters):
                    self.server_counters_after = await driver.server_counters()
                return None
            if store:
                if isinstance(driver, SharedStore):
                    await driver.attach_store(topology.name)
                    await asyncio.wait_for(driver.drop_store(), timeout + 60)
            else:
                await asyncio.wait_for(driver.cleanup(topology), timeout + 60)
            return None
        except TimeoutError:
            raise DriverError(f"{self.point.target}: {action} timed out") from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), 10)

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        topology = self._topology()
        cls = load_driver(self.point.driver)
        in_process = runs_in_process(cls)
        started_at = time.time()
        states: list[WorkerState] = []
        try:
            if self.faults and not in_process:
                # Before anything runs: faults act only on a service bench up started.
                self.fault_handle = check_faultable(self.point.driver)
            if not in_process:
                self.describe = asyncio.run(self._remote("prepare", topology))
            states = (self.launcher or self._spawn)(self._specs(topology, in_process))
            self.states = states
            self._run_workers(states)
            if self.workload.kind == "store" and not in_process and self.status != "interrupted":
                asyncio.run(self._remote("verify", topology))
        except BenchError as exc:
            self.status = "failed"
            self.problems.append(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        finally:
            if self.injector is not None:
                # Whatever a fault took down comes back before anything else happens.
                fault_problems = self.injector.stop()
                if fault_problems:
                    self.problems.extend(fault_problems)
                    if self.status == "ok":
                        self.status = "failed"
            self._close_files()
            self._reap(states)
            if not in_process and self.status == "ok":
                # After a fault brought the target back, before cleanup deletes the topic.
                self._classify_losses(topology)
            if not in_process and self.meta.cleanup and self.status != "failed":
                with contextlib.suppress(Exception):
                    asyncio.run(self._remote("cleanup", topology))
        summary = self._judged(self._summary(states, topology, started_at))
        atomic_write_json(self.dir / SUMMARY, summary)
        return summary

    def _classify_losses(self, topology: Topology) -> None:
        """Sort a shared stream target's lost messages by re-reading its topic (only when
        something was lost: the re-read connects once more)."""
        if self.workload.kind != "stream" or not self.workload.consumers:
            return
        finals = [s.final for s in self.states if s.final is not None]
        self.lost = audit_mod.lost_ids(
            [p for f in finals for p in f["producers"]], [f["consumers"] for f in finals]
        )
        total = sum(int(seqs.size) for seqs in self.lost.values())
        if not total:
            return
        try:
            asyncio.run(self._remote("classify", topology))
        except Exception as exc:  # the run's figures stand; the losses stay unsorted
            why = exc.message if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            self.loss = reread.not_checked(total, f"not checked: {why}")

    def _merged_store_totals(self) -> StoreTotals:
        merged = StoreTotals()
        for state in self.states:
            part = (state.final or {}).get("store") or {}
            for name, value in part.items():
                current = getattr(merged, name)
                if isinstance(current, list):
                    current.extend(value)
                else:
                    setattr(merged, name, current + value)
        return merged

    def _store_summary(self, finals: list[dict[str, Any]]) -> dict[str, Any]:
        totals = self._merged_store_totals()
        duration = self.meta.duration
        invariants = list(self.invariants or [])
        not_checked = list(self.invariants_not_checked)
        for final in finals:
            invariants.extend(final.get("invariants") or [])
            not_checked.extend(
                n for n in final.get("invariants_not_checked") or [] if n not in not_checked
            )
        counters = None
        if self.server_counters_before and self.server_counters_after:
            counters = {
                k: self.server_counters_after[k] - self.server_counters_before.get(k, 0)
                for k in self.server_counters_after
                if isinstance(self.server_counters_after[k], int)
            }
        ok_attempts = totals.commits + totals.conflicts + totals.errors
        load_ns = np.concatenate(
            [
                np.frombuffer(f["store_loads"][0], dtype=np.int64)
                for f in finals
                if f.get("store_loads")
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        load_len = np.concatenate(
            [
                np.frombuffer(f["store_loads"][1], dtype=np.int64)
                for f in finals
                if f.get("store_loads")
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        return {
            "commands": totals.commands,
            "attempts": totals.attempts,
            "commits": totals.commits,
            "conflicts": totals.conflicts,
            "errors": totals.errors,
            "retries": totals.retries,
            "abandoned": totals.abandoned,
            "rejections": totals.rejections,
            "events_committed": totals.events_committed,
            "conflict_rate": totals.conflicts / totals.attempts if totals.attempts else 0.0,
            "retries_per_command": totals.retries / totals.commands if totals.commands else 0.0,
            "goodput_per_s": totals.commits_in_window / duration,
            "attempts_per_s": totals.attempts_in_window / duration,
            "accounting_adds_up": ok_attempts == totals.attempts,
            "snapshots_written": totals.snapshots_written,
            "load_latency_by_stream_length": load_latency_by_length(load_ns, load_len),
            "projected": totals.projected,
            "redelivered": totals.redelivered,
            "duplicates_skipped": totals.duplicates_skipped,
            "server_counters": counters,
            # What the driver could do: an option its driver lacks did nothing (its count is 0).
            "capabilities": capabilities_of(load_driver(self.point.driver)),
            "invariants": {
                "ok": not invariants,
                "violations": invariants[:20],
                "not_checked": not_checked,
            },
        }

    def _spawn(self, specs: list[WorkerSpec]) -> list[WorkerState]:
        ctx = mp.get_context("spawn")
        states = []
        # The kernel's parent-death signal follows the spawning thread, not the process: ask for
        # it only when that thread is the main one, which lives as long as the coordinator.
        main = threading.current_thread() is threading.main_thread()
        coordinator_pid = os.getpid() if main else 0
        for spec in specs:
            parent, child = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=worker_main,
                args=(spec, child, coordinator_pid),
                name=f"bench-worker-{spec.index}",
            )
            process.daemon = True
            process.start()
            child.close()
            states.append(WorkerState(spec.index, process, parent))
        return states

    def _broadcast(self, states: list[WorkerState], message: Control) -> None:
        for state in states:
            with contextlib.suppress(OSError, BrokenPipeError):
                state.conn.send(message)

    def _receive(self, states: list[WorkerState], timeout: float) -> None:
        """Handle whatever the workers sent within ``timeout`` seconds."""
        conns = {state.conn: state for state in states if not state.conn.closed}
        for ready in wait(list(conns), timeout=timeout):
            state = conns[ready]  # type: ignore[index]
            try:
                message = state.conn.recv()
            except (EOFError, OSError):
                state.conn.close()
                if state.final is None:
                    code = state.process.exitcode
                    raise BenchError(
                        f"worker {state.index} died"
                        + (f" (exit code {code})" if code is not None else "")
                    ) from None
                continue
            self._handle(state, message)

    def _handle(self, state: WorkerState, message: Report) -> None:
        match message:
            case Ready(described=described):
                state.ready = True
                if described is not None:
                    self.describe = {**(self.describe or {}), **described}
            case Interval(figures=figures):
                state.intervals[state.next_interval] = figures
                state.next_interval += 1
            case Produced():
                state.produced = True
            case Progress(acked=acked, received_unique=unique, delivered=delivered):
                state.acked, state.received_unique, state.delivered = acked, unique, delivered
                state.progressed = True
            case Final(results=results):
                state.final = results
            case Failed(message=text):
                raise DriverError(text)

    def _run_workers(self, states: list[WorkerState]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S + self.point.driver_config.connect_timeout
        while not all(s.ready for s in states):
            if self.stop_requested():
                self.status = "interrupted"
                return
            if time.monotonic() > deadline:
                raise DriverError(f"{self.point.target}: workers were not ready in time")
            self._receive(states, 0.1)
        # One absolute start time on the monotonic clock, which every process shares.
        self.t0_ns = time.monotonic_ns() + 200_000_000
        self.epoch_at_t0 = time.time() + 0.2
        self._open_files()
        # The wall-clock time of t0 too: a worker on another host translates t0 to its own
        # monotonic clock through it (bench locust).
        self._broadcast(states, Start(self.t0_ns, self.epoch_at_t0))
        if self.fault_handle is not None:
            self.injector = FaultInjector(
                self.faults,
                self.fault_handle,
                self.t0_ns,
                lambda: [s.process.pid for s in states if s.process.pid],
            )
            self.injector.start()
        load_s = self.meta.warmup + self.meta.duration
        hard_deadline = time.monotonic() + 0.2 + load_s + self.meta.drain_timeout + 60
        produced_at: float | None = None
        last_delivered, last_change = -1, time.monotonic()
        stop_sent = False
        while True:
            self._receive(states, 0.05)
            self._emit_ready_intervals(states)
            if self.stop_requested() and not stop_sent:
                self.status = "interrupted"
                self._broadcast(states, Stop())
                stop_sent = True
                if self.injector is not None:
                    # A paused or killed broker comes back now, not after the drain.
                    self.problems.extend(self.injector.stop())
            # Judge the drain only on counts reported after every producer finished.
            if all(s.produced and s.progressed for s in states) or (
                stop_sent and all(s.produced for s in states)
            ):
                now = time.monotonic()
                if produced_at is None:
                    produced_at = now
                delivered = sum(s.delivered for s in states)
                if delivered != last_delivered:
                    last_delivered, last_change = delivered, now
                acked = sum(s.acked for s in states)
                unique = sum(s.received_unique for s in states)
                if (
                    stop_sent
                    or self.workload.consumers == 0
                    or self.workload.kind == "store"
                    or unique >= acked
                    or now - last_change >= self.meta.drain_quiet
                    or now - produced_at >= self.meta.drain_timeout
                ):
                    if (
                        unique < acked
                        and not stop_sent
                        and self.workload.consumers
                        and self.workload.kind == "stream"
                    ):
                        reason = (
                            "drain timeout"
                            if now - produced_at >= self.meta.drain_timeout
                            else "no deliveries for drain_quiet"
                        )
                        self.problems.append(
                            f"drain ended by {reason} with {acked - unique} acknowledged "
                            "messages not received"
                        )
                    break
            if time.monotonic() > hard_deadline:
                raise BenchError(f"{self.point.target}: workers did not finish in time")
        self.finished_ns = time.monotonic_ns()
        self._broadcast(states, Finish())
        deadline = time.monotonic() + FINAL_TIMEOUT_S
        while not all(s.final is not None for s in states):
            if time.monotonic() > deadline:
                raise BenchError(f"{self.point.target}: workers did not report their results")
            self._receive(states, 0.1)
        self._emit_ready_intervals(states, flush_all=True)

    def _reap(self, states: list[WorkerState]) -> None:
        """Let the workers exit, and end those that do not in time.

        A worker that reported its results is closing its clients: it gets ``REAP_TIMEOUT_S``.
        One that did not (an interrupt or an error came first, perhaps before the start) is told
        to stop and finish, and gets ``UNFINISHED_REAP_TIMEOUT_S``: nothing it holds is wanted.
        """
        unfinished = [s for s in states if s.final is None]
        self._broadcast(unfinished, Stop())
        self._broadcast(unfinished, Finish())
        now = time.monotonic()
        for state in states:
            budget = REAP_TIMEOUT_S if state.final is not None else UNFINISHED_REAP_TIMEOUT_S
            state.process.join(timeout=max(0.0, now + budget - time.monotonic()))
        for state in states:
            if state.process.is_alive():
                state.process.terminate()
                state.process.join(timeout=5)
            if state.process.is_alive():
                state.process.kill()
                state.process.join(timeout=5)
            with contextlib.suppress(Exception):
                state.conn.close()

    # ------------------------------------------------------------------ intervals
    def _open_files(self) -> None:
        self.hlogs = {
            kind: HlogWriter(self.dir / f"{kind}.hlog", self.epoch_at_t0, kind)
            for kind in (*KINDS, "loop_lag")
        }
        self.timeseries_file = (self.dir / "timeseries.csv").open("w", newline="")
        self.timeseries = csv.writer(self.timeseries_file)
        self.timeseries.writerow(TIMESERIES_COLUMNS)
        self._emitted = 0
        self._last_end_s = 0.0
        self._acked_total = 0
        self._delivered_total = 0

    def _close_files(self) -> None:
        hlogs = getattr(self, "hlogs", {})
        for kind, writer in hlogs.items():
            # The window's histogram (by intended time) as a tagged line: the one population
            # that summary.json, every table and every plot of this point describe.
            hist = self.loop_lag if kind == "loop_lag" else self.measured[kind]
            writer.write_window(
                self.meta.warmup, self.meta.duration, encode(hist), hist.get_max_value()
            )
            writer.close()
        if getattr(self, "timeseries_file", None) is not None:
            self.timeseries_file.close()

    def _emit_ready_intervals(self, states: list[WorkerState], flush_all: bool = False) -> None:
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

    def _emit(self, k: int, payloads: list[dict[str, Any]]) -> None:
        interval_s = self.meta.interval
        end_s = max((p["end_ns"] - self.t0_ns) / 1e9 for p in payloads)
        start_s = self._last_end_s
        length_s = max(end_s - start_s, 1e-6)
        self._last_end_s = end_s
        merged: dict[str, HdrHistogram] = {}
        for kind in (*KINDS, "loop_lag"):
            hist = new_histogram()
            for p in payloads:
                merge_into(hist, p["hist"][kind] if kind != "loop_lag" else p["loop_lag"])
            merged[kind] = hist
            self.hlogs[kind].write(start_s, length_s, encode(hist), hist.get_max_value())
        for p in payloads:
            for kind in KINDS:
                merge_into(self.measured[kind], p["measured"][kind])
            merge_into(self.loop_lag, p["loop_lag_measured"])
        # Phases from the nominal interval boundaries: a worker flushes a little after them.
        nominal_end = k * interval_s
        nominal_start = nominal_end - interval_s
        warmup_s = self.meta.warmup
        if nominal_end <= warmup_s + 1e-9:
            phase = "warmup"
        elif nominal_start < warmup_s + self.meta.duration - 1e-9:
            phase = "measure"
        else:
            phase = "drain"
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
        backlog = max(0, self._acked_total - self._delivered_total) if consuming else ""
        self.timeseries.writerow(
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
                _r(merged["e2e"].get_max_value() / 1e3 if merged["e2e"].total_count else None),
                _r(merged["loop_lag"].get_max_value() / 1e3),
                round(cpu, 1),
                backlog,
            ]
        )
        self.timeseries_file.flush()
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

    # ------------------------------------------------------------------ summary
    def _summary(
        self, states: list[WorkerState], topology: Topology, started_at: float
    ) -> dict[str, Any]:
        point = self.point
        w = self.workload
        finals = [s.final for s in states if s.final is not None]
        for final in finals:
            if final.get("describe"):
                # What the target says at the end (the memory target's injected faults, …).
                self.describe = {**(self.describe or {}), **final["describe"]}
        duration = self.meta.duration
        totals = {
            key: sum(f[key] for f in finals)
            for key in (
                "sent",
                "acked",
                "failed",
                "delivered",
                "sent_in_window",
                "acked_in_window",
                "received_in_window",
                "in_flight_peak",
                "oversize",
                "skipped",
                "acked_intended_in_window",
                "failed_intended_in_window",
            )
        }
        errors: dict[str, int] = {}
        for f in finals:
            for name, count in f["errors"].items():
                errors[name] = errors.get(name, 0) + count
        audit = audit_mod.merge(
            [p for f in finals for p in f["producers"]],
            [f["consumers"] for f in finals],
            key_namer(w),
        )
        worker_losses = [f["loss"] for f in finals if f.get("loss")]
        loss = self.loss or (reread.combine_losses(worker_losses) if worker_losses else None)
        fault_rows = fault_figures.summarize(
            self.faults,
            [dataclasses.asdict(e) for e in self.injector.events] if self.injector else None,
            [f["timeline"] for f in finals if f.get("timeline")],
            [p for f in finals for p in f["producers"]],
            [f["consumers"] for f in finals],
            self.t0_ns,
            None if w.closed_loop else float(w.rate),
            self.meta.warmup + self.meta.duration,
            self.finished_ns or time.monotonic_ns(),
            consuming=w.kind == "stream" and w.consumers > 0,
        )
        if finals and len(finals) < len(states):
            self.problems.append(f"only {len(finals)} of {len(states)} workers reported results")
        latency = {kind: stats_us(self.measured[kind]).as_dict() for kind in KINDS}
        negatives = {k: sum(f["negatives"][k] for f in finals) for k in KINDS}
        clamped = {k: sum(f["clamped"][k] for f in finals) for k in KINDS}
        for kind in KINDS:
            latency[kind]["negative"] = negatives[kind]
            latency[kind]["clamped"] = clamped[kind]
        loop_lag = stats_us(self.loop_lag)
        cpu_pct = max(self.cpu_samples) if self.cpu_samples else None
        client_bound, reasons = self._client_bound(latency, totals, cpu_pct, loop_lag.p90)
        slo = {
            key: verdict_mod.slo_entry(key, threshold_us, latency)
            for key, threshold_us in slo_thresholds(point.scenario).items()
        }
        store_summary = self._store_summary(finals) if w.kind == "store" else None
        if store_summary is not None:
            totals["skipped"] += sum(f.get("store_skipped", 0) for f in finals)
            if not store_summary["invariants"]["ok"] and self.status != "interrupted":
                # The point ran: the store broke its invariants, which its verdict fails on.
                self.problems.append(
                    "store invariants violated: "
                    + "; ".join(store_summary["invariants"]["violations"][:3])
                )
        crashed = {k: n for k, n in errors.items() if k.startswith("harness:")}
        if crashed:
            # A sender or writer slot died of an exception: a harness bug, not a target's error;
            # the figures of this point cannot be trusted.
            self.status = "failed" if self.status == "ok" else self.status
            kinds = ", ".join(f"{kind[len('harness:') :]} x{n}" for kind, n in crashed.items())
            self.problems.append(
                f"harness slots crashed ({kinds}); see {self.dir.name}/worker-*.log"
            )
        if totals["skipped"]:
            self.problems.append(
                f"{format_count(totals['skipped'])} events scheduled in the window were never "
                f"sent: the backlog outlived drain_timeout ({self.meta.drain_timeout:g}s); "
                "response latency counts each at no less than the larger of drain_timeout and "
                "send_timeout"
            )
        failed_in_window = totals["failed_intended_in_window"] + totals["skipped"]
        scheduled_in_window = failed_in_window + totals["acked_intended_in_window"]
        if self.status == "ok" and not finals:
            # No worker reported results: there are no figures to stand behind.
            self.status = "failed"
            self.problems.append("no worker reported results")
        rate = "max" if w.closed_loop else w.rate
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "point": point.index,
            "dir": self.dir.name,
            "target": point.target,
            "driver": point.driver,
            "label": point.label,
            "params": point.params,
            "mode": (
                f"closed-loop (max), concurrency {w.concurrency}"
                if w.closed_loop
                else f"open-loop {w.schedule} {w.rate:g}/s"
            ),
            "closed_loop": w.closed_loop,
            "workload": {
                "rate_per_s": rate,
                "schedule": w.schedule,
                "payload_bytes": w.payload_bytes
                if isinstance(w.payload_bytes, int)
                else w.payload_bytes.model_dump(),
                "aggregates": w.aggregates,
                "keys": w.keys,
                "producers": w.producers,
                "consumers": w.consumers,
                "workers": w.workers,
                "max_in_flight": w.max_in_flight,
                "concurrency": w.concurrency,
                "partitions": w.partitions,
                "exact_pacing": w.pacing_is_exact(),
                "duration_s": duration,
                "warmup_s": self.meta.warmup,
            },
            "topology": {"name": topology.name, "partitions": topology.partitions},
            "throughput": {
                "sent_per_s": totals["sent_in_window"] / duration,
                "acked_per_s": totals["acked_in_window"] / duration,
                "received_per_s": totals["received_in_window"] / duration,
                "skipped": totals["skipped"],
            },
            "latency_us": latency,
            "audit": {**audit.as_dict(), "loss": loss},
            "errors": {
                "total": sum(errors.values()),
                "by_kind": errors,
                # By intended time: failed and skipped events over every event scheduled in the
                # window (a store's rate is of its commands: bench/verdict.error_rate).
                "failed_in_window": failed_in_window,
                "scheduled_in_window": scheduled_in_window,
                "rate": None,
                "max_rate": point.scenario.verdict.max_error_rate,
            },
            "client_bound": client_bound,
            "client_bound_reasons": reasons,
            "harness": {
                "cpu_pct_max_worker": cpu_pct,
                "loop_lag_us": loop_lag.as_dict(),
                "in_flight_peak": totals["in_flight_peak"],
                # Sends held back so one producer's events reach the client in their order.
                "send_turn_waits": sum(f.get("send_turn_waits", 0) for f in finals),
                "oversize_events": totals["oversize"],
                "workers": len(states),
                # What each worker did (a Locust worker each, under bench locust): the run's
                # counts are these summed.
                "per_worker": [
                    {
                        "index": i,
                        "sent": f["sent"],
                        "acked": f["acked"],
                        "failed": f["failed"],
                        "delivered": f["delivered"],
                        "sent_in_window": f["sent_in_window"],
                    }
                    for i, f in enumerate(finals)
                ],
            },
            "slo": slo,
            "faults": fault_rows,
            "kind": w.kind,
            "store": store_summary,
            "target_info": self.describe,
            "started_at": started_at,
            "ended_at": time.time(),
            "status": self.status,
            "problems": self.problems,
        }

    def _judged(self, summary: dict[str, Any]) -> dict[str, Any]:
        rules = self.point.scenario.verdict.model_dump()
        summary["errors"]["rate"] = verdict_mod.error_rate(summary)[0]
        summary["verdict"] = verdict_mod.judge(summary, rules).as_dict()
        return summary

    def _client_bound(
        self,
        latency: dict[str, dict[str, Any]],
        totals: dict[str, int],
        cpu_pct: float | None,
        loop_lag_p90_us: float | None,
    ) -> tuple[bool, list[str]]:
        """Was the harness, rather than the target, the limit?

        The harness is saturated when a worker used a whole core or its event loop woke late;
        that only matters when it also failed to keep the schedule (or, closed loop, always:
        a saturated harness caps the throughput it reports).
        """
        saturated = []
        if cpu_pct is not None and cpu_pct >= CPU_SATURATED_PCT:
            saturated.append(f"a worker used {cpu_pct:.0f}% of a core")
        if loop_lag_p90_us is not None and loop_lag_p90_us * 1e3 >= LOOP_LAG_P90_LIMIT_NS:
            saturated.append(f"event-loop lag p90 {format_latency_us(loop_lag_p90_us)}")
        if not saturated:
            return False, []
        w = self.workload
        if w.closed_loop:
            return True, [*saturated, "closed-loop throughput is capped by the harness"]
        assert isinstance(w.rate, float)
        expected = w.rate * self.meta.duration
        missed = []
        if totals["skipped"]:
            missed.append(f"{format_count(totals['skipped'])} scheduled events were never sent")
        if totals["sent_in_window"] < SCHEDULE_MISS_FRACTION * expected:
            missed.append(
                f"sent {format_count(totals['sent_in_window'])} of {format_count(expected)} "
                "scheduled events"
            )
        lag_p99 = latency["schedule_lag"]["p99"]
        if lag_p99 is not None and lag_p99 >= 10_000:
            missed.append(f"schedule lag p99 {format_latency_us(lag_p99)}")
        if not missed:
            return False, []
        return True, saturated + missed


def _r(value: float | None) -> float | str:
    return "" if value is None else round(value, 1)
