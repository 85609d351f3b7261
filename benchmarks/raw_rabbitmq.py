"""The fastest plain aio-pika loops on this machine: the reference for the RabbitMQ driver.

``--partitions`` durable classic queues ``<name>.<partition>`` behind the default exchange; a
key goes to queue ``crc32(key) % partitions``. Messages are persistent.

- ``publish``: a channel with publisher confirms and ``--in-flight`` coroutines, each
  publishing and awaiting its own confirm in a loop, so that the window of unconfirmed
  messages stays full without a task per message. The rate is confirmed messages / time to
  the last confirm.
- ``consume``: fills the queues with the publish loop, then one channel (QoS
  ``--prefetch``) consumes every queue with manual acks, one ``multiple`` ack per
  ``--ack-every`` messages (``--ack-every 1`` acks each message).
- ``pubsub``: the consumer runs while the publish loop publishes, in one process.

    .venv/bin/python benchmarks/raw_rabbitmq.py publish --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import aio_pika
import aio_pika.abc
from rawloop import Meter, Result, keys, parser, partition_of, run

URL = "amqp://guest:guest@127.0.0.1:5672/"


async def publish(
    channel: aio_pika.abc.AbstractChannel, args: argparse.Namespace
) -> tuple[int, int, float]:
    """Publish until --seconds or --messages; the count confirmed, the errors, and the time
    of the last confirm."""
    body = b"x" * args.size
    routes = [f"{args.name}.{partition_of(k, args.partitions)}" for k in keys(args.keys)]
    nkeys = len(routes)
    exchange = channel.default_exchange
    persistent = aio_pika.DeliveryMode.PERSISTENT
    message = aio_pika.Message
    now = time.perf_counter
    stop = now() + args.seconds
    limit = args.messages
    state = [0, 0]  # issued, errors

    async def sender() -> None:
        while state[0] < limit and now() < stop:
            i = state[0]
            state[0] = i + 1
            try:
                await exchange.publish(message(body, delivery_mode=persistent), routes[i % nkeys])
            except aio_pika.exceptions.AMQPError:
                state[1] += 1

    await asyncio.wait_for(
        asyncio.gather(*(sender() for _ in range(args.in_flight))), args.seconds + args.timeout
    )
    return state[0] - state[1], state[1], now()


async def consume(
    channel: aio_pika.abc.AbstractChannel,
    args: argparse.Namespace,
    counter: list[float],
    target: list[int],
    done: asyncio.Event,
) -> None:
    """Consume every queue; counter = [received, time of the last]; done is set when the
    count reaches target[0] (which pubsub lowers once it knows how many were confirmed)."""
    every = args.ack_every

    async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        n = counter[0] + 1
        counter[0] = n
        counter[1] = time.perf_counter()
        if n % every == 0:
            await msg.ack(multiple=every > 1)
        if n >= target[0]:
            done.set()

    await channel.set_qos(prefetch_count=args.prefetch)
    for p in range(args.partitions):
        queue = await channel.get_queue(f"{args.name}.{p}", ensure=False)
        await queue.consume(on_message)


async def main(args: argparse.Namespace) -> Result:
    connection = await aio_pika.connect(URL, timeout=10)
    queues = [f"{args.name}.{p}" for p in range(args.partitions)]
    notes = {"prefetch": args.prefetch, "ack_every": args.ack_every}
    reader = await connection.channel()
    try:
        setup = await connection.channel()
        for name in queues:
            await setup.declare_queue(name, durable=True)
        publisher = await connection.channel(publisher_confirms=True)
        await publisher.default_exchange.publish(aio_pika.Message(b"w"), "eb-raw-none")
        counter: list[float] = [0, 0.0]
        done = asyncio.Event()
        if args.mode == "publish":
            meter = Meter()
            sent, errors, end = await publish(publisher, args)
            return meter.result("rabbitmq", "publish", sent, end, errors=errors)
        if args.mode == "consume":
            sent, errors, _ = await publish(publisher, args)
            meter = Meter()
            await consume(reader, args, counter, [sent], done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.timeout)
            return meter.result(
                "rabbitmq", "consume", int(counter[0]), counter[1], errors=errors, notes=notes
            )
        target = [args.messages]
        meter = Meter()
        await consume(reader, args, counter, target, done)
        sent, errors, _ = await publish(publisher, args)
        target[0] = sent
        if counter[0] >= sent:
            done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.timeout)
        got = int(counter[0])
        return meter.result(
            "rabbitmq", "pubsub", got, counter[1], errors=errors + sent - got, notes=notes
        )
    finally:
        # Stop consuming first, so deleting the queues does not cancel a live consumer.
        await reader.close()
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            for name in queues:
                await cleanup.queue_delete(name)
        await connection.close()


if __name__ == "__main__":
    p = parser("rabbitmq", __doc__)
    p.add_argument("--prefetch", type=int, default=256)
    p.add_argument("--ack-every", type=int, default=64)
    run(p.parse_args(), main)
