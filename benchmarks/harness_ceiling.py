"""The harness's own ceiling: how fast can it move events when the target costs nothing?

Measures, in one run, on this machine:

1. ``bare``: a minimal asyncio loop (uvloop when installed) in which one producer coroutine
   hands messages of the same size to one consumer coroutine through an ``asyncio.Queue`` —
   the least any Python harness must do per event;
2. ``hand-off only``: pre-built messages through the memory target's own producer/consumer
   hand-off, nothing generated or recorded (what the target costs by itself);
3. ``harness x1``: ``bench``'s engine, closed loop (``rate = "max"``), against the in-process
   memory target, with full recording (four HDR latency kinds, the delivery audit, interval
   logs, self-monitoring), one worker process;
4. ``harness x2``: the same with two worker processes.

and prints the rates and the ratios (harness/bare, x2/x1). Usage::

    .venv/bin/python benchmarks/harness_ceiling.py [--seconds 5] [--payload 1024] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict


async def _bare(seconds: float, payload_bytes: int) -> float:
    queue: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue(maxsize=1024)
    payload = b"x" * payload_bytes
    received = 0
    stop_at = time.monotonic() + seconds

    async def produce() -> int:
        sent = 0
        while time.monotonic() < stop_at:
            for _ in range(256):
                await queue.put(("order-00000001", payload, time.monotonic_ns()))
                sent += 1
        await queue.put(("", b"", -1))
        return sent

    async def consume() -> None:
        nonlocal received
        while True:
            item = await queue.get()
            if item[2] < 0:
                return
            received += 1

    start = time.monotonic()
    await asyncio.gather(produce(), consume())
    return received / (time.monotonic() - start)


def bare_rate(seconds: float, payload_bytes: int) -> float:
    try:
        import uvloop

        return uvloop.run(_bare(seconds, payload_bytes))
    except ImportError:
        return asyncio.run(_bare(seconds, payload_bytes))


async def _broker_only(seconds: float, payload_bytes: int) -> float:
    """Pre-built messages through the memory target's own hand-off, nothing recorded."""
    from bench.drivers.base import Message, Topology
    from bench.drivers.memory import MemoryConfig, MemoryDriver

    driver = MemoryDriver(MemoryConfig())
    topology = Topology("raw", 8, 1, 1, "g")
    await driver.prepare(topology)
    received = 0

    def on_message(msg: Message) -> None:
        nonlocal received
        received += 1

    consumer = await driver.consumer(topology, 0, on_message)
    await consumer.start()
    producer = await driver.producer(topology, 0)
    messages = [
        Message(f"order-{i:08d}", b"x" * payload_bytes, "OrderPlaced", str(i), str(i), 0, i, 1, 0)
        for i in range(1000)
    ]
    stop_at = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < stop_at:
        for msg in messages:
            await producer.send(msg)
        await asyncio.sleep(0)
    elapsed = time.monotonic() - start
    await asyncio.sleep(0.05)  # let the consumer take what is queued (not counted in time)
    await consumer.stop()
    return received / elapsed


def broker_only_rate(seconds: float, payload_bytes: int) -> float:
    try:
        import uvloop

        return uvloop.run(_broker_only(seconds, payload_bytes))
    except ImportError:
        return asyncio.run(_broker_only(seconds, payload_bytes))


def harness_rate(workers: int, seconds: float, payload_bytes: int) -> dict[str, object]:
    raw = {
        "scenario": {"name": "ceiling", "duration": f"{seconds}s", "warmup": "1s"},
        "workload": {
            "rate": "max",
            "concurrency": workers,
            "producers": workers,
            "consumers": workers,
            "workers": workers,
            "payload_bytes": payload_bytes,
            "aggregates": 1000,
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "harness_ceiling"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        summary = PointRunner(point, "ceiling", Path(tmp) / "p", lambda: False).run()
    if summary["status"] != "ok":
        raise SystemExit(f"harness run failed: {summary['problems']}")
    return {
        "rate_per_s": summary["throughput"]["acked_per_s"],
        "received_per_s": summary["throughput"]["received_per_s"],
        "lost": summary["audit"]["lost"],
        "cpu_pct_max_worker": summary["harness"]["cpu_pct_max_worker"],
        "client_bound": summary["client_bound"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    bare = bare_rate(args.seconds, args.payload)
    broker = broker_only_rate(args.seconds, args.payload)
    one = harness_rate(1, args.seconds, args.payload)
    two = harness_rate(2, args.seconds, args.payload)
    r1, r2 = float(one["rate_per_s"]), float(two["rate_per_s"])  # type: ignore[arg-type]
    figures = {
        "bare_loop_per_s": bare,
        "memory_handoff_only_per_s": broker,
        "ratio_harness1_to_memory_handoff": r1 / broker,
        "harness_1_worker": one,
        "harness_2_workers": two,
        "ratio_harness1_to_bare": r1 / bare,
        "ratio_2_workers_to_1": r2 / r1,
        "payload_bytes": args.payload,
        "seconds": args.seconds,
    }
    print(f"bare asyncio hand-off      {bare:12,.0f} events/s")
    print(f"memory hand-off, nothing recorded {broker:12,.0f} events/s")
    print(
        f"harness, 1 worker          {r1:12,.0f} events/s   ({r1 / bare:.2f} x bare, "
        f"{r1 / broker:.2f} x hand-off only)"
    )
    print(f"harness, 2 workers         {r2:12,.0f} events/s   ({r2 / r1:.2f} x one worker)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
