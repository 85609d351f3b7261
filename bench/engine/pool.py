"""A run point's workers as the coordinator sees them: their processes, their pipes, and what
each has reported so far.

Local workers are spawned processes (``spawn_local``); under ``bench locust`` a launcher hands
out stand-ins for Locust workers (bench/locust/cluster.py) that look the same from here.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

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
    Stop,
)
from bench.engine.workers import WorkerSpec, worker_main
from bench.errors import BenchError, DriverError

REAP_TIMEOUT_S = 10.0  # a worker that reported its results: time to close its clients
UNFINISHED_REAP_TIMEOUT_S = 1.5  # a worker stopped before it reported: time to leave
KILL_WAIT_S = 5.0  # after SIGTERM (then SIGKILL): how long to wait for the process to go


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
    """One worker and what it has reported."""

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
    # A backlog point's live counts (Counts during the load, Progress during the drain).
    live_acked: int = 0
    live_received: int = 0
    intervals: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_interval: int = 1
    described: dict[str, Any] | None = None  # the target's describe(), if this worker asked


def spawn_local(specs: list[WorkerSpec]) -> list[WorkerState]:
    """One spawned process per spec, each with its control pipe."""
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


def broadcast(states: list[WorkerState], message: Control) -> None:
    for state in states:
        with contextlib.suppress(OSError, BrokenPipeError):
            state.conn.send(message)


def receive(states: list[WorkerState], timeout: float) -> None:
    """Take in whatever the workers sent within ``timeout`` seconds.

    Raises DriverError with a worker's own words when it failed, and BenchError when one died
    before reporting its results."""
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
        _take(state, message)


def _take(state: WorkerState, message: Report) -> None:
    match message:
        case Ready(described=described):
            state.ready = True
            state.described = described
        case Interval(figures=figures):
            state.intervals[state.next_interval] = figures
            state.next_interval += 1
        case Produced():
            state.produced = True
        case Progress(acked=acked, received_unique=unique, delivered=delivered):
            state.acked, state.received_unique, state.delivered = acked, unique, delivered
            state.live_acked, state.live_received = acked, unique
            state.progressed = True
        case Counts(acked=acked, received=received):
            state.live_acked, state.live_received = acked, received
        case Final(results=results):
            state.final = results
        case Failed(message=text):
            raise DriverError(text)


def reap(states: list[WorkerState]) -> None:
    """Let the workers exit, and end those that do not in time.

    A worker that reported its results is closing its clients: it gets ``REAP_TIMEOUT_S``.
    One that did not (an interrupt or an error came first, perhaps before the start) is told
    to stop and finish, and gets ``UNFINISHED_REAP_TIMEOUT_S``: nothing it holds is wanted.
    """
    unfinished = [s for s in states if s.final is None]
    broadcast(unfinished, Stop())
    broadcast(unfinished, Finish())
    now = time.monotonic()
    for state in states:
        budget = REAP_TIMEOUT_S if state.final is not None else UNFINISHED_REAP_TIMEOUT_S
        state.process.join(timeout=max(0.0, now + budget - time.monotonic()))
    for state in states:
        if state.process.is_alive():
            state.process.terminate()
            state.process.join(timeout=KILL_WAIT_S)
        if state.process.is_alive():
            state.process.kill()
            state.process.join(timeout=KILL_WAIT_S)
        with contextlib.suppress(Exception):
            state.conn.close()
