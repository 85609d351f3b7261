"""Our publish-only raw loops against the shared reference loops, interleaved, in one sitting.

The harness is measured against ``raw_<broker>.py publish``, so that loop must be at least as
fast as the reference loops in ``../shared/reference/raw-loops`` (run unchanged, through their
``with_payload.py`` at 1 KiB, window 64, as their README says; also with their ``--uvloop``, since
ours runs on uvloop by default). Ours runs with one partition, queue or subject here, as the
reference loops do. It prints, per broker, the median msgs/s and client CPU
microseconds per message of each, and the ratio ours / reference (>= 1 is the goal).

    flock /tmp/bench.lock .venv/bin/python benchmarks/raw_vs_reference.py --seconds 5 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent.parent / "shared" / "reference" / "raw-loops"
BROKERS = ("kafka", "rabbitmq", "nats")


def reference_argv(broker: str, seconds: float, topic: str) -> list[str]:
    common = ["with_payload.py", "--payload", "1024"]
    if broker == "nats":
        return [*common, "nats_bench.py", "js_async", "--max-pending", "64"]
    if broker == "rabbitmq":
        return [*common, "rabbit_bench.py", "--queue", "eb-refcmp", "--window", "64"]
    return [
        *common,
        "kafka_bench.py",
        "produce",
        "--topic",
        topic,
        "--acks",
        "all",
        "--linger-ms",
        "0",
        "--max-batch-size",
        "16384",
        "--max-pending",
        "64",
    ]


async def kafka_topic(topic: str, create: bool) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            if create:
                await admin.create_topics([NewTopic(topic, 1, 1)])
            else:
                await admin.delete_topics([topic])
    finally:
        await admin.close()


async def drop_leftovers(broker: str) -> None:
    """The reference loops purge their queue or stream first but leave what they sent."""
    with contextlib.suppress(Exception):
        if broker == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
            async with connection:
                await (await connection.channel()).queue_delete("eb-refcmp")
        elif broker == "nats":
            import nats

            nc = await nats.connect("nats://127.0.0.1:4222")
            try:
                await nc.jetstream().purge_stream("BENCH")
            finally:
                await nc.close()


def run_json(argv: list[str], cwd: Path | None, timeout: float) -> dict[str, object]:
    out = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(argv)} failed: {out.stderr.strip()[-400:]}")
    return dict(json.loads(lines[-1]))


def reference(
    broker: str, seconds: float, uvloop: bool, reference_dir: Path
) -> tuple[float, float]:
    topic = f"eb-refcmp-{os.getpid()}"
    if broker == "kafka":
        asyncio.run(kafka_topic(topic, create=True))
    argv = [sys.executable, *reference_argv(broker, seconds, topic), "--duration", f"{seconds}"]
    if uvloop:
        argv.append("--uvloop")
    try:
        result = run_json(argv, reference_dir, seconds * 4 + 120)
    finally:
        if broker == "kafka":
            asyncio.run(kafka_topic(topic, create=False))
        asyncio.run(drop_leftovers(broker))
    if broker == "rabbitmq":
        sent, elapsed = float(result["published"]), float(result["pub_elapsed_s"])
        cpu_pct = float(result["pub_client_cpu_pct"])
    else:
        sent, elapsed = float(result["sent"]), float(result["elapsed_s"])
        cpu_pct = float(result["client_cpu_pct"])
    return sent / elapsed, cpu_pct * elapsed * 1e4 / sent


def ours(broker: str, seconds: float) -> tuple[float, float]:
    # One partition, queue or subject: the shape of the reference loops (the harness's
    # scenarios use 4, and broker_ceiling.py runs ours with 4).
    argv = [sys.executable, str(HERE / f"raw_{broker}.py"), "publish", "--seconds", f"{seconds}"]
    argv += ["--partitions", "1"]
    result = run_json(argv, None, seconds * 4 + 120)
    return float(result["msgs_per_s"]), float(result["cpu_us_per_msg"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE)
    args = parser.parse_args()
    columns = ("ours", "reference", "reference --uvloop")
    print(
        f"{'broker':8s}  "
        + "  ".join(f"{c + ' msgs/s':>26s}  {'us/msg':>7s}" for c in columns)
        + f"  {'ours/ref':>8s}  {'ours/ref uvloop':>15s}"
    )
    for broker in args.brokers.split(","):
        runs: dict[str, list[tuple[float, float]]] = {c: [] for c in columns}
        for _ in range(args.repeat):
            runs["ours"].append(ours(broker, args.seconds))
            runs["reference"].append(reference(broker, args.seconds, False, args.reference_dir))
            runs["reference --uvloop"].append(
                reference(broker, args.seconds, True, args.reference_dir)
            )
        rate = {c: statistics.median(r for r, _ in runs[c]) for c in columns}
        cpu = {c: statistics.median(u for _, u in runs[c]) for c in columns}
        ratio = [
            statistics.median(o[0] / r[0] for o, r in zip(runs["ours"], runs[c], strict=True))
            for c in columns[1:]
        ]
        print(
            f"{broker:8s}  "
            + "  ".join(f"{rate[c]:>26,.0f}  {cpu[c]:>7.1f}" for c in columns)
            + f"  {ratio[0]:>8.2f}  {ratio[1]:>15.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
