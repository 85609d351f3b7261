"""The harness against the raw client libraries, per broker, in one run.

For each broker, runs:

1. the minimal raw loop with the same client library and settings (``raw_kafka.py``,
   ``raw_rabbitmq.py``, ``raw_nats.py``: closed loop, M sends in flight, 1 KiB keyed messages,
   one consumer);
2. eventbench's engine, closed loop (``rate = "max"``), with the same settings and M concurrent
   sends, full recording and audit;

and prints acked msgs/s for both and their ratio. For the Kafka protocol it also runs Tansu's
own ``tansu perf produce`` (batch size 1, one producer) and counts what it wrote from the topic's
end offsets before and after (Tansu's ListOffsets can undercount slightly: an estimate).

Usage (brokers up first: ``bench up``)::

    .venv/bin/python benchmarks/broker_ceiling.py [--brokers kafka,rabbitmq,nats] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

HERE = Path(__file__).resolve().parent
IN_FLIGHT = 64
PARTITIONS = 4

RAW = {
    "kafka": [
        "raw_kafka.py",
        "--partitions",
        str(PARTITIONS),
        "--in-flight",
        str(IN_FLIGHT),
        "--producers",
        "1",
        "--acks",
        "all",
        "--linger-ms",
        "0",
        "--fetch-max-wait-ms",
        "10",
    ],
    "rabbitmq": [
        "raw_rabbitmq.py",
        "--queues",
        str(PARTITIONS),
        "--in-flight",
        str(IN_FLIGHT),
        "--channels",
        "1",
        "--confirms",
        "--persistent",
    ],
    "nats": [
        "raw_nats.py",
        "--partitions",
        str(PARTITIONS),
        "--in-flight",
        str(IN_FLIGHT),
        "--publish",
        "pipelined",
    ],
}
TARGETS = {
    "kafka": {"driver": "kafka", "acks": "all", "linger_ms": 0, "fetch_max_wait_ms": 10},
    "rabbitmq": {
        "driver": "rabbitmq",
        "confirms": True,
        "persistent": True,
        "confirm_window": IN_FLIGHT,
    },
    "nats": {"driver": "nats", "publish": "pipelined", "publish_window": IN_FLIGHT},
}
_RATE = re.compile(r"= ([\d,]+) msgs/s")


def raw_rate(broker: str, messages: int) -> tuple[float, float | None]:
    argv = [
        sys.executable,
        str(HERE / RAW[broker][0]),
        *RAW[broker][1:],
        "--messages",
        str(messages),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{broker} raw loop failed: {out.stderr.strip()[-500:]}")
    rates = [float(m.replace(",", "")) for m in _RATE.findall(out.stdout)]
    return rates[0], (rates[1] if len(rates) > 1 else None)


def harness_rate(broker: str, seconds: float) -> dict[str, object]:
    raw = {
        "scenario": {
            "name": "ceiling",
            "duration": f"{seconds}s",
            "warmup": "2s",
            "drain_timeout": "30s",
        },
        "workload": {
            "rate": "max",
            "concurrency": IN_FLIGHT,
            "producers": 1,
            "consumers": 1,
            "workers": 1,
            "partitions": PARTITIONS,
            "payload_bytes": 1024,
            "aggregates": 1000,
        },
        "targets": {broker: TARGETS[broker]},
    }
    point = expand(scenario_from_dict(raw, "broker_ceiling"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        summary = PointRunner(point, "ceiling", Path(tmp) / "p", lambda: False).run()
    if summary["status"] != "ok":
        raise SystemExit(f"{broker}: harness run failed: {summary['problems']}")
    return {
        "acked_per_s": summary["throughput"]["acked_per_s"],
        "received_per_s": summary["throughput"]["received_per_s"],
        "lost": summary["audit"]["lost"],
        "client_bound": summary["client_bound"],
        "cpu_pct_max_worker": summary["harness"]["cpu_pct_max_worker"],
    }


async def _end_offsets(topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9092")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return int(sum(offsets.values()))
    finally:
        await consumer.stop()


def tansu_perf_rate(seconds: float) -> float | None:
    from bench.infra import _tansu_binary

    binary = _tansu_binary()
    topic = f"eb-tansu-perf-{int(time.time())}"
    subprocess.run(
        [binary, "topic", "create", topic, "--broker", "tcp://127.0.0.1:9092", "--partitions", "1"],
        capture_output=True,
        timeout=60,
    )
    before = asyncio.run(_end_offsets(topic))
    subprocess.run(
        [
            binary,
            "perf",
            "--broker",
            "tcp://127.0.0.1:9092",
            topic,
            "produce",
            "--batch-size",
            "1",
            "--record-size",
            "1k",
            "--producers",
            "1",
            "--duration",
            f"{int(seconds)}s",
        ],
        capture_output=True,
        timeout=seconds + 60,
    )
    after = asyncio.run(_end_offsets(topic))
    return (after - before) / seconds if after > before else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--brokers", default="kafka,rabbitmq,nats")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for broker in args.brokers.split(","):
        harness = harness_rate(broker, args.seconds)
        acked = float(harness["acked_per_s"])  # type: ignore[arg-type]
        # Give the raw loop as many messages as the harness moved in its window.
        raw_acked, raw_e2e = raw_rate(broker, max(5000, int(acked * args.seconds)))
        row: dict[str, object] = {
            "raw_acked_per_s": raw_acked,
            "raw_e2e_per_s": raw_e2e,
            "harness": harness,
            "ratio": acked / raw_acked,
        }
        line = (
            f"{broker:9s} raw {raw_acked:9,.0f}/s   harness {acked:9,.0f}/s   "
            f"ratio {acked / raw_acked:.2f}   (harness lost {harness['lost']}, "
            f"client_bound {harness['client_bound']}, worker cpu "
            f"{float(harness['cpu_pct_max_worker'] or 0):.0f}%)"
        )  # type: ignore[arg-type]
        if broker == "kafka":
            perf = tansu_perf_rate(args.seconds)
            row["tansu_perf_per_s"] = perf
            if perf:
                line += f"   tansu perf {perf:,.0f}/s (harness {acked / perf:.2f}x)"
        print(line, flush=True)
        figures[broker] = row
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
