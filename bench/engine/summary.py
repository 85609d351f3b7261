"""A run point's summary.json, as pure functions of what the run produced (``PointFacts``).

Nothing here talks to a process, a target or a file: the runner gathers the facts (the
workers' final reports, the merged window histograms, the shared target's checks, the fault
injector's events) and ``summarize`` turns them into the summary, its status and problems
included, with the verdict (bench/verdict.py) judged last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from bench import verdict as verdict_mod
from bench.drivers.base import Topology, capabilities_of, load_driver, runs_in_process
from bench.engine import reread
from bench.engine.consumer_apply import apply_figures
from bench.engine.eventstore import StoreTotals, load_latency_by_length
from bench.engine.host import host_bound
from bench.engine.pipeline import STAGES
from bench.engine.resources import ResourceTimeline
from bench.engine.target import StoreCheck
from bench.engine.workers import latency_kinds
from bench.faults import figures as fault_figures
from bench.metrics import audit as audit_mod
from bench.metrics.recorder import stats_us
from bench.scenario import RunPoint, Workload, slo_thresholds
from bench.store import SCHEMA_VERSION
from bench.units import format_count, format_latency_us
from bench.workload import key_namer

# Harness health thresholds for the client_bound verdict.
CPU_SATURATED_PCT = 90.0
# Sustained lateness (p90), not the p99: every interval flush blocks the loop for a few ms by
# design, which is about 1% of the 10 ms probes, so a p99 rule flags an idle harness.
LOOP_LAG_P90_LIMIT_NS = 5_000_000
SCHEDULE_MISS_FRACTION = 0.95
SCHEDULE_LAG_P99_LIMIT_US = 10_000
VIOLATIONS_KEPT = 20  # store invariant violations written out, one sentence each

# The counts every worker's final report carries, summed over workers.
SUMMED = (
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


@dataclass
class PointFacts:
    """Everything one run point produced that its summary describes."""

    point: RunPoint
    run_id: str
    dir_name: str
    topology: Topology
    workers: int  # how many were started (some may not have reported)
    finals: list[dict[str, Any]]  # the workers' final reports (bench/engine/workers.py)
    measured: dict[str, HdrHistogram]  # the measurement window, per latency kind
    loop_lag: HdrHistogram
    cpu_samples: list[float]
    status: str  # ok, failed or interrupted, as the run went
    problems: list[str]
    describe: dict[str, Any] | None  # what the target said it is
    started_at: float
    t0_ns: int = 0
    finished_ns: int = 0  # when the drain ended (0: it did not)
    stopped_ns: int = 0  # when an interrupt stopped the load (0: it ran its course)
    loss: dict[str, Any] | None = None  # a shared target's lost messages, sorted
    fault_events: list[dict[str, Any]] | None = None  # the injector's, for a shared target
    store_check: StoreCheck = field(default_factory=StoreCheck)
    # How the drain ended, and how often the broker's consumer lag extended it (runner.py).
    drain: dict[str, Any] | None = None
    host: dict[str, Any] | None = None  # the host's CPU over the window (engine/host.py)
    # A shared target's topic creation and removal times, in seconds (None: not timed here).
    topics_create_s: float | None = None
    topics_remove_s: float | None = None
    # workload.backlog: the build and drain (engine/backlog.py's figures).
    backlog: dict[str, Any] | None = None
    # A local target's readings (engine/resources.py), or why there are none.
    resources: ResourceTimeline | None = None
    resources_why: str | None = None
    ended_at: float = field(default_factory=time.time)


def _resources_why(facts: PointFacts) -> str:
    if facts.resources is not None:
        why = facts.resources.target.why
        return f"the measurement window was not read ({why or 'the run ended before it did'})"
    return facts.resources_why or "the target's processes were not read"


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def summarize(facts: PointFacts) -> dict[str, Any]:
    """The point's summary, judged."""
    point = facts.point
    w = point.workload
    meta = point.scenario.scenario
    finals = facts.finals
    status = facts.status
    problems = list(facts.problems)
    describe = facts.describe
    for final in finals:
        if final.get("describe"):
            # What the target says at the end (the memory target's injected faults, …).
            describe = {**(describe or {}), **final["describe"]}
    duration = measured_s(facts)
    totals = {key: sum(f[key] for f in finals) for key in SUMMED}
    errors: dict[str, int] = {}
    for f in finals:
        for name, count in f["errors"].items():
            errors[name] = errors.get(name, 0) + count
    producers = [p for f in finals for p in f["producers"]]
    consumers = [f["consumers"] for f in finals]
    # Fan-out: each subscription's ledgers from every worker (the first is "consumers").
    by_subscription = [consumers] + [
        [f["subscriptions"][s] for f in finals if len(f.get("subscriptions") or []) > s]
        for s in range(w.subscriptions - 1)
    ]
    audit = audit_mod.merge_subscriptions(producers, by_subscription, key_namer(w))
    if w.kind == "stream":
        audit_mod.add_projection(
            audit,
            [f["projection"] for f in finals if f.get("projection")],
            # An in-process broker lives in each worker: a producer's events, whatever their
            # key, reach only its own worker's consumers.
            by_aggregate=w.partition_key == "aggregate"
            or runs_in_process(load_driver(point.driver)),
        )
    if w.kind == "stream" and any(f.on_consumers for f in point.scenario.faults):
        # A killed consumer's uncommitted messages, owed again: redelivered when they came.
        owed = [(int(p), int(q)) for f in finals for p, q in f.get("redelivery_owed") or []]
        audit.redelivery_owed = len(owed)
        audit.redelivered = audit_mod.redelivered(consumers, owed)
        audit.broker_duplicates = max(0, audit.duplicated - audit.redelivered)
    apply = (
        apply_figures(w.apply, [f["apply"] for f in finals if f.get("apply")], audit.received)
        if w.kind == "stream" and w.apply != "none"
        else None
    )
    worker_losses = [f["loss"] for f in finals if f.get("loss")]
    loss = facts.loss or (reread.combine_losses(worker_losses) if worker_losses else None)
    fault_rows = fault_figures.summarize(
        list(point.scenario.faults),
        facts.fault_events,
        [f["timeline"] for f in finals if f.get("timeline")],
        # A pipeline's broker hop is audited once, over the run: its relays' ledgers carry no
        # intended times to split at each fault (its invariants are checked instead).
        producers if w.kind == "stream" else [],
        consumers,
        facts.t0_ns,
        None if w.closed_loop else float(w.rate),
        meta.warmup + meta.duration,
        facts.finished_ns or time.monotonic_ns(),
        consuming=w.kind in ("stream", "pipeline") and w.consumers > 0,
    )
    if finals and len(finals) < facts.workers:
        problems.append(f"only {len(finals)} of {facts.workers} workers reported results")
    kinds = latency_kinds(w)
    latency = {kind: stats_us(facts.measured[kind]).as_dict() for kind in kinds}
    for kind in kinds:
        latency[kind]["negative"] = sum(f["negatives"][kind] for f in finals)
        latency[kind]["clamped"] = sum(f["clamped"][kind] for f in finals)
    loop_lag = stats_us(facts.loop_lag)
    cpu_pct = max(facts.cpu_samples) if facts.cpu_samples else None
    bound, reasons = client_bound(w, duration, latency, totals, cpu_pct, loop_lag.p90)
    resources = None
    if facts.resources is not None:
        body = w.mean_payload_bytes()
        if w.kind == "store" and finals:
            # A store acknowledges commands, each appending one or more events: the payload
            # written per command is the run's events per committed command x the body.
            appended = merged_store_totals(finals)
            if appended.commits:
                body *= appended.events_committed / appended.commits
        resources = facts.resources.figures(totals["acked_in_window"], body)
    host = facts.host
    if host is not None and resources is not None and resources["source"] == "local":
        # One figure for the target's CPU: the resource readings' (engine/resources.py).
        host = {
            **host,
            "target_pct": resources["cpu_pct"],
            "target_processes": resources["processes"],
        }
    shared_host, shared_host_reasons = host_bound(host)
    slo = {
        key: verdict_mod.slo_entry(key, threshold_us, latency)
        for key, threshold_us in slo_thresholds(point.scenario).items()
    }
    store = (
        store_summary(point, finals, facts.store_check, duration)
        if w.kind in ("store", "pipeline")
        else None
    )
    pipeline = pipeline_summary(point, finals, latency, duration) if w.kind == "pipeline" else None
    if pipeline is not None and status != "interrupted":
        if pipeline["invariants"]["violations"]:
            problems.append(
                "pipeline invariants violated: "
                + "; ".join(pipeline["invariants"]["violations"][:3])
            )
        if facts.drain is not None:
            facts.drain["ended_by"] = (
                "all applied" if pipeline["drained"] else "drain_timeout (not all applied)"
            )
    if store is not None:
        totals["skipped"] += sum(f.get("store_skipped", 0) for f in finals)
        if not store["invariants"]["ok"] and status != "interrupted":
            # The point ran: the store broke its invariants, which its verdict fails on.
            problems.append(
                "store invariants violated: " + "; ".join(store["invariants"]["violations"][:3])
            )
    crashed = {k: n for k, n in errors.items() if k.startswith("harness:")}
    if crashed:
        # A sender or writer slot died of an exception: a harness bug, not a target's error;
        # the figures of this point cannot be trusted.
        status = "failed" if status == "ok" else status
        which = ", ".join(f"{kind[len('harness:') :]} x{n}" for kind, n in crashed.items())
        problems.append(f"harness slots crashed ({which}); see {facts.dir_name}/worker-*.log")
    if totals["skipped"]:
        problems.append(
            f"{format_count(totals['skipped'])} events scheduled in the window were never "
            f"sent: the backlog outlived drain_timeout ({meta.drain_timeout:g}s); "
            "response latency counts each at no less than the larger of drain_timeout and "
            "send_timeout"
        )
    failed_in_window = totals["failed_intended_in_window"] + totals["skipped"]
    scheduled_in_window = failed_in_window + totals["acked_intended_in_window"]
    if status == "ok" and not finals:
        # No worker reported results: there are no figures to stand behind.
        status = "failed"
        problems.append("no worker reported results")
    summary = {
        "schema_version": SCHEMA_VERSION,
        "run_id": facts.run_id,
        "point": point.index,
        "dir": facts.dir_name,
        "target": point.target,
        "driver": point.driver,
        "label": point.label,
        "params": point.params,
        "mode": (
            f"closed-loop (max), concurrency {w.concurrency}"
            if w.closed_loop
            else f"open-loop {w.schedule} {w.rate:g}/s"
        )
        # A partition key other than the aggregate is what the point is about: say so.
        + (f", partition key {w.partition_key}" if w.partition_key != "aggregate" else ""),
        "closed_loop": w.closed_loop,
        "workload": {
            "rate_per_s": "max" if w.closed_loop else w.rate,
            "schedule": w.schedule,
            "payload_bytes": w.payload_bytes
            if isinstance(w.payload_bytes, int)
            else w.payload_bytes.model_dump(),
            "aggregates": w.aggregates,
            "keys": w.keys,
            # The message body: "event" (a JSON domain event), "file" (payload_file's bytes)
            # or "random" (payload_random's share random, the rest zeros; OMB's payloads).
            "payload": (
                "file"
                if w.payload_file is not None
                else "random"
                if w.payload_random is not None
                else "event"
            ),
            "payload_random": w.payload_random,
            "producers": w.producers,
            "consumers": w.consumers,
            "topics": w.topics,
            "subscriptions": w.subscriptions,
            "workers": w.workers,
            "consumer_workers": w.consumer_workers,
            "max_in_flight": w.max_in_flight,
            "concurrency": w.concurrency,
            "partitions": w.partitions,
            "partition_key": w.partition_key,
            "exact_pacing": w.pacing_is_exact(),
            "duration_s": duration,
            "warmup_s": meta.warmup,
            "backlog_bytes": int(w.backlog) if w.backlog is not None else None,
            "backlog_drain_ratio": (
                (w.backlog_drain_ratio if w.backlog_drain_ratio is not None else 1.0)
                if w.backlog is not None
                else None
            ),
        },
        "topology": {
            "name": facts.topology.name,
            "partitions": facts.topology.partitions,
            "topics": facts.topology.topics,
            "subscriptions": facts.topology.subscriptions,
            # Creating and removing every topic, by the coordinator (a shared target only).
            "create_s": _rounded(facts.topics_create_s),
            "remove_s": _rounded(facts.topics_remove_s),
        },
        "throughput": {
            "sent_per_s": per_s(totals["sent_in_window"], duration),
            "acked_per_s": per_s(totals["acked_in_window"], duration),
            "received_per_s": per_s(totals["received_in_window"], duration),
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
        "client_bound": bound,
        "client_bound_reasons": reasons,
        # The client and a target on this host saturated its CPU (engine/host.py).
        "host_bound": shared_host,
        "host_bound_reasons": shared_host_reasons,
        "host": host,
        # What the target spent over the window: CPU, memory, disk, per event (a target on
        # this host; None with the reason otherwise).
        "resources": resources,
        "resources_why": None if resources is not None else _resources_why(facts),
        "harness": {
            "cpu_pct_max_worker": cpu_pct,
            "loop_lag_us": loop_lag.as_dict(),
            "in_flight_peak": totals["in_flight_peak"],
            # Sends held back so one producer's events reach the client in their order.
            "send_turn_waits": sum(f.get("send_turn_waits", 0) for f in finals),
            "oversize_events": totals["oversize"],
            "workers": facts.workers,
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
        "drain": facts.drain,
        "slo": slo,
        "faults": fault_rows,
        "kind": w.kind,
        "store": store,
        "pipeline": pipeline,
        # workload.apply: what the consumers' read model did (its latency is latency_us.apply).
        "apply": apply,
        # workload.backlog: build, resume and drain (its catch-up e2e is latency_us.catchup).
        "backlog": facts.backlog,
        "target_info": describe,
        "started_at": facts.started_at,
        "ended_at": facts.ended_at,
        "status": status,
        "problems": problems,
    }
    return judged(summary, point)


@dataclass
class CoordinatorRun:
    """What a point run in the coordinator process (a replay, sagas) hands its summary."""

    point: RunPoint
    run_id: str
    dir_name: str
    result: dict[str, Any] | None
    status: str
    problems: list[str]
    errors: dict[str, int]
    started_at: float


def _coordinator_summary(
    run: CoordinatorRun,
    kind: str,
    mode: str,
    workload: dict[str, Any],
    latency: dict[str, Any],
    throughput: dict[str, Any],
    judged_errors: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """The summary of a point run in the coordinator: the common fields, ``kind``'s own section
    (``result``), and its verdict. No delivery audit: that section is empty, never zeros that
    could read as a clean run. ``judged_errors``: (failed, attempted), what the error rate is
    judged on (sagas: publish attempts; (0, 0): no rate)."""
    point = run.point
    problems = list(run.problems)
    status = run.status
    if status == "ok" and run.result is None:
        status = "failed"
        problems.append(f"the {kind} reported no results")
    section = dict(run.result or {})
    described = section.pop("target_info", None)
    errors = {**run.errors}
    for name, count in (section.pop("errors", None) or {}).items():
        errors[name] = errors.get(name, 0) + count
    faults = section.pop("faults", None) or []
    # The SLOs on the point's own latency kinds (validated: a saga's, for sagas).
    slo = {
        key: verdict_mod.slo_entry(key, threshold_us, latency)
        for key, threshold_us in slo_thresholds(point.scenario).items()
    }
    summary = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "point": point.index,
        "dir": run.dir_name,
        "target": point.target,
        "driver": point.driver,
        "label": point.label,
        "params": point.params,
        "mode": mode,
        "closed_loop": False,
        "workload": workload,
        "throughput": throughput,
        "latency_us": latency,
        "audit": {},
        "errors": {
            "total": sum(errors.values()),
            "by_kind": errors,
            "failed_in_window": judged_errors[0],
            "scheduled_in_window": judged_errors[1],
            "rate": None,
            "max_rate": point.scenario.verdict.max_error_rate,
        },
        "slo": slo,
        "faults": faults,
        "kind": kind,
        kind: section if run.result is not None else None,
        "target_info": described,
        "started_at": run.started_at,
        "ended_at": time.time(),
        "status": status,
        "problems": problems,
    }
    return judged(summary, point)


def replay_summary(run: CoordinatorRun) -> dict[str, Any]:
    """A replay point's summary (engine/replay.py): what was seeded, what the reader read, how
    fast, and its verdict."""
    options = run.point.workload.replay
    load = (run.result or {}).pop("load_latency_us", None)
    mode = (
        f"replay of {options.streams:,} x {options.events_per_stream:,} events, "
        f"{options.old_fraction:.0%} old, reader {options.reader}"
        if options.measure == "replay"
        else f"{options.loads:,} loads of {options.events_per_stream:,}-event streams, "
        f"snapshots {options.snapshots}" + (", then archived" if options.archive else "")
    )
    workload = {
        "streams": options.streams,
        "events_per_stream": options.events_per_stream,
        "old_fraction": options.old_fraction,
        "reader": options.reader,
        "rewrite_batch": options.rewrite_batch,
        "measure": options.measure,
        "snapshots": options.snapshots,
        "loads": options.loads,
        "archive": options.archive,
        "duration_s": 0.0,
        "warmup_s": 0.0,
    }
    return _coordinator_summary(run, "replay", mode, workload, {"load": load} if load else {}, {})


def saga_summary(run: CoordinatorRun) -> dict[str, Any]:
    """A saga point's summary (engine/saga.py): final states, latencies, the invariants."""
    point = run.point
    options = point.workload.saga
    meta = point.scenario.scenario
    latency = (run.result or {}).pop("latency_us", None) or {}
    knobs = ", ".join(
        f"{name} {step} {value:g}"
        for name, table in (
            ("failure", options.failure),
            ("no reply", options.no_reply),
            ("compensation failure", options.compensation_failure),
        )
        for step, value in table.items()
        if value
    )
    mode = (
        f"{options.mode} of {len(options.steps)} steps at {float(point.workload.rate):g} sagas/s"
        + (f", {knobs}" if knobs else "")
    )
    workload = {
        "rate_per_s": point.workload.rate,
        "mode": options.mode,
        "steps": list(options.steps),
        "failure": dict(options.failure),
        "no_reply": dict(options.no_reply),
        "compensation_failure": dict(options.compensation_failure),
        "timeout_s": float(options.timeout),
        "retries": options.retries,
        "duration_s": meta.duration,
        "warmup_s": meta.warmup,
    }
    result = run.result or {}
    throughput = {
        "sagas_per_s": float(result.get("sagas_per_s") or 0.0),
        "messages_per_s": float(result.get("messages_per_s") or 0.0),
    }
    # The error rate: failed publish attempts (a retried publish fails once per attempt) over
    # every publish attempt, over the whole run (its warm-up and wait for the last sagas too).
    failed = sum(
        int(n) for kind, n in (result.get("errors") or {}).items() if kind.startswith("send:")
    )
    attempts = int(result.get("publish_attempts") or 0)
    return _coordinator_summary(
        run, "saga", mode, workload, latency, throughput, (failed, attempts)
    )


def judged(summary: dict[str, Any], point: RunPoint) -> dict[str, Any]:
    """The summary with its error rate and verdict, under the scenario's ``[verdict]`` rules."""
    rules = point.scenario.verdict.model_dump()
    summary["errors"]["rate"] = verdict_mod.error_rate(summary)[0]
    summary["verdict"] = verdict_mod.judge(summary, rules).as_dict()
    return summary


def measured_s(facts: PointFacts) -> float:
    """The seconds of measurement window the counts cover: the scenario's duration, or less
    when an interrupt stopped the load inside the window (0 when it stopped before it)."""
    duration = facts.point.scenario.scenario.duration
    if not facts.stopped_ns or not facts.t0_ns:
        return duration
    window_start_ns = facts.t0_ns + int(facts.point.scenario.scenario.warmup * 1e9)
    return min(duration, max(0.0, (facts.stopped_ns - window_start_ns) / 1e9))


def per_s(count: float, duration_s: float) -> float:
    """A count over the window as a rate; 0 for a window that never began."""
    return count / duration_s if duration_s > 0 else 0.0


def client_bound(
    workload: Workload,
    duration_s: float,
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
    if workload.closed_loop:
        return True, [*saturated, "closed-loop throughput is capped by the harness"]
    assert isinstance(workload.rate, float)
    expected = workload.rate * duration_s
    missed = []
    if totals["skipped"]:
        missed.append(f"{format_count(totals['skipped'])} scheduled events were never sent")
    if totals["sent_in_window"] < SCHEDULE_MISS_FRACTION * expected:
        missed.append(
            f"sent {format_count(totals['sent_in_window'])} of {format_count(expected)} "
            "scheduled events"
        )
    lag_p99 = latency["schedule_lag"]["p99"]
    if lag_p99 is not None and lag_p99 >= SCHEDULE_LAG_P99_LIMIT_US:
        missed.append(f"schedule lag p99 {format_latency_us(lag_p99)}")
    if not missed:
        return False, []
    return True, saturated + missed


def merged_store_totals(finals: list[dict[str, Any]]) -> StoreTotals:
    """The workers' store ledgers and counts as one."""
    merged = StoreTotals()
    for final in finals:
        part = final.get("store") or {}
        for name, value in part.items():
            current = getattr(merged, name)
            if isinstance(current, list):
                current.extend(value)
            else:
                setattr(merged, name, current + value)
    return merged


def _store_loads(finals: list[dict[str, Any]], column: int) -> np.ndarray:
    parts = [
        np.frombuffer(f["store_loads"][column], dtype=np.int64)
        for f in finals
        if f.get("store_loads")
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def store_summary(
    point: RunPoint, finals: list[dict[str, Any]], check: StoreCheck, duration: float
) -> dict[str, Any]:
    """The event-store part of the summary: the workers' counts and the checks, as rates over
    the ``duration`` seconds measured."""
    totals = merged_store_totals(finals)
    invariants = list(check.violations)
    not_checked = list(check.not_checked)
    for final in finals:
        invariants.extend(final.get("invariants") or [])
        not_checked.extend(
            n for n in final.get("invariants_not_checked") or [] if n not in not_checked
        )
    counters = None
    before, after = check.counters_before, check.counters_after
    if before and after:
        counters = {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], int)}
    ok_attempts = totals.commits + totals.conflicts + totals.errors
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
        "goodput_per_s": per_s(totals.commits_in_window, duration),
        "attempts_per_s": per_s(totals.attempts_in_window, duration),
        "accounting_adds_up": ok_attempts == totals.attempts,
        "snapshots_written": totals.snapshots_written,
        "load_latency_by_stream_length": load_latency_by_length(
            _store_loads(finals, 0), _store_loads(finals, 1)
        ),
        "projected": totals.projected,
        "redelivered": totals.redelivered,
        "duplicates_skipped": totals.duplicates_skipped,
        "server_counters": counters,
        # What the driver could do: an option its driver lacks did nothing (its count is 0).
        "capabilities": capabilities_of(load_driver(point.store_driver or point.driver)),
        "invariants": {
            "ok": not invariants,
            "violations": invariants[:VIOLATIONS_KEPT],
            "not_checked": not_checked,
        },
    }


def pipeline_summary(
    point: RunPoint,
    finals: list[dict[str, Any]],
    latency: dict[str, dict[str, Any]],
    duration: float,
) -> dict[str, Any]:
    """The pipeline part of the summary (engine/pipeline.py): its settings, the stages' p50
    and p99, what each side counted, and the invariants, which its verdict fails on."""
    options = point.workload.pipeline
    parts = [f["pipeline"] for f in finals if f.get("pipeline")]
    totals: dict[str, Any] = {}
    for part in parts:
        for name, value in part["totals"].items():
            if isinstance(value, list):
                totals.setdefault(name, []).extend(value)
            else:
                totals[name] = totals.get(name, 0) + value
    checks = [part["check"] for part in parts if part.get("check") is not None]
    # One worker's check per worker (each its own in-process pipeline): say whose.
    violations = [
        f"worker {index}: {v}" if len(checks) > 1 else v
        for index, check in enumerate(checks)
        for v in check.get("violations", [])
    ]
    figures: dict[str, Any] = {}
    for check in checks:
        for name, value in check.items():
            if name == "violations":
                continue
            if isinstance(value, list):
                figures.setdefault(name, []).extend(value)
            elif isinstance(value, int | float):
                figures[name] = figures.get(name, 0) + value
            else:
                figures.setdefault(name, value)
    backlog = [sample for part in parts for sample in part.get("outbox_backlog") or []]
    outbox_peak = max((s[1] for s in backlog if s[1] is not None), default=None)
    queries = int(totals.get("queries", 0))
    return {
        "store_target": point.store_target,
        "store_driver": point.store_driver,
        "broker_target": point.target,
        "relay": options.relay,
        "relays": options.relays,
        "idempotency": options.idempotency,
        "appliers": options.appliers,
        "read_model": parts[0]["read_model"] if parts else None,
        "crash": (
            {"at_s": options.crash_at, "for_s": options.crash_for}
            if options.crash_at is not None
            else None
        ),
        "stages_us": {
            stage: {"p50": latency[stage]["p50"], "p99": latency[stage]["p99"]} for stage in STAGES
        },
        "applied_per_s": per_s(
            sum(int(f.get("received_in_window") or 0) for f in finals), duration
        ),
        # Each stage's events per second over the window: committed (events, not commands),
        # published (acknowledged by the broker), consumed and applied (first applications).
        "throughput_per_s": {
            stage: per_s(
                sum(int((part.get("in_window") or {}).get(stage, 0)) for part in parts), duration
            )
            for stage in ("committed", "published", "consumed", "applied")
        },
        "totals": totals,
        "queries": {
            "count": queries,
            "stale": int(totals.get("queries_stale", 0)),
            "read_your_writes": (
                1.0 - int(totals.get("queries_stale", 0)) / queries if queries else None
            ),
        },
        "outbox_backlog": {"peak": outbox_peak, "samples": backlog},
        "drained": all(part.get("drained") for part in parts) if parts else False,
        "invariants": {
            "checked": bool(checks) and len(checks) == len(parts),
            "ok": bool(checks) and not violations,
            "violations": violations[:VIOLATIONS_KEPT],
            **figures,
        },
    }
