"""The re-read: every record of a topic as (producer, seq), for the engine's loss classification.

A reader outside any group (so no commit and no rebalance touches the run's group) is
assigned every partition and reads from the beginning to each partition's end when the
re-read began.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.drivers.base import H_ENVELOPE, StoredIds, Topology, envelope_ids
from bench.drivers.kafka.config import KafkaConfig, client_settings, where
from bench.drivers.kafka.failures import reason
from bench.errors import DriverError
from bench.units import format_duration

# A re-read whose positions stay put this long is stuck (a broker that never hands out the
# records below an end offset it reported), not slow.
REREAD_STALL_S = 5.0

REREAD_METHOD = (
    "a reader outside any group read every partition from its first offset to its end "
    "when the re-read began (the later of ListOffsets' answer and the first fetch's "
    "high watermark)"
)


async def reread_topic(
    admin: AIOKafkaAdminClient, config: KafkaConfig, topology: Topology
) -> AsyncGenerator[StoredIds, None]:
    """Every record of the topic as (producer, seq): a consumer without a group (so no
    commit and no rebalance touches the run's group) assigned every partition, from the
    beginning to the partition's end when the re-read began.

    The end is the later of ListOffsets' latest offset and the high watermark of the first
    fetch that answers for the partition: Tansu 0.6.0 answers ListOffsets with an offset
    behind the records it serves (238 for a partition holding 300), so ListOffsets alone
    would call stored records lost.
    """
    if topology.name not in await admin.list_topics():
        # Gone with everything in it (and a reader's metadata request could create it
        # again on a broker that auto-creates topics).
        return
    committed_only = bool(config.transactional)
    client = AIOKafkaConsumer(
        client_id=f"{config.client_id}-reread",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        max_poll_records=max(config.max_poll_records, 2000),
        # What a read_committed consumer of the run could ever be given.
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        **client_settings(config),
    )
    try:
        await asyncio.wait_for(client.start(), config.connect_timeout)
        partitions = [TopicPartition(topology.name, p) for p in range(topology.partitions)]
        client.assign(partitions)
        ends: dict[TopicPartition, int] = dict(await client.end_offsets(partitions))
        await client.seek_to_beginning(*partitions)
        remaining = set(partitions)
        fetched: set[TopicPartition] = set()  # partitions whose end a fetch confirmed
        positions = {tp: -1 for tp in partitions}
        moved_at = time.monotonic()
        while remaining:
            if time.monotonic() - moved_at > REREAD_STALL_S:
                behind = {tp.partition: (positions[tp], ends[tp]) for tp in remaining}
                raise DriverError(
                    f"{where(config)}: re-reading {topology.name!r} made no progress for "
                    f"{format_duration(REREAD_STALL_S)} (partition: (offset, end) {behind})"
                )
            batches = await client.getmany(*remaining, timeout_ms=200)
            for tp in remaining - fetched:
                mark = client.last_stable_offset(tp) if committed_only else client.highwater(tp)
                if mark is not None:
                    ends[tp] = max(ends[tp], mark)
                    fetched.add(tp)
            ids: StoredIds = []
            for tp, records in batches.items():
                end = ends[tp]
                for record in records:
                    if record.offset >= end:
                        break
                    found = _envelope_of(record.headers)
                    if found is not None:
                        ids.append(found)
            for tp in list(remaining):
                position = await client.position(tp)
                if position != positions[tp]:
                    positions[tp] = position
                    moved_at = time.monotonic()
                if tp in fetched and position >= ends[tp]:
                    remaining.discard(tp)
            if ids:
                yield ids
    except KafkaError as exc:
        raise DriverError(
            f"{where(config)}: re-reading topic {topology.name!r} failed: {reason(exc)}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), config.connect_timeout)


def _envelope_of(headers: Iterable[tuple[str, bytes]]) -> tuple[int, int] | None:
    for name, value in headers:
        if name == H_ENVELOPE:
            return envelope_ids(value)
    return None
