"""A worker process: one event loop that drives producers and consumers of one run point.

The coordinator (``engine/runner.py``) starts ``workers`` of these with the ``spawn`` method,
so each has a clean interpreter and its own event loop (uvloop when installed). A worker:

1. connects its driver, creates its consumers and producers, and says ``ready``;
2. on ``start`` (an absolute monotonic time shared by every process on the host) runs the
   open-loop schedule: each producer has ``max_in_flight`` sender slots that take the next
   intended time, sleep until it with the precise timer, build the event, send it and record
   response (intended → ack), service (send → ack) and schedule lag (send - intended);
3. consumers record end-to-end latency (intended → consumed) and feed the delivery audit;
4. every interval it ships encoded interval histograms (never percentiles) and counters;
5. on ``finish`` it stops its consumers and ships its audit ledgers and totals.

The hot path only appends integers to arrays (see ``metrics/recorder.py``). Samples are
attributed to the measurement window by their *intended* time, so the warm-up is discarded
even for messages acknowledged after it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from bench.drivers.base import (
    BoundedSends,
    Consumer,
    Driver,
    DriverConfig,
    DriverContext,
    InProcessFaults,
    KillableConsumer,
    Message,
    Producer,
    Projector,
    SharedStore,
    StoreDriver,
    StreamDriver,
    Topology,
    as_store,
    as_stream,
    load_driver,
    member_of,
    subscription_topology,
    topic_of,
    topic_topologies,
    topic_topology,
)
from bench.engine.consumer_apply import StreamReadModel
from bench.engine.deadlines import SendDeadlines, SendExpired
from bench.engine.eventstore import StoreWriters, check_store, unchecked_invariants
from bench.engine.messages import (
    Control,
    Counts,
    Failed,
    Final,
    Finish,
    Interval,
    Produced,
    Progress,
    Ready,
    Report,
    Resume,
    Start,
    Stop,
)
from bench.engine.pipeline import STAGES, Pipeline
from bench.engine.reread import classify_topics
from bench.engine.schedule import make_schedule
from bench.errors import BenchError, DriverError
from bench.faults.figures import consumer_fault_text
from bench.metrics.audit import (
    ACK_FAILED,
    ACK_NOT_SENT,
    ACK_OK,
    ConsumerLedger,
    ProducerLedger,
    lost_ids,
)
from bench.metrics.recorder import LatencyRecorder
from bench.scenario import CONSUMER_FAULTS, LATENCY_KINDS, Workload
from bench.timing import PreciseTimer
from bench.workload import EventFactory


def latency_kinds(workload: Workload) -> tuple[str, ...]:
    """The latency kinds a point records: every kind, and a pipeline's stages (a stream whose
    consumers apply what they receive records its ``apply`` stage)."""
    if workload.kind == "pipeline":
        return (*KINDS, *STAGES)
    kinds: tuple[str, ...] = KINDS
    if workload.kind == "stream" and workload.apply != "none":
        kinds = (*kinds, "apply")
    if workload.kind == "stream" and workload.backlog is not None:
        # e2e of the messages intended before the consumers were resumed: the catch-up read.
        kinds = (*kinds, "catchup")
    return kinds


def _take(buf: array[int]) -> np.ndarray:
    """The buffer's values as int64, leaving it empty (bound appends stay valid)."""
    values = np.frombuffer(buf, dtype=np.int64).copy()
    del buf[:]
    return values


KINDS = LATENCY_KINDS
TIMELINE_BUCKET_NS = 10_000_000  # the fault timeline's resolution: acks and deliveries per 10 ms
FAILURES_KEPT = 1_000_000  # failed-send timestamps kept for the fault figures
LOOP_PROBE_NS = 10_000_000  # how often the loop-lag probe wakes
REREAD_BUDGET_S = 30.0  # how long sorting the lost messages may re-read the target
ORPHAN_GRACE_S = 0.5  # how long a worker whose coordinator died may take to close its clients
EXIT_ORPHANED = 3  # a worker's exit code when its coordinator died
PR_SET_PDEATHSIG = 1  # prctl(2): the signal the kernel sends when the parent dies
YIELD_EVERY = 32  # sends between forced yields, so a never-blocking target cannot starve consumers
COUNTS_EVERY_S = 0.05  # a backlog point's live counts, during the load


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    driver: str
    driver_config: DriverConfig
    workload: Workload
    topology: Topology
    producer_ids: tuple[int, ...]
    consumer_ids: tuple[int, ...]
    seed: int
    rate_per_producer: float | None  # None: closed loop ("max")
    slots_per_producer: int
    warmup_ns: int
    duration_ns: int
    backlog_ns: int  # how long after the window overdue sends still go out (drain_timeout)
    interval_ns: int
    exact_pacing: bool
    prepare_here: bool  # in-process targets are prepared inside each worker
    describe: bool  # only one worker reports what answered
    log_path: str | None = None  # client libraries' logging goes here, not to the terminal
    # The fault timeline: keep 10 ms ack/delivery counts, failure times and intended times.
    timeline: bool = False
    # Faults the worker acts out itself, on its in-process target: (at_s, action, down_for_s).
    faults: tuple[tuple[float, str, float], ...] = ()
    # A pipeline point (workload.kind = "pipeline"): ``driver`` is its broker, this its store.
    store_driver: str | None = None
    store_config: DriverConfig | None = None
    store_prepare_here: bool = False  # an in-process store is prepared inside the worker


@dataclass
class _Totals:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    delivered: int = 0
    received_unique: int = 0
    # Throughput counts events that *happened* inside the measurement window.
    sent_in_window: int = 0
    failed_in_window: int = 0
    acked_in_window: int = 0
    received_in_window: int = 0
    # Intended inside the window but never sent: the run's backlog outlived drain_timeout.
    skipped: int = 0
    # By intended time, the population latency describes: acknowledged and failed sends whose
    # intended time fell inside the window (skipped ones are counted apart, above).
    acked_intended_in_window: int = 0
    failed_intended_in_window: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class SendTurns:
    """One producer's sends reach the client library in the order their events were made.

    Events are numbered (and their per-key sequence assigned) when a slot builds them, before
    it sleeps until the intended time. Slots do not wake in that order: a slot whose intended
    time had already passed sends at once, while one built just before it still waits for the
    loop to run its timer. Sent as they woke, one key's events reached the target out of order
    and the audit blamed the target (83 reordered at 40,000/s with 64 in flight). A slot
    therefore waits for its turn: the send of event n starts only after that of event n - 1.
    The wait is a comparison when sends are in order.

    Behind schedule, every slot finds its predecessor waiting, and a chain forms. Waking one
    waiter per turn would then move one send per loop iteration (at 40,000/s, p99 went from
    9 ms to 600 ms). So a turn wakes every consecutive waiter at once: their callbacks run in
    the order they were woken, in one iteration, and each finds its turn come.
    """

    __slots__ = ("_waiting", "_woken", "next_seq", "waits")

    def __init__(self) -> None:
        self.next_seq = 0
        self.waits = 0  # how often a slot woke before its predecessor had sent
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._woken = 0  # waiters below this seq were already woken

    async def wait(self, seq: int) -> None:
        self.waits += 1
        if seq < self._woken:
            self._woken = seq  # waiting again after a wake: the next turn must see it
        future = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        try:
            await future
        finally:
            self._waiting.pop(seq, None)

    def taken(self, seq: int) -> None:
        """Event ``seq`` went to the client library (or was given up): the next one's turn,
        and that of every consecutive waiter after it."""
        self.next_seq = seq + 1
        waiting = self._waiting
        if not waiting:
            return  # sends in order: nobody to wake (10% of the memory target's worker)
        k = max(seq + 1, self._woken)
        while (future := waiting.get(k)) is not None:
            if not future.done():
                future.set_result(None)
            k += 1
        self._woken = k


def worker_main(spec: WorkerSpec, conn: Connection, coordinator_pid: int = 0) -> None:
    """Process entry point (spawned).

    ``coordinator_pid`` is given when the coordinator spawned this worker from its main thread:
    the kernel then kills the worker the moment the coordinator dies, whatever the worker's loop
    is doing. The closing control pipe says the same thing through the loop, a little later.
    """
    # The coordinator owns Ctrl-C: it tells workers to stop, so their files stay consistent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if coordinator_pid:
        _die_with(coordinator_pid)
    if spec.log_path:
        logging.basicConfig(
            filename=spec.log_path,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(Worker(spec, conn, on_orphaned=_exit_soon).run())
    except Exception as exc:  # last resort: the coordinator must hear about it, never hang
        with contextlib.suppress(Exception):
            conn.send(Failed(spec.index, f"worker crashed: {exc!r}", traceback.format_exc()))
    finally:
        conn.close()


def _die_with(coordinator_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the coordinator dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != coordinator_pid:  # it died before the request took effect
        os._exit(EXIT_ORPHANED)


def _exit_soon() -> None:
    """The coordinator is gone and nobody will read the results: give the loop a moment to stop
    the load and close the clients, then leave whatever it is doing."""
    timer = threading.Timer(ORPHAN_GRACE_S, os._exit, (EXIT_ORPHANED,))
    timer.daemon = True
    timer.start()


class Worker:
    def __init__(
        self, spec: WorkerSpec, conn: Connection, on_orphaned: Callable[[], None] | None = None
    ) -> None:
        self.spec = spec
        self.conn = conn
        self.on_orphaned = on_orphaned
        self.orphaned = False
        self.sends_bounded = False  # the target bounds its own sends: no timer per send
        self.deadlines: SendDeadlines | None = None  # send_timeout, for every other target
        self.totals = _Totals()
        self.recorders = {kind: LatencyRecorder(kind) for kind in latency_kinds(spec.workload)}
        self.pipeline: Pipeline | None = None
        self.pipeline_drained: bool | None = None
        self.pipeline_check: dict[str, Any] | None = None
        self.loop_lag = LatencyRecorder("loop_lag")
        # The hot paths only append raw timestamps here; flush() derives the latency kinds,
        # the window classification and the counters with numpy, once per interval.
        self.ack_intended: array[int] = array("q")
        self.ack_start: array[int] = array("q")
        self.ack_end: array[int] = array("q")
        self.recv_intended: array[int] = array("q")
        self.recv_at: array[int] = array("q")
        # Failed sends: (intended, failed at). They count in response latency, at no less than
        # the send timeout, so a dead target never reads as fast.
        self.fail_intended: array[int] = array("q")
        self.fail_end: array[int] = array("q")
        self.failure_floor_ns = int(spec.workload.send_timeout * 1e9)
        self._skipped_recorded = 0
        self.store: StoreWriters | None = None
        self.invariants: list[str] | None = None
        self.invariants_not_checked: list[str] = []
        # One ledger per subscription (consumer group): the audit is exact per subscription.
        self.consumer_ledgers = [ConsumerLedger() for _ in range(spec.workload.subscriptions)]
        self.consumer_ledger = self.consumer_ledgers[0]
        # workload.apply: the consumers' read model, and (intended, receipt to applied) per
        # application, flushed into the "apply" latency.
        self.read_model = (
            StreamReadModel(guarded=spec.workload.apply == "guarded")
            if spec.workload.kind == "stream" and spec.workload.apply != "none"
            else None
        )
        self.apply_intended: array[int] = array("q")
        self.apply_took: array[int] = array("q")
        # The consumers now running (replaced by a consumer fault), and what killed ones owed.
        self.consumers: list[Consumer] = []
        self.redelivery_owed: list[tuple[int, int]] = []
        self.factories: list[EventFactory] = []
        self.turns: list[SendTurns] = []
        self.in_flight = 0
        self.in_flight_peak = 0
        self.stopping = False
        self.start_ns = 0
        self.window_start_ns = 0
        self.window_end_ns = 0
        self._control: asyncio.Queue[Control] = asyncio.Queue()
        self._interval_errors: Counter[str] = Counter()
        self._last_counts = (0, 0, 0)
        # The fault timeline (spec.timeline): counts per TIMELINE_BUCKET_NS from the start.
        self.fail_at: array[int] = array("q")
        # When each counted error happened, by kind (spec.timeline): the fault figures
        # attribute every error the run counts, not only failed sends.
        self.error_at: dict[str, array[int]] = {}
        self.timeline_acked = np.zeros(0, dtype=np.int64)
        self.timeline_delivered = np.zeros(0, dtype=np.int64)
        self.fault_events: list[dict[str, Any]] = []
        self._cpu_mark: tuple[float, float] | None = None  # (CPU, wall) when the interval began
        # A backlog point (workload.backlog): its consumers are made at setup and started only
        # on Resume; when Resume arrived and when every consumer's start() returned.
        self.held_back = spec.workload.kind == "stream" and spec.workload.backlog is not None
        self.resume_ns = 0
        self.resumed_ns = 0
        self._resume_task: asyncio.Task[None] | None = None
        self._resume_error: str | None = None

    # -- plumbing
    def count_error(self, kind: str) -> None:
        self.totals.errors[kind] += 1
        self._interval_errors[kind] += 1
        if self.spec.timeline:
            times = self.error_at.get(kind)
            if times is None:
                times = self.error_at[kind] = array("q")
            times.append(time.monotonic_ns())

    def _send(self, message: Report) -> None:
        if self.orphaned:
            return
        try:
            self.conn.send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._orphan()

    def _on_control(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self._orphan()
            return
        if isinstance(message, Stop):
            self.stopping = True
        if isinstance(message, Resume):
            # Here, not through the queue: the load loop does not read the queue until the
            # producers are done, and the consumers must start while they send.
            if self.held_back and self._resume_task is None:
                self.resume_ns = time.monotonic_ns()
                self._resume_task = asyncio.get_running_loop().create_task(self._resume())
            return
        self._control.put_nowait(message)

    def _orphan(self) -> None:
        """The coordinator is gone: stop the load at once and wind down, reporting nothing."""
        if self.orphaned:
            return
        self.orphaned = True
        self.stopping = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self._control.put_nowait(Stop())
        self._control.put_nowait(Finish())
        if self.on_orphaned is not None:
            self.on_orphaned()

    async def _wait_control(self, *kinds: type[Control]) -> Control:
        while True:
            message = await self._control.get()
            if isinstance(message, kinds):
                return message

    # -- main
    async def run(self) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_control)
        # uvloop makes a watched fd non-blocking; a large message (the final audit ledgers run to
        # megabytes) would then be written in part. The loop only polls it, so blocking is safe.
        os.set_blocking(self.conn.fileno(), True)
        self.timer = PreciseTimer.acquire(loop)
        driver_cls = load_driver(spec.driver)
        driver = driver_cls(spec.driver_config, DriverContext(count_error=self.count_error))
        self.sends_bounded = isinstance(driver, BoundedSends) and driver.sends_are_bounded()
        if not self.sends_bounded:
            self.deadlines = SendDeadlines(spec.workload.send_timeout)
        consumers: list[Consumer] = []
        producers: list[Producer] = []
        store_driver: Driver | None = None
        try:
            try:
                await asyncio.wait_for(driver.connect(), spec.driver_config.connect_timeout + 5)
                if spec.workload.kind == "pipeline":
                    store_driver = await self._setup_pipeline(driver)
                elif spec.workload.kind == "store":
                    await self._setup_store(as_store(driver))
                else:
                    stream = as_stream(driver)
                    topics = spec.topology.topics
                    if spec.prepare_here:
                        for topic in topic_topologies(spec.topology):
                            await stream.prepare(topic)
                    for subscription in range(spec.workload.subscriptions):
                        deliver = self._deliver_to(subscription)
                        for consumer_id in spec.consumer_ids:
                            # Consumer c reads topic c % topics, as member c // topics of
                            # that topic's consumer group.
                            topic = topic_topology(spec.topology, topic_of(consumer_id, topics))
                            topology = subscription_topology(topic, subscription)
                            member = member_of(consumer_id, topics)
                            consumers.append(await stream.consumer(topology, member, deliver))
                    if not self.held_back:
                        # Together, so a consumer group forms in one round rather than one
                        # rebalance per member (Tansu holds each join for half the session
                        # timeout).
                        await asyncio.wait_for(
                            asyncio.gather(*(consumer.start() for consumer in consumers)),
                            spec.driver_config.connect_timeout + 30,
                        )
                    self.consumers = consumers
                    for producer_id in spec.producer_ids:
                        topic = topic_topology(spec.topology, topic_of(producer_id, topics))
                        producers.append(await stream.producer(topic, producer_id))
                described = await driver.describe() if spec.describe else None
            except BenchError as exc:
                self._send(Failed(spec.index, exc.message))
                return
            except TimeoutError:
                self._send(Failed(spec.index, f"{spec.driver}: setup timed out"))
                return
            # Everything set up so far (modules, the client library, the driver) lives for the
            # whole run: collect it once and move it out of the collector's sight. A full
            # collection walking those ~50k objects paused the loop for 17-33 ms mid-run.
            gc.collect()
            gc.freeze()
            self._send(Ready(spec.index, described))
            message = await self._wait_control(Start, Finish)
            if isinstance(message, Start):
                await self._run_load(message.t0_ns, producers, driver)
                await self._wait_control(Finish)
            await self._settle_resume()
            if self.pipeline is not None and store_driver is not None:
                await self._finish_pipeline(store_driver)
            elif self.store is not None:
                await self._finish_store(driver)
            await self._finish(driver, self.consumers, producers)
        finally:
            if self.pipeline is not None:
                with contextlib.suppress(Exception):
                    await self.pipeline.stop()
            for target in (store_driver, driver):
                if target is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(target.close(), 10)
            self.timer.release()

    async def _run_load(self, start_ns: int, producers: list[Producer], driver: Driver) -> None:
        spec = self.spec
        self.start_ns = start_ns
        self.window_start_ns = start_ns + spec.warmup_ns
        self.window_end_ns = self.window_start_ns + spec.duration_ns
        loop = asyncio.get_running_loop()
        background = [
            loop.create_task(self._ticker()),
            loop.create_task(self._probe_loop_lag()),
        ]
        if spec.faults:
            background.append(loop.create_task(self._act_out_faults(driver)))
        counts: asyncio.Task[None] | None = None
        if self.held_back:
            counts = loop.create_task(self._send_counts())
            background.append(counts)
        if self.deadlines is not None:
            background.append(loop.create_task(self.deadlines.watch()))
        slots = []
        projector: asyncio.Task[None] | None = None
        if self.store is not None:
            self.store.window = (self.window_start_ns, self.window_end_ns)
            slots = self._store_slots(start_ns)
            if self.pipeline is not None:
                self.pipeline.start(start_ns)
            elif spec.describe:
                projector = loop.create_task(self.store.project())
        for position, producer in enumerate(producers):
            producer_id = spec.producer_ids[position]
            ledger = ProducerLedger(producer_id, track_intended=spec.timeline)
            factory = EventFactory(spec.workload, producer_id, spec.seed, ledger)
            self.factories.append(factory)
            schedule = self._schedule(producer_id, start_ns)
            turns = SendTurns()
            self.turns.append(turns)
            for _ in range(spec.slots_per_producer):
                slots.append(loop.create_task(self._slot(producer, factory, schedule, turns)))
        await self.timer.sleep_until(start_ns)
        try:
            await self._await_slots(slots)
            if self.pipeline is not None:
                # The pipeline drains itself (outbox, broker, appliers): the coordinator's drain
                # knows only commands.
                self.pipeline_drained = (
                    False if self.stopping else await self.pipeline.drain(spec.backlog_ns / 1e9)
                )
            if counts is not None:
                counts.cancel()  # the drain's Progress carries the counts from here
            self._send(Produced(spec.index))
            while not self.stopping:
                # During the drain the coordinator decides when everything has arrived.
                self.flush()
                self._send(
                    Progress(
                        spec.index,
                        self.totals.acked,
                        self.totals.received_unique,
                        self.totals.delivered,
                    )
                )
                try:
                    await asyncio.wait_for(self._wait_control(Finish), 0.1)
                    self._control.put_nowait(Finish())
                    break
                except TimeoutError:
                    pass
        finally:
            if projector is not None and self.store is not None:
                self.store.stop_projector = True
                try:
                    await asyncio.wait_for(asyncio.shield(projector), 60)
                except Exception:
                    projector.cancel()
                    await asyncio.gather(projector, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _await_slots(self, slots: list[asyncio.Task[None]]) -> None:
        pending = set(slots)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.1)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    logging.getLogger("bench.worker").error("a slot crashed", exc_info=exc)
                    self.count_error(f"harness:{type(exc).__name__}")
            if self.stopping and pending:
                # Interrupted: give in-flight sends a moment, then abandon them.
                _, pending = await asyncio.wait(pending, timeout=1.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return

    def _schedule(self, producer_id: int, start_ns: int) -> Any:
        """The producer's open-loop schedule (seeded per producer); None runs closed loop."""
        spec = self.spec
        if spec.rate_per_producer is None:
            return None
        return make_schedule(
            spec.workload.schedule,
            spec.rate_per_producer,
            start_ns,
            self.window_end_ns,
            seed=spec.seed * 1_000_003 + producer_id,
        )

    # -- the event-store workload (engine/eventstore.py does the work)
    async def _setup_store(self, driver: StoreDriver, prepare_here: bool | None = None) -> None:
        if self.spec.prepare_here if prepare_here is None else prepare_here:
            await driver.prepare_store()
        elif isinstance(driver, SharedStore):
            await driver.attach_store(self.spec.topology.name)
        self.store = StoreWriters(
            driver,
            self.spec.workload,
            self.spec.index,
            self.spec.seed,
            self.timer,
            self.count_error,
            lambda: self.stopping,
        )

    # -- the pipeline workload (engine/pipeline.py does the work)
    async def _setup_pipeline(self, broker: Driver) -> Driver:
        """The store (connected, prepared or attached, its outbox on), the broker's topology
        (in-process), the read model, the consumers and the relays' producers."""
        spec = self.spec
        assert spec.store_driver is not None and spec.store_config is not None
        store = load_driver(spec.store_driver)(
            spec.store_config, DriverContext(count_error=self.count_error)
        )
        await asyncio.wait_for(store.connect(), spec.store_config.connect_timeout + 5)
        stream = as_stream(broker)
        options = spec.workload.pipeline
        pipeline = Pipeline(
            as_store(store),
            stream,
            spec.topology,
            options,
            spec.workload.aggregate_type,
            self.count_error,
        )
        pipeline.before_prepare()
        self.pipeline = pipeline
        await self._setup_store(as_store(store), prepare_here=spec.store_prepare_here)
        if spec.prepare_here:
            await stream.prepare(spec.topology)
        await asyncio.wait_for(
            # Each worker's relays are their own producers in the point's audit.
            pipeline.setup(spec.consumer_ids, options.relays, spec.index * options.relays),
            spec.driver_config.connect_timeout + 30,
        )
        assert self.store is not None
        pipeline.attach(self.store)
        if options.crash_at is not None:
            pipeline.crash_after(float(options.crash_at), float(options.crash_for))
        return store

    async def _finish_pipeline(self, store: Driver) -> None:
        """The invariants of the pipeline (every committed event applied once, the read model
        equal to the fold of the store, the outbox empty), and the store's own."""
        assert self.pipeline is not None and self.store is not None
        pipeline = self.pipeline
        await pipeline.stop()
        pipeline.settle()
        if self.stopping or self.pipeline_drained is None:
            self.pipeline_check = None
        else:
            problems, figures = await asyncio.wait_for(
                pipeline.check(self.store.totals.committed_ids), 300
            )
            self.pipeline_check = {"violations": problems, **figures}
        if self.spec.store_prepare_here:
            self.invariants = await check_store(as_store(store), self.store.totals)
            self.invariants_not_checked = unchecked_invariants(store)

    def _store_slots(self, start_ns: int) -> list[asyncio.Task[None]]:
        spec = self.spec
        assert self.store is not None
        loop = asyncio.get_running_loop()
        backlog_end = self.window_end_ns + spec.backlog_ns
        slots = []
        for writer_group in spec.producer_ids:
            schedule = self._schedule(writer_group, start_ns)
            for _ in range(spec.slots_per_producer):
                slots.append(
                    loop.create_task(
                        self.store.slot(schedule, start_ns, spec.exact_pacing, backlog_end)
                    )
                )
        return slots

    async def _finish_store(self, driver: Driver) -> None:
        """Let the projector catch up, then check the store's invariants (in-process only:
        a shared store is checked once, by the coordinator)."""
        assert self.store is not None
        store = self.store
        if store.options.projector and isinstance(driver, Projector) and self.spec.describe:
            deadline = time.monotonic() + self.spec.backlog_ns / 1e9
            while time.monotonic() < deadline:
                try:
                    processed = await asyncio.wait_for(store.project_once(), 30)
                except Exception as exc:
                    self.count_error(f"projector:{type(exc).__name__}")
                    break
                if not processed:
                    break
        if self.spec.prepare_here:
            self.invariants = await check_store(as_store(driver), store.totals)
            self.invariants_not_checked = unchecked_invariants(driver)

    async def _slot(
        self, producer: Any, factory: EventFactory, schedule: Any, turns: SendTurns
    ) -> None:
        """One sender slot: at most one message in flight. Its loop is the hot path."""
        send = producer.send
        make = factory.next
        acks = factory.ledger.acks
        monotonic_ns = time.monotonic_ns
        sleep_until = self.timer.sleep_until
        log_intended = self.ack_intended.append
        log_start = self.ack_start.append
        log_end = self.ack_end.append
        window_end = self.window_end_ns
        backlog_end = window_end + self.spec.backlog_ns
        totals = self.totals
        closed_loop = schedule is None
        next_time = schedule.next if schedule is not None else (lambda: None)
        exact = self.spec.exact_pacing
        # A send is bounded by workload.send_timeout (one watchdog for every send, see
        # engine/deadlines.py), unless the target bounds its sends itself (the memory target).
        deadlines = self.deadlines
        task = asyncio.current_task()
        assert task is not None
        since_yield = 0
        while not self.stopping:
            if closed_loop:
                intended = monotonic_ns()
                if intended < self.start_ns:
                    await sleep_until(self.start_ns)
                    continue
                if intended >= window_end:
                    return
                msg: Message = make(intended)
            else:
                next_intended = next_time()
                if next_intended is None:
                    return
                intended = next_intended
                if intended < backlog_end and monotonic_ns() >= backlog_end:
                    # Far behind after the window: count the rest as skipped (pgbench's
                    # --latency-limit accounting) rather than send it for ever.
                    totals.skipped += 1 + schedule.remaining()
                    return
                # Build the event before sleeping, so schedule lag measures only how late the
                # send started, not the harness's own event construction.
                msg = make(intended)
                if intended > monotonic_ns():
                    await sleep_until(intended, exact)
                    since_yield = 0
            while turns.next_seq != msg.seq:
                await turns.wait(msg.seq)
            if self.stopping:
                acks[msg.seq] = ACK_NOT_SENT
                turns.taken(msg.seq)
                return
            # The send below reaches the client library before any other slot runs again.
            turns.taken(msg.seq)
            start = monotonic_ns()
            totals.sent += 1
            in_flight = self.in_flight = self.in_flight + 1
            if in_flight > self.in_flight_peak:
                self.in_flight_peak = in_flight
            try:
                if deadlines is None:
                    await send(msg)
                else:
                    deadlines.begin(task, start)
                    await send(msg)
                    deadlines.end(task)
            except asyncio.CancelledError:
                if deadlines is None or not deadlines.expired(task):
                    raise
                expired = SendExpired(f"no ack within send_timeout ({deadlines.timeout_s:g}s)")
                self._send_failed(acks, msg.seq, intended, start, expired)
                continue
            except Exception as exc:
                if deadlines is not None:
                    deadlines.end(task)
                self._send_failed(acks, msg.seq, intended, start, exc)
                continue
            end = monotonic_ns()
            self.in_flight -= 1
            acks[msg.seq] = ACK_OK
            log_intended(intended)
            log_start(start)
            log_end(end)
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                since_yield = 0
                await asyncio.sleep(0)

    async def _resume(self) -> None:
        """Start the consumers held back behind the backlog, together (one group round)."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(consumer.start() for consumer in self.consumers)),
                self.spec.driver_config.connect_timeout + 30,
            )
            self.resumed_ns = time.monotonic_ns()
        except Exception as exc:
            self._resume_error = f"{type(exc).__name__}: {exc}"
            self.count_error(f"consumer_start:{type(exc).__name__}")

    async def _settle_resume(self) -> None:
        """Before the consumers stop: a resume under way ends first; consumers never
        resumed (an interrupt during the build) were never started, so nothing stops them."""
        if not self.held_back:
            return
        if self._resume_task is None:
            self.consumers = []
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._resume_task), 30)
        if not self._resume_task.done():
            self._resume_task.cancel()
            await asyncio.gather(self._resume_task, return_exceptions=True)

    async def _send_counts(self) -> None:
        """A backlog point's live counts every COUNTS_EVERY_S during the load: the
        coordinator resumes the consumers when the backlog is built and times its drain."""
        totals = self.totals
        while True:
            # Acks not flushed yet are in ack_end; received_unique is counted on delivery.
            acked = totals.acked + len(self.ack_end)
            self._send(Counts(self.spec.index, acked, totals.received_unique))
            await asyncio.sleep(COUNTS_EVERY_S)

    def _send_failed(
        self, acks: bytearray, seq: int, intended: int, start: int, exc: BaseException
    ) -> None:
        """A send failed (an error, or no ack within send_timeout): counted, never a success."""
        failed_at = time.monotonic_ns()
        self.in_flight -= 1
        acks[seq] = ACK_FAILED
        totals = self.totals
        totals.failed += 1
        self.fail_intended.append(intended)
        self.fail_end.append(failed_at)
        if len(self.fail_at) < FAILURES_KEPT:
            self.fail_at.append(failed_at)
        if self.window_start_ns <= start < self.window_end_ns:
            totals.failed_in_window += 1
        self.count_error(_error_kind(exc))

    def on_message(self, msg: Message) -> None:
        """Consumer callback (the other hot path): a timestamp and the audit."""
        self.recv_at.append(time.monotonic_ns())
        self.recv_intended.append(msg.intended_ns)
        if self.consumer_ledger.record(msg.producer_id, msg.seq, msg.key, msg.key_seq):
            self.totals.received_unique += 1

    def _deliver_to(self, subscription: int = 0) -> Callable[[Message], None]:
        """The consumers' callback: the audit alone, or the audit and the read model (the
        first subscription's); another subscription's consumers audit into its own ledger."""
        if subscription:
            return self._subscription_callback(self.consumer_ledgers[subscription])
        return self.on_message if self.read_model is None else self.on_message_applied

    def _subscription_callback(self, ledger: ConsumerLedger) -> Callable[[Message], None]:
        """``on_message`` for another subscription: the same timestamps (e2e merges every
        subscription), its own ledger."""
        recv_at = self.recv_at.append
        recv_intended = self.recv_intended.append
        record = ledger.record
        totals = self.totals
        clock = time.monotonic_ns

        def on_message(msg: Message) -> None:
            recv_at(clock())
            recv_intended(msg.intended_ns)
            if record(msg.producer_id, msg.seq, msg.key, msg.key_seq):
                totals.received_unique += 1

        return on_message

    def on_message_applied(self, msg: Message) -> None:
        """Consumer callback with ``workload.apply``: the audit, then the read model (timed
        for every delivery, guard included: a skip costs the guard's check)."""
        self.recv_at.append(time.monotonic_ns())
        self.recv_intended.append(msg.intended_ns)
        if self.consumer_ledger.record(msg.producer_id, msg.seq, msg.key, msg.key_seq):
            self.totals.received_unique += 1
        started = time.monotonic_ns()
        self.read_model.apply(msg)  # type: ignore[union-attr]
        self.apply_took.append(time.monotonic_ns() - started)
        self.apply_intended.append(msg.intended_ns)

    def flush(self) -> None:
        """Derive latencies and window counts from the raw timestamps logged since last time."""
        totals = self.totals
        window = (self.window_start_ns, self.window_end_ns)
        rec = self.recorders
        if len(self.ack_end):
            intended = _take(self.ack_intended)
            start = _take(self.ack_start)
            end = _take(self.ack_end)
            measured = (intended >= window[0]) & (intended < window[1])
            rec["response"].record(end - intended, measured)
            rec["response_ok"].record(end - intended, measured)
            rec["service"].record(end - start, measured)
            totals.acked_intended_in_window += int(measured.sum())
            rec["schedule_lag"].record(start - intended, measured)
            if self.spec.timeline:
                self.timeline_acked = self._bucket(self.timeline_acked, end)
            totals.acked += end.size
            totals.sent_in_window += int(((start >= window[0]) & (start < window[1])).sum())
            totals.acked_in_window += int(((end >= window[0]) & (end < window[1])).sum())
        if len(self.fail_end):
            intended = _take(self.fail_intended)
            failed_at = _take(self.fail_end)
            measured = (intended >= window[0]) & (intended < window[1])
            rec["response"].record(
                np.maximum(failed_at - intended, self.failure_floor_ns), measured
            )
            totals.failed_intended_in_window += int(measured.sum())
        skipped = totals.skipped + (self.store.skipped if self.store else 0)
        if self._skipped_recorded < skipped:
            # Never sent: waited at least drain_timeout past the window before being given up.
            new = skipped - self._skipped_recorded
            self._skipped_recorded = skipped
            floor = max(self.failure_floor_ns, self.spec.backlog_ns)
            rec["response"].record(np.full(new, floor, dtype=np.int64), np.ones(new, dtype=bool))
        if self.store is not None:
            self._flush_store(window)
        if self.pipeline is not None:
            applied_at, applied_in_window = self.pipeline.times.flush_into(rec, window)
            totals.delivered += applied_at.size
            totals.received_in_window += applied_in_window
            if self.spec.timeline and applied_at.size:
                # The fault timeline's deliveries are the read model's applications.
                self.timeline_delivered = self._bucket(self.timeline_delivered, applied_at)
        if len(self.recv_at):
            intended = _take(self.recv_intended)
            at = _take(self.recv_at)
            measured = (intended >= window[0]) & (intended < window[1])
            rec["e2e"].record(at - intended, measured)
            if self.resume_ns:
                # The catch-up: every message intended before the resume, warm-up or not (the
                # backlog is built from the load's start), reads as e2e and as "catchup".
                behind = intended < self.resume_ns
                if behind.any():
                    rec["catchup"].record((at - intended)[behind], np.ones(behind.sum(), bool))
            if self.spec.timeline:
                self.timeline_delivered = self._bucket(self.timeline_delivered, at)
            totals.delivered += at.size
            totals.received_in_window += int(((at >= window[0]) & (at < window[1])).sum())
        if len(self.apply_took):
            intended = _take(self.apply_intended)
            took = _take(self.apply_took)
            rec["apply"].record(took, (intended >= window[0]) & (intended < window[1]))

    def _bucket(self, counts: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """Add events to a per-TIMELINE_BUCKET_NS count (bucket 0 starts at the load's start)."""
        index = np.maximum((times_ns - self.start_ns) // TIMELINE_BUCKET_NS, 0)
        added = np.bincount(index)
        if added.size > counts.size:
            counts = np.concatenate([counts, np.zeros(added.size - counts.size, dtype=np.int64)])
        counts[: added.size] += added
        return counts

    async def _act_out_faults(self, driver: Driver) -> None:
        """The fault timeline of an in-process target, or of the point's own consumers: each
        fault at its time, in order."""
        if any(action in CONSUMER_FAULTS for _, action, _ in self.spec.faults):
            if self.spec.consumer_ids:  # a producing-only worker has no consumers to fault
                await self._act_out_consumer_faults(as_stream(driver))
            return
        if not isinstance(driver, InProcessFaults):
            # Validation refuses this; should a third-party driver slip through, every fault
            # reads as failed (the verdict: inconclusive), never as done.
            for _, action, _ in self.spec.faults:
                detail = f"{action}: driver {self.spec.driver!r} cannot act out faults itself"
                self.fault_events.append(
                    {"started_ns": time.monotonic_ns(), "status": "failed", "detail": detail}
                )
            return
        driver.arm_faults()  # track publishes in flight from the start, for a kill

        async def inject(action: str, down_for_s: float, event: dict[str, Any]) -> str:
            return await driver.inject_fault(action, down_for_s)

        # The load ended inside a fault: it was acted out, and the target was never brought
        # back (no restored time).
        await self._fault_timeline(inject, "still down when the load ended")

    async def _fault_timeline(
        self,
        act: Callable[[str, float, dict[str, Any]], Awaitable[str]],
        still_down: str,
    ) -> None:
        """Each of the spec's faults at its time, in order: ``act`` it out, and keep when it
        started and ended, its status and what it did (``fault_events``)."""
        for at_s, action, down_for_s in self.spec.faults:
            await self.timer.sleep_until(self.start_ns + int(at_s * 1e9))
            if self.stopping:
                return
            event: dict[str, Any] = {"started_ns": time.monotonic_ns()}
            self.fault_events.append(event)
            try:
                event["detail"] = await act(action, down_for_s, event)
                event["status"] = "done"
            except asyncio.CancelledError:
                event["status"] = "done"
                event["detail"] = f"{action}: {still_down}"
                raise
            except Exception as exc:
                event["detail"] = f"{action}: {type(exc).__name__}: {exc}"
                event["status"] = "failed"
            event["restored_ns"] = time.monotonic_ns()

    async def _act_out_consumer_faults(self, stream: StreamDriver) -> None:
        """Kill (no commit: what was processed since the last commit is owed again) or restart
        (a graceful stop, which commits) every consumer of this worker, and ``down_for`` later
        start new members of the same group with the same ids."""

        async def act(action: str, down_for_s: float, event: dict[str, Any]) -> str:
            return await self._consumer_fault(stream, action, down_for_s, event)

        await self._fault_timeline(act, "the consumers were still down when the load ended")

    async def _consumer_fault(
        self, stream: StreamDriver, action: str, down_for_s: float, event: dict[str, Any]
    ) -> str:
        """Act one consumer fault out; ``event`` gets its counts (the coordinator adds up every
        worker's: ``consumers``, ``owed``, ``started``, ``assigned_ns``)."""
        consumers = self.consumers
        faulted_at = time.monotonic_ns()
        if action == "kill_consumer":
            not_killable = [c for c in consumers if not isinstance(c, KillableConsumer)]
            if not_killable:
                raise DriverError(f"{self.spec.driver}: its consumers cannot be killed (no kill())")
            # Together: each stops taking deliveries before any of them lets go of its
            # partitions, so no survivor receives a dead one's messages.
            owed_lists = await asyncio.wait_for(
                asyncio.gather(*(c.kill() for c in consumers)),  # type: ignore[attr-defined]
                10,
            )
            owed = [pair for found in owed_lists for pair in found]
            self.redelivery_owed.extend(owed)
            event["owed"] = len(owed)
        else:
            for consumer in consumers:
                await asyncio.wait_for(consumer.stop(), 10)
        event["consumers"] = len(consumers)
        consumers.clear()  # a fault while they are down has nothing to act on
        if down_for_s > 0:
            await asyncio.sleep(down_for_s)
        deliver = self._deliver_to()
        fresh = [
            await stream.consumer(self.spec.topology, consumer_id, deliver)
            for consumer_id in self.spec.consumer_ids
        ]
        await asyncio.wait_for(
            asyncio.gather(*(consumer.start() for consumer in fresh)),
            self.spec.driver_config.connect_timeout + 30,
        )
        consumers.extend(fresh)
        event["started"] = len(fresh)
        event["assigned_ns"] = time.monotonic_ns() - faulted_at
        return consumer_fault_text(action, event, down_for_s)

    def _flush_store(self, window: tuple[int, int]) -> None:
        assert self.store is not None
        store, rec, totals = self.store, self.recorders, self.totals
        if len(store.cmd_end):
            intended = _take(store.cmd_intended)
            start = _take(store.cmd_start)
            end = _take(store.cmd_end)
            completed = _take(store.cmd_completed).astype(bool)
            measured = (intended >= window[0]) & (intended < window[1])
            # Abandoned commands count in response latency at their time to giving up.
            rec["response"].record(end - intended, measured)
            rec["response_ok"].record(end[completed] - intended[completed], measured[completed])
            rec["schedule_lag"].record(start - intended, measured)
            totals.acked_intended_in_window += int((measured & completed).sum())
            totals.failed_intended_in_window += int((measured & ~completed).sum())
            totals.sent += end.size
            totals.sent_in_window += int(((start >= window[0]) & (start < window[1])).sum())
        if len(store.attempt_end):
            start = _take(store.attempt_start)
            end = _take(store.attempt_end)
            rec["service"].record(end - start, (start >= window[0]) & (start < window[1]))
        totals.acked = store.totals.commits
        totals.acked_in_window = store.totals.commits_in_window
        if len(store.commit_at) and self.spec.timeline:
            self.timeline_acked = self._bucket(self.timeline_acked, _take(store.commit_at))
        elif len(store.commit_at):
            del store.commit_at[:]
        if len(store.error_at):
            failed = _take(store.error_at)
            if self.spec.timeline and len(self.fail_at) < FAILURES_KEPT:
                self.fail_at.extend(failed.tolist())
        if len(store.projection_lag):
            lags = _take(store.projection_lag)
            now = time.monotonic_ns()
            in_window = np.full(lags.size, now >= window[0], dtype=bool)
            rec["e2e"].record(lags, in_window)
            totals.delivered += lags.size
            if window[0] <= now < window[1]:
                totals.received_in_window += lags.size

    # -- self-monitoring and intervals
    async def _probe_loop_lag(self) -> None:
        """How late the loop wakes a precise timer: the harness's own responsiveness."""
        rec = self.loop_lag
        while True:
            due = time.monotonic_ns() + LOOP_PROBE_NS
            await self.timer.sleep_until(due)
            lag = time.monotonic_ns() - due
            rec.interval_buf.append(lag)
            if self.window_start_ns <= due < self.window_end_ns:
                rec.measured_buf.append(lag)

    async def _ticker(self) -> None:
        interval = self.spec.interval_ns
        k = 1
        self._cpu_mark = (time.process_time(), time.monotonic())
        while True:
            await self.timer.sleep_until(self.start_ns + k * interval)
            self._ship_interval(final=False)
            k += 1

    def _ship_interval(self, final: bool) -> None:
        self.flush()
        now_ns = time.monotonic_ns()
        cpu, wall = time.process_time(), time.monotonic()
        cpu_mark = self._cpu_mark or (cpu, wall)
        self._cpu_mark = (cpu, wall)
        elapsed = max(wall - cpu_mark[1], 1e-9)
        totals = self.totals
        counts = (totals.sent, totals.acked, totals.delivered)
        last = self._last_counts
        self._last_counts = counts
        payload = {
            "end_ns": now_ns,
            "final": final,
            "hist": {kind: rec.take_interval() for kind, rec in self.recorders.items()},
            "measured": {kind: rec.take_measured_delta() for kind, rec in self.recorders.items()},
            "loop_lag": self.loop_lag.take_interval(),
            "loop_lag_measured": self.loop_lag.take_measured_delta(),
            "sent": counts[0] - last[0],
            "acked": counts[1] - last[1],
            "delivered": counts[2] - last[2],
            "errors": dict(self._interval_errors),
            "in_flight": self.in_flight,
            "cpu_pct": 100.0 * (cpu - cpu_mark[0]) / elapsed,
        }
        self._interval_errors.clear()
        self._send(Interval(self.spec.index, payload))

    async def _finish(
        self, driver: Driver, consumers: list[Consumer], producers: list[Producer]
    ) -> None:
        for consumer in consumers:
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception as exc:
                self.count_error(f"consumer_stop:{type(exc).__name__}")
        for producer in producers:
            try:
                await asyncio.wait_for(producer.close(), 10)
            except Exception as exc:
                self.count_error(f"producer_close:{type(exc).__name__}")
        loss = await self._classify_losses(driver)
        # Describe first: asking the target can count an error too (a pool replacing a dead
        # connection), and the last interval must hold every error the totals do.
        described = None
        if self.spec.describe:
            with contextlib.suppress(Exception):
                described = await asyncio.wait_for(driver.describe(), 10)
        # The last interval goes out only now: consumers stopping and the store's projector
        # catching up still record samples, and the coordinator merges intervals after finals.
        if self.start_ns:  # stopped before the load began: there is no interval to ship
            self._ship_interval(final=True)
        totals = self.totals
        self._send(
            Final(
                self.spec.index,
                {
                    "producers": (
                        [ledger.export() for ledger in self.pipeline.relays.ledgers]
                        if self.pipeline is not None and self.pipeline.relays is not None
                        else [f.ledger.export() for f in self.factories]
                    ),
                    "consumers": (
                        self.pipeline.projection.ledger.export()
                        if self.pipeline is not None
                        else self.consumer_ledger.export()
                    ),
                    "sent": totals.sent,
                    "acked": totals.acked,
                    "failed": totals.failed,
                    "delivered": totals.delivered,
                    "sent_in_window": totals.sent_in_window + totals.failed_in_window,
                    "acked_in_window": totals.acked_in_window,
                    "received_in_window": totals.received_in_window,
                    "skipped": totals.skipped,
                    "acked_intended_in_window": totals.acked_intended_in_window,
                    "failed_intended_in_window": totals.failed_intended_in_window,
                    "errors": dict(totals.errors),
                    "negatives": {k: r.negatives for k, r in self.recorders.items()},
                    "clamped": {k: r.clamped for k, r in self.recorders.items()},
                    "in_flight_peak": self.in_flight_peak,
                    "send_turn_waits": sum(t.waits for t in self.turns),
                    "oversize": sum(f.oversize for f in self.factories),
                    "describe": described,
                    "store": self.store.totals.export() if self.store is not None else None,
                    "store_loads": (
                        (self.store.load_ns.tobytes(), self.store.load_length.tobytes())
                        if self.store is not None
                        else None
                    ),
                    "store_skipped": self.store.skipped if self.store else 0,
                    "invariants": self.invariants,
                    "invariants_not_checked": self.invariants_not_checked,
                    "pid": os.getpid(),
                    "apply": self.read_model.export() if self.read_model is not None else None,
                    "redelivery_owed": self.redelivery_owed,
                    "timeline": self._timeline_export() if self.spec.timeline else None,
                    "loss": loss,
                    "pipeline": self._pipeline_export(),
                    # The order projection over what this worker's consumers received.
                    "projection": (
                        self.consumer_ledger.projection() if self.spec.consumer_ids else None
                    ),
                    # The other subscriptions' ledgers (subscription 1, 2, ...), as "consumers".
                    "subscriptions": [ledger.export() for ledger in self.consumer_ledgers[1:]],
                    "backlog": (
                        {
                            "resume_ns": self.resume_ns or None,
                            "resumed_ns": self.resumed_ns or None,
                            "error": self._resume_error,
                        }
                        if self.held_back and self.spec.consumer_ids
                        else None
                    ),
                },
            )
        )

    def _pipeline_export(self) -> dict[str, Any] | None:
        pipeline = self.pipeline
        if pipeline is None:
            return None
        return {
            "totals": pipeline.totals.export(),
            "drained": self.pipeline_drained,
            "check": self.pipeline_check,
            "read_model": pipeline.read_model_where,
            "relays": len(pipeline.producers),
            "appliers": pipeline.appliers,
            "outbox_backlog": pipeline.backlog_samples,
            "in_window": dict(pipeline.times.in_window),
        }

    async def _classify_losses(self, driver: Driver) -> dict[str, Any] | None:
        """An in-process target's broker lives here: its losses are sorted here, after the
        consumers stopped (a shared target's are sorted once, by the coordinator)."""
        if not (self.spec.prepare_here and self.factories and self.spec.consumer_ids):
            return None
        lost = lost_ids(
            [f.ledger.export() for f in self.factories], [self.consumer_ledger.export()]
        )
        return await classify_topics(driver, self.spec.topology, lost, REREAD_BUDGET_S)

    def _timeline_export(self) -> dict[str, Any]:
        return {
            "bucket_ns": TIMELINE_BUCKET_NS,
            "acked": self.timeline_acked.tobytes(),
            "delivered": self.timeline_delivered.tobytes(),
            "fail_at": self.fail_at.tobytes(),
            "error_at": {kind: times.tobytes() for kind, times in self.error_at.items()},
            "intended": {
                f.ledger.producer_id: f.ledger.intended.tobytes()
                for f in self.factories
                if f.ledger.intended is not None
            },
            "reordered_seqs": self.consumer_ledger.reordered_seqs,
            "faults": self.fault_events,
        }


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, BenchError):
        return exc.message.split(":", 1)[0][:40]
    return type(exc).__name__
