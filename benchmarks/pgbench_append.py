"""pgbench running the ``insert_only`` append SQL, next to the driver doing the same appends.

The ceiling for the event-store append path on this machine: ``pgbench`` (C, libpq, prepared
statements) runs the same single-event INSERT as ``PostgresDriver`` with
``strategy = "insert_only"`` against a schema created by the driver's own ``prepare_store``
(identical table, constraints and indexes), at concurrency C for T seconds. Each client appends
to its own stream at versions 1, 2, 3, … (``-D v=0`` and ``\\set v :v + 1``), so the number is
the append ceiling without contention.

Two differences from the driver's statement, both forced by pgbench: the event id comes from
``gen_random_uuid()`` (pgbench has no client-side uuid), and the INSERT ends with
``ON CONFLICT DO NOTHING``, because pgbench aborts a client on a unique violation even with
``--max-tries``; a conflict is then a transaction that inserted no row (rows < transactions).

Unless ``--no-driver`` is given, the script then runs the driver itself: C asyncio writers on
one event loop (uvloop when installed, as in the engine's workers) over C connections, each
writer appending to its own stream for T seconds, and prints the ratio driver ÷ pgbench.

Usage::

    .venv/bin/python benchmarks/pgbench_append.py [--clients 16] [--seconds 10]
        [--payload-bytes 100] [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--no-driver]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.drivers.base import DriverContext, StoredEvent
from bench.drivers.postgres import DEFAULT_DSN, PostgresConfig, PostgresDriver, public_dsn

SCHEMA = "eventbench_pgbench"


def find_pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    sys.exit("pgbench not found: apt-get install postgresql-contrib (or postgresql-client)")


def payload(size: int) -> str:
    """A JSON object of about ``size`` bytes (jsonb stores it re-encoded, the same both ways)."""
    head = '{"sku": "sku-1", "quantity": 1, "pad": "'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


def driver_for(dsn: str, clients: int) -> PostgresDriver:
    config = PostgresConfig.model_validate(
        {
            "driver": "postgres",
            "dsn": dsn,
            "strategy": "insert_only",
            "pool_size": clients,
            "schema": SCHEMA,
            "snapshot_every": 0,
        }
    )
    return PostgresDriver(config, DriverContext())


async def prepare(dsn: str) -> None:
    driver = driver_for(dsn, 1)
    await driver.connect()
    try:
        await driver.prepare_store()
    finally:
        await driver.close()


async def count_rows(dsn: str) -> int:
    driver = driver_for(dsn, 1)
    await driver.connect()
    try:
        return len(await driver.stored_event_ids())
    finally:
        await driver.close()


def run_pgbench(dsn: str, clients: int, seconds: int, body: str) -> dict[str, float]:
    script = (
        "\\set v :v + 1\n"
        f'INSERT INTO "{SCHEMA}".events '
        "(event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata) "
        "VALUES (gen_random_uuid(), 'pgbench-' || :client_id::text, 'Order', 'OrderItemAdded', "
        f"(:v)::int, '{body}', '{{}}') ON CONFLICT DO NOTHING;\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
        path = handle.name
    threads = max(1, min(clients, os.cpu_count() or 1))
    command = [
        find_pgbench(),
        "-n",  # no vacuum of pgbench's own tables (there are none)
        "-M",
        "prepared",  # asyncpg prepares its statements too
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        "-D",
        "v=0",
        "-f",
        path,
        dsn,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        os.unlink(path)
    if done.returncode != 0:
        sys.exit(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    out = done.stdout
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if not (tps and processed):
        sys.exit(f"could not read pgbench's output:\n{out}")
    return {
        "tps": float(tps.group(1)),
        "transactions": int(processed.group(1)),
        "latency_ms": float(latency.group(1)) if latency else float("nan"),
    }


async def run_driver(dsn: str, clients: int, seconds: int, body: str) -> dict[str, float]:
    driver = driver_for(dsn, clients)
    await driver.connect()
    payload_bytes = body.encode()
    try:
        await driver.prepare_store()
        deadline = 0.0

        async def writer(index: int) -> int:
            stream = f"driver-{index}"
            version = 0
            while time.monotonic() < deadline:
                event = StoredEvent(
                    str(uuid.uuid4()), stream, "Order", "OrderItemAdded", 0, payload_bytes
                )
                result = await driver.append(stream, [event], version)
                if not result.committed:
                    raise RuntimeError(f"{stream}: unexpected conflict at version {version}")
                version += 1
            return version

        start = time.monotonic()
        deadline = start + seconds
        appended = await asyncio.gather(*(writer(i) for i in range(clients)))
        elapsed = time.monotonic() - start
        assert await driver.verify() == []
        return {"appends": sum(appended), "per_s": sum(appended) / elapsed}
    finally:
        await driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("BENCH_POSTGRES_DSN", DEFAULT_DSN))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--no-driver", dest="driver", action="store_false")
    parser.add_argument("--no-harness", dest="harness", action="store_false")
    args = parser.parse_args()
    body = payload(args.payload_bytes)
    assert "'" not in body and json.loads(body)

    asyncio.run(prepare(args.dsn))
    print(
        f"pgbench: insert_only append SQL, {args.clients} clients, {args.seconds}s, "
        f"{len(body)}-byte payload, {public_dsn(args.dsn)} schema {SCHEMA}"
    )
    result = run_pgbench(args.dsn, args.clients, args.seconds, body)
    rows = asyncio.run(count_rows(args.dsn))
    elapsed = result["transactions"] / result["tps"] if result["tps"] else float("nan")
    conflicts = result["transactions"] - rows
    print(
        f"  transactions/s {result['tps']:.0f}   rows inserted/s {rows / elapsed:.0f}   "
        f"(transactions {result['transactions']}, rows {rows}, conflicts {conflicts}, "
        f"latency avg {result['latency_ms']:.3f} ms)"
    )
    if args.driver:
        # The engine's workers run on uvloop when it is installed; so does this measurement.
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        measured = asyncio.run(run_driver(args.dsn, args.clients, args.seconds, body))
        ratio = measured["per_s"] / (rows / elapsed)
        print(
            f"driver (PostgresDriver insert_only, {args.clients} writers, pool {args.clients}): "
            f"appends/s {measured['per_s']:.0f} (appends {measured['appends']:.0f})"
        )
        print(f"  ratio driver / pgbench rows: {ratio:.2f}")
    if args.harness:
        harness = run_harness(args.dsn, args.clients, args.seconds, args.payload_bytes)
        print(
            f"harness (bench engine, insert_only, {args.clients} writers, 1000 aggregates, "
            f"projector off): appends/s {harness['attempts_per_s']:.0f}, "
            f"committed/s {harness['goodput_per_s']:.0f}, conflict rate "
            f"{harness['conflict_rate']:.1%}, invariants "
            f"{'hold' if harness['invariants']['ok'] else 'VIOLATED'}"
        )
        ratio = harness["attempts_per_s"] / (rows / elapsed)
        print(f"  ratio harness appends / pgbench rows: {ratio:.2f}")
    asyncio.run(_drop(args.dsn))


def run_harness(dsn: str, clients: int, seconds: int, payload_bytes: int) -> dict[str, Any]:
    """The whole engine (worker process, recording, ledgers, invariants) on the same append
    path: writers that know their aggregates' versions append once per command."""
    import tempfile
    from pathlib import Path

    from bench.engine.runner import PointRunner
    from bench.scenario import expand, scenario_from_dict

    raw = {
        "scenario": {"name": "pgbench-vs-harness", "duration": f"{seconds}s", "warmup": "3s"},
        "workload": {
            "kind": "store",
            "rate": "max",
            "concurrency": clients,
            "producers": 1,
            "aggregates": 1000,
            "payload_bytes": payload_bytes,
            "store": {"projector": False, "snapshots": False, "redeliver_fraction": 0.0},
        },
        "targets": {
            "pg": {
                "driver": "postgres",
                "dsn": dsn,
                "strategy": "insert_only",
                "pool_size": clients,
            }
        },
    }
    point = expand(scenario_from_dict(raw, "pgbench_append"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        summary = PointRunner(point, "pgbench", Path(tmp) / "p", lambda: False).run()
    if summary["status"] != "ok":
        raise SystemExit(f"harness run failed: {summary['problems']}")
    return dict(summary["store"])


async def _drop(dsn: str) -> None:
    driver = driver_for(dsn, 1)
    await driver.connect()
    try:
        await driver.drop_store()
    finally:
        await driver.close()


if __name__ == "__main__":
    main()
