"""What every local service is: a :class:`Service` knows its address, how to probe, start and
stop it, where its state lives and which processes are its own.

A service module under ``bench/infra/services/`` subclasses :class:`Service` with its name,
product, environment variable and default address, and writes :meth:`Service.probe` (a real
protocol exchange) and :meth:`Service.start`. What is the same for every service lives here:
reading the address from the environment, ``status`` (records, probe, resuming a server left
stopped), waiting for a start to answer, and stopping what eventbench started.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import psutil

from bench.errors import InfraError
from bench.infra.commands import COMMAND_TIMEOUT_S, last_line, read_log, run
from bench.infra.processes import service_processes, spawn, terminate
from bench.infra.resume import resume_stopped
from bench.infra.state import (
    POLL_INTERVAL_S,
    Record,
    forget,
    how,
    load_record,
    record_alive,
    service_dir,
)

PROBE_TIMEOUT_S = 2.0
RESUME_TIMEOUT_S = 10.0  # how long a resumed server may take to answer again


@dataclass(frozen=True)
class ServiceStatus:
    """What one local service looks like right now."""

    name: str
    running: bool
    managed: bool
    endpoint: str
    product: str
    version: str | None
    detail: str
    # One line when this call had to SIGCONT a process eventbench started (e.g. left stopped
    # by a pause fault whose coordinator was killed); None otherwise.
    resumed: str | None = None


@dataclass(frozen=True)
class Address:
    """Where a service answers: the client's URL (credentials included) and what is shown."""

    url: str
    host: str
    port: int
    endpoint: str


@dataclass(frozen=True)
class Probe:
    """What one protocol exchange learnt: whether it answers, and what it said it is."""

    running: bool
    product: str | None = None
    version: str | None = None
    note: str = ""


class Service(ABC):
    """One local service: its address, probe, start and stop, state directory and processes."""

    name: ClassVar[str]
    product: ClassVar[str]  # shown when the probe does not name the product
    env: ClassVar[str]  # the variable that moves its address
    default_url: ClassVar[str] = ""
    default_port: ClassVar[int] = 0

    def address(self) -> Address:
        """The address from ``env`` (read at call time), else the default."""
        url = os.environ.get(self.env) or self.default_url
        parts = urlsplit(url)
        try:
            port = parts.port or self.default_port
        except ValueError:
            # The URL may hold a password, so the message names the variable, not its value.
            raise InfraError(
                f"{self.env} has an invalid port", hint=f"e.g. {self.default_url}"
            ) from None
        host = parts.hostname or "127.0.0.1"
        path = parts.path if parts.path not in ("", "/") else ""
        shown_host = f"[{host}]" if ":" in host else host
        return Address(url, host, port, f"{parts.scheme}://{shown_host}:{port}{path}")

    @abstractmethod
    def probe(self, address: Address) -> Probe:
        """Whether it answers at ``address``, by a real protocol exchange; bounded."""

    @abstractmethod
    def start(self, address: Address, directory: Path, deadline: float) -> ServiceStatus:
        """Start (and if needed install) it on a free loopback ``address``; wait until it
        answers, by :meth:`wait_started`, before ``deadline`` (``time.monotonic()``)."""

    def stop(self, record: Record, state_dir: Path | None) -> None:
        """Stop what eventbench started: its process, or its stop command if it answers."""
        if record.pid is not None:
            terminate(record)
        elif self.status(state_dir).running:
            run(list(record.stop), COMMAND_TIMEOUT_S, what=f"stop {self.name}")

    def directory(self, state_dir: Path | None) -> Path:
        """Its subdirectory of the state directory (record, pid file, log, data)."""
        return service_dir(state_dir, self.name)

    def processes(self, record: Record | None, address: Address) -> list[psutil.Process]:
        """The server eventbench started and everything it forked (what faults act on)."""
        return service_processes(record, address.port)

    def status(self, state_dir: Path | None = None) -> ServiceStatus:
        """Check it with a real protocol exchange; never starts or stops anything.

        One exception: a process eventbench started that is SIGSTOPped, and not by a pause
        fault that is still running, is resumed first (``resumed`` says so).
        """
        directory = self.directory(state_dir)
        address = self.address()
        record = load_record(directory)
        managed = record is not None and record_alive(record)
        resumed, paused_by = None, None
        if managed and record is not None:
            resumed, paused_by = resume_stopped(
                self.name, directory, lambda: self.processes(record, address)
            )
        probe = self.probe(address)
        if resumed is not None and not probe.running:
            probe = self.wait_answering(address, time.monotonic() + RESUME_TIMEOUT_S)
        if paused_by is not None and not probe.running:
            detail = f"paused (SIGSTOP) by a running pause fault, pid {paused_by}"
        elif probe.running and managed:
            detail = f"running, started by eventbench ({how(record)})"
        elif probe.running:
            detail = "reused (already running)"
        elif managed:
            detail = f"not answering, though started by eventbench ({how(record)})"
        else:
            detail = "not running"
        if probe.note:
            detail = f"{detail}; {probe.note}"
        return ServiceStatus(
            name=self.name,
            running=probe.running,
            managed=managed,
            endpoint=address.endpoint,
            product=probe.product or self.product,
            version=probe.version,
            detail=detail,
            resumed=resumed,
        )

    def wait_answering(self, address: Address, deadline: float) -> Probe:
        while True:
            probe = self.probe(address)
            if probe.running or time.monotonic() >= deadline:
                return probe
            time.sleep(POLL_INTERVAL_S)

    def spawn_and_wait(
        self, argv: list[str], address: Address, directory: Path, deadline: float, log: Path
    ) -> tuple[ServiceStatus, int]:
        """Start ``argv`` as this service's process (logging to ``log``) and wait until it
        answers; its status and pid."""
        process, record = spawn(argv, directory, log)
        status = self.wait_started(
            address,
            directory,
            deadline,
            lambda: process.poll() is None,
            log,
            functools.partial(terminate, record),
        )
        return status, process.pid

    def wait_started(
        self,
        address: Address,
        directory: Path,
        deadline: float,
        alive: Callable[[], bool],
        log: Path,
        on_timeout: Callable[[], None],
    ) -> ServiceStatus:
        """Poll until it answers; clean up and explain when it dies or times out."""
        while True:
            if not alive():
                forget(directory)
                # Another `bench up` may have won the race for the port: then reuse that one.
                if self.probe(address).running:
                    return replace(self.status(directory.parent), detail="reused (already running)")
                raise InfraError(
                    f"{self.name} exited while starting: {last_line(read_log(log))}",
                    hint=f"full log: {log}",
                )
            current = self.status(directory.parent)
            if current.running:
                return current
            if time.monotonic() >= deadline:
                tail = last_line(read_log(log))
                on_timeout()
                forget(directory)
                raise InfraError(
                    f"{self.name} did not answer at {current.endpoint} in time: {tail}",
                    hint=f"raise the timeout; full log: {log}",
                )
            time.sleep(POLL_INTERVAL_S)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by peer")
        data += chunk
    return bytes(data)
