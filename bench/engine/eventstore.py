"""The event-store workload inside a worker: writers that run order commands with optimistic
concurrency, and a projector that tails the store.

A writer slot takes an intended time from the open-loop schedule (or runs closed loop),
picks an aggregate of its worker's partition (``AggregatePartition``: with W workers, worker i
writes the aggregates whose index % W == i) from the key distribution, and runs one command
on it:

    know or load the aggregate → decide (domain.decide) → append(expected version)
      (an aggregate is loaded on first sight and after a conflict or an error; otherwise the
       worker knows its state and version from its own last commit, as no other worker
       writes it)
      committed  → done
      conflict   → back off (full jitter), reload and decide again, up to max_retries
      rejection  → the aggregate said no: counted apart from conflicts, nothing appended

``service`` is timed per append attempt; ``response`` per command, from its intended time
to its final outcome, retries included; ``schedule_lag`` as for streams. Every event id of a
committed append and of a conflicted one is kept, so the invariants "every acknowledged
append is stored exactly once" and "a conflicted append left nothing" can be checked against
the store afterwards. ``e2e`` carries the projection lag (commit → read model updated) when
the driver has a projector.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.domain import ADD, OrderState, decide, fold, fold_all, next_command
from bench.drivers.base import (
    Driver,
    ErrorKinds,
    IdempotentConsumer,
    Projector,
    Snapshots,
    StoredEvent,
    StoredEventIds,
    StoreDriver,
    StoreLedgerCheck,
)
from bench.scenario import Workload
from bench.timing import PreciseTimer
from bench.workload import aggregate_id, key_probabilities

_BATCH = 4096
YIELD_EVERY = 32  # commands between forced yields (see StoreWriters.slot)


@dataclass
class StoreTotals:
    commands: int = 0
    attempts: int = 0
    commits: int = 0
    conflicts: int = 0
    errors: int = 0
    retries: int = 0
    abandoned: int = 0
    rejections: int = 0
    events_committed: int = 0
    commits_in_window: int = 0  # committed commands whose outcome fell inside the window
    attempts_in_window: int = 0
    conflicts_in_window: int = 0
    snapshots_written: int = 0
    projected: int = 0
    redelivered: int = 0
    duplicates_skipped: int = 0
    committed_ids: list[str] = field(default_factory=list)
    conflicted_ids: list[str] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AggregatePartition:
    """The aggregates one worker's writers append to: indexes ``first``, ``first + step``, …

    With ``workload.workers`` = W worker processes, worker i writes only the aggregates whose
    index % W == i. Each worker caches the versions it wrote (``StoreWriters._known``); were
    two workers to write one aggregate, each would append at a version the other had already
    moved, and the worker count would add conflicts that the workload never asked for.

    What the user sets keeps its meaning: ``aggregates`` is still the total number of
    aggregates written (the partitions cover them all, each exactly once), and contention is
    still writers per aggregate (each worker has 1/W of the writers on 1/W of the aggregates).
    Within a partition, each aggregate keeps its weight in ``keys`` (renormalised over the
    partition). Across partitions each worker issues its share of the commands (its share of
    the writers or of the rate), not its partition's share of the weight: for ``uniform`` and
    ``hot`` the two agree (up to one aggregate of rounding, as the hot ones interleave across
    partitions); for ``zipf`` the partition holding rank 1 carries a little more weight than
    its workers' share (with s = 1, 1000 aggregates and 2 workers: 54.6% of the weight, 50% of
    the commands), so its hottest aggregate receives slightly fewer of all commands than the
    global distribution says. With fewer aggregates than workers a partition would be empty,
    so every worker writes every aggregate: then the workers do share aggregates, as the
    scenario asked for more of them than there are aggregates.
    """

    first: int
    step: int
    size: int  # how many aggregates the partition holds
    probabilities: np.ndarray | None  # over the partition; None: uniform

    @classmethod
    def of(cls, workload: Workload, worker_index: int) -> AggregatePartition:
        n, workers = workload.aggregates, workload.workers
        probs = key_probabilities(workload.keys, n)
        if workers <= 1 or n < workers:
            return cls(0, 1, n, probs)
        first = worker_index % workers
        size = len(range(first, n, workers))
        if probs is not None:
            probs = probs[first::workers].copy()
            probs /= probs.sum()
        return cls(first, workers, size, probs)

    def draw(self, rng: np.random.Generator, count: int) -> list[int]:
        """``count`` aggregate indexes (global ones) drawn from the partition."""
        if self.probabilities is None:
            draws = rng.integers(0, self.size, size=count)
        else:
            draws = rng.choice(self.size, size=count, p=self.probabilities)
        if self.step != 1:
            draws = draws * self.step + self.first
        elif self.first:
            draws = draws + self.first
        result: list[int] = draws.tolist()
        return result

    def __contains__(self, index: int) -> bool:
        offset = index - self.first
        return offset >= 0 and offset % self.step == 0 and offset // self.step < self.size


class StoreWriters:
    """Writer slots and the projector of one worker: its writers append only to the
    aggregates of this worker's ``AggregatePartition``."""

    def __init__(
        self,
        driver: StoreDriver,
        workload: Workload,
        worker_index: int,
        seed: int,
        timer: PreciseTimer,
        count_error: Callable[[str], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.driver = driver
        self.workload = workload
        self.options = workload.store
        self.timer = timer
        self.count_error = count_error
        self.stopping = stopping
        self.totals = StoreTotals()
        self._rng = random.Random(seed * 7919 + worker_index)
        self._np_rng = np.random.default_rng([seed, 99991, worker_index])
        self._partition = AggregatePartition.of(workload, worker_index)
        self._keys: list[int] = []
        self._pos = _BATCH
        # aggregate_id()'s text up to the index (test_store_workload checks they agree).
        self._id_head = aggregate_id(workload.aggregate_type, 0)[:-8]
        self._known: dict[str, OrderState] = {}
        seed_part = (seed * 2654435761 + worker_index) & 0xFFFFFFFF
        self._id_prefix = f"{seed_part:08x}-{worker_index & 0xFFFF:04x}-4000-9000-"
        self._next_id = 0
        # Raw timestamps, turned into histograms by the worker's flush (as for streams).
        self.cmd_intended: array[int] = array("q")
        self.cmd_start: array[int] = array("q")
        self.cmd_end: array[int] = array("q")
        self.cmd_completed: array[int] = array("q")  # 1: committed or rejected; 0: abandoned
        self.attempt_start: array[int] = array("q")
        self.attempt_end: array[int] = array("q")
        # When appends committed and when they failed (the fault timeline's figures).
        self.commit_at: array[int] = array("q")
        self.error_at: array[int] = array("q")
        self.projection_lag: array[int] = array("q")
        self.load_ns: array[int] = array("q")
        self.load_length: array[int] = array("q")
        self.window = (0, 0)
        self._consumed_upto = 0
        # Set when the load ends: the projector finishes its pass rather than being cancelled
        # in the middle of a transaction whose outcome it would then not know.
        self.stop_projector = False
        self._snapshots = self.options.snapshots and isinstance(driver, Snapshots)
        self.skipped = 0  # commands the schedule dropped: the backlog outlived its bound
        # Called after every committed append with (its events, the command's intended time,
        # the commit time), before the command ends: the pipeline's dual write publishes here.
        self.on_commit: Callable[[list[StoredEvent], int, int], Awaitable[None]] | None = None
        self._pad = max(
            0, (workload.payload_bytes if isinstance(workload.payload_bytes, int) else 256) - 120
        )
        # The padding closes the event's JSON object: built once, appended to every payload.
        self._pad_json = ', "pad": "' + "x" * self._pad + '"}'

    # ------------------------------------------------------------------ keys and ids
    def _key(self) -> str:
        if self._pos >= _BATCH:
            self._keys = self._partition.draw(self._np_rng, _BATCH)
            self._pos = 0
        index = self._keys[self._pos]
        self._pos += 1
        return f"{self._id_head}{index:08d}"  # aggregate_id(aggregate_type, index)

    def _event_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}{self._next_id:012x}"

    def _events(
        self, aggregate: str, state: OrderState, types: list[str], command: str
    ) -> tuple[list[StoredEvent], list[dict[str, Any]]]:
        if command == ADD:
            spec = self.options.events_per_append
            count = spec if isinstance(spec, int) else self._rng.randint(spec[0], spec[1])
            types = types * count
        events = []
        datas: list[dict[str, Any]] = []
        order_no = state.order_no + (command == "PlaceOrder")
        aggregate_type = self.workload.aggregate_type
        metadata = {"command": command}
        randrange = self._rng.randrange
        pad_json = self._pad_json
        for offset, event_type in enumerate(types, start=1):
            # The text is json.dumps({"data": data}) without its closing brace, then the
            # padding: formatted directly (only ints and a plain ASCII sku), about 4 µs less
            # per event; test_store_workload checks it against json.dumps.
            if event_type == "OrderItemAdded":
                sku = randrange(1000)
                qty = 1 + randrange(3)
                price = 100 + randrange(10000)
                datas.append(
                    {"order_no": order_no, "sku": f"sku-{sku}", "qty": qty, "price_cents": price}
                )
                text = (
                    f'{{"data": {{"order_no": {order_no}, "sku": "sku-{sku}", "qty": {qty}, '
                    f'"price_cents": {price}}}{pad_json}'
                )
            else:
                datas.append({"order_no": order_no})
                text = f'{{"data": {{"order_no": {order_no}}}{pad_json}'
            events.append(
                StoredEvent(
                    self._event_id(),
                    aggregate,
                    aggregate_type,
                    event_type,
                    state.version + offset,
                    text.encode(),
                    metadata,
                )
            )
        return events, datas

    # ------------------------------------------------------------------ reading
    async def _load(self, aggregate: str) -> OrderState:
        driver = self.driver
        started = time.monotonic_ns()
        if self._snapshots and isinstance(driver, Snapshots):
            snapshot, version, events = await driver.load_with_snapshot(aggregate)
            state = OrderState.from_dict(snapshot) if snapshot else OrderState()
            state.version = version if snapshot else 0
            for event in events:
                data = json.loads(event.payload)
                fold(state, event.event_type, data.get("data", data))
        else:
            loaded = await driver.load(aggregate)
            state = fold_all([(e.event_type, e.payload) for e in loaded])
        # Load latency (read and fold) against the stream's length: what snapshots shorten.
        self.load_ns.append(time.monotonic_ns() - started)
        self.load_length.append(state.version)
        return state

    # ------------------------------------------------------------------ writers
    async def slot(self, schedule: Any, start_ns: int, exact: bool, backlog_end: int) -> None:
        monotonic_ns = time.monotonic_ns
        window_end = self.window[1]
        totals = self.totals
        closed_loop = schedule is None
        since_yield = 0
        while not self.stopping():
            if closed_loop:
                intended = monotonic_ns()
                if intended < start_ns:
                    await self.timer.sleep_until(start_ns)
                    continue
                if intended >= window_end:
                    return
            else:
                next_intended = schedule.next()
                if next_intended is None:
                    return
                intended = next_intended
                if intended < backlog_end and monotonic_ns() >= backlog_end:
                    self.skipped += 1 + schedule.remaining()
                    return
                if intended > monotonic_ns():
                    await self.timer.sleep_until(intended, exact)
                    if self.stopping():
                        return
            started = monotonic_ns()
            completed = await self._command(self._key(), started, intended)
            ended = monotonic_ns()
            totals.commands += 1
            self.cmd_intended.append(intended)
            self.cmd_start.append(started)
            self.cmd_end.append(ended)
            self.cmd_completed.append(1 if completed else 0)
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                # A store that never suspends (the memory target) would otherwise hold the
                # loop for ever in a closed loop: the pipeline's relays and appliers, the
                # projector and the interval ticker run between commands too.
                since_yield = 0
                await asyncio.sleep(0)

    async def _command(self, aggregate: str, started: int, intended: int = 0) -> bool:
        """Run one command to its end; False when it was given up (abandoned)."""
        totals = self.totals
        options = self.options
        window_start, window_end = self.window
        state = self._known.get(aggregate)
        if state is None:
            state = await self._guarded_load(aggregate)
            if state is None:
                # Nothing to decide on: the command is given up like one whose retries ran out.
                totals.abandoned += 1
                return False
        command = next_command(state, self._rng.random())
        for attempt in range(options.max_retries + 1):
            types = decide(state, command)
            if types is None:
                totals.rejections += 1
                self._known[aggregate] = state
                return True
            # Local to this command: concurrent writers interleave at every await.
            events, datas = self._events(aggregate, state, types, command)
            t0 = time.monotonic_ns()
            try:
                result = await self.driver.append(aggregate, events, state.version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                t1 = time.monotonic_ns()
                self._attempt(t0, t1)
                self.error_at.append(t1)
                totals.errors += 1
                self.count_error(self._kind(exc))
                # What an error left behind is unknown: forget the aggregate, reload next time.
                self._known.pop(aggregate, None)
                if attempt == options.max_retries:
                    totals.abandoned += 1
                    return False
                totals.retries += 1
                await self._backoff(attempt)
                loaded = await self._guarded_load(aggregate)
                if loaded is None:
                    totals.abandoned += 1
                    return False
                state = loaded
                continue
            t1 = time.monotonic_ns()
            self._attempt(t0, t1)
            if result.committed:
                self.commit_at.append(t1)
                totals.commits += 1
                totals.events_committed += len(events)
                if window_start <= t1 < window_end:
                    totals.commits_in_window += 1
                committed_ids = totals.committed_ids
                for event, data in zip(events, datas, strict=True):
                    committed_ids.append(event.event_id)
                    fold(state, event.event_type, data)
                self._known[aggregate] = state
                if self._snapshots:
                    await self._maybe_snapshot(aggregate, state)
                if self.on_commit is not None:
                    await self.on_commit(events, intended, t1)
                return True
            totals.conflicts += 1
            if window_start <= t1 < window_end:
                totals.conflicts_in_window += 1
            totals.conflicted_ids.extend(e.event_id for e in events)
            if attempt == options.max_retries:
                totals.abandoned += 1
                self._known.pop(aggregate, None)
                return False
            totals.retries += 1
            await self._backoff(attempt)
            if options.reload_on_conflict:
                loaded = await self._guarded_load(aggregate)
                if loaded is None:
                    totals.abandoned += 1
                    return False
                state = loaded
                command = next_command(state, self._rng.random())
            elif result.version is not None:
                # A blind retry: the same decision at the version the store reported.
                state = OrderState(**{**state.as_dict(), "version": result.version})
        return False  # not reached: the last attempt returns

    def _attempt(self, t0: int, t1: int) -> None:
        self.totals.attempts += 1
        if self.window[0] <= t1 < self.window[1]:
            self.totals.attempts_in_window += 1
        self.attempt_start.append(t0)
        self.attempt_end.append(t1)

    async def _guarded_load(self, aggregate: str) -> OrderState | None:
        try:
            return await self._load(aggregate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.totals.errors += 1
            self.count_error(f"load:{self._kind(exc)}")
            return None

    def _kind(self, exc: BaseException) -> str:
        """The error's name for the counts: the driver's, when it has one."""
        driver = self.driver
        return driver.error_kind(exc) if isinstance(driver, ErrorKinds) else type(exc).__name__

    async def _backoff(self, attempt: int) -> None:
        # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)].
        ceiling = min(self.options.backoff_max, self.options.backoff * (2**attempt))
        if ceiling > 0:
            await asyncio.sleep(self._rng.random() * ceiling)

    async def _maybe_snapshot(self, aggregate: str, state: OrderState) -> None:
        driver = self.driver
        if not self._snapshots or not isinstance(driver, Snapshots):
            return
        every = driver.snapshot_every()
        if not every or state.version % every:
            return
        try:
            await driver.save_snapshot(aggregate, state.version, state.as_dict())
            self.totals.snapshots_written += 1
        except Exception as exc:
            self.count_error(f"snapshot:{self._kind(exc)}")

    # ------------------------------------------------------------------ projector
    async def project(self) -> None:
        """Tail the store into its read model until cancelled; record projection lag."""
        driver = self.driver
        if not self.options.projector or not isinstance(driver, Projector):
            return
        interval = self.options.projector_interval
        while not self.stop_projector:
            try:
                await self.project_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.count_error(f"projector:{self._kind(exc)}")
            await asyncio.sleep(interval)

    async def project_once(self) -> int:
        """One projector pass, then the idempotent consumer over what was committed since."""
        driver = self.driver
        if not isinstance(driver, Projector):
            return 0
        processed = await driver.project()
        self.totals.projected += processed
        self.projection_lag.extend(driver.take_projection_lags())
        await self._consume_idempotently()
        return processed

    async def _consume_idempotently(self) -> None:
        """Feed newly committed events, plus a sample of already handled ones (redeliveries),
        through the driver's idempotent consumer: every redelivery must be skipped."""
        fraction = self.options.redeliver_fraction
        driver = self.driver
        if not fraction or not isinstance(driver, IdempotentConsumer):
            return
        committed = self.totals.committed_ids
        fresh = committed[self._consumed_upto :]
        if not fresh:
            return
        done = committed[: self._consumed_upto]
        replay = [i for i in done[-len(fresh) * 4 :] if self._rng.random() < fraction]
        processed, skipped = await driver.consume_idempotently("eventbench", fresh + replay)
        self._consumed_upto += len(fresh)
        self.totals.redelivered += len(replay)
        self.totals.duplicates_skipped += skipped
        if processed != len(fresh) or skipped != len(replay):
            self.count_error("idempotency_mismatch")


async def check_store(driver: StoreDriver, totals: StoreTotals) -> list[str]:
    """The store's invariants after a run, each violation as one sentence.

    The driver's own checks (no duplicate versions, no gaps, projection = fold, no duplicate
    processed events), plus the two only the harness can make: every acknowledged append is
    stored exactly once, and an append that raised a conflict left nothing behind.
    """
    problems = list(await driver.verify())
    if isinstance(driver, StoreLedgerCheck):
        problems.extend(await driver.check_ledger(totals.committed_ids, totals.conflicted_ids))
    elif isinstance(driver, StoredEventIds):
        stored = await driver.stored_event_ids()
        committed = totals.committed_ids
        missing = [i for i in committed if i not in stored]
        if missing:
            problems.append(
                f"{len(missing)} acknowledged events are not in the store (e.g. {missing[0]})"
            )
        leftovers = [i for i in totals.conflicted_ids if i in stored]
        if leftovers:
            problems.append(
                f"{len(leftovers)} events of conflicted appends were stored (e.g. {leftovers[0]})"
            )
        if len(set(committed)) != len(committed):
            problems.append("an event id was acknowledged twice")
    return problems


def unchecked_invariants(driver: Driver) -> list[str]:
    """The invariants ``check_store`` cannot check on this driver, each with the reason."""
    if isinstance(driver, StoreLedgerCheck | StoredEventIds):
        return []
    return [
        f"every acknowledged append stored once, and nothing of a conflicted one: driver "
        f"{driver.name!r} can neither check the ledger nor list its stored event ids"
    ]


LOAD_BUCKETS = ((0, 0), (1, 10), (11, 100), (101, 1000), (1001, 10_000), (10_001, 10**12))


def load_latency_by_length(ns: np.ndarray, lengths: np.ndarray) -> list[dict[str, Any]]:
    """Aggregate load latency per stream-length bucket, from every worker's raw samples."""
    rows = []
    for low, high in LOAD_BUCKETS:
        mask = (lengths >= low) & (lengths <= high)
        if not mask.any():
            continue
        values = ns[mask] / 1e3
        rows.append(
            {
                "stream_length": f"{low}" if low == high else f"{low}-{high}",
                "loads": int(mask.sum()),
                "p50_us": float(np.percentile(values, 50)),
                "p99_us": float(np.percentile(values, 99)),
                "max_us": float(values.max()),
            }
        )
    return rows
