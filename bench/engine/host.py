"""The host's CPU over the measurement window: the harness, a local target, and the rest.

The client's own share of a core says whether the harness saturated itself (``client_bound``).
It cannot say whether the client and a target on the same host took the host's every core
between them: then the target is starved by the load generator, and what the point measures is
the host, whatever the client's own share. The coordinator marks the window's start and end;
this module reads, with psutil, the host's busy time, the CPU time of the harness's processes
(the coordinator and its workers) and of the target's processes when the target listens on this
host (the listener on a port the target's settings name, and everything it forked: PostgreSQL's
backends, RabbitMQ's beam.smp), and says ``host-bound`` when the host was saturated.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil
from pydantic import SecretStr

HOST_SATURATED_PCT = 90.0  # of every core together, over the measurement window
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"})
# host:port in a URL ("nats://h:4222", "amqp://u:p@h:5672/"), a bootstrap list or a DSN.
_ENDPOINT = re.compile(r"(?:^|//|@|,)\s*(?P<host>\[[^\]]+\]|[^/:@,\s\[\]]+):(?P<port>\d{1,5})\b")
# A URL that names no port uses its scheme's (``amqp://guest:guest@127.0.0.1/``).
_NO_PORT_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/\s]*@)?(?P<host>\[[^\]]+\]|[^/:@,\s\[\]]+)(?=[/?,\s]|$)"
)
DEFAULT_PORTS = {
    "amqp": 5672,
    "amqps": 5671,
    "nats": 4222,
    "tls": 4222,
    "postgres": 5432,
    "postgresql": 5432,
    "kafka": 9092,
}


def local_ports(settings: Any) -> set[int]:
    """The ports on this host that a target's settings name (every text value is looked at, so
    a third-party driver's settings count too)."""
    ports: set[int] = set()
    for text in _texts(settings):
        for match in _ENDPOINT.finditer(text):
            port = int(match.group("port"))
            if match.group("host").lower() in LOCAL_HOSTS and 0 < port < 65536:
                ports.add(port)
        for match in _NO_PORT_URL.finditer(text):
            port = DEFAULT_PORTS.get(match.group("scheme").lower(), 0)
            if port and match.group("host").lower() in LOCAL_HOSTS:
                ports.add(port)
    return ports


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, SecretStr):
        # A URL with credentials is a secret (RabbitMQ's url, a DSN): only its ports are kept.
        yield value.get_secret_value()
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


def _cpu_s(proc: psutil.Process) -> float | None:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)
    return None


def _host_busy_s() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times) - idle)


@dataclass
class _Mark:
    wall: float
    host_busy: float
    client: dict[int, float]
    target: dict[int, float]


class HostSampler:
    """CPU use over one window. ``mark()`` at its start, ``result()`` at its end; neither
    raises (a host that hides its processes gives what it shows)."""

    def __init__(self, ports: set[int], client_pids: Callable[[], list[int]]) -> None:
        self.ports = ports
        self.client_pids = client_pids
        self._target: list[psutil.Process] = []
        self._client: list[psutil.Process] = []
        self._start: _Mark | None = None

    def _processes(self) -> None:
        self._client = []
        for pid in {os.getpid(), *self.client_pids()}:
            with contextlib.suppress(psutil.Error):
                self._client.append(psutil.Process(pid))
        client = {p.pid for p in self._client}
        found: dict[int, psutil.Process] = {}
        if self.ports:
            with contextlib.suppress(psutil.Error, OSError):
                for conn in psutil.net_connections(kind="tcp"):
                    listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid
                    if listening and conn.laddr.port in self.ports and conn.pid not in client:
                        with contextlib.suppress(psutil.Error):
                            root = psutil.Process(conn.pid)
                            for proc in [root, *root.children(recursive=True)]:
                                found[proc.pid] = proc
        self._target = list(found.values())

    def _read(self) -> _Mark:
        def cpu(procs: list[psutil.Process]) -> dict[int, float]:
            return {p.pid: s for p in procs if (s := _cpu_s(p)) is not None}

        return _Mark(time.monotonic(), _host_busy_s(), cpu(self._client), cpu(self._target))

    def mark(self) -> None:
        with contextlib.suppress(Exception):
            self._processes()
            self._start = self._read()

    @property
    def marked(self) -> bool:
        return self._start is not None

    def result(self) -> dict[str, Any] | None:
        """The window's CPU use, or None when the start was never marked."""
        start = self._start
        if start is None:
            return None
        try:
            end = self._read()
        except Exception:
            return None
        wall = end.wall - start.wall
        if wall <= 0:
            return None
        cores = psutil.cpu_count() or 1

        def used_pct(before: dict[int, float], after: dict[int, float]) -> float:
            # Processes present at both marks; one that exited took its time with it.
            spent = sum(max(0.0, after[pid] - before[pid]) for pid in after if pid in before)
            return 100.0 * spent / wall

        busy_pct = min(100.0, 100.0 * (end.host_busy - start.host_busy) / (wall * cores))
        client_pct = used_pct(start.client, end.client)
        target_pct = used_pct(start.target, end.target) if self._target else None
        names = sorted({_name(p) for p in self._target})
        return {
            "cores": cores,
            "window_s": wall,
            "busy_pct": busy_pct,
            "client_pct": client_pct,  # of one core: 150 is one and a half cores
            "target_pct": target_pct,
            "target_processes": names,
            "target_ports": sorted(self.ports),
        }


def _name(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return str(proc.name())
    return str(proc.pid)


def host_bound(host: dict[str, Any] | None) -> tuple[bool, list[str]]:
    """Whether the client and a target on this host saturated its CPU, and the words for it."""
    if not host or host.get("target_pct") is None:
        return False, []
    if host["busy_pct"] < HOST_SATURATED_PCT:
        return False, []
    cores = host["cores"]
    other = max(0.0, host["busy_pct"] * cores - host["client_pct"] - host["target_pct"])
    target = ", ".join(host["target_processes"]) or "target"
    return True, [
        f"host-bound: the host's {cores} cores were {host['busy_pct']:.0f}% busy: client "
        f"{host['client_pct']:.0f}%, target ({target}) {host['target_pct']:.0f}%, other "
        f"{other:.0f}% of a core; the client and the target share this host, so the target "
        "had less CPU than it would alone"
    ]
