"""Raw nats-py JetStream throughput baseline: what the client library alone does on this machine.

This owns nothing in the harness. It is the yardstick for the NATS driver: a closed loop of
``--in-flight`` concurrent keyed publishes of ``--size``-byte payloads to
``<stream>.<crc32(key) % partitions>``, each awaiting its PubAck, with one client reading every
partition's pull consumer (fetch ``--fetch-batch``, explicit ack). ``--publish pipelined`` uses
``publish_async`` with a pending window of ``--in-flight`` (the driver's default mode);
``--publish sync`` uses request/reply ``js.publish`` from ``--in-flight`` coroutines (the
driver's sync mode is this with ``--in-flight 1`` per producer). It prints the acked publish
msgs/s and the end-to-end msgs/s. The flags default to the driver's defaults.

    .venv/bin/python benchmarks/raw_nats.py --messages 100000 --in-flight 256
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
import zlib

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default=os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--stream", default=f"raw-bench-{os.getpid()}")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--storage", default="file", choices=["file", "memory"])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--size", type=int, default=1024, help="payload bytes")
    p.add_argument("--keys", type=int, default=1000, help="distinct keys (aggregates)")
    p.add_argument("--in-flight", type=int, default=256, help="concurrent awaited publishes")
    p.add_argument("--publish", default="pipelined", choices=["pipelined", "sync"])
    p.add_argument(
        "--dedup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send Nats-Msg-Id (the driver always does)",
    )
    p.add_argument("--fetch-batch", type=int, default=256)
    p.add_argument("--no-consumer", action="store_true", help="measure the publisher only")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many s")
    return p.parse_args()


async def pull(
    psub: JetStreamContext.PullSubscription, batch: int, counter: list[int], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            msgs = await psub.fetch(batch, timeout=1.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in msgs:
            await msg.ack()
        counter[0] += len(msgs)


async def run(args: argparse.Namespace) -> None:
    nc = await nats.connect(args.server, connect_timeout=10, max_reconnect_attempts=1)
    js = nc.jetstream(timeout=10, publish_async_max_pending=args.in_flight)
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(args.stream)
        await js.add_stream(
            name=args.stream,
            subjects=[f"{args.stream}.>"],
            storage=api.StorageType(args.storage),
            duplicate_window=120.0,
        )
        counter = [0]
        if not args.no_consumer:
            for p in range(args.partitions):
                name = f"raw-p{p}"
                await js.add_consumer(
                    args.stream,
                    config=api.ConsumerConfig(
                        durable_name=name,
                        filter_subject=f"{args.stream}.{p}",
                        ack_policy=api.AckPolicy.EXPLICIT,
                        max_ack_pending=4096,
                    ),
                )
                psub = await js.pull_subscribe_bind(consumer=name, stream=args.stream)
                tasks.append(asyncio.create_task(pull(psub, args.fetch_batch, counter, stop)))

        payload = os.urandom(args.size)
        subjects = [
            f"{args.stream}.{zlib.crc32(f'agg-{k}'.encode()) % args.partitions}"
            for k in range(args.keys)
        ]
        next_index = 0

        async def sender() -> None:
            nonlocal next_index
            while next_index < args.messages:
                i = next_index
                next_index += 1
                headers = {"eb-key": f"agg-{i % args.keys}"}
                if args.dedup:
                    headers["Nats-Msg-Id"] = uuid.uuid4().hex
                subject = subjects[i % args.keys]
                if args.publish == "sync":
                    await js.publish(subject, payload, headers=headers)
                else:
                    ack = await js.publish_async(subject, payload, headers=headers)
                    await asyncio.wait_for(ack, 10)

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(sender() for _ in range(args.in_flight))), args.timeout
        )
        acked_at = time.perf_counter()
        print(
            f"publish: {args.messages} msgs of {args.size} B in {acked_at - started:.2f}s "
            f"= {args.messages / (acked_at - started):,.0f} msgs/s acked "
            f"(in-flight {args.in_flight}, {args.publish}, partitions {args.partitions}, "
            f"storage {args.storage}, dedup {args.dedup})"
        )
        if not args.no_consumer:
            deadline = started + args.timeout
            while counter[0] < args.messages and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            end = time.perf_counter()
            print(
                f"end-to-end: {counter[0]} of {args.messages} consumed after {end - started:.2f}s "
                f"= {counter[0] / (end - started):,.0f} msgs/s (fetch batch {args.fetch_batch})"
            )
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await js.delete_stream(args.stream)
        await nc.close()


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
