"""The fastest plain aiokafka loops on this machine: the reference for the Kafka driver.

One topic ``<name>`` of ``--partitions`` partitions; a keyed record goes to partition
``crc32(key) % partitions``, passed to ``send()`` so that aiokafka's pure-Python murmur2 does
not run per record (a plain loop that knows its partitions would do the same).

- ``publish``: ``send()`` futures with a window of ``--in-flight`` unacknowledged records
  (acks all, linger 0, batches of up to 16 KiB: the harness's Kafka scenario); only the oldest
  future is awaited, and only when the window is full. The rate is acknowledged records / time
  to the last ack.
- ``consume``: fills the topic with the publish loop, then one consumer (no group: assigned
  every partition, from the beginning) reads it back with ``getmany``.
- ``pubsub``: the same consumer (from the end) runs while the publish loop produces, in one
  process.

``--client confluent`` runs the same three loops on confluent-kafka (librdkafka) instead, as
plain synchronous loops (no event loop: nothing between the library and the loop): ``produce()``
with the partition given, delivery reports served by ``poll()`` only when the window is full
(``poll`` blocks until reports arrive, then serves all of them), the consumer's ``consume()``
in a thread of its own for ``pubsub``. Same settings (acks all, linger 0), except batches of
up to 128 KiB (its fastest here, the harness's default too), with TCP_NODELAY (librdkafka
leaves Nagle on by default; aiokafka does not) and one produce request in flight per
connection, as aiokafka (``--max-in-flight-requests``).

    .venv/bin/python benchmarks/raw_kafka.py publish --seconds 5
    .venv/bin/python benchmarks/raw_kafka.py publish --seconds 5 --client confluent
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import deque

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from rawloop import Meter, Result, keys, parser, partition_of, run

BOOTSTRAP = "127.0.0.1:9092"


async def publish(producer: AIOKafkaProducer, args: argparse.Namespace) -> tuple[int, int, float]:
    """Produce until --seconds or --messages; the count acknowledged, the errors, and the
    time of the last ack."""
    value = b"x" * args.size
    table = [(k, partition_of(k, args.partitions)) for k in keys(args.keys)]
    nkeys = len(table)
    topic = args.name
    window = args.in_flight
    pending: deque[asyncio.Future[object]] = deque()
    send = producer.send
    now = time.perf_counter
    stop = now() + args.seconds
    limit = args.messages
    n = errors = 0
    while n < limit and ((n & 63) or now() < stop):
        key, partition = table[n % nkeys]
        pending.append(await send(topic, value, key=key, partition=partition))
        n += 1
        if len(pending) >= window:
            try:
                await pending.popleft()
            except KafkaError:
                errors += 1
    for future in pending:
        try:
            await future
        except KafkaError:
            errors += 1
    return n - errors, errors, now()


def consumer(args: argparse.Namespace) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        enable_auto_commit=False,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        max_partition_fetch_bytes=args.max_partition_fetch_bytes,
    )


async def read(
    c: AIOKafkaConsumer, args: argparse.Namespace, counter: list[float], target: list[int]
) -> None:
    """getmany until the count reaches target[0]; counter = [received, time of the last]."""
    while counter[0] < target[0]:
        batches = await c.getmany(timeout_ms=200, max_records=args.max_records)
        if batches:
            counter[0] += sum(len(records) for records in batches.values())
            counter[1] = time.perf_counter()


async def main(args: argparse.Namespace) -> Result:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        acks="all",
        linger_ms=args.linger_ms,
        max_batch_size=args.max_batch_bytes,
        enable_idempotence=False,
    )
    c = consumer(args)
    partitions = [TopicPartition(args.name, p) for p in range(args.partitions)]
    try:
        await admin.create_topics([NewTopic(args.name, args.partitions, 1)])
        await producer.start()
        # Metadata and a first batch per partition, outside the timed phase.
        for p in range(args.partitions):
            await (await producer.send(args.name, b"w", partition=p))
        await c.start()
        c.assign(partitions)
        notes = {"fetch_max_wait_ms": args.fetch_max_wait_ms, "max_records": args.max_records}
        if args.mode == "publish":
            meter = Meter()
            sent, errors, end = await publish(producer, args)
            return meter.result("kafka", "publish", sent, end, errors=errors)
        if args.mode == "consume":
            sent, errors, _ = await publish(producer, args)
            await c.seek_to_beginning(*partitions)
            counter: list[float] = [0, 0.0]
            # The warm-up records count as read, not as measured.
            target = [sent + args.partitions]
            meter = Meter()
            await asyncio.wait_for(read(c, args, counter, target), args.timeout)
            return meter.result(
                "kafka",
                "consume",
                int(counter[0]) - args.partitions,
                counter[1],
                errors=errors,
                notes=notes,
            )
        await c.seek_to_end(*partitions)
        for tp in partitions:
            await c.position(tp)
        counter = [0, 0.0]
        target = [args.messages]
        meter = Meter()
        reader = asyncio.create_task(read(c, args, counter, target))
        sent, errors, _ = await publish(producer, args)
        target[0] = sent
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, args.timeout)
        got = int(counter[0])
        return meter.result(
            "kafka", "pubsub", got, counter[1], errors=errors + sent - got, notes=notes
        )
    finally:
        await producer.stop()
        await c.stop()
        # Tansu's memory storage keeps every record: drop them with the topic.
        with contextlib.suppress(Exception):
            await admin.delete_topics([args.name])
        await admin.close()


# --------------------------------------------------------------------------- confluent-kafka


def rd_publish(producer: object, args: argparse.Namespace) -> tuple[int, int, float]:
    """The publish loop on confluent-kafka: the count acknowledged, the errors, the time of the
    last ack."""
    value = b"x" * args.size
    table = [(k, partition_of(k, args.partitions)) for k in keys(args.keys)]
    nkeys = len(table)
    topic = args.name
    window = args.in_flight
    done = [0, 0, 0.0]  # acknowledged, failed, time of the last report
    now = time.perf_counter

    def report(err: object, _msg: object) -> None:
        if err is None:
            done[0] += 1
        else:
            done[1] += 1
        done[2] = now()

    produce = producer.produce  # type: ignore[attr-defined]
    poll = producer.poll  # type: ignore[attr-defined]
    stop = now() + args.seconds
    limit = args.messages
    n = 0
    while n < limit and ((n & 63) or now() < stop):
        key, partition = table[n % nkeys]
        produce(topic, value, key, partition, on_delivery=report)
        n += 1
        if n - done[0] - done[1] >= window:
            poll(1.0)
    while done[0] + done[1] < n:
        poll(1.0)
    return int(done[0]), int(done[1]), float(done[2])


def rd_read(c: object, args: argparse.Namespace, counter: list[float], target: list[int]) -> None:
    """consume() until the count reaches target[0] (or --timeout); counter as ``read``."""
    consume = c.consume  # type: ignore[attr-defined]
    batch = args.max_records or 500
    give_up = time.perf_counter() + args.timeout
    while counter[0] < target[0] and time.perf_counter() < give_up:
        records = consume(batch, 0.2)
        if records:
            counter[0] += sum(1 for r in records if r.error() is None)
            counter[1] = time.perf_counter()


async def rd_main(args: argparse.Namespace) -> Result:
    import threading

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer
    from confluent_kafka import TopicPartition as RdTopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin import NewTopic as RdNewTopic

    common = {"bootstrap.servers": BOOTSTRAP, "socket.nagle.disable": True}
    admin = AdminClient(common)
    for future in admin.create_topics([RdNewTopic(args.name, args.partitions, 1)]).values():
        future.result()
    producer = Producer(
        {
            **common,
            "acks": -1,
            "linger.ms": args.linger_ms,
            "batch.size": args.max_batch_bytes,
            "max.in.flight.requests.per.connection": args.max_in_flight_requests,
        }
    )
    c = Consumer(
        {
            **common,
            "group.id": f"{args.name}-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": args.fetch_max_wait_ms,
            "max.partition.fetch.bytes": args.max_partition_fetch_bytes,
        }
    )
    try:
        # Metadata and a first batch per partition, outside the timed phase.
        for p in range(args.partitions):
            producer.produce(args.name, b"w", partition=p)
        producer.flush(30)
        notes = {"client": "confluent", "fetch_max_wait_ms": args.fetch_max_wait_ms}
        if args.mode == "publish":
            meter = Meter()
            sent, errors, end = rd_publish(producer, args)
            return meter.result("kafka", "publish", sent, end, errors=errors, notes=notes)
        if args.mode == "consume":
            sent, errors, _ = rd_publish(producer, args)
            c.assign(
                [RdTopicPartition(args.name, p, OFFSET_BEGINNING) for p in range(args.partitions)]
            )
            counter: list[float] = [0, 0.0]
            meter = Meter()
            # The warm-up records count as read, not as measured.
            rd_read(c, args, counter, [sent + args.partitions])
            return meter.result(
                "kafka",
                "consume",
                int(counter[0]) - args.partitions,
                counter[1],
                errors=errors,
                notes=notes,
            )
        c.assign([RdTopicPartition(args.name, p, OFFSET_END) for p in range(args.partitions)])
        c.consume(1, 1.0)  # the positions resolve before publishing starts
        counter = [0, 0.0]
        target = [args.messages]
        meter = Meter()
        reader = threading.Thread(target=rd_read, args=(c, args, counter, target))
        reader.start()
        sent, errors, _ = rd_publish(producer, args)
        target[0] = sent
        reader.join()
        got = int(counter[0])
        return meter.result(
            "kafka", "pubsub", got, counter[1], errors=errors + sent - got, notes=notes
        )
    finally:
        producer.flush(10)
        c.close()
        for future in admin.delete_topics([args.name]).values():
            with contextlib.suppress(Exception):
                future.result()


if __name__ == "__main__":
    p = parser("kafka", __doc__)
    p.add_argument("--client", choices=["aiokafka", "confluent"], default="aiokafka")
    p.add_argument(
        "--max-in-flight-requests",
        type=int,
        default=1,
        help="confluent: produce requests in flight per connection; with linger 0, "
        "librdkafka's default (1000000) sends nearly one record per request: 15.7k msgs/s "
        "on Tansu against 39.0k with 1",
    )
    p.add_argument("--linger-ms", type=int, default=0)
    p.add_argument(
        "--max-batch-bytes",
        type=int,
        default=None,
        help="16384 for aiokafka; 131072 for confluent (measured on Tansu, 5 s, 2 each: "
        "37.2k and 40.6k msgs/s against 30.1k and 28.8k at 16 KiB)",
    )
    p.add_argument("--fetch-max-wait-ms", type=int, default=10)
    p.add_argument("--max-partition-fetch-bytes", type=int, default=1024 * 1024)
    p.add_argument("--max-records", type=int, default=None)
    parsed = p.parse_args()
    if parsed.max_batch_bytes is None:
        parsed.max_batch_bytes = 131072 if parsed.client == "confluent" else 16384
    run(parsed, rd_main if parsed.client == "confluent" else main)
