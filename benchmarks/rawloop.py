"""What the raw loops in this folder share: their command line, their clock and their output.

Each ``raw_<broker>.py`` runs one of three plain loops on its client library, with the setup
of the harness's broker scenarios (1 KiB payloads, 64 in flight, 4 partitions keyed by
``crc32(key) % partitions``, one producer, one consumer), bounded by ``--seconds`` and
``--messages``:

- ``publish``: publish as fast as the library allows with a window of ``--in-flight``
  unconfirmed messages, and no per-message await beyond what the window needs;
- ``consume``: fill the topic with the publish loop for ``--seconds`` (not timed), then read it
  back from the start as fast as the library allows (timed);
- ``pubsub``: both at once in one process, as a harness worker does: the rate is what the
  consumer received, up to the last message the producer had confirmed.

Each prints one JSON line (``Result``). The loops import nothing from ``bench``: they are the
reference, so they must not move when the harness does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

MODES = ("publish", "consume", "pubsub")


@dataclass
class Result:
    broker: str
    mode: str
    messages: int
    elapsed_s: float
    msgs_per_s: float
    cpu_us_per_msg: float | None
    errors: int = 0
    loop: str = "uvloop"
    notes: dict[str, object] = field(default_factory=dict)


def parser(broker: str, doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"raw_{broker}.py", description=doc, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("mode", choices=MODES)
    p.add_argument("--seconds", type=float, default=5.0, help="publishing stops after this")
    p.add_argument("--messages", type=int, default=1_000_000, help="and after this many")
    p.add_argument("--size", type=int, default=1024, help="payload bytes")
    p.add_argument("--in-flight", type=int, default=64, help="unconfirmed publishes at most")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--keys", type=int, default=1000, help="distinct keys (aggregates)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--timeout", type=float, default=60.0, help="give up on a phase after this")
    p.add_argument("--name", default=f"eb-raw-{os.getpid()}", help="topic/stream/queue prefix")
    return p


def keys(count: int) -> list[bytes]:
    return [f"agg-{i}".encode() for i in range(count)]


def partition_of(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


class Meter:
    """Wall time and this process's CPU time over one timed phase."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def result(
        self, broker: str, mode: str, messages: int, end: float | None = None, **kw: object
    ) -> Result:
        cpu = time.process_time() - self.cpu
        elapsed = (end if end is not None else time.perf_counter()) - self.wall
        return Result(
            broker=broker,
            mode=mode,
            messages=messages,
            elapsed_s=round(elapsed, 4),
            msgs_per_s=round(messages / elapsed, 1) if elapsed > 0 else 0.0,
            cpu_us_per_msg=round(cpu * 1e6 / messages, 2) if messages else None,
            **kw,  # type: ignore[arg-type]
        )


def run(args: argparse.Namespace, main: Callable[[argparse.Namespace], Awaitable[Result]]) -> None:
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(main(args))
    else:
        result = asyncio.run(main(args))
    result.loop = args.loop
    print(json.dumps(asdict(result)), flush=True)
