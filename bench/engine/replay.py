"""A replay point (``workload.kind = "replay"``): a seeded history read back by the current code.

Issue 18's schema-evolution failure. The store is seeded in bulk with ``replay.streams`` streams
of ``replay.events_per_stream`` order events, the first ``replay.old_fraction`` of each written
by older releases of the schema (``bench/schema_evolution.py``). Then every stream is loaded
and folded into the v3 order view, in stream order, by the reader ``replay.reader`` names:

* ``strict``: the projection stops at the first event it cannot read, as a projection that
  meets a poison event does; the point names that event and counts what was left unread;
* ``upcast``: the upcaster chain runs on every old event as it is read;
* ``upcast_and_rewrite``: a migration first (each stream loaded, upcast, folded, and its old
  events stored back as the current version, one transaction per ``rewrite_batch`` streams),
  then the strict reader replays the migrated store, and every stream must fold to what it
  folded to before (the meaning of the history is unchanged).

Measured: the seed rate; per stream, the load latency (read, upcast, fold: the ``load``
histogram); the replay rate (events/s); the upcast cost per upcast event (the upcasters' own
time, timed around each chain); the migration's rate. This runs in the coordinator process:
there is no load to schedule, and one reader is what a rebuild of a projection is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.drivers.base import (
    DriverContext,
    HistoryStore,
    SharedStore,
    StoredEvent,
    as_store,
    load_driver,
)
from bench.errors import DriverError
from bench.metrics.recorder import new_histogram, record_values, stats_us
from bench.scenario import RunPoint
from bench.schema_evolution import (
    EVOLVED,
    Unreadable,
    current_version,
    decode,
    fold,
    history,
    new_view,
    read_strict,
    rewritten,
    schema_version,
    upcast,
)

SEED_BATCH_EVENTS = 20_000  # events per seed_history call
SAMPLES_KEPT = 5
WARMUP_LOADS = 50  # untimed loads before each timed series


@dataclass
class ReplayFigures:
    """What one replay pass read, and how fast."""

    events_read: int = 0
    streams_read: int = 0
    upcast_events: int = 0
    upcast_ns: int = 0
    seconds: float = 0.0
    first_unreadable: dict[str, Any] | None = None
    load_ns: list[int] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self, total_events: int) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "streams_read": self.streams_read,
            "unread": total_events - self.events_read,
            "seconds": self.seconds,
            "events_per_s": self.events_read / self.seconds if self.seconds > 0 else 0.0,
            "upcast_events": self.upcast_events,
            "upcast_ns_per_event": (
                self.upcast_ns / self.upcast_events if self.upcast_events else None
            ),
            "first_unreadable": self.first_unreadable,
        }


async def _read_stream(
    events: list[StoredEvent], mode: str, figures: ReplayFigures, position: int
) -> dict[str, Any] | None:
    """Fold one stream; None when the strict reader met an event it cannot read (recorded)."""
    view = new_view()
    perf = time.perf_counter_ns
    for event in events:
        if mode == "strict":
            try:
                data = read_strict(event)
            except Unreadable as exc:
                figures.first_unreadable = {
                    "event_type": event.event_type,
                    "schema_version": exc.version,
                    "reader_expects": current_version(event.event_type),
                    "aggregate_id": event.aggregate_id,
                    "version": event.version,
                    "event_id": event.event_id,
                    "position": position + 1,  # 1-based, in replay order
                    "why": exc.why,
                }
                return None
        else:
            version = schema_version(event)
            data = decode(event)
            if version < current_version(event.event_type):
                started = perf()
                data = upcast(event.event_type, version, data)
                figures.upcast_ns += perf() - started
                figures.upcast_events += 1
        fold(view, event.event_type, data)
        position += 1
        figures.events_read += 1
    return view


async def replay(
    store: Any, aggregates: list[str], mode: str, stop: Any, keep_views: bool = False
) -> ReplayFigures:
    """Load and fold every stream in order, with ``mode``'s reader (``strict`` or ``upcast``)."""
    figures = ReplayFigures()
    started = time.perf_counter()
    for aggregate in aggregates:
        if stop():
            break
        t0 = time.perf_counter_ns()
        events = await store.load(aggregate)
        view = await _read_stream(events, mode, figures, figures.events_read)
        if view is None:
            break  # the projection stopped at a poison event
        figures.load_ns.append(time.perf_counter_ns() - t0)
        figures.streams_read += 1
        if keep_views:
            figures.views[aggregate] = view
    figures.seconds = time.perf_counter() - started
    return figures


async def migrate(
    store: Any, aggregates: list[str], batch_streams: int, stop: Any
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Upcast every stream once and store its old events as the current version; the views
    the upcasting reader folded (the meaning before) with the migration's figures."""
    figures = ReplayFigures()
    views: dict[str, dict[str, Any]] = {}
    pending: list[StoredEvent] = []
    rewritten_count = transactions = 0
    started = time.perf_counter()

    async def flush() -> None:
        nonlocal pending, rewritten_count, transactions
        if pending:
            await store.rewrite_events(pending)
            rewritten_count += len(pending)
            transactions += 1
            pending = []

    for index, aggregate in enumerate(aggregates, start=1):
        if stop():
            break
        events = await store.load(aggregate)
        view = new_view()
        for event in events:
            version = schema_version(event)
            data = decode(event)
            if version < current_version(event.event_type):
                t0 = time.perf_counter_ns()
                data = upcast(event.event_type, version, data)
                figures.upcast_ns += time.perf_counter_ns() - t0
                figures.upcast_events += 1
                pending.append(rewritten(event, data))
            fold(view, event.event_type, data)
            figures.events_read += 1
        views[aggregate] = view
        figures.streams_read += 1
        if index % batch_streams == 0:
            await flush()
    await flush()
    seconds = time.perf_counter() - started
    out = {
        "events_scanned": figures.events_read,
        "streams": figures.streams_read,
        "rewritten": rewritten_count,
        "transactions": transactions,
        "seconds": seconds,
        "events_per_s": figures.events_read / seconds if seconds > 0 else 0.0,
        "rewritten_per_s": rewritten_count / seconds if seconds > 0 else 0.0,
        "upcast_ns_per_event": (
            figures.upcast_ns / figures.upcast_events if figures.upcast_events else None
        ),
    }
    return out, views


def _differences(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> tuple[int, list[dict[str, Any]]]:
    changed = [a for a in before if after.get(a) != before[a]]
    samples = [
        {"aggregate_id": a, "before": before[a], "after": after.get(a)}
        for a in changed[:SAMPLES_KEPT]
    ]
    return len(changed), samples


def _snapshot_version(
    length: int, interval: int, behind: int, index: int = 0, streams: int = 1
) -> int:
    """The version stream ``index`` of ``streams`` has its snapshot at (0: none).

    A store that snapshots every ``interval`` events leaves 0 to interval-1 events after the
    last snapshot, depending on where each stream is in its interval: the streams are spread
    evenly over it (stream i has ``i * interval // streams`` events after its snapshot), so
    the loads see the tails a live store's do, not only a stream that has just been
    snapshotted. A stale snapshot is ``behind`` intervals older than that. No snapshot falls
    below version ``interval``: a store that takes one every N events has none before N."""
    if not interval:
        return 0
    tail = (index * interval // max(1, streams)) % interval
    version = length - tail - behind * interval
    return version if version >= interval else 0


def _upcast_read(event: StoredEvent) -> dict[str, Any]:
    version = schema_version(event)
    data = decode(event)
    if version < current_version(event.event_type):
        data = upcast(event.event_type, version, data)
    return data


async def _load_once(store: Any, aggregate: str, snapshots: bool) -> tuple[dict[str, Any], int]:
    """An aggregate as a command handler loads it: read (through its snapshot) and fold; the
    view and how many events were folded."""
    if snapshots:
        state, _, tail = await store.load_snapshot_tail(aggregate)
        view = dict(state) if state is not None else new_view()
    else:
        tail = await store.load(aggregate)
        view = new_view()
    for event in tail:
        fold(view, event.event_type, _upcast_read(event))
    return view, len(tail)


async def _timed_loads(
    store: Any, aggregates: list[str], count: int, snapshots: bool, stop: Any
) -> tuple[list[int], int]:
    """``count`` loads round the aggregates; their durations (ns) and the events folded."""
    durations: list[int] = []
    folded = 0
    perf = time.perf_counter_ns
    for i in range(count):
        if stop():
            break
        started = perf()
        _, n = await _load_once(store, aggregates[i % len(aggregates)], snapshots)
        durations.append(perf() - started)
        folded += n
    return durations, folded


def _stats(durations: list[int]) -> dict[str, Any]:
    hist = new_histogram()
    if durations:
        record_values(hist, np.asarray(durations, dtype=np.int64))
    return stats_us(hist).as_dict()


async def measure_loads(
    store: Any,
    aggregates: list[str],
    snapshots: list[tuple[str, int, dict[str, Any]]],
    reference: dict[str, dict[str, Any]],
    options: Any,
    stop: Any,
) -> tuple[dict[str, Any], list[int]]:
    """Snapshots written, timed loads through them, the snapshot check, and (``archive``)
    the same after moving what the snapshots cover out of the live table."""
    interval, behind = options.snapshot_policy()
    use = interval > 0
    started = time.perf_counter()
    if snapshots:
        await store.seed_snapshots(snapshots)
    snapshot_s = time.perf_counter() - started
    # Warm-up: connections, prepared statements and caches settle before anything is timed.
    await _timed_loads(store, aggregates, min(WARMUP_LOADS, options.loads), use, stop)
    durations, folded = await _timed_loads(store, aggregates, options.loads, use, stop)
    # The check: through the snapshot, and a full replay, both fold to what the history does.
    mismatched: list[dict[str, Any]] = []
    for aggregate, expected in reference.items():
        via, _ = await _load_once(store, aggregate, use)
        full, _ = await _load_once(store, aggregate, False)
        if via != expected or full != expected:
            mismatched.append(
                {
                    "aggregate_id": aggregate,
                    "expected": expected,
                    "snapshot_and_tail": via,
                    "full_replay": full,
                }
            )
    out: dict[str, Any] = {
        "policy": options.snapshots,
        "interval": interval,
        "intervals_behind": behind,
        "stream_length": options.events_per_stream,
        "loads": len(durations),
        "events_folded_per_load": folded / len(durations) if durations else 0.0,
        "snapshots_written": len(snapshots),
        "snapshot_write_seconds": snapshot_s,
        "check": {
            "sampled": len(reference),
            "mismatched": len(mismatched),
            "samples": mismatched[:SAMPLES_KEPT],
        },
        "archive": None,
    }
    if options.archive and not stop():
        before = await store.table_bytes()  # compacted first on PostgreSQL (VACUUM FULL)
        started = time.perf_counter()
        moved = await store.archive_before_snapshots()
        archive_s = time.perf_counter() - started
        after = await store.table_bytes()
        await _timed_loads(store, aggregates, min(WARMUP_LOADS, options.loads), use, stop)
        archived, folded = await _timed_loads(store, aggregates, options.loads, use, stop)
        wrong: list[dict[str, Any]] = []
        for aggregate, expected in reference.items():
            events = [*await store.load_archived(aggregate), *await store.load(aggregate)]
            view = new_view()
            for event in events:
                fold(view, event.event_type, _upcast_read(event))
            if view != expected:
                wrong.append(
                    {"aggregate_id": aggregate, "expected": expected, "archive_and_live": view}
                )
        out["archive"] = {
            "moved": moved,
            "seconds": archive_s,
            "live_bytes_before": before["live"],
            "live_bytes_after": after["live"],
            "archive_bytes": after["archive"],
            "load_latency_us": _stats(archived),
            "events_folded_per_load": folded / len(archived) if archived else 0.0,
            "check": {
                "sampled": len(reference),
                "mismatched": len(wrong),
                "samples": wrong[:SAMPLES_KEPT],
            },
        }
    return out, durations


async def run_replay(
    point: RunPoint, namespace: str, stop: Any, count_error: Any
) -> dict[str, Any]:
    """Seed, then read back as ``replay.reader`` says; the point's ``replay`` figures."""
    options = point.workload.replay
    driver_cls = load_driver(point.driver)
    driver = driver_cls(point.driver_config, DriverContext(count_error=count_error))
    await asyncio.wait_for(driver.connect(), point.driver_config.connect_timeout + 5)
    try:
        store = as_store(driver)
        if not isinstance(store, HistoryStore):
            raise DriverError(
                f"{point.driver}: cannot be seeded with a history (no HistoryStore): "
                "a replay needs seed_history and rewrite_events"
            )
        if isinstance(store, SharedStore):
            await store.prepare_store(namespace)
        else:
            await store.prepare_store()
        described = await driver.describe()
        # Seed: whole streams, in batches. A load measurement also folds each stream as it
        # goes: its snapshot at the policy's version, and the reference view of the sample.
        interval, behind = options.snapshot_policy()
        snapshots: list[tuple[str, int, dict[str, Any]]] = []
        reference: dict[str, dict[str, Any]] = {}
        # The checked sample, spread over the streams (and so over the snapshot interval).
        count = min(options.check_sample, options.streams)
        sampled = {k * options.streams // count for k in range(count)}
        aggregates: list[str] = []
        counts = {"events": 0, "evolved": 0, "old": 0}
        batch: list[StoredEvent] = []
        seed_started = time.perf_counter()
        for stream in history(
            options.streams,
            options.events_per_stream,
            options.old_fraction,
            point.scenario.scenario.seed,
            point.workload.aggregate_type,
        ):
            aggregates.append(stream[0].aggregate_id)
            if options.measure == "load":
                at = _snapshot_version(
                    len(stream), interval, behind, len(aggregates) - 1, options.streams
                )
                view = new_view()
                for event in stream:
                    fold(view, event.event_type, _upcast_read(event))
                    if event.version == at:
                        snapshots.append((event.aggregate_id, at, dict(view)))
                if (len(aggregates) - 1) in sampled:
                    reference[stream[0].aggregate_id] = view
            for event in stream:
                counts["events"] += 1
                if event.event_type in EVOLVED:
                    counts["evolved"] += 1
                    if schema_version(event) < current_version(event.event_type):
                        counts["old"] += 1
            batch.extend(stream)
            if len(batch) >= SEED_BATCH_EVENTS:
                await store.seed_history(batch)
                batch = []
        if batch:
            await store.seed_history(batch)
        seed_s = time.perf_counter() - seed_started
        result: dict[str, Any] = {
            "reader": options.reader,
            "streams": options.streams,
            "events_per_stream": options.events_per_stream,
            "events": counts["events"],
            "old_events": counts["old"],
            # The measured share of old events (options.old_fraction is of each stream's
            # positions, and only two event types have older versions).
            "old_share": counts["old"] / counts["events"] if counts["events"] else 0.0,
            "seed_seconds": seed_s,
            "seed_events_per_s": counts["events"] / seed_s if seed_s > 0 else 0.0,
            "migration": None,
            "meaning_changed": None,
            "target_info": described,
        }
        if options.measure == "load":
            result["load"], load_ns = await measure_loads(
                store, aggregates, snapshots, reference, options, stop
            )
            result["load_latency_us"] = _stats(load_ns)
            return result
        if options.reader == "upcast_and_rewrite":
            migration, before = await migrate(store, aggregates, options.rewrite_batch, stop)
            figures = await replay(store, aggregates, "strict", stop, keep_views=True)
            changed, samples = _differences(before, figures.views)
            migration["streams_changed_meaning"] = changed
            migration["changed_samples"] = samples
            result["migration"] = migration
            result["meaning_changed"] = changed
        else:
            figures = await replay(store, aggregates, options.reader, stop)
        result["replay"] = figures.as_dict(counts["events"])
        result["load_latency_us"] = _stats(figures.load_ns)
        return result
    finally:
        try:
            if isinstance(driver, SharedStore) and point.scenario.scenario.cleanup:
                # A failed drop must not hide why the replay failed (it leaves a schema).
                with contextlib.suppress(Exception):
                    await driver.drop_store()
        finally:
            await asyncio.wait_for(driver.close(), 10)
