"""The fastest plain nats-py JetStream loops on this machine: the reference for the NATS driver.

One stream ``<name>`` (file storage) with subjects ``<name>.<partition>``; a key goes to
partition ``crc32(key) % partitions``.

- ``publish``: ``--publisher inbox`` (the default, the faster): ``nc.publish`` with one reply
  inbox for every message and a callback on it counting the PubAcks; the loop publishes while
  fewer than ``--in-flight`` are unacknowledged and waits for room otherwise, then for the
  last ack. ``--publisher async``: ``js.publish_async`` with ``publish_async_max_pending =
  --in-flight`` (a future, an inbox token and a semaphore wait per message), then
  ``publish_async_completed()``. The rate is confirmed messages / time to the last ack.
- ``consume``: fills the stream with the publish loop, then one pull consumer per partition,
  ``fetch(--fetch-batch)`` in a loop, acknowledged with ``--ack``: ``all`` (ack policy all, the
  last message of each batch acknowledged), ``explicit`` (every message) or ``none``.
- ``pubsub``: the consumers run while the publish loop publishes, in one process.

    .venv/bin/python benchmarks/raw_nats.py publish --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from rawloop import Meter, Result, keys, parser, partition_of, run


async def publish(
    nc: nats.NATS, js: JetStreamContext, args: argparse.Namespace
) -> tuple[int, int, float, float]:
    """Publish until --seconds or --messages; the count confirmed, the errors, and the
    start and end (last ack) times."""
    if args.publisher == "inbox":
        return await publish_inbox(nc, args)
    payload = b"x" * args.size
    subjects = [f"{args.name}.{partition_of(k, args.partitions)}" for k in keys(args.keys)]
    nkeys = len(subjects)
    futures = []
    append = futures.append
    publish_async = js.publish_async
    now = time.perf_counter
    started = now()
    stop = started + args.seconds
    limit = args.messages
    n = 0
    while n < limit and ((n & 63) or now() < stop):
        append(await publish_async(subjects[n % nkeys], payload))
        n += 1
    await asyncio.wait_for(js.publish_async_completed(), args.timeout)
    end = now()
    errors = sum(1 for f in futures if f.exception() is not None)
    return n - errors, errors, started, end


async def publish_inbox(nc: nats.NATS, args: argparse.Namespace) -> tuple[int, int, float, float]:
    """``publish`` on plain ``nc.publish``: every PubAck comes back to one inbox, where a
    callback counts it (an error reply or a status, e.g. no stream, counts as an error)."""
    payload = b"x" * args.size
    subjects = [f"{args.name}.{partition_of(k, args.partitions)}" for k in keys(args.keys)]
    nkeys = len(subjects)
    window = args.in_flight
    counts = [0, 0, 0]  # unacknowledged, acknowledged, errors
    room = asyncio.Event()
    drained = asyncio.Event()

    async def on_ack(msg: Msg) -> None:
        counts[0] -= 1
        data = msg.data
        if not data or msg.headers or b'"error"' in data:
            counts[2] += 1
        else:
            counts[1] += 1
        room.set()
        if not counts[0]:
            drained.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_ack, pending_msgs_limit=0, pending_bytes_limit=0)
    publish_ = nc.publish
    now = time.perf_counter
    started = now()
    stop = started + args.seconds
    limit = args.messages
    n = 0
    try:
        while n < limit and ((n & 63) or now() < stop):
            while counts[0] >= window:
                room.clear()
                await room.wait()
            counts[0] += 1
            await publish_(subjects[n % nkeys], payload, reply=inbox)
            n += 1
        if counts[0]:
            drained.clear()
            await asyncio.wait_for(drained.wait(), args.timeout)
        end = now()
    finally:
        await sub.unsubscribe()
    return counts[1], counts[2], started, end


async def consumers(
    js: JetStreamContext, args: argparse.Namespace
) -> list[JetStreamContext.PullSubscription]:
    policy = {"all": api.AckPolicy.ALL, "explicit": api.AckPolicy.EXPLICIT}.get(
        args.ack, api.AckPolicy.NONE
    )
    subs = []
    for p in range(args.partitions):
        name = f"raw-p{p}"
        await js.add_consumer(
            args.name,
            config=api.ConsumerConfig(
                durable_name=name,
                filter_subject=f"{args.name}.{p}",
                ack_policy=policy,
                deliver_policy=api.DeliverPolicy.ALL,
                max_ack_pending=-1 if policy == api.AckPolicy.NONE else 8192,
            ),
        )
        subs.append(await js.pull_subscribe_bind(consumer=name, stream=args.name))
    return subs


async def pull(
    psub: JetStreamContext.PullSubscription,
    args: argparse.Namespace,
    counter: list[float],
    target: list[int],
) -> None:
    """Fetch and acknowledge until the shared count reaches target[0] (which pubsub raises
    once it knows how many were confirmed); counter = [received, time of the last one]."""
    ack = args.ack
    while counter[0] < target[0]:
        try:
            msgs = await psub.fetch(args.fetch_batch, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        if ack == "explicit":
            for msg in msgs:
                await msg.ack()
        elif ack == "all":
            await msgs[-1].ack()
        counter[0] += len(msgs)
        counter[1] = time.perf_counter()


async def main(args: argparse.Namespace) -> Result:
    nc = await nats.connect(
        "nats://127.0.0.1:4222",
        connect_timeout=10,
        max_reconnect_attempts=0,
        # Every subject here is built from a fixed prefix: no regex check per publish.
        skip_subject_validation=True,
    )
    js = nc.jetstream(timeout=10, publish_async_max_pending=args.in_flight)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(args.name)
        await js.add_stream(
            name=args.name, subjects=[f"{args.name}.>"], storage=api.StorageType.FILE
        )
        await js.publish(f"{args.name}.warmup", b"w")
        if args.mode == "publish":
            meter = Meter()
            sent, errors, _, end = await publish(nc, js, args)
            return meter.result(
                "nats", "publish", sent, end, errors=errors, notes={"publisher": args.publisher}
            )
        if args.mode == "consume":
            sent, errors, _, _ = await publish(nc, js, args)
            subs = await consumers(js, args)
            counter: list[float] = [0, 0.0]
            meter = Meter()
            await asyncio.wait_for(
                asyncio.gather(*(pull(s, args, counter, [sent]) for s in subs)), args.timeout
            )
            return meter.result(
                "nats", "consume", int(counter[0]), counter[1], errors=errors, notes=_notes(args)
            )
        subs = await consumers(js, args)
        counter = [0, 0.0]
        target = [args.messages]
        meter = Meter()
        tasks = [asyncio.create_task(pull(s, args, counter, target)) for s in subs]
        sent, errors, _, _ = await publish(nc, js, args)
        target[0] = sent
        await asyncio.wait(tasks, timeout=args.timeout)
        for task in tasks:
            task.cancel()
        got = int(counter[0])
        return meter.result(
            "nats", "pubsub", got, counter[1], errors=errors + sent - got, notes=_notes(args)
        )
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(args.name)
        await nc.close()


def _notes(args: argparse.Namespace) -> dict[str, object]:
    return {"ack": args.ack, "fetch_batch": args.fetch_batch, "publisher": args.publisher}


if __name__ == "__main__":
    p = parser("nats", __doc__)
    p.add_argument("--ack", choices=["all", "explicit", "none"], default="all")
    p.add_argument("--fetch-batch", type=int, default=256)
    p.add_argument("--publisher", choices=["inbox", "async"], default="inbox")
    run(p.parse_args(), main)
