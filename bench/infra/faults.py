"""Kill, stop, start, pause and resume one service eventbench started (for ``bench/faults/``).

Only a service ``bench up`` started qualifies: eventbench never faults what it did not start.
A pause notes its own process in the state directory, so ``bench status`` can tell a pause
still held from one left behind by a killed coordinator (``bench/infra/resume.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from bench.errors import InfraError
from bench.infra.commands import COMMAND_TIMEOUT_S, run
from bench.infra.processes import STOP_TIMEOUT_S
from bench.infra.registry import get
from bench.infra.state import PAUSED, load_record, locked, write_json


class ServiceFaults:
    """Kill, stop, start, pause and resume one service that eventbench started.

    The fault timeline (``bench/faults/``) acts through this. Only a service ``bench up``
    started qualifies: eventbench never kills what it did not start. Stopping and starting
    keep the service's data (its state directory stays), as a real broker restart does. The
    methods block; each wait is bounded.
    """

    def __init__(self, name: str, state_dir: Path | None = None) -> None:
        self.service = get(name)
        self.name = name
        self.state_dir = state_dir
        self.directory = self.service.directory(state_dir)
        self.address = self.service.address()
        self.endpoint = self.address.endpoint
        current = self.service.status(state_dir)
        if not current.running:
            raise InfraError(
                f"{name} does not answer at {current.endpoint}", hint=f"bench up {name}"
            )
        if not current.managed:
            raise InfraError(
                f"{name} at {current.endpoint} was not started by bench up, and eventbench "
                "injects faults only into services it started",
                hint=f"point {self.service.env} at a free port and run bench up {name} first",
            )
        self._paused: list[psutil.Process] = []

    def processes(self) -> list[psutil.Process]:
        """The server process and everything it forked (backends, port helpers)."""
        procs = self.service.processes(load_record(self.directory), self.address)
        if not procs:
            raise InfraError(f"{self.name}: no process listens on port {self.address.port}")
        return procs

    def kill(self) -> str:
        """SIGKILL the server and its children; return once they are gone."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _, alive = psutil.wait_procs(procs, timeout=10)
        if alive:
            raise InfraError(f"{self.name}: pid {alive[0].pid} survived SIGKILL")
        return f"SIGKILL pid {procs[0].pid}"

    def stop(self) -> str:
        """A graceful stop: SIGTERM (or the service's stop command), SIGKILL as a last resort."""
        record = load_record(self.directory)
        procs = self.processes()
        began = time.monotonic()
        if record is not None and record.pid is None and record.stop:
            run(list(record.stop), COMMAND_TIMEOUT_S, what=f"stop {self.name}")
        else:
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=STOP_TIMEOUT_S)
        if alive:
            self.kill()
            return f"stopped pid {procs[0].pid} (SIGKILL after {STOP_TIMEOUT_S:g}s)"
        return f"stopped pid {procs[0].pid} in {time.monotonic() - began:.1f}s"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start it again on the same address and data; return once it answers."""
        began = time.monotonic()
        deadline = began + timeout_s
        with locked(self.directory.parent, deadline):
            if self.service.probe(self.address).running:
                return "already answering"
            result = self.service.start(self.address, self.directory, deadline)
        head = result.detail.split("; ")[0]
        return f"{head}, answering in {time.monotonic() - began:.1f}s"

    def pause(self) -> str:
        """SIGSTOP the server and its children (connections stay open, nothing answers)."""
        self._paused = self.processes()
        # Tells bench status / bench up that this pause is deliberate while this process
        # lives, and that it was left behind once this process is gone.
        write_json(
            self.directory / PAUSED,
            {"pid": os.getpid(), "create_time": psutil.Process().create_time()},
        )
        for proc in self._paused:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        return f"SIGSTOP pid {self._paused[0].pid}"

    def resume(self) -> str:
        """SIGCONT what :meth:`pause` stopped (safe to call when nothing is paused)."""
        paused, self._paused = self._paused, []
        for proc in paused:
            with contextlib.suppress(psutil.Error):
                proc.resume()
        (self.directory / PAUSED).unlink(missing_ok=True)
        return f"SIGCONT pid {paused[0].pid}" if paused else "nothing paused"

    def answering(self) -> bool:
        return self.service.probe(self.address).running
