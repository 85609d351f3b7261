"""The coordinator of one run point: prepare, start workers, merge, drain, audit, summarise.

The coordinator runs in the ``bench`` process and never sits on the hot path. It spawns the
worker processes (``engine/workers.py``), gives them one absolute start time, and then only
reads what they send: interval histograms (merged, never their percentiles, into the ``.hlog``
files and ``timeseries.csv``), drain progress, and at the end their audit ledgers. It decides
when the drain is over, merges the audit, and writes ``summary.json``.

Phases: warm-up (discarded, by intended time) → measure → drain (until every acknowledged
message arrived, deliveries stayed quiet for ``drain_quiet``, or ``drain_timeout`` passed) →
audit.

The jobs around it live beside it: the workers' processes and pipes (``engine/pool.py``), the
interval merge (``engine/intervals.py``), a shared target's prepare, verify, re-read and
cleanup (``engine/target.py``), and the summary (``engine/summary.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.drivers.base import Topology, load_driver, runs_in_process
from bench.engine import reread
from bench.engine.backlog import BacklogPhases
from bench.engine.host import HostSampler, local_ports
from bench.engine.intervals import TIMESERIES_COLUMNS, IntervalMerger, IntervalView
from bench.engine.messages import Finish, Resume, Start, Stop
from bench.engine.pool import WorkerState, broadcast, reap, receive, spawn_local
from bench.engine.replay import run_replay
from bench.engine.resources import (
    RESOURCES_CSV,
    RemoteTarget,
    ResourceTimeline,
    TargetProcesses,
)
from bench.engine.saga import run_saga
from bench.engine.scrape import scraper_for
from bench.engine.summary import (
    CoordinatorRun,
    PointFacts,
    merged_store_totals,
    replay_summary,
    saga_summary,
    summarize,
)
from bench.engine.target import SharedTarget, StoreCheck
from bench.engine.workers import WorkerSpec
from bench.errors import BenchError, DriverError
from bench.faults.inject import FaultEvent, FaultInjector, check_faultable
from bench.metrics import audit as audit_mod
from bench.scenario import RunPoint, Workload
from bench.store import SUMMARY, atomic_write_json

__all__ = ["TIMESERIES_COLUMNS", "IntervalView", "PointRunner", "WorkerState"]

READY_TIMEOUT_S = 60.0
FINAL_TIMEOUT_S = 30.0
START_DELAY_NS = 200_000_000  # t0 is this far ahead of "start", so every worker hears it first
FINISH_MARGIN_S = 60.0  # beyond the load and drain_timeout: workers that never finish fail


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
        self.launcher = launcher or spawn_local
        self.point = point
        self.run_id = run_id
        self.dir = point_dir
        self.stop_requested = stop_requested
        self.meta = point.scenario.scenario
        self.workload = point.workload
        self.intervals = IntervalMerger(
            point_dir, self.meta, self.workload, on_interval or (lambda view: None)
        )
        self.status = "ok"
        self.problems: list[str] = []
        self.describe: dict[str, Any] | None = None
        self.t0_ns = 0
        self.finished_ns = 0  # when the drain ended and workers were told to finish
        self.stopped_ns = 0  # when an interrupt stopped the load (the window ends there)
        self.epoch_at_t0 = 0.0
        self.states: list[WorkerState] = []
        self.store_check = StoreCheck()
        self.faults = list(point.scenario.faults)
        # The faults on the point's target, and (a pipeline) on its store: each list goes to
        # the injector of its service, or to the workers for an in-process target.
        self.target_faults = [f for f in self.faults if f.on == "target" and not f.on_consumers]
        # Faults on the point's own consumers: every worker with consumers acts them out.
        self.consumer_faults = [f for f in self.faults if f.on_consumers]
        self.store_faults = [f for f in self.faults if f.on == "store"]
        self.fault_handle: Any = None  # infra.ServiceFaults of the target's service
        self.store_fault_handle: Any = None  # ... and of a pipeline's store
        self.injector: FaultInjector | None = None
        self.store_injector: FaultInjector | None = None
        self.loss: dict[str, Any] | None = None  # the lost messages sorted (engine/reread.py)
        self.shared: SharedTarget | None = None
        self.host: dict[str, Any] | None = None  # the host's CPU over the window (engine/host.py)
        # A local target's CPU, memory and disk on the load's timeline (engine/resources.py).
        self.resources: ResourceTimeline | None = None
        self.resources_why: str | None = "the target runs inside the harness's workers"
        # The drain: how it ended, and how often the broker's consumer lag kept it going.
        self.drain: dict[str, Any] = {"ended_by": None, "extended_for_lag": 0, "broker_lag": None}
        # A pipeline point's store: in each worker (the memory target), or shared.
        self.store_in_process = False
        self.shared_store: SharedTarget | None = None
        # workload.backlog: consumers held back until the backlog is built (engine/backlog.py).
        w = self.workload
        self.backlog = (
            BacklogPhases(
                w.backlog_messages(),
                w.backlog_drain_ratio if w.backlog_drain_ratio is not None else 1.0,
                w.backlog,
                w.subscriptions,
            )
            if w.kind == "stream" and w.backlog is not None
            else None
        )

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
            partition_key=self.workload.partition_key,
            subscriptions=self.workload.subscriptions,
            topics=self.workload.topics,
        )

    def _specs(self, topology: Topology, in_process: bool) -> list[WorkerSpec]:
        w = self.workload
        workers = w.workers
        consumers = w.consumers if w.kind in ("stream", "pipeline") else 0
        if w.consumer_workers:
            # Split roles: the first workers only produce, the last ones only consume.
            pw, cw = w.producer_workers, w.consumer_workers
            none: list[list[int]] = [[] for _ in range(workers)]
            producer_ids = [list(range(i, w.producers, pw)) for i in range(pw)] + none[pw:]
            consumer_ids = none[:pw] + [list(range(i, consumers, cw)) for i in range(cw)]
        else:
            producer_ids = [list(range(i, w.producers, workers)) for i in range(workers)]
            consumer_ids = [list(range(i, consumers, workers)) for i in range(workers)]
        if w.closed_loop:
            rate_per_producer = None
            slots = max(1, w.concurrency // w.producers)
        else:
            assert isinstance(w.rate, float)
            rate_per_producer = w.rate / w.producers
            slots = w.max_in_flight
        # What the workers act out: the consumer faults (every driver), or an in-process
        # target's faults (a service's are the coordinator's injector's).
        worker_faults = self.consumer_faults or (self.target_faults if in_process else [])
        specs = []
        for i in range(workers):
            local = topology
            if in_process:
                # Each worker has its own broker: its topology counts only its own clients.
                local = dataclasses.replace(
                    topology, producers=len(producer_ids[i]), consumers=len(consumer_ids[i])
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
                    faults=tuple((float(f.at), f.action, f.down_for_s) for f in worker_faults),
                    store_driver=self.point.store_driver,
                    store_config=self.point.store_config,
                    store_prepare_here=self.store_in_process,
                )
            )
        return specs

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.workload.kind in ("replay", "saga"):
            return self._run_in_coordinator(self.workload.kind)
        topology = self._topology()
        in_process = runs_in_process(load_driver(self.point.driver))
        shared = None if in_process else SharedTarget(self.point, topology)
        self.shared = shared
        store_point = pipeline_store_point(self.point)
        if store_point is not None:
            self.store_in_process = runs_in_process(load_driver(store_point.driver))
            if not self.store_in_process:
                self.shared_store = SharedTarget(
                    store_point, topology, outbox=self.workload.pipeline.relay == "outbox"
                )
        started_at = time.time()
        states: list[WorkerState] = []
        try:
            if self.store_faults and store_point is not None:
                self.store_fault_handle = check_faultable(store_point.driver)
            if self.target_faults and shared is not None:
                # Before anything runs: faults act only on a service bench up started.
                self.fault_handle = check_faultable(self.point.driver)
            if shared is not None:
                self.describe = asyncio.run(shared.prepare(self.store_check))
            if self.shared_store is not None:
                described = asyncio.run(self.shared_store.prepare(self.store_check))
                self.describe = {**(self.describe or {}), "store": described}
            states = self.launcher(self._specs(topology, in_process))
            self.states = states
            self._run_workers(states)
            verify = self.workload.kind == "store" and self.status != "interrupted"
            if verify and shared is not None:
                merged = merged_store_totals(self._finals())
                asyncio.run(shared.verify(merged, self.store_check))
            if self.shared_store is not None and self.status != "interrupted":
                merged = merged_store_totals(self._finals())
                asyncio.run(self.shared_store.verify(merged, self.store_check))
        except BenchError as exc:
            self.status = "failed"
            self.problems.append(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        finally:
            for injector in (self.injector, self.store_injector):
                if injector is None:
                    continue
                # Whatever a fault took down comes back before anything else happens.
                fault_problems = injector.stop()
                if fault_problems:
                    self.problems.extend(fault_problems)
                    if self.status == "ok":
                        self.status = "failed"
            try:
                self.intervals.close()  # a full disk raises here: the workers still go
            finally:
                reap(states)
            if shared is not None and self.status == "ok":
                # After a fault brought the target back, before cleanup deletes the topic.
                self._classify_losses(shared)
            if shared is not None and self.meta.cleanup and self.status != "failed":
                with contextlib.suppress(Exception):
                    asyncio.run(shared.cleanup())
            if self.shared_store is not None and self.meta.cleanup and self.status != "failed":
                with contextlib.suppress(Exception):
                    asyncio.run(self.shared_store.cleanup())
        summary = summarize(self._facts(topology, started_at))
        atomic_write_json(self.dir / SUMMARY, summary)
        return summary

    def _run_in_coordinator(self, kind: str) -> dict[str, Any]:
        """A replay or a saga point: run here, in the coordinator (engine/replay.py,
        engine/saga.py), with no worker processes."""
        errors: Counter[str] = Counter()
        started_at = time.time()
        result: dict[str, Any] | None = None
        run = run_replay if kind == "replay" else run_saga
        try:
            result = asyncio.run(
                run(
                    self.point,
                    self._topology().name,
                    self.stop_requested,
                    lambda name: errors.update([name]),
                )
            )
            if self.stop_requested():
                self.status = "interrupted"
            fault_problems = result.pop("problems", None) or []
            if fault_problems:
                # A fault that failed, or a target not brought back (as a stream point's).
                self.problems.extend(fault_problems)
                if self.status == "ok":
                    self.status = "failed"
        except BenchError as exc:
            self.status = "failed"
            self.problems.append(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        except TimeoutError:
            self.status = "failed"
            self.problems.append(f"{self.point.driver}: setup timed out")
        facts = CoordinatorRun(
            self.point,
            self.run_id,
            self.dir.name,
            result,
            self.status,
            self.problems,
            dict(errors),
            started_at,
        )
        summary = replay_summary(facts) if kind == "replay" else saga_summary(facts)
        atomic_write_json(self.dir / SUMMARY, summary)
        return summary

    def _finals(self) -> list[dict[str, Any]]:
        return [s.final for s in self.states if s.final is not None]

    def _facts(self, topology: Topology, started_at: float) -> PointFacts:
        events = self._fault_events()
        return PointFacts(
            point=self.point,
            run_id=self.run_id,
            dir_name=self.dir.name,
            topology=topology,
            workers=len(self.states),
            finals=self._finals(),
            measured=self.intervals.measured,
            loop_lag=self.intervals.loop_lag,
            cpu_samples=self.intervals.cpu_samples,
            status=self.status,
            problems=self.problems,
            describe=self.describe,
            started_at=started_at,
            t0_ns=self.t0_ns,
            finished_ns=self.finished_ns,
            stopped_ns=self.stopped_ns,
            loss=self.loss,
            fault_events=[dataclasses.asdict(e) for e in events] if events is not None else None,
            store_check=self.store_check,
            drain=self.drain,
            host=self.host,
            topics_create_s=self.shared.create_s if self.shared is not None else None,
            topics_remove_s=self.shared.remove_s if self.shared is not None else None,
            backlog=self._backlog_figures(),
            resources=self.resources,
            resources_why=self.resources_why,
        )

    def _backlog_figures(self) -> dict[str, Any] | None:
        if self.backlog is None:
            return None
        reports = [f["backlog"] for f in self._finals() if f.get("backlog")]
        self.backlog.workers_resumed(reports)
        for report in reports:
            if report.get("error"):
                self.problems.append(f"backlog: consumers did not start: {report['error']}")
        return self.backlog.figures()

    def _observe_backlog(self, states: list[WorkerState], load_end_ns: int, stopped: bool) -> None:
        """A backlog point: the live counts; Resume once the backlog is built, or once the
        load is over if it never was (the drain is timed either way)."""
        phases = self.backlog
        if phases is None:
            return
        now = time.monotonic_ns()
        acked = sum(s.live_acked for s in states)
        received = sum(s.live_received for s in states)
        phases.observe(now, acked, received)
        over = now >= load_end_ns or all(s.produced for s in states)
        if not phases.resumed and not stopped and (phases.built or over):
            phases.resume(now, acked, received)
            broadcast(states, Resume())

    def _fault_events(self) -> list[FaultEvent] | None:
        """The injectors' events in the scenario's fault order (None: the workers acted the
        faults out on their in-process target)."""
        if self.injector is None and self.store_injector is None:
            return None
        by_fault: dict[int, FaultEvent] = {}
        for injector, faults in (
            (self.injector, self.target_faults),
            (self.store_injector, self.store_faults),
        ):
            if injector is None:
                continue
            for fault, event in zip(faults, injector.events, strict=True):
                original = next(i for i, f in enumerate(self.faults) if f is fault)
                by_fault[original] = dataclasses.replace(event, index=original)
        return [by_fault[i] for i in sorted(by_fault)]

    def _classify_losses(self, shared: SharedTarget) -> None:
        """Sort a shared stream target's lost messages by re-reading its topic (only when
        something was lost: the re-read connects once more)."""
        if self.workload.kind != "stream" or not self.workload.consumers:
            return
        finals = self._finals()
        lost = audit_mod.lost_ids(
            [p for f in finals for p in f["producers"]], [f["consumers"] for f in finals]
        )
        total = sum(int(seqs.size) for seqs in lost.values())
        if not total:
            return
        try:
            self.loss = asyncio.run(shared.classify(lost))
        except Exception as exc:  # the run's figures stand; the losses stay unsorted
            why = exc.message if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            self.loss = reread.not_checked(total, f"not checked: {why}")

    def _open_resources(self, ports: set[int], states: list[WorkerState]) -> None:
        """Start reading a target on this host at the load's start (engine/resources.py)."""
        if self.shared is None:
            return

        def workers() -> list[int]:
            return [s.process.pid for s in states if s.process is not None and s.process.pid]

        target = TargetProcesses(ports, workers)
        source: TargetProcesses | RemoteTarget = target
        # A metrics endpoint the user named wins (a broker in a container is reached through a
        # proxy process on this host); otherwise the processes on this host, otherwise the
        # target's default metrics source, where it has one (engine/scrape.py).
        named = getattr(self.point.driver_config, "metrics_url", None) is not None
        if named or not target.find():
            try:
                scraper = scraper_for(self.point.driver, self.point.driver_config)
            except BenchError as exc:
                self.resources_why = (
                    exc.message if named else f"{target.why}; its metrics: {exc.message}"
                )
                return
            if scraper is None:
                self.resources_why = (
                    f"{target.why}, and the target names no metrics endpoint (metrics_url)"
                )
                return
            source = RemoteTarget(scraper)
        timeline = ResourceTimeline(
            source,
            self.meta.interval,
            self.meta.warmup,
            self.meta.duration,
            self.dir / RESOURCES_CSV,
        )
        if timeline.open(self.t0_ns / 1e9):
            self.resources, self.resources_why = timeline, None
        else:
            self.resources_why = source.why or "the target's processes could not be read"
            if isinstance(source, RemoteTarget):
                source.close()

    def _sample_host(self, sampler: HostSampler, window_start: int, window_end: int) -> None:
        """The host's CPU over the measurement window (engine/host.py)."""
        now = time.monotonic_ns()
        if not sampler.marked and window_start <= now < window_end:
            sampler.mark()
        elif sampler.marked and self.host is None and now >= window_end:
            self.host = sampler.result()

    def _broker_still_holds(self, missing: int) -> bool:
        """Whether the broker reports messages still on their way to the consumers (asked when
        the deliveries went quiet with ``missing`` acknowledged messages not yet received).
        A broker that cannot tell, or does not answer, ends the drain as before."""
        if self.shared is None or self.workload.kind != "stream":
            return False
        try:
            lag = asyncio.run(self.shared.consumer_lag())
        except Exception:
            lag = None
        # The broker's last answer, whether or not it extended the drain: a drain that ends
        # with messages missing and "held" 0 means the consumer group's committed offsets are
        # past them (skipped, not late); "held" None means the broker could not tell.
        self.drain["broker_lag"] = {"missing": missing, "held": lag}
        if lag is None or lag <= 0:
            return False
        self.drain["extended_for_lag"] += 1
        return True

    def _run_workers(self, states: list[WorkerState]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S + self.point.driver_config.connect_timeout
        while not all(s.ready for s in states):
            if self.stop_requested():
                self.status = "interrupted"
                return
            if time.monotonic() > deadline:
                raise DriverError(f"{self.point.target}: workers were not ready in time")
            receive(states, 0.1)
        for state in states:
            if state.described is not None:
                self.describe = {**(self.describe or {}), **state.described}
        # One absolute start time on the monotonic clock, which every process shares.
        self.t0_ns = time.monotonic_ns() + START_DELAY_NS
        self.epoch_at_t0 = time.time() + START_DELAY_NS / 1e9
        self.intervals.open(self.t0_ns, self.epoch_at_t0)
        if self.backlog is not None:
            self.backlog.start(self.t0_ns)
        # The wall-clock time of t0 too: a worker on another host translates t0 to its own
        # monotonic clock through it (bench locust).
        broadcast(states, Start(self.t0_ns, self.epoch_at_t0))
        if self.store_fault_handle is not None:
            self.store_injector = FaultInjector(
                self.store_faults,
                self.store_fault_handle,
                self.t0_ns,
                lambda: [s.process.pid for s in states if s.process.pid],
            )
            self.store_injector.start()
        if self.fault_handle is not None:
            self.injector = FaultInjector(
                self.target_faults,
                self.fault_handle,
                self.t0_ns,
                lambda: [s.process.pid for s in states if s.process.pid],
            )
            self.injector.start()
        window_start = self.t0_ns + int(self.meta.warmup * 1e9)
        window_end = window_start + int(self.meta.duration * 1e9)
        sampler = HostSampler(
            # The target's own ports: a metrics endpoint may be a separate exporter process.
            set()
            if self.shared is None
            else local_ports(self.point.driver_config.model_dump(exclude={"metrics_url"})),
            lambda: [s.process.pid for s in states if s.process is not None and s.process.pid],
        )
        self._open_resources(sampler.ports, states)
        load_s = self.meta.warmup + self.meta.duration
        ends_in_s = START_DELAY_NS / 1e9 + load_s + self.meta.drain_timeout + FINISH_MARGIN_S
        hard_deadline = time.monotonic() + ends_in_s
        produced_at: float | None = None
        last_delivered, last_change = -1, time.monotonic()
        stop_sent = False
        load_end_ns = window_end
        while True:
            receive(states, 0.05)
            self._observe_backlog(states, load_end_ns, stop_sent)
            self.intervals.emit_ready(states)
            self._sample_host(sampler, window_start, window_end)
            if self.resources is not None:
                self.resources.poll(time.monotonic())
            if self.stop_requested() and not stop_sent:
                self.status = "interrupted"
                self.stopped_ns = time.monotonic_ns()
                broadcast(states, Stop())
                stop_sent = True
                for injector in (self.injector, self.store_injector):
                    if injector is not None:
                        # A paused or killed service comes back now, not after the drain.
                        self.problems.extend(injector.stop())
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
                # Every subscription owes every acknowledged message once.
                acked = sum(s.acked for s in states) * self.workload.subscriptions
                unique = sum(s.received_unique for s in states)
                quiet = now - last_change >= self.meta.drain_quiet
                if self.backlog is not None and not self.backlog.reading:
                    # Consumers resumed at the load's end may still be joining their group:
                    # quiet before their first read is not a drain (drain_timeout still ends).
                    quiet = False
                timed_out = now - produced_at >= self.meta.drain_timeout
                waiting = unique < acked and self.workload.consumers > 0
                if (
                    quiet
                    and waiting
                    and not (stop_sent or timed_out)
                    and self._broker_still_holds(acked - unique)
                ):
                    last_change = time.monotonic()  # late, not lost: another quiet period
                    continue
                if (
                    stop_sent
                    or self.workload.consumers == 0
                    or self.workload.kind in ("store", "pipeline")
                    or unique >= acked
                    or quiet
                    or timed_out
                ):
                    if (
                        unique < acked
                        and not stop_sent
                        and self.workload.consumers
                        and self.workload.kind == "stream"
                    ):
                        reason = "drain timeout" if timed_out else "no deliveries for drain_quiet"
                        subs = self.workload.subscriptions
                        self.problems.append(
                            f"drain ended by {reason} with {acked - unique} acknowledged "
                            "messages not received"
                            + (f" (over {subs} subscriptions)" if subs > 1 else "")
                        )
                    self.drain["ended_by"] = _drain_end(
                        stop_sent, self.workload, unique >= acked, timed_out
                    )
                    break
            if time.monotonic() > hard_deadline:
                raise BenchError(f"{self.point.target}: workers did not finish in time")
        if sampler.marked and self.host is None:  # interrupted inside the window
            self.host = sampler.result()
        if self.resources is not None:
            self.resources.close()
        self.finished_ns = time.monotonic_ns()
        broadcast(states, Finish())
        deadline = time.monotonic() + FINAL_TIMEOUT_S
        while not all(s.final is not None for s in states):
            if time.monotonic() > deadline:
                raise BenchError(f"{self.point.target}: workers did not report their results")
            receive(states, 0.1)
        self.intervals.emit_ready(states, flush_all=True)


def pipeline_store_point(point: RunPoint) -> RunPoint | None:
    """A pipeline point's store as a store point of its own (target, driver, options, and
    workload.kind = "store"), for the store's shared lifecycle; None for any other point."""
    if point.workload.kind != "pipeline" or point.store_config is None:
        return None
    assert point.store_target is not None and point.store_driver is not None
    workload = point.workload.model_copy(update={"kind": "store"})
    return dataclasses.replace(
        point,
        target=point.store_target,
        driver=point.store_driver,
        driver_config=point.store_config,
        scenario=point.scenario.model_copy(update={"workload": workload}),
        store_target=None,
        store_driver=None,
        store_config=None,
    )


def _drain_end(stopped: bool, workload: Workload, all_received: bool, timed_out: bool) -> str:
    """Why the drain ended, as the summary's ``drain.ended_by`` says it."""
    if stopped:
        return "interrupted"
    if workload.kind != "stream" or workload.consumers == 0:
        return "nothing to receive"
    if all_received:
        return "all received"
    return "drain_timeout" if timed_out else "drain_quiet"
