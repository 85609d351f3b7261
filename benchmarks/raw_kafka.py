"""Raw aiokafka throughput baseline: what the client library alone does on this machine.

This owns nothing in the harness. It is the yardstick for the Kafka driver: a closed loop of
``--in-flight`` concurrent keyed sends of ``--size``-byte values, each awaiting its broker ack,
with one consumer in a group reading them back. It prints the producer's acked msgs/s and the
end-to-end msgs/s (until the consumer has seen every message). Every client setting that the
driver sets is a flag here, with the driver's defaults, so the two can be matched exactly.

    .venv/bin/python benchmarks/raw_kafka.py --messages 100000 --in-flight 256
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bootstrap", default=os.environ.get("BENCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument("--topic", default=f"raw-bench-{os.getpid()}")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--size", type=int, default=1024, help="value bytes")
    p.add_argument("--keys", type=int, default=1000, help="distinct keys (aggregates)")
    p.add_argument("--in-flight", type=int, default=256, help="concurrent awaited sends")
    p.add_argument(
        "--producers", type=int, default=1, help="AIOKafkaProducer instances the sends share"
    )
    p.add_argument("--acks", default="all", choices=["0", "1", "all"])
    p.add_argument("--idempotence", action="store_true")
    p.add_argument("--linger-ms", type=int, default=0)
    p.add_argument("--max-batch-bytes", type=int, default=16384)
    p.add_argument("--compression", default="none")
    p.add_argument("--fetch-max-wait-ms", type=int, default=10)
    p.add_argument("--fetch-min-bytes", type=int, default=1)
    p.add_argument("--max-poll-records", type=int, default=500)
    p.add_argument("--no-consumer", action="store_true", help="measure the producer only")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many s")
    return p.parse_args()


async def recreate_topic(admin: AIOKafkaAdminClient, topic: str, partitions: int) -> None:
    with contextlib.suppress(UnknownTopicOrPartitionError):
        await admin.delete_topics([topic])
    deadline = time.monotonic() + 30
    while True:
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
            return
        except TopicAlreadyExistsError:
            # Deletion is asynchronous on Apache Kafka; retry until it has finished.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def consume(
    consumer: AIOKafkaConsumer, expected: int, max_records: int, done: asyncio.Future[float]
) -> None:
    while consumed[0] < expected:
        batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
        consumed[0] += sum(len(records) for records in batches.values())
    done.set_result(time.perf_counter())


# How many records the consumer has seen, kept outside the task so a timeout can report it.
consumed = [0]


async def run(args: argparse.Namespace) -> None:
    acks: int | str = args.acks if args.acks == "all" else int(args.acks)
    compression = None if args.compression == "none" else args.compression
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await recreate_topic(admin, args.topic, args.partitions)

    producers = [
        AIOKafkaProducer(
            bootstrap_servers=args.bootstrap,
            acks=acks,
            enable_idempotence=args.idempotence,
            linger_ms=args.linger_ms,
            max_batch_size=args.max_batch_bytes,
            compression_type=compression,
        )
        for _ in range(args.producers)
    ]
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=f"{args.topic}-g",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        fetch_min_bytes=args.fetch_min_bytes,
        max_poll_records=args.max_poll_records,
    )
    consumer_task: asyncio.Task[None] | None = None
    try:
        for producer in producers:
            await producer.start()
        loop = asyncio.get_running_loop()
        consumed_at: asyncio.Future[float] = loop.create_future()
        if not args.no_consumer:
            await consumer.start()
            # Wait for the assignment so the consumer's join is not part of the measurement.
            while not consumer.assignment():
                await asyncio.sleep(0.05)
            for tp in consumer.assignment():
                await consumer.position(TopicPartition(tp.topic, tp.partition))
            consumer_task = asyncio.create_task(
                consume(consumer, args.messages, args.max_poll_records, consumed_at)
            )

        value = os.urandom(args.size)
        keys = [f"agg-{i}".encode() for i in range(args.keys)]
        next_index = 0

        async def sender(worker: int) -> None:
            nonlocal next_index
            producer = producers[worker % len(producers)]
            while next_index < args.messages:
                i = next_index
                next_index += 1
                ack = await producer.send(args.topic, value, key=keys[i % len(keys)])
                await ack

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(sender(w) for w in range(args.in_flight))), args.timeout
        )
        acked_at = time.perf_counter()
        produce_rate = args.messages / (acked_at - started)
        print(
            f"produce: {args.messages} msgs of {args.size} B in {acked_at - started:.2f}s "
            f"= {produce_rate:,.0f} msgs/s acked "
            f"(in-flight {args.in_flight}, producers {args.producers}, acks {args.acks}, "
            f"linger {args.linger_ms}ms, batch {args.max_batch_bytes}B, "
            f"compression {args.compression})"
        )
        if consumer_task is not None:
            try:
                end = await asyncio.wait_for(consumed_at, args.timeout)
            except TimeoutError:
                raise SystemExit(
                    f"end-to-end: only {consumed[0]} of {args.messages} consumed "
                    f"within {args.timeout}s"
                ) from None
            print(
                f"end-to-end: all {args.messages} consumed after {end - started:.2f}s "
                f"= {args.messages / (end - started):,.0f} msgs/s "
                f"(fetch_max_wait {args.fetch_max_wait_ms}ms)"
            )
    finally:
        if consumer_task is not None:
            consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer_task
        for producer in producers:
            await producer.stop()
        await consumer.stop()
        # Tansu's memory storage keeps every record: free it for the next run.
        with contextlib.suppress(Exception):
            await admin.delete_topics([args.topic])
        await admin.close()


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
