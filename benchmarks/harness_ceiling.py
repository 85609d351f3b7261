"""The harness's own ceiling: how fast can it move events when the target costs nothing?

Measures, in one run, on this machine:

1. ``bare``: the fastest plain loop with recording, the ceiling of any Python harness: one
   producer coroutine puts a ``perf_counter_ns`` timestamp into an ``asyncio.Queue(1024)``,
   one consumer coroutine takes it and records ``now - ts`` in an HdrHistogram (uvloop when
   installed). It is the loop of the shared reference ``asyncio_queue_ceiling.py`` (pass
   ``--reference PATH`` to run that one beside it and print both);
   ``bare, nothing recorded`` is the same loop without the histogram (for scale);
2. ``hand-off only``: pre-built messages through the memory target's own producer/consumer
   hand-off, nothing generated or recorded (what the target costs by itself);
3. ``harness x1``: ``bench``'s engine, closed loop (``rate = "max"``), against the in-process
   memory target, with full recording (four HDR latency kinds, the delivery audit, interval
   logs, self-monitoring), one worker process;
4. ``harness x2``: the same with two worker processes.

and prints the rates, the CPU per event, and the ratios with their goals: harness x1 / bare
(>= 0.5) and x2 / x1 (>= 1.7, on a machine with two free cores). ``--repeat N`` runs the
whole set N times, interleaved, and reports medians. Usage::

    .venv/bin/python benchmarks/harness_ceiling.py [--seconds 5] [--payload 1024] [--repeat 1]
        [--reference ../shared/reference/raw-loops/asyncio_queue_ceiling.py] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

GOAL_HARNESS_TO_BARE = 0.5
GOAL_TWO_WORKERS = 1.7
QUEUE_SIZE = 1024
_END = -1


async def _bare(seconds: float, record: bool) -> tuple[float, float]:
    """(events/s, CPU µs per event) of the plain hand-off, with or without the histogram."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=QUEUE_SIZE)
    hist = HdrHistogram(1, 60_000_000_000, 3)
    clock = time.perf_counter_ns
    received = 0

    async def produce() -> None:
        put = queue.put
        stop_at = clock() + int(seconds * 1e9)
        while True:
            for _ in range(1024):
                await put(clock())
            if clock() >= stop_at:
                break
        await put(_END)

    async def consume() -> None:
        nonlocal received
        get = queue.get
        rec = hist.record_value
        n = 0
        while True:
            ts = await get()
            if ts == _END:
                break
            if record:
                rec(clock() - ts)
            else:
                clock()
            n += 1
        received = n

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(produce(), consume())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return received / elapsed, cpu / received * 1e6


def bare_rate(seconds: float, record: bool = True) -> tuple[float, float]:
    try:
        import uvloop

        return uvloop.run(_bare(seconds, record))
    except ImportError:
        return asyncio.run(_bare(seconds, record))


def reference_rate(path: Path, seconds: float) -> float:
    """The shared reference loop, run (never copied) in a child process: its events/s."""
    out = subprocess.run(
        [sys.executable, str(path), "--duration", str(seconds), "--uvloop"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["msgs_per_s"])


async def _broker_only(seconds: float, payload_bytes: int) -> tuple[float, float]:
    """Pre-built messages through the memory target's own hand-off, nothing recorded:
    (events/s, CPU µs per event)."""
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
    send = producer.send
    stop_at = time.monotonic() + seconds
    start, cpu = time.monotonic(), time.process_time()
    while time.monotonic() < stop_at:
        for msg in messages:
            await send(msg)
        await asyncio.sleep(0)
    elapsed = time.monotonic() - start
    await asyncio.sleep(0.05)  # let the consumer take what is queued (not counted in time)
    cpu = time.process_time() - cpu
    await consumer.stop()
    return received / elapsed, cpu / received * 1e6


def broker_only_rate(seconds: float, payload_bytes: int) -> tuple[float, float]:
    try:
        import uvloop

        return uvloop.run(_broker_only(seconds, payload_bytes))
    except ImportError:
        return asyncio.run(_broker_only(seconds, payload_bytes))


def harness_rate(workers: int, seconds: float, payload_bytes: int) -> dict[str, Any]:
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
    rate = float(summary["throughput"]["acked_per_s"])
    cpu_pct = summary["harness"]["cpu_pct_max_worker"]
    return {
        "rate_per_s": rate,
        "received_per_s": summary["throughput"]["received_per_s"],
        "lost": summary["audit"]["lost"],
        "cpu_pct_max_worker": cpu_pct,
        # The busiest worker's CPU over its share of the events.
        "cpu_us_per_event": cpu_pct / 100 / (rate / workers) * 1e6 if rate else None,
        "client_bound": summary["client_bound"],
    }


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved sets; medians shown")
    parser.add_argument(
        "--reference",
        type=Path,
        help="the shared asyncio_queue_ceiling.py, run beside ours in each set",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    sets: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        figures: dict[str, Any] = {}
        if args.reference is not None:
            figures["reference_per_s"] = reference_rate(args.reference, args.seconds)
        figures["bare_per_s"], figures["bare_cpu_us"] = bare_rate(args.seconds)
        figures["bare_unrecorded_per_s"], _ = bare_rate(args.seconds, record=False)
        figures["handoff_per_s"], figures["handoff_cpu_us"] = broker_only_rate(
            args.seconds, args.payload
        )
        figures["harness_1_worker"] = harness_rate(1, args.seconds, args.payload)
        figures["harness_2_workers"] = harness_rate(2, args.seconds, args.payload)
        one = figures["harness_1_worker"]["rate_per_s"]
        figures["ratio_harness1_to_bare"] = one / figures["bare_per_s"]
        figures["ratio_2_workers_to_1"] = figures["harness_2_workers"]["rate_per_s"] / one
        sets.append(figures)

    def med(*path: str) -> float:
        values = []
        for figures in sets:
            value: Any = figures
            for part in path:
                value = value[part]
            values.append(float(value))
        return _median(values)

    bare, handoff = med("bare_per_s"), med("handoff_per_s")
    r1, r2 = med("harness_1_worker", "rate_per_s"), med("harness_2_workers", "rate_per_s")
    ratio1, ratio2 = med("ratio_harness1_to_bare"), med("ratio_2_workers_to_1")
    n = f"median of {len(sets)}" if len(sets) > 1 else "one set"
    print(f"{args.payload} B events, {args.seconds:g} s each, {n}, interleaved")
    if args.reference is not None:
        ref = med("reference_per_s")
        print(f"reference loop (shared)    {ref:12,.0f} events/s   (ours {bare / ref:.2f} x it)")
    print(
        f"bare, HDR record per event {bare:12,.0f} events/s   "
        f"{med('bare_cpu_us'):6.2f} µs CPU/event"
    )
    print(f"bare, nothing recorded     {med('bare_unrecorded_per_s'):12,.0f} events/s")
    print(
        f"memory hand-off only       {handoff:12,.0f} events/s   "
        f"{med('handoff_cpu_us'):6.2f} µs CPU/event"
    )
    print(
        f"harness, 1 worker          {r1:12,.0f} events/s   "
        f"{med('harness_1_worker', 'cpu_us_per_event'):6.2f} µs CPU/event"
    )
    print(f"harness, 2 workers         {r2:12,.0f} events/s")
    verdict1 = "met" if ratio1 >= GOAL_HARNESS_TO_BARE else "NOT met"
    verdict2 = "met" if ratio2 >= GOAL_TWO_WORKERS else "NOT met"
    print(f"harness x1 / bare          {ratio1:12.2f}   goal >= {GOAL_HARNESS_TO_BARE}: {verdict1}")
    print(f"harness x2 / x1            {ratio2:12.2f}   goal >= {GOAL_TWO_WORKERS}: {verdict2}")
    print(f"harness x1 / hand-off only {r1 / handoff:12.2f}")
    if args.json:
        args.json.write_text(json.dumps({"sets": sets, "payload_bytes": args.payload}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
