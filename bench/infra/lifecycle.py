"""``bench up``, ``bench down``, ``bench status`` and ``restart`` for a service, by name.

A service that already answers at its address is *reused* (``managed=False``) and ``down``
never stops it; only what eventbench started is stopped, and only on loopback is anything
started. Each call holds the state directory's lock while it starts or stops.
"""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

from bench.errors import InfraError
from bench.infra.commands import COMMAND_TIMEOUT_S
from bench.infra.processes import STOP_TIMEOUT_S
from bench.infra.registry import get
from bench.infra.resume import live_pauser, resume_all
from bench.infra.service import PROBE_TIMEOUT_S, Address, ServiceStatus, is_loopback
from bench.infra.state import how, load_record, locked, record_alive, remove_dir


def connection_url(name: str) -> str:
    """The address a client connects to, credentials included (Kafka: ``host:port``)."""
    return get(name).address().url


def status(name: str, state_dir: Path | None = None) -> ServiceStatus:
    """Check one service with a real protocol exchange; never starts or stops anything.

    One exception: a process eventbench started that is SIGSTOPped, and not by a pause
    fault that is still running, is resumed first (``resumed`` says so).
    """
    return get(name).status(state_dir)


def up(name: str, state_dir: Path | None = None, timeout_s: float = 60.0) -> ServiceStatus:
    """Make the service answer: reuse a running one, or start (and if needed install) it.

    Raises :class:`InfraError` when it cannot be started or does not answer within
    ``timeout_s`` seconds; a process it started for this call is stopped again then.
    """
    service = get(name)
    directory = service.directory(state_dir)
    deadline = time.monotonic() + timeout_s
    with locked(directory.parent, deadline):
        current = service.status(state_dir)
        if current.running:
            return current
        pauser = live_pauser(directory)
        if pauser is not None:
            raise InfraError(
                f"{name} does not answer at {current.endpoint}: a pause fault of pid {pauser}, "
                "still running, holds it stopped",
                hint="wait for that run to finish (or stop it), then retry",
            )
        record = load_record(directory)
        if record is not None and record.pid is not None and record_alive(record):
            raise InfraError(
                f"{name}: the process eventbench started ({how(record)}) does not answer "
                f"at {current.endpoint}",
                hint=f"bench down {name}, then bench up {name}; its log is in {directory}",
            )
        remove_dir(directory)
        address = service.address()
        if not is_loopback(address.host):
            raise InfraError(
                f"{name} does not answer at {address.endpoint}, and bench only starts "
                "services on 127.0.0.1",
                hint=f"start it on that host, or unset {service.env}",
            )
        if _port_taken(address):
            raise InfraError(
                f"{address.host}:{address.port} is in use, but does not answer as {name}",
                hint=f"if {name} is still starting, retry; else free the port or choose another",
            )
        started = time.monotonic()
        result = service.start(address, directory, deadline)
        if not result.managed:
            return result
        elapsed_s = time.monotonic() - started
        head, sep, rest = result.detail.partition("; ")
        return replace(result, detail=f"{head} in {elapsed_s:.1f}s{sep}{rest}")


def _port_taken(address: Address) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def down(name: str, state_dir: Path | None = None) -> ServiceStatus:
    """Stop the service if eventbench started it and remove its state; leave others alone."""
    service = get(name)
    directory = service.directory(state_dir)
    with locked(directory.parent, time.monotonic() + STOP_TIMEOUT_S + COMMAND_TIMEOUT_S):
        record = load_record(directory)
        if record is None:
            current = service.status(state_dir)
            if current.running:
                return replace(current, detail="left running (not started by eventbench)")
            return current
        # A stopped process would hold a SIGTERM (or a stop command) until SIGKILL.
        resume_all(service.processes(record, service.address()))
        service.stop(record, state_dir)
        remove_dir(directory)
        after = service.status(state_dir)
        if after.running:
            raise InfraError(
                f"{name} still answers at {after.endpoint} after stopping what eventbench "
                f"started ({how(record)})",
                hint="another process serves that address; bench status shows it",
            )
        return replace(after, detail=f"stopped ({how(record)})")


def restart(name: str, state_dir: Path | None = None, timeout_s: float = 60.0) -> ServiceStatus:
    """Stop and start a service eventbench manages, e.g. to empty Tansu's in-memory storage.

    A reused service is left as it is (eventbench never stops what it did not start); the
    returned ``detail`` says so.
    """
    current = status(name, state_dir)
    if current.running and not current.managed:
        return replace(current, detail="reused (already running); not restarted")
    down(name, state_dir)
    return up(name, state_dir, timeout_s)
