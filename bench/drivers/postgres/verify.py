"""The store's checks: its invariants (no forked stream, no gap, the read model equals the
fold, each event processed once), the engine's ledger, the stored ids and the server's own
counters. Each violation is one sentence; examples are capped, the total is always given."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from bench.domain import OrderState
from bench.drivers.postgres.config import Strategy
from bench.drivers.postgres.pool import Connections
from bench.drivers.postgres.projector import fold_row
from bench.drivers.postgres.sql import EXAMPLES, PROJECTOR, Namespace


async def verify(pool: Connections, ns: Namespace, strategy: Strategy) -> list[str]:
    """The store's invariants; each violation as one sentence. Empty: all hold.

    Raises what the database raises."""
    problems: list[str] = []
    # One snapshot for everything, so a projector running meanwhile cannot make its
    # checkpoint and its read model look inconsistent.
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        await _verify_streams(conn, ns, strategy, problems)
        await _verify_projection(conn, ns, problems)
        await _verify_consumers(conn, ns, problems)
    return problems


async def _verify_streams(
    conn: asyncpg.Connection, ns: Namespace, strategy: Strategy, problems: list[str]
) -> None:
    sql = ns.sql
    rows = await conn.fetch(sql.duplicates)
    for r in rows:
        problems.append(
            f"{r['aggregate_id']}: version {r['version']} is stored {r['copies']} times "
            "(the stream forked)"
        )
    if rows and rows[0]["total"] > len(rows):
        problems.append(f"{rows[0]['total']} (aggregate, version) pairs in all are duplicated")
    rows = await conn.fetch(sql.gaps)
    for r in rows:
        problems.append(
            f"{r['aggregate_id']}: versions run {r['lo']}..{r['hi']} with {r['n']} distinct "
            f"values, not 1..{r['n']} without gaps"
        )
    if rows and rows[0]["total"] > len(rows):
        problems.append(f"{rows[0]['total']} aggregates in all have version gaps")
    if strategy == "streams_cas":
        rows = await conn.fetch(sql.streams_mismatch)
        for r in rows:
            problems.append(
                f"{r[0]}: the streams table says version {r[1]} but the events end at {r[2]}"
            )
        if rows and rows[0]["total"] > len(rows):
            problems.append(f"{rows[0]['total']} streams in all disagree with their events")


async def _verify_projection(conn: asyncpg.Connection, ns: Namespace, problems: list[str]) -> None:
    sql = ns.sql
    last_txid, last_position = await conn.fetchrow(sql.checkpoint, PROJECTOR)
    summaries = {r["order_id"]: json.loads(r["state"]) for r in await conn.fetch(sql.summaries_all)}
    # The read model must equal the fold of exactly the events up to the checkpoint: an
    # event the projector skipped is below the checkpoint yet missing from the read model.
    states: dict[str, OrderState] = {}
    async for r in conn.cursor(sql.projected_events, last_txid, last_position, prefetch=5000):
        fold_row(states, r)
    folded: dict[str, dict[str, Any]] = {oid: state.as_dict() for oid, state in states.items()}
    wrong = [
        order_id
        for order_id in sorted(folded.keys() | summaries.keys())
        if folded.get(order_id) != summaries.get(order_id)
    ]
    for order_id in wrong[:EXAMPLES]:
        have, want = summaries.get(order_id), folded.get(order_id)
        if have is None:
            problems.append(
                f"order {order_id} has projected events but no summary (events were skipped)"
            )
        elif want is None:
            problems.append(f"order {order_id} has a summary but no projected events")
        else:
            problems.append(
                f"order {order_id}: the read model says {json.dumps(have, sort_keys=True)} "
                f"but its events fold to {json.dumps(want, sort_keys=True)}"
            )
    if len(wrong) > EXAMPLES:
        problems.append(f"{len(wrong)} order summaries in all differ from the fold of events")


async def _verify_consumers(conn: asyncpg.Connection, ns: Namespace, problems: list[str]) -> None:
    sql = ns.sql
    rows = await conn.fetch(sql.processed_dups)
    for r in rows:
        problems.append(
            f"consumer {r['consumer']} recorded event {r['event_id']} {r['copies']} times"
        )
    if rows and rows[0]["total"] > len(rows):
        problems.append(f"{rows[0]['total']} processed events in all are recorded repeatedly")
    rows = await conn.fetch(sql.tally_mismatch)
    for r in rows:
        problems.append(
            f"consumer {r[0]} tallied {r[3] or 0} events of {r[1]} but processed {r[2] or 0}"
        )
    if rows and rows[0]["total"] > len(rows):
        problems.append(f"{rows[0]['total']} consumer tallies in all are wrong")


# --------------------------------------------------------------------------- ledger and counters


async def stored_event_ids(pool: Connections, ns: Namespace) -> set[str]:
    """Every stored event id (canonical lower-case uuid text)."""
    async with pool.acquire() as conn:
        return {r[0] for r in await conn.fetch(ns.sql.event_ids)}


async def check_ledger(
    pool: Connections, ns: Namespace, acknowledged: Iterable[str], conflicted: Iterable[str]
) -> list[str]:
    """Check the engine's ledger: each acknowledged event stored exactly once, and no event
    of a conflicted attempt stored. Ids that a later attempt committed (a retry re-using its
    event ids) count as acknowledged, not conflicted. One sentence per violation."""
    acked = sorted({i.lower() for i in acknowledged})
    lost = sorted({i.lower() for i in conflicted} - set(acked))
    problems: list[str] = []
    async with pool.acquire() as conn:
        wrong = await conn.fetch(ns.sql.ledger_acknowledged, acked)
        leaked = await conn.fetch(ns.sql.ledger_conflicted, lost)
    for event_id, copies in wrong[:EXAMPLES]:
        problems.append(f"acknowledged event {event_id} is stored {copies} times, not once")
    if len(wrong) > EXAMPLES:
        problems.append(f"{len(wrong)} acknowledged events in all are not stored exactly once")
    for (event_id,) in leaked[:EXAMPLES]:
        problems.append(f"event {event_id} of a conflicted append was stored anyway")
    if len(leaked) > EXAMPLES:
        problems.append(f"{len(leaked)} events of conflicted appends in all were stored")
    return problems


async def server_counters(pool: Connections) -> dict[str, int]:
    """pg_stat_database for this database: diff a reading before and after a run.

    A backend publishes its counts when it goes idle, but at most once a second and
    otherwise only 10 s later; so first every connection of this driver is told to publish
    on its next idle moment (PostgreSQL 15+), which is the end of that same statement. The
    counts are for the whole database, other clients included. Call it between runs, not
    during one: it takes every connection in turn.
    """
    await pool.each(
        "SELECT pg_stat_force_next_flush() "
        "WHERE current_setting('server_version_num')::int >= 150000"
    )
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, deadlocks, conflicts "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    return {key: int(value) for key, value in row.items()}
