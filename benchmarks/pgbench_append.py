"""The event-store append path against pgbench running the same SQL, at several client counts.

Five runs per client count, interleaved (one after the other, ``--repeat`` rounds), all on a
schema created by the driver's own ``prepare_store`` (identical table, constraints, indexes):

``pgbench select-max``  pgbench (C, libpq, ``-M prepared``) running the two-statement append:
                        BEGIN; SELECT max(version); INSERT at max+1; END (4 round trips). The
                        shape of ``../shared/reference/raw-loops/pgb_append_noconf.sql``.
``pgbench one-stmt``    pgbench running the driver's own ``max_then_insert`` statement
                        (``Sql.checked``; its text is taken from the driver, its parameters
                        replaced by pgbench variables): one round trip per append.
``raw asyncpg``         the plainest asyncpg loop on the same statement (prepared once per
                        connection, ``fetchval``): the client library's ceiling.
``driver``              ``PostgresDriver`` (max_then_insert): C asyncio writers on one event loop
                        (uvloop), C connections, each writer on its own aggregates.
``harness``             the whole engine (worker process, recording, ledgers, invariants): a
                        store workload, closed loop (rate = "max", concurrency = C), 250
                        aggregates per writer (1000 at 4 writers, 4000 at 16), uniform keys,
                        one event per append, projector and snapshots off, strategy
                        max_then_insert. Few writers ever meet on one aggregate (about C/250 of
                        the appends conflict), and most aggregates are loaded during the 2 s
                        warmup: what is measured is the append, as for pgbench.

Each pgbench client appends to its own 1000 aggregates in turn (aggregate ``i % 1000`` at
version ``i / 1000``), so it knows every expected version, as the harness's writers do, and
nothing conflicts. Two differences from the driver's parameters, forced by pgbench: the event
id is ``gen_random_uuid()`` and the payload is a literal of the same size.

Printed per client count: appends/s of each, client CPU µs per append (pgbench: its own
process's CPU from rusage; driver: this process; harness: the worker's CPU over the measured
intervals), write syscalls per append (driver and harness worker: each round trip is one
write), the ratios, and the goal: **harness ≥ 0.8x pgbench on the same SQL at 4 and 16
clients**.

Usage::

    flock /tmp/bench.lock .venv/bin/python benchmarks/pgbench_append.py \\
        [--clients 4 16] [--seconds 8] [--repeat 1] [--payload-bytes 256] \\
        [--dsn postgresql://postgres@127.0.0.1:5432/test] [--no-driver] [--no-harness]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.drivers.base import DriverContext, StoredEvent
from bench.drivers.postgres import DEFAULT_DSN, PostgresConfig, PostgresDriver, public_dsn
from bench.drivers.postgres.sql import Sql

SCHEMA = "eventbench_pgbench"
AGGREGATES = 1000  # per pgbench client and per driver writer
HARNESS_AGGREGATES_PER_WRITER = 250
GOAL = 0.8


def find_pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    sys.exit("pgbench not found: apt-get install postgresql-contrib (or postgresql-client)")


def payload(size: int) -> str:
    """A JSON object of about ``size`` bytes, shaped like the workload's (data + padding)."""
    head = '{"data": {"order_no": 1}, "pad": "'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


def driver_for(dsn: str, clients: int) -> PostgresDriver:
    config = PostgresConfig.model_validate(
        {
            "driver": "postgres",
            "dsn": dsn,
            "strategy": "max_then_insert",
            "pool_size": clients,
            "schema": SCHEMA,
            "snapshot_every": 0,
        }
    )
    return PostgresDriver(config, DriverContext())


async def _with_driver(dsn: str, action: str) -> Any:
    driver = driver_for(dsn, 1)
    await driver.connect()
    try:
        if action == "prepare":
            await driver.prepare_store()
        elif action == "drop":
            await driver.drop_store()
        elif action == "count":
            return len(await driver.stored_event_ids())
        elif action == "verify":
            return await driver.verify()
    finally:
        await driver.close()
    return None


# --------------------------------------------------------------------------- pgbench


def pgbench_scripts(body: str) -> dict[str, str]:
    """The two pgbench scripts: the two-statement append and the driver's one statement."""
    s = f'"{SCHEMA}"'
    prelude = (
        "\\set i :i + 1\n"
        f"\\set agg :client_id * 1000000 + (:i - 1) % {AGGREGATES}\n"
        f"\\set expected (:i - 1) / {AGGREGATES}\n"
    )
    cols = "event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata"
    select_max = (
        prelude + "BEGIN;\n"
        f"SELECT coalesce(max(version), 0) AS cur FROM {s}.events "
        "WHERE aggregate_id = (:agg)::text \\gset\n"
        f"INSERT INTO {s}.events ({cols}) VALUES (gen_random_uuid(), (:agg)::text, 'Order', "
        f"'OrderItemAdded', :cur + 1, '{body}', '{{\"command\": \"AddItem\"}}') "
        "ON CONFLICT DO NOTHING;\n"
        "END;\n"
    )
    # The driver's statement, its parameters replaced by pgbench's variables and literals.
    one = Sql(SCHEMA, unsafe=False).checked.max_then_insert[0]
    substitutions = {
        "$1::uuid": "gen_random_uuid()",
        "$2::text": "(:agg)::text",
        "$3::text": "'Order'::text",
        "$4::text": "'OrderItemAdded'::text",
        "$5::int": "(:expected)::int",
        "$6::jsonb": f"'{body}'::jsonb",
        "$7::jsonb": '\'{"command": "AddItem"}\'::jsonb',
    }
    for param, value in substitutions.items():
        one = one.replace(param, value)
    assert "$" not in one, one
    one_statement = prelude + " ".join(one.split()) + ";\n"
    return {"select_max": select_max, "one_statement": one_statement}


def run_pgbench(dsn: str, clients: int, seconds: int, script: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
        path = handle.name
    threads = max(1, min(clients, os.cpu_count() or 1))
    command = [find_pgbench(), "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads)]
    command += ["-T", str(seconds), "-D", "i=0", "-f", path, dsn]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        os.unlink(path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out = done.stdout
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    if not (tps and processed):
        sys.exit(f"could not read pgbench's output:\n{out}")
    transactions = int(processed.group(1))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "per_s": float(tps.group(1)),
        "appends": transactions,
        "cpu_us": cpu * 1e6 / max(1, transactions),
    }


# --------------------------------------------------------------------------- driver


def _write_syscalls(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/io") as handle:
        for line in handle:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    return 0


async def run_driver(dsn: str, clients: int, seconds: int, body: str) -> dict[str, float]:
    driver = driver_for(dsn, clients)
    await driver.connect()
    payload_bytes = body.encode()
    try:
        await driver.prepare_store()
        deadline = 0.0

        async def writer(index: int) -> int:
            versions = [0] * AGGREGATES
            appended = 0
            while time.monotonic() < deadline:
                slot = appended % AGGREGATES
                stream = f"driver-{index}-{slot}"
                event = StoredEvent(
                    str(uuid.uuid4()),
                    stream,
                    "Order",
                    "OrderItemAdded",
                    0,
                    payload_bytes,
                    {"command": "AddItem"},
                )
                result = await driver.append(stream, [event], versions[slot])
                if not result.committed:
                    raise RuntimeError(f"{stream}: unexpected conflict at {versions[slot]}")
                versions[slot] += 1
                appended += 1
            return appended

        writes, cpu, start = _write_syscalls(), time.process_time(), time.monotonic()
        deadline = start + seconds
        appends = sum(await asyncio.gather(*(writer(i) for i in range(clients))))
        elapsed = time.monotonic() - start
        cpu, writes = time.process_time() - cpu, _write_syscalls() - writes
        problems = await driver.verify()
        if problems:
            raise RuntimeError(f"driver run broke the store: {problems}")
        return {
            "per_s": appends / elapsed,
            "appends": appends,
            "cpu_us": cpu * 1e6 / appends,
            "writes": writes / appends,
        }
    finally:
        await driver.close()


# --------------------------------------------------------------------------- raw asyncpg


async def run_raw_asyncpg(dsn: str, clients: int, seconds: int, body: str) -> dict[str, float]:
    """The plainest asyncpg loop on the driver's statement: one connection per client, the
    statement prepared once, ``fetchval`` in a loop (the library's ceiling on this path)."""
    import asyncpg

    statement = Sql(SCHEMA, unsafe=False).checked.max_then_insert[0]
    await _with_driver(dsn, "prepare")
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]
    prepared = [await conn.prepare(statement) for conn in conns]
    try:
        deadline = 0.0

        async def writer(index: int) -> int:
            stmt = prepared[index]
            versions = [0] * AGGREGATES
            appended = 0
            while time.monotonic() < deadline:
                slot = appended % AGGREGATES
                stream = f"raw-{index}-{slot}"
                found = await stmt.fetchval(
                    str(uuid.uuid4()),
                    stream,
                    "Order",
                    "OrderItemAdded",
                    versions[slot],
                    body,
                    '{"command": "AddItem"}',
                )
                if found != versions[slot]:
                    raise RuntimeError(f"{stream}: version {found}, expected {versions[slot]}")
                versions[slot] += 1
                appended += 1
            return appended

        writes, cpu, start = _write_syscalls(), time.process_time(), time.monotonic()
        deadline = start + seconds
        appends = sum(await asyncio.gather(*(writer(i) for i in range(clients))))
        elapsed = time.monotonic() - start
        cpu, writes = time.process_time() - cpu, _write_syscalls() - writes
        return {
            "per_s": appends / elapsed,
            "appends": appends,
            "cpu_us": cpu * 1e6 / appends,
            "writes": writes / appends,
        }
    finally:
        for conn in conns:
            await conn.close()


# --------------------------------------------------------------------------- harness


def run_harness(
    dsn: str, clients: int, seconds: int, payload_bytes: int, workers: int = 1
) -> dict[str, Any]:
    """The whole engine on the same append path (see the module); with ``workers`` > 1, the
    C writers are split over that many worker processes (one writer group each, on its own
    partition of the aggregates, ``pool_size`` C / workers each)."""
    import psutil

    from bench.engine.runner import PointRunner
    from bench.scenario import expand, scenario_from_dict

    raw = {
        "scenario": {"name": "pgbench-vs-harness", "duration": f"{seconds}s", "warmup": "2s"},
        "workload": {
            "kind": "store",
            "rate": "max",
            "concurrency": clients,
            "producers": workers,
            "workers": workers,
            "aggregates": HARNESS_AGGREGATES_PER_WRITER * clients,
            "keys": "uniform",
            "payload_bytes": payload_bytes,
            "store": {
                "projector": False,
                "snapshots": False,
                "redeliver_fraction": 0.0,
                "events_per_append": 1,
            },
        },
        "targets": {
            "pg": {
                "driver": "postgres",
                "dsn": dsn,
                "strategy": "max_then_insert",
                "pool_size": -(-clients // workers),
            }
        },
    }
    point = expand(scenario_from_dict(raw, "pgbench_append"))[0]
    # The workers' write syscalls over their lives (each round trip is one write; their loads
    # included), read from /proc until they exit.
    last_writes: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        # Looking for the workers (psutil, every process's command line) only until all of
        # them are found: the sampler shares the host's 2 cores with what it measures.
        me = psutil.Process()
        while not done.is_set():
            if len(last_writes) < workers:
                for child in me.children(recursive=True):
                    with contextlib.suppress(OSError, psutil.Error):
                        if "spawn_main" in " ".join(child.cmdline()):
                            last_writes.setdefault(child.pid, 0)
            for pid in last_writes:
                with contextlib.suppress(OSError):
                    last_writes[pid] = _write_syscalls(pid)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        summary = PointRunner(point, "pgbench", Path(tmp) / "p", lambda: False).run()
        with open(Path(tmp) / "p" / "timeseries.csv") as handle:
            rows = [r for r in csv.DictReader(handle) if r["phase"] == "measure" and r["cpu_pct"]]
    done.set()
    sampler.join()
    if summary["status"] != "ok":
        raise SystemExit(f"harness run failed: {summary['problems']}")
    store = summary["store"]
    cpu_pct = statistics.fmean(float(r["cpu_pct"]) for r in rows)
    return {
        "per_s": store["attempts_per_s"],
        "appends": store["attempts"],
        # The timeseries keeps the busiest worker's CPU per interval: a total only for one.
        "cpu_us": cpu_pct * 1e4 / store["attempts_per_s"] if workers == 1 else float("nan"),
        "writes": sum(last_writes.values()) / max(1, store["attempts"]),
        "conflicts": store["conflicts"],
        "invariants": store["invariants"]["ok"],
    }


# --------------------------------------------------------------------------- report


def harness_name(workers: int) -> str:
    return "harness" if workers == 1 else f"harness {workers} workers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("BENCH_POSTGRES_DSN", DEFAULT_DSN))
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--payload-bytes", type=int, default=256)
    parser.add_argument(
        "--harness-workers",
        type=int,
        nargs="+",
        default=[1],
        help="worker processes of the harness runs (one run each: e.g. 1 2); the goal is "
        "judged on the first",
    )
    parser.add_argument("--no-pgbench", dest="pgbench", action="store_false")
    parser.add_argument("--no-raw", dest="raw", action="store_false")
    parser.add_argument("--no-driver", dest="driver", action="store_false")
    parser.add_argument("--no-harness", dest="harness", action="store_false")
    args = parser.parse_args()
    body = payload(args.payload_bytes)
    assert "'" not in body
    scripts = pgbench_scripts(body) if args.pgbench else {}
    try:
        import uvloop  # the engine's workers run on uvloop when installed; so does the driver

        uvloop.install()
    except ImportError:
        pass

    print(
        f"append path vs pgbench: {args.seconds}s per run, {len(body)}-byte payload, "
        f"{public_dsn(args.dsn)} schema {SCHEMA}, strategy max_then_insert, no conflicts"
    )
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for round_ in range(args.repeat):
        for clients in args.clients:
            for name, script in scripts.items():
                asyncio.run(_with_driver(args.dsn, "prepare"))
                result = run_pgbench(args.dsn, clients, args.seconds, script)
                stored = asyncio.run(_with_driver(args.dsn, "count"))
                if stored != result["appends"]:
                    sys.exit(f"pgbench {name}: {result['appends']} appends but {stored} rows")
                results.setdefault((clients, f"pgbench {name}"), []).append(result)
            if args.raw:
                measured = asyncio.run(run_raw_asyncpg(args.dsn, clients, args.seconds, body))
                results.setdefault((clients, "raw asyncpg"), []).append(measured)
            if args.driver:
                measured = asyncio.run(run_driver(args.dsn, clients, args.seconds, body))
                results.setdefault((clients, "driver"), []).append(measured)
            if args.harness:
                for workers in args.harness_workers:
                    measured = run_harness(
                        args.dsn, clients, args.seconds, args.payload_bytes, workers
                    )
                    results.setdefault((clients, harness_name(workers)), []).append(measured)
            print(f"  round {round_ + 1}, {clients} clients done", file=sys.stderr)
    asyncio.run(_with_driver(args.dsn, "drop"))

    def median(key: tuple[int, str], field: str) -> float:
        values = [r[field] for r in results.get(key, []) if field in r]
        return statistics.median(values) if values else float("nan")

    print(
        f"{'clients':>7}  {'run':<22} {'appends/s':>10} {'CPU µs/append':>14} "
        f"{'writes/append':>14} {'÷ pgbench one-stmt':>19}"
    )
    verdicts = []
    for clients in args.clients:
        reference = median((clients, "pgbench one_statement"), "per_s")  # nan: --no-pgbench
        for name in (
            "pgbench select_max",
            "pgbench one_statement",
            "raw asyncpg",
            "driver",
            *(harness_name(w) for w in args.harness_workers),
        ):
            key = (clients, name)
            if key not in results:
                continue
            per_s = median(key, "per_s")
            print(
                f"{clients:>7}  {name:<22} {per_s:>10.0f} {median(key, 'cpu_us'):>14.1f} "
                f"{median(key, 'writes'):>14.2f} {per_s / reference:>19.2f}"
            )
        judged = harness_name(args.harness_workers[0])
        if (clients, judged) in results:
            ratio = median((clients, judged), "per_s") / reference
            verdicts.append(f"{clients} clients {ratio:.2f}x {'ok' if ratio >= GOAL else 'MISSED'}")
        for workers in args.harness_workers:
            if (clients, harness_name(workers)) in results:
                extra = results[(clients, harness_name(workers))][-1]
                print(
                    f"{'':>7}  {harness_name(workers)} conflicts {extra['conflicts']}, "
                    f"invariants {'hold' if extra['invariants'] else 'VIOLATED'}"
                )
    if verdicts:
        print(f"goal: harness >= {GOAL}x pgbench on the same SQL: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
