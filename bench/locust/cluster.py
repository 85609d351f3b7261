"""``bench locust``'s side of a Locust cluster; it never imports Locust.

:class:`LocustCluster` starts a Locust master (``bench.locust.master``) and any local Locust
workers (``bench.locust.worker``) as subprocesses in their own sessions (a Ctrl-C reaches only
``bench``, which then stops the load through the workers, as ``bench run`` does), waits for
the expected workers, and gives the point runner a launcher: for each point, one connection
per Locust worker, over which the runner speaks to a worker exactly as to a local process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from bench.engine.pool import WorkerState
from bench.engine.workers import WorkerSpec
from bench.errors import BenchError
from bench.locust.wire import spec_to_wire
from bench.scenario import RunPoint

CONNECT_TIMEOUT_S = 30.0


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host if host not in ("*", "0.0.0.0") else "127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RemoteWorker:
    """What the point runner needs of a worker process, for a Locust worker."""

    index: int
    client_id: str
    link: Connection
    pid: int | None = None  # only when it runs on this host (for disconnect faults)
    exitcode: int | None = None

    def is_alive(self) -> bool:
        return not self.link.closed

    def join(self, timeout: float | None = None) -> None:
        return None  # the Locust worker outlives the point; the cluster stops it

    def terminate(self) -> None:
        return None

    def kill(self) -> None:
        return None  # the cluster stops the Locust worker


class LocustCluster:
    """The master and local workers of ``bench locust``. Their output goes to ``log_dir``
    while they run; a clean end removes those logs (and ``log_dir`` when that leaves it empty),
    any other end keeps them, since the error may be explained there."""

    def __init__(
        self,
        local_workers: int,
        remote_workers: int = 0,
        bind_host: str = "127.0.0.1",
        bind_port: int | None = None,
        log_dir: Path | None = None,
        wait_s: float = 60.0,
    ) -> None:
        if local_workers + remote_workers < 1:
            raise BenchError("bench locust needs at least one worker", hint="--workers 2")
        self.local_workers = local_workers
        self.expected = local_workers + remote_workers
        self.bind_host = bind_host
        self.bind_port = bind_port or _free_port(bind_host)
        self.log_dir = log_dir
        self.wait_s = wait_s
        self._authkey = secrets.token_bytes(32)
        self._listener: Listener | None = None
        self._control: Connection | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        self.workers: list[dict[str, Any]] = []
        self.hostname = socket.gethostname()

    # -- lifecycle
    def __enter__(self) -> LocustCluster:
        try:
            self.start()
        except BaseException:
            self.close(keep_logs=True)
            raise
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        # The CLI ends a run by raising its exit: only code 0 counts as a clean end.
        self.close(keep_logs=exc is not None and getattr(exc, "exit_code", 1) != 0)

    def start(self) -> None:
        self._listener = Listener(("127.0.0.1", 0), authkey=self._authkey)
        host, port = self._listener.address
        env = {**os.environ, "BENCH_LOCUST_AUTHKEY": self._authkey.hex()}
        self._spawn(
            [
                "bench.locust.master",
                "--bind-host",
                self.bind_host,
                "--bind-port",
                str(self.bind_port),
                "--control",
                f"{host}:{port}",
            ],
            "locust-master.log",
            env,
        )
        self._control = self._accept("the Locust master")
        hello = self._recv(self._control, "the Locust master")
        if hello[0] != "hello":
            raise BenchError(f"locust master: unexpected greeting {hello[0]!r}")
        master_host = "127.0.0.1" if self.bind_host in ("*", "0.0.0.0") else self.bind_host
        for i in range(self.local_workers):
            self._spawn(
                [
                    "bench.locust.worker",
                    "--master-host",
                    master_host,
                    "--master-port",
                    str(self.bind_port),
                ],
                f"locust-worker-{i}.log",
                {k: v for k, v in env.items() if k != "BENCH_LOCUST_AUTHKEY"},
            )
        self._control.send(("await_workers", self.expected, self.wait_s))
        reply = self._recv(self._control, "the Locust master", self.wait_s + 10)
        if reply[0] != "workers":
            raise BenchError(
                f"locust: {reply[1]}",
                hint=f"remote workers: bench locust-worker --master-host THIS_HOST "
                f"--master-port {self.bind_port}",
            )
        self.workers = list(reply[1])

    def close(self, keep_logs: bool = False) -> None:
        if self._control is not None and not self._control.closed:
            with contextlib.suppress(OSError):
                self._control.send(("quit",))
            self._control.close()
        deadline = time.monotonic() + 15
        for process in self._processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if not keep_logs:
            self._remove_logs()

    def _remove_logs(self) -> None:
        for log in self._logs:
            log.unlink(missing_ok=True)
        self._logs.clear()
        if self.log_dir is not None:
            with contextlib.suppress(OSError):  # not empty: someone else's files stay
                self.log_dir.rmdir()

    # -- points
    def launcher(self, point: RunPoint) -> Any:
        """The point runner's launcher for one point."""
        options = dict(point.scenario.targets[point.target])

        def launch(specs: list[WorkerSpec]) -> list[WorkerState]:
            return self._launch(specs, point.target, options)

        return launch

    def _launch(
        self, specs: list[WorkerSpec], target: str, options: dict[str, Any]
    ) -> list[WorkerState]:
        if len(specs) != len(self.workers):
            raise BenchError(
                f"locust: the point has {len(specs)} workers but {len(self.workers)} Locust "
                "workers are connected"
            )
        assert self._control is not None
        self._control.send(("point", len(specs)))
        links: dict[int, tuple[Connection, str]] = {}
        for _ in specs:
            link = self._accept("a Locust worker link")
            bind = self._recv(link, "a Locust worker link")
            links[int(bind[1])] = (link, str(bind[2]))
        reply = self._recv(self._control, "the Locust master")
        if reply[0] != "bound":
            raise BenchError(f"locust master: unexpected reply {reply[0]!r}")
        states = []
        for spec in specs:
            link, client_id = links[spec.index]
            link.send(("spec", spec_to_wire(spec, target, options), self.hostname))
            states.append(WorkerState(spec.index, RemoteWorker(spec.index, client_id, link), link))
        return states

    # -- plumbing
    def _spawn(self, module_args: list[str], log_name: str, env: dict[str, str]) -> None:
        log = (self.log_dir / log_name) if self.log_dir else None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._logs.append(log)
        with open(log or os.devnull, "ab") as output:
            self._processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", *module_args],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # Ctrl-C goes to bench, which stops the load
                )
            )

    def _accept(self, what: str) -> Connection:
        assert self._listener is not None
        accepted: list[Connection] = []
        failed: list[BaseException] = []

        def accept() -> None:
            try:
                assert self._listener is not None
                accepted.append(self._listener.accept())
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.1)
            for process in self._processes:
                if process.poll() is not None:
                    raise BenchError(
                        f"locust: a cluster process exited (code {process.returncode}) while "
                        f"waiting for {what}",
                        hint=f"its log is in {self.log_dir}" if self.log_dir else None,
                    )
        if failed:
            raise BenchError(f"locust: {what} could not connect: {failed[0]!r}")
        if not accepted:
            raise BenchError(f"locust: {what} did not connect within {CONNECT_TIMEOUT_S:g}s")
        return accepted[0]

    def _recv(self, conn: Connection, what: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
        if not conn.poll(timeout_s):
            raise BenchError(f"locust: no answer from {what} within {timeout_s:g}s")
        try:
            return conn.recv()
        except (EOFError, OSError):
            raise BenchError(f"locust: {what} closed the connection") from None
