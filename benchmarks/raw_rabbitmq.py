"""Raw aio-pika throughput baseline: what the client library alone does on this machine.

This owns nothing in the harness. It is the yardstick for the RabbitMQ driver: a closed loop of
``--in-flight`` concurrent keyed publishes of ``--size``-byte bodies (each awaiting its
publisher confirm when ``--confirms`` is on, as the driver's ``send()`` does), routed by key
hash to ``--queues`` queues behind a direct exchange, with one consumer (QoS ``--prefetch``,
manual acks) reading every queue. It prints the acked publish msgs/s and the end-to-end msgs/s
(until the consumer has seen every message). The flags default to the driver's defaults:
durable queues, persistent messages, confirms on, prefetch 256, manual ack.

    .venv/bin/python benchmarks/raw_rabbitmq.py --messages 100000 --in-flight 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import zlib

import aio_pika
import aio_pika.abc


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--url", default=os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    p.add_argument("--name", default=f"raw-bench-{os.getpid()}", help="exchange/queue prefix")
    p.add_argument("--queues", type=int, default=4)
    p.add_argument("--queue-type", default="classic", choices=["classic", "quorum", "stream"])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--size", type=int, default=1024, help="body bytes")
    p.add_argument("--keys", type=int, default=1000, help="distinct keys (aggregates)")
    p.add_argument(
        "--in-flight", type=int, default=64, help="concurrent publishes (the confirm window)"
    )
    p.add_argument("--channels", type=int, default=1, help="publishing channels the sends share")
    p.add_argument("--confirms", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--persistent", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--prefetch", type=int, default=256)
    p.add_argument("--no-consumer", action="store_true", help="measure the publisher only")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many s")
    return p.parse_args()


async def run(args: argparse.Namespace) -> None:
    connection = await aio_pika.connect(args.url, timeout=10)
    consumer_channel: aio_pika.abc.AbstractChannel | None = None
    queue_names = [f"{args.name}.{i}" for i in range(args.queues)]
    try:
        admin = await connection.channel()
        exchange = await admin.declare_exchange(
            args.name, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for name in queue_names:
            await admin.queue_delete(name)
            queue = await admin.declare_queue(
                name, durable=True, arguments={"x-queue-type": args.queue_type}
            )
            await queue.bind(exchange, routing_key=name)

        seen = 0
        loop = asyncio.get_running_loop()
        consumed_at: asyncio.Future[float] = loop.create_future()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == args.messages and not consumed_at.done():
                consumed_at.set_result(time.perf_counter())

        if not args.no_consumer:
            consumer_channel = await connection.channel()
            await consumer_channel.set_qos(prefetch_count=args.prefetch)
            offset = {"x-stream-offset": "first"} if args.queue_type == "stream" else None
            for name in queue_names:
                queue = await consumer_channel.get_queue(name)
                await queue.consume(on_message, arguments=offset)

        channels = [
            await connection.channel(publisher_confirms=args.confirms) for _ in range(args.channels)
        ]
        exchanges = [await ch.get_exchange(args.name) for ch in channels]
        body = os.urandom(args.size)
        routing = [
            queue_names[zlib.crc32(f"agg-{k}".encode()) % args.queues] for k in range(args.keys)
        ]
        mode = (
            aio_pika.DeliveryMode.PERSISTENT
            if args.persistent
            else aio_pika.DeliveryMode.NOT_PERSISTENT
        )
        next_index = 0

        async def sender(worker: int) -> None:
            nonlocal next_index
            target = exchanges[worker % len(exchanges)]
            while next_index < args.messages:
                i = next_index
                next_index += 1
                key = f"agg-{i % args.keys}"
                await target.publish(
                    aio_pika.Message(body, headers={"eb-key": key}, delivery_mode=mode),
                    routing[i % args.keys],
                )

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(sender(w) for w in range(args.in_flight))), args.timeout
        )
        acked_at = time.perf_counter()
        print(
            f"publish: {args.messages} msgs of {args.size} B in {acked_at - started:.2f}s "
            f"= {args.messages / (acked_at - started):,.0f} msgs/s "
            f"{'confirmed' if args.confirms else 'written (no confirms)'} "
            f"(in-flight {args.in_flight}, channels {args.channels}, queues {args.queues} "
            f"{args.queue_type}, persistent {args.persistent})"
        )
        if not args.no_consumer:
            end = await asyncio.wait_for(consumed_at, args.timeout)
            print(
                f"end-to-end: all {args.messages} consumed after {end - started:.2f}s "
                f"= {args.messages / (end - started):,.0f} msgs/s (prefetch {args.prefetch})"
            )
    finally:
        # Stop consuming first, so deleting the queues does not cancel live consumers.
        if consumer_channel is not None:
            await consumer_channel.close()
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            for name in queue_names:
                await cleanup.queue_delete(name)
            await cleanup.exchange_delete(args.name)
        await connection.close()


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
