"""The transactional outbox: what a relay reads, marks and counts, and the shard key each
append writes with its outbox rows.

Written by the append itself (``sql.py``): with ``use_outbox()``, every strategy's one
statement (or ``append_locked``'s INSERT, or serializable's statement inside its transaction)
copies the rows its events INSERT returned into ``outbox``. A conflicted append inserts no
event, so it writes no outbox row; a committed one commits both. Positions are an identity in
version order within one append.

Marking deletes. The events table already keeps every event for good, so the outbox is only
the backlog: deleting keeps it as small as the relays' lag, so ``outbox_fetch`` (which walks
the primary key in position order, filtering on the shard: no index serves ``shard_key %
shards`` for a number of relays chosen at run time) and ``outbox_pending`` (a count of the
whole table) cost the backlog, not the run's length. A published flag would write a new
version of the row (PostgreSQL's UPDATE copies it, payload included), keep every published
row in the table, and need a partial index to fetch, for a history nobody reads.

Order per aggregate, although positions are drawn at insert and transactions commit in
another order (projector.py's hazard): the relay never remembers a high-water position, it
reads what is still in the table, in position order, and an entry leaves only by
``outbox_mark``. A position whose transaction commits late is therefore fetched late, never
skipped. Within one aggregate there is no late commit to fear: an append of version n+1
needs version n committed (a writer loads the aggregate before it appends at the version it
read, and every strategy's check but insert_only's refuses any version that is not the
stored one), so its statement, and the positions it draws, come after version n's commit;
the identity's sequence (CACHE 1) hands out positions in time order. When an aggregate's
n+1 is visible, n is visible with a smaller position, or already marked. This holds while
each shard has one relay: two relays on one shard would publish the same entries
concurrently (the engine gives each shard one relay).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

from bench.drivers.base import OutboxEntry, StoredEvent
from bench.drivers.postgres.pool import Connections
from bench.drivers.postgres.sql import Namespace


def shard_key(aggregate_id: str) -> int:
    """The aggregate's full crc32, kept with its outbox rows: ``shard_key % shards`` is
    ``bench.drivers.base.partition_of(aggregate_id, shards)`` for any ``shards``."""
    return zlib.crc32(aggregate_id.encode())


async def fetch(
    pool: Connections, ns: Namespace, shard: int, shards: int, limit: int
) -> list[OutboxEntry]:
    """Up to ``limit`` entries of ``shard`` of ``shards`` still in the outbox, in position order."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of {shards} shards")
    async with pool.acquire() as conn:
        rows = await conn.fetch(ns.sql.outbox_fetch, shard, shards, limit)
    return [
        OutboxEntry(
            row["position"],
            StoredEvent(
                event_id=row["event_id"],
                aggregate_id=row["aggregate_id"],
                aggregate_type=row["aggregate_type"],
                event_type=row["event_type"],
                version=row["version"],
                payload=row["payload"].encode(),
                metadata=json.loads(row["metadata"]),
            ),
        )
        for row in rows
    ]


async def mark(pool: Connections, ns: Namespace, positions: Sequence[int]) -> None:
    """Delete the published entries (see the module: marking deletes)."""
    if not positions:
        return
    async with pool.acquire() as conn:
        await conn.execute(ns.sql.outbox_mark, list(positions))


async def pending(pool: Connections, ns: Namespace) -> int:
    """Entries not yet marked: the whole table, since marking deletes."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval(ns.sql.outbox_pending))
