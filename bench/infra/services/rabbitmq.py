"""``rabbitmq``: the system ``rabbitmq-server`` at ``BENCH_RABBITMQ_URL``
(``amqp://guest:guest@127.0.0.1:5672/``).

It is apt-installed when missing (as root) and started with ``-detached``; a port other than
5672 gets a second node of its own beside the system one. The probe sends the AMQP protocol
header and reads ``Connection.Start``, which names the product and version without a login.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from dataclasses import replace
from pathlib import Path

from bench.errors import InfraError
from bench.infra.commands import COMMAND_TIMEOUT_S, apt_install, find, run, stop_quietly
from bench.infra.service import (
    PROBE_TIMEOUT_S,
    Address,
    Probe,
    Service,
    ServiceStatus,
    recv_exact,
)
from bench.infra.state import Record, save_record

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


class RabbitMQService(Service):
    name = "rabbitmq"
    product = "RabbitMQ"
    env = "BENCH_RABBITMQ_URL"
    default_url = "amqp://guest:guest@127.0.0.1:5672/"
    default_port = 5672

    def probe(self, address: Address) -> Probe:
        # The protocol header alone makes the broker send Connection.Start with its
        # server-properties, so no credentials are needed to learn product and version.
        try:
            with socket.create_connection(
                (address.host, address.port), timeout=PROBE_TIMEOUT_S
            ) as sock:
                sock.sendall(_AMQP_HEADER)
                frame_type, _channel, size = struct.unpack(">BHI", recv_exact(sock, 7))
                if frame_type != 1 or size > 1 << 20:
                    return Probe(False)
                payload = recv_exact(sock, size)
        except (OSError, struct.error):
            return Probe(False)
        if payload[:4] != b"\x00\x0a\x00\x0a":
            return Probe(False)
        try:
            return Probe(
                True, _amqp_longstr(payload, b"product"), _amqp_longstr(payload, b"version")
            )
        except struct.error:
            return Probe(True, note="unreadable server properties")

    def start(self, address: Address, directory: Path, deadline: float) -> ServiceStatus:
        if find("rabbitmq-server") is None:
            apt_install("rabbitmq-server")
            # The package's post-install script may already have started the node.
            deadline = max(deadline, time.monotonic() + COMMAND_TIMEOUT_S)
        server, ctl = find("rabbitmq-server"), find("rabbitmqctl")
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
        record = Record(None, None, tuple(stop), "rabbitmq-server -detached")
        if not self.probe(address).running:
            run([server, "-detached"], COMMAND_TIMEOUT_S, what="start rabbitmq-server", env=env)
        save_record(directory, record)
        result = self.wait_started(
            address,
            directory,
            deadline,
            _ErlangNodeAlive(node),
            Path(f"/var/log/rabbitmq/{env.get('RABBITMQ_NODENAME', node)}.log"),
            lambda: stop_quietly(stop),
        )
        return replace(result, detail="started (rabbitmq-server -detached)")


def _amqp_longstr(payload: bytes, key: bytes) -> str | None:
    # Server-properties is an AMQP field table; its top-level ``product`` and ``version``
    # are long strings, encoded as <len><key>'S'<uint32 len><bytes>.
    match = re.search(re.escape(bytes([len(key)]) + key + b"S"), payload)
    if match is None:
        return None
    start = match.end()
    (length,) = struct.unpack(">I", payload[start : start + 4])
    return payload[start + 4 : start + 4 + length].decode("utf-8", "replace")


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
        with socket.create_connection(("127.0.0.1", 4369), timeout=PROBE_TIMEOUT_S) as sock:
            sock.sendall(b"\x00\x01n")
            data = bytearray()
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return set()
    return set(re.findall(r"^name (\S+) at port", data[4:].decode("latin-1"), re.MULTILINE))
