"""Acting out the fault timeline against a real service, from the coordinator.

A :class:`FaultInjector` runs in a thread beside the coordinator's loop: it sleeps until each
fault's time (measured from the load's start ``t0``), acts, and notes when the action began,
when the target was down, when it was brought back and when it answered its protocol again.
Stopping it early (Ctrl-C, a failed run) never leaves a service paused or dead: whatever the
current fault took down is brought back before :meth:`FaultInjector.stop` returns.

``disconnect`` drops the TCP connections the worker processes hold to the service with
``ss -K`` (the kernel's socket destroy; it needs CAP_NET_ADMIN), so every client library
sees a reset connection and has to reconnect by itself.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import infra
from bench.drivers.base import BenchService, load_driver
from bench.errors import BenchError, InfraError
from bench.scenario import Fault

ANSWER_TIMEOUT_S = 30.0  # how long a resumed service may take to answer again


@dataclass
class FaultEvent:
    """What one fault did, on the monotonic clock (ns); None where it did not get that far."""

    index: int
    action: str
    at_s: float
    down_for_s: float
    service: str
    endpoint: str
    status: str = "not reached"
    detail: str = ""
    started_ns: int | None = None
    down_ns: int | None = None
    restored_ns: int | None = None
    answering_ns: int | None = None
    problems: list[str] = field(default_factory=list)


def service_for(driver: str) -> str | None:
    """The ``bench up`` service a driver's target runs on (None: not one eventbench starts).
    The driver says which (``BenchService`` in bench/drivers/base.py)."""
    cls = load_driver(driver)
    if not issubclass(cls, BenchService):
        return None
    name = cls.service_name()
    return name if name in infra.SERVICES else None


def check_faultable(driver: str, state_dir: Path | None = None) -> infra.ServiceFaults:
    """Fail before the load starts if the faults cannot be acted out on this target."""
    service = service_for(driver)
    if service is None:
        services = ", ".join(sorted(infra.SERVICES))
        raise BenchError(
            f"faults: the {driver!r} driver's target is not a service bench up manages",
            hint=f"faults act on {services} (via bench up) and on in-process targets (memory)",
        )
    return infra.ServiceFaults(service, state_dir)


class FaultInjector:
    """Acts out a list of faults against one service, in a thread."""

    def __init__(
        self,
        faults: list[Fault],
        handle: infra.ServiceFaults,
        t0_ns: int,
        worker_pids: Callable[[], list[int]],
    ) -> None:
        self.handle = handle
        self.t0_ns = t0_ns
        self.worker_pids = worker_pids
        self.faults = faults
        self.events = [
            FaultEvent(i, f.action, float(f.at), f.down_for_s, handle.name, handle.endpoint)
            for i, f in enumerate(faults)
        ]
        self._stop = threading.Event()
        self._stopped = False
        self._down: str | None = None  # what the current fault left down: "paused" | "stopped"
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        """Whether a fault is still due or a target still down (the thread is acting)."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 120.0) -> list[str]:
        """Stop acting and bring back whatever is down; the problems, if any, as lines.

        Only the first call does anything (a Ctrl-C stops the timeline at once, the end of the
        point stops it again)."""
        if self._stopped:
            return []
        self._stopped = True
        self._stop.set()
        self._thread.join(timeout_s)
        problems = [p for e in self.events for p in e.problems]
        if self._thread.is_alive():
            problems.append(f"faults: the fault thread did not finish within {timeout_s:g}s")
        if self._down is not None:
            problems.extend(self._bring_back(None))
        return problems

    # -- the thread
    def _run(self) -> None:
        for event in self.events:
            due_s = (self.t0_ns + int(event.at_s * 1e9) - time.monotonic_ns()) / 1e9
            if due_s > 0 and self._stop.wait(due_s):
                return
            event.started_ns = time.monotonic_ns()
            try:
                self._act(event)
                event.status = "done"
            except Exception as exc:  # the thread's boundary: every failure becomes a problem
                event.status = "failed"
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                event.detail = f"{event.detail}; {message}".strip("; ")
                event.problems.append(f"fault {event.index} ({event.action}) failed: {message}")
                event.problems.extend(self._bring_back(event))

    def _act(self, event: FaultEvent) -> None:
        handle = self.handle
        details: list[str] = []
        if event.action == "disconnect":
            details.append(self._drop_connections())
            event.down_ns = time.monotonic_ns()
            event.detail = "; ".join(details)
            return
        if event.action == "pause":
            details.append(handle.pause())
            self._down = "paused"
        elif event.action == "kill":
            details.append(handle.kill())
            self._down = "stopped"
        else:  # restart
            details.append(handle.stop())
            self._down = "stopped"
        event.down_ns = time.monotonic_ns()
        event.detail = "; ".join(details)
        # Stay down for down_for, unless the run is stopping: then come back at once.
        self._stop.wait(event.down_for_s)
        event.detail = "; ".join([*details, *self._bring_back(event, raise_errors=True)])

    def _bring_back(self, event: FaultEvent | None, raise_errors: bool = False) -> list[str]:
        """Resume or start what the current fault took down; the steps taken, as text."""
        down, self._down = self._down, None
        if down is None:
            return []
        steps: list[str] = []
        try:
            if down == "paused":
                steps.append(self.handle.resume())
            else:
                steps.append(self.handle.start())
            if event is not None:
                event.restored_ns = time.monotonic_ns()
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while not self.handle.answering():
                if time.monotonic() > deadline:
                    raise InfraError(
                        f"{self.handle.name} did not answer {ANSWER_TIMEOUT_S:g}s after coming back"
                    )
                time.sleep(0.05)
            if event is not None:
                event.answering_ns = time.monotonic_ns()
        except (BenchError, OSError, psutil.Error) as exc:
            if raise_errors:
                raise
            message = getattr(exc, "message", None) or str(exc)
            return [f"faults: could not bring {self.handle.name} back: {message}"]
        return steps

    def _drop_connections(self) -> str:
        port = self.handle.address.port
        local_ports = sorted(
            {
                conn.laddr.port
                for pid in self.worker_pids()
                for conn in _connections(pid)
                if conn.raddr and conn.raddr.port == port and conn.status == "ESTABLISHED"
            }
        )
        if not local_ports:
            raise InfraError(
                f"disconnect: the workers hold no connection to {self.handle.endpoint}",
                hint="is the target configured with the address bench up serves?",
            )
        ss = shutil.which("ss") or shutil.which("ss", path="/usr/sbin:/sbin:/usr/bin")
        if ss is None:
            raise InfraError("disconnect needs ss (apt-get install iproute2)")
        sports = " or ".join(f"sport = :{p}" for p in local_ports)
        result = subprocess.run(
            [ss, "-K", "-tn", f"dport = :{port} and ( {sports} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        killed = max(0, len(result.stdout.strip().splitlines()) - 1)
        if result.returncode != 0 or killed == 0:
            raise InfraError(
                f"disconnect: ss -K dropped no connection ({result.stderr.strip() or 'no match'})",
                hint="ss -K needs root (CAP_NET_ADMIN) and a kernel with INET_DIAG_DESTROY",
            )
        return f"dropped {killed} of the workers' connections to port {port}"


def _connections(pid: int) -> list[Any]:
    try:
        return list(psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.Error:
        return []
