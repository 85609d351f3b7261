"""A Locust worker that runs our engine: one asyncio loop in a native thread per point.

Run by ``bench locust`` for local workers, or by hand on another machine
(``bench locust-worker --master-host HOST``). Locust's gevent hub keeps the main thread; the
engine (``bench.engine.workers.Worker``, the same code ``bench run`` uses) runs on uvloop in
a native thread from gevent's thread pool, so neither blocks the other. The hand-off is a
socket pair: the engine reads its end with its event loop, a greenlet waits on the other
with ``gevent.socket.wait_read`` and relays to the master as Locust custom messages.

Clocks: on the master's host the engine shares the runner's monotonic clock. On another host
the start time is translated through the wall clock, so end-to-end latency between a producer
on one host and a consumer on another carries the hosts' clock offset (keep them in sync with
chrony or PTP; see docs/locust.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import gevent
from gevent.socket import wait_read
from gevent.threadpool import ThreadPool
from locust.env import Environment

from bench.engine.messages import Failed, Finish, Interval, Start, from_wire, to_wire
from bench.engine.workers import Worker, WorkerSpec
from bench.errors import BenchError
from bench.locust.wire import spec_from_wire

MESSAGE = "bench"
log = logging.getLogger("bench.locust.worker")


def _run_engine(spec: WorkerSpec, conn: Connection) -> None:
    """The engine's worker, on its own uvloop loop (this runs in a native thread)."""
    handler: logging.Handler | None = None
    log_path = spec.log_path
    if not log_path or not Path(log_path).parent.is_dir():
        # The runner's results directory is on another machine: keep the log here.
        log_path = str(Path(tempfile.gettempdir()) / f"eventbench-worker-{spec.index}.log")
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(Worker(spec, conn).run())
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send(Failed(spec.index, f"worker crashed: {exc!r}", traceback.format_exc()))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        conn.close()


class Session:
    """One point's engine on this worker: its thread, its socket pair, its clock offset."""

    def __init__(self, relay: WorkerRelay, spec: WorkerSpec, same_host: bool) -> None:
        self.relay = relay
        self.same_host = same_host
        self.offset_ns = 0  # this host's monotonic clock minus the runner's
        self.ours, theirs = Pipe(duplex=True)
        # gevent's socketpair is non-blocking underneath; reads here follow wait_read.
        os.set_blocking(self.ours.fileno(), True)
        self.result = relay.pool.spawn(_run_engine, spec, theirs)
        self.pump = gevent.spawn(self._pump)

    def to_engine(self, wire: tuple[Any, ...]) -> None:
        try:
            message = from_wire(wire)
        except ValueError as exc:
            logging.getLogger("bench.locust").warning("from the master: %s", exc)
            return
        if isinstance(message, Start) and not self.same_host:
            local_t0 = time.monotonic_ns() + int((message.epoch_at_t0 - time.time()) * 1e9)
            self.offset_ns = local_t0 - message.t0_ns
            message = Start(local_t0, message.epoch_at_t0)
        with contextlib.suppress(OSError):
            self.ours.send(message)

    def _pump(self) -> None:
        while True:
            try:
                wait_read(self.ours.fileno())
                message = self.ours.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Interval) and self.offset_ns:
                message.figures["end_ns"] -= self.offset_ns
            self.relay.runner.send_message(MESSAGE, to_wire(message))
        self.ours.close()

    def end(self) -> None:
        """The runner closed this point's link: make sure the engine winds down."""
        with contextlib.suppress(OSError):
            self.ours.send(Finish())


class WorkerRelay:
    def __init__(self, runner: Any, wall_clock: bool = False) -> None:
        self.runner = runner
        self.wall_clock = wall_clock  # translate times through the wall clock even on one host
        self.pool = ThreadPool(2)
        self.session: Session | None = None
        runner.register_message(MESSAGE, self.from_master)

    def from_master(self, environment: Any, msg: Any) -> None:
        message = tuple(msg.data)
        if message[0] == "spec":
            try:
                spec = spec_from_wire(message[1])
            except (BenchError, ValueError, KeyError, TypeError) as exc:
                text = exc.message if isinstance(exc, BenchError) else str(exc)
                failed = Failed(-1, f"worker spec: {text}")
                self.runner.send_message(MESSAGE, to_wire(failed))
                return
            same_host = message[2] == socket.gethostname() and not self.wall_clock
            self.session = Session(self, spec, same_host)
        elif message[0] == "_end":
            if self.session is not None:
                self.session.end()
                self.session = None
        elif self.session is not None:
            self.session.to_engine(message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench locust-worker")
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=5557)
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="translate the start time through the wall clock even when this host's name is "
        "the master's (a container or VM whose monotonic clock is not the master's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="locust worker: %(levelname)s %(message)s")
    env = Environment(user_classes=[])
    runner = env.create_worker_runner(args.master_host, args.master_port)
    WorkerRelay(runner, wall_clock=args.wall_clock)
    print(
        f"eventbench Locust worker {socket.gethostname()} pid {os.getpid()} -> "
        f"{args.master_host}:{args.master_port}",
        file=sys.stderr,
    )
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
