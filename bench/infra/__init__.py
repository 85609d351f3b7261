"""Local services for ``bench up``, ``bench down`` and ``bench status``.

This package owns starting, stopping and health-checking the four targets on this machine,
on loopback and without Docker, using only software that installs from package registries.
Each is one module under ``services/`` (``kafka`` = Tansu, ``nats``, ``rabbitmq``,
``postgres``), a :class:`~bench.infra.service.Service` listed in ``registry``.

A service that already answers at its address is *reused*: it is reported with
``managed=False`` and ``down`` never stops it. Everything eventbench starts is recorded in
one state directory (``BENCH_STATE_DIR``, default ``.bench``), one subdirectory per service
holding its record, pid file, log and data; ``down`` stops the service and removes that
subdirectory. Health checks speak each protocol (Kafka ApiVersions, the NATS ``INFO``
banner, the AMQP ``Connection.Start``, a PostgreSQL login), and every wait is bounded.
A server eventbench started that was left SIGSTOPped (a pause fault whose coordinator was
killed) is resumed by ``status`` and ``up``, which say so; ``down`` continues it before
stopping it, as a stopped process holds a SIGTERM until then.

``BENCH_STATE_DIR`` is read once, at import, into ``DEFAULT_STATE_DIR`` (which callers may
replace). Each service reads its address at call time from its own variable, whose default
its module names: ``BENCH_KAFKA_PORT``, ``BENCH_RABBITMQ_URL``, ``BENCH_NATS_URL``,
``BENCH_POSTGRES_DSN``.

Services are only started on loopback; a URL naming another host is checked and reused,
never started. Credentials in these URLs are returned by :func:`connection_url` for clients
but never appear in a :class:`ServiceStatus`, a log line or a file under the state directory.
The functions are synchronous (health checks run their own short event loop); async code
calls them through ``asyncio.to_thread``.

Modules: ``lifecycle`` (up, down, status, restart by name), ``service`` (the ``Service``
base: address, probe, start, stop, status), ``registry`` (name -> service), ``services/*``
(one per service), ``state`` (the state directory, records, lock), ``processes`` (spawn,
terminate, find a service's processes), ``commands`` (bounded commands, apt, logs),
``resume`` (a server left SIGSTOPped) and ``faults`` (``ServiceFaults``).
"""

import os
from pathlib import Path

from bench.infra.faults import ServiceFaults
from bench.infra.lifecycle import connection_url, down, restart, status, up
from bench.infra.registry import SERVICES
from bench.infra.service import ServiceStatus
from bench.infra.services import kafka as _kafka
from bench.infra.services import nats as _nats

# The state directory when a call passes none; read at call time (bench.infra.state), so
# replacing it here (as tests do) moves every later call.
DEFAULT_STATE_DIR: Path = Path(os.environ.get("BENCH_STATE_DIR", ".bench")).resolve()

# Kept under their old names for benchmarks/broker_ceiling.py and the NATS TLS test.
_tansu_binary = _kafka.tansu_binary
_nats_binary = _nats.nats_binary

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
