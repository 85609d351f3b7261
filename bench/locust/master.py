"""The Locust master: relays our engine's messages between the point runner and Locust workers.

Run by ``bench locust`` (``python -m bench.locust.master``), never imported by it. The point
runner lives in the ``bench locust`` process; this process connects back to it (a
``multiprocessing.connection`` on loopback, authenticated with a key passed in the
environment) and speaks a small control protocol:

* ``("await_workers", n, timeout_s)`` -> ``("workers", [{id, index}...])`` once ``n`` Locust
  workers are ready, or ``("error", text)``;
* ``("point", n)``: opens ``n`` more connections back, one per Locust worker (by worker index),
  each starting with ``("bind", index, client_id)``; everything then read from one is sent to
  that worker as the Locust custom message ``bench``, and every ``bench`` message from the
  worker is written to it. A closed link tells the worker ``["_end"]``; a worker Locust
  loses closes its link, so the runner sees the worker die;
* ``("quit",)``: stop the workers and exit.

Locust serialises custom messages with msgpack: tuples arrive as lists, which the engine's
message handling accepts.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

import gevent
from gevent import monkey
from gevent.socket import wait_read
from locust.env import Environment

from bench.engine.messages import from_wire, to_wire

MESSAGE = "bench"
log = logging.getLogger("bench.locust.master")


def connect(address: tuple[str, int], authkey: bytes) -> Connection:
    """multiprocessing's ``Client`` on a blocking socket: gevent's patched sockets are
    non-blocking underneath, which ``Connection``'s plain reads cannot take. Reads are only
    made once ``wait_read`` says data is there, so blocking never stalls the hub for long."""
    raw = monkey.get_original("socket", "socket")(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(30)
    raw.connect(address)
    raw.settimeout(None)
    conn = Connection(raw.detach())
    answer_challenge(conn, authkey)
    deliver_challenge(conn, authkey)
    return conn


class Relay:
    def __init__(self, runner: Any, control_address: tuple[str, int], authkey: bytes) -> None:
        self.runner = runner
        self.control_address = control_address
        self.authkey = authkey
        self.links: dict[str, Connection] = {}  # Locust client id -> link to the point runner
        runner.register_message(MESSAGE, self.from_worker)

    # -- workers -> point runner
    def from_worker(self, environment: Any, msg: Any) -> None:
        link = self.links.get(msg.node_id)
        if link is None:
            return  # a late message of a point that ended
        try:
            message = from_wire(msg.data)
        except ValueError as exc:
            logging.getLogger("bench.locust").warning("worker %s: %s", msg.node_id, exc)
            return
        try:
            link.send(message)
        except OSError:
            self.links.pop(msg.node_id, None)

    # -- point runner -> workers
    def _pump(self, client_id: str, link: Connection) -> None:
        while True:
            try:
                wait_read(link.fileno())
                message = link.recv()
            except (EOFError, OSError):
                break
            self.runner.send_message(MESSAGE, to_wire(message), client_id)
        if self.links.get(client_id) is link:
            del self.links[client_id]
        self.runner.send_message(MESSAGE, ["_end"], client_id)

    def _watch_workers(self) -> None:
        """A worker Locust lost (heartbeat missed, process gone) closes its link."""
        while True:
            gevent.sleep(0.5)
            alive = {c.id for c in self.runner.clients.all if c.state != "missing"}
            for client_id, link in list(self.links.items()):
                if client_id not in alive:
                    self.links.pop(client_id, None)
                    link.close()

    def workers(self) -> list[dict[str, Any]]:
        ready = [c for c in self.runner.clients.all if c.state != "missing"]
        rows = [{"id": c.id, "index": self.runner.get_worker_index(c.id)} for c in ready]
        return sorted(rows, key=lambda r: (r["index"] is None, r["index"], r["id"]))

    def serve(self, control: Connection) -> None:
        gevent.spawn(self._watch_workers)
        while True:
            try:
                wait_read(control.fileno())
                request = control.recv()
            except (EOFError, OSError):
                break  # the bench locust process is gone: so is the test
            kind = request[0]
            if kind == "await_workers":
                want, timeout_s = int(request[1]), float(request[2])
                deadline = gevent.get_hub().loop.now() + timeout_s
                while len(self.workers()) < want and gevent.get_hub().loop.now() < deadline:
                    gevent.sleep(0.1)
                rows = self.workers()
                if len(rows) < want:
                    control.send(
                        ("error", f"only {len(rows)} of {want} Locust workers connected "
                         f"within {timeout_s:g}s")
                    )  # fmt: skip
                else:
                    control.send(("workers", rows))
            elif kind == "point":
                rows = self.workers()[: int(request[1])]
                for position, row in enumerate(rows):
                    link = connect(self.control_address, self.authkey)
                    link.send(("bind", position, row["id"]))
                    self.links[row["id"]] = link
                    gevent.spawn(self._pump, row["id"], link)
                control.send(("bound", len(rows)))
            elif kind == "quit":
                break
        self.runner.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.locust.master")
    parser.add_argument("--bind-host", default="127.0.0.1")
    parser.add_argument("--bind-port", type=int, default=5557)
    parser.add_argument("--control", required=True, help="HOST:PORT of the bench locust process")
    args = parser.parse_args(argv)
    authkey = bytes.fromhex(os.environ.pop("BENCH_LOCUST_AUTHKEY", ""))
    host, _, port = args.control.rpartition(":")
    logging.basicConfig(level=logging.WARNING, format="locust master: %(levelname)s %(message)s")
    env = Environment(user_classes=[])
    runner = env.create_master_runner(args.bind_host, args.bind_port)
    relay = Relay(runner, (host, int(port)), authkey)
    control = connect((host, int(port)), authkey)
    control.send(("hello", {"host": socket.gethostname(), "pid": os.getpid()}))
    relay.serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
