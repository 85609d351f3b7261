"""The read side: the order-summary projector that tails the store, its catch-up, the
projection lags it measures, the idempotent consumer, and the pipeline's read model that a
projection consumer applies events to one by one (``bench.drivers.base.ReadModel``).

Identity values are assigned at insert but transactions commit in another order, so a tailer
that remembers "the highest position seen" skips an event whose transaction was still in
flight when a later position became visible. Every event row records
``txid = pg_current_xact_id()``; the projector reads in ``(txid, global_position)`` order and
only rows with ``txid < pg_snapshot_xmin(pg_current_snapshot())``: every transaction below
that horizon has finished, and no transaction that starts writing later can get an xid below
it, so nothing can ever appear behind the checkpoint. The read model and the checkpoint are
updated in one transaction. The price: a long writer anywhere in the cluster delays
projection (lag), it never causes a skip.

The read model is ``bench/domain.py``'s fold of each order's events (``OrderState.as_dict()``),
the same fold the workload's writers and snapshots use: this module only adapts stored events
and rows to it.

Projection lag is measured from the append's commit as this driver saw it (monotonic clock)
to the projector's commit, for events appended through the same driver instance; events
appended by other processes are counted as untimed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from bench.domain import ADD, CANCEL, CONFIRM, EVENT_OF, PLACE, SHIP, OrderState, fold
from bench.drivers.base import StoredEvent
from bench.drivers.postgres.pool import Connections
from bench.drivers.postgres.sql import PROJECTOR, Namespace
from bench.errors import DriverError

ORDER_PLACED = EVENT_OF[PLACE]
ORDER_ITEM_ADDED = EVENT_OF[ADD]
ORDER_CONFIRMED = EVENT_OF[CONFIRM]
ORDER_SHIPPED = EVENT_OF[SHIP]
ORDER_CANCELLED = EVENT_OF[CANCEL]

# Commit times kept for projection lag (about 150 bytes each); beyond this, events are untimed.
LAG_TRACK_LIMIT = 262_144


# --------------------------------------------------------------------------- the order fold


def _as_data(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_data(payload: bytes | str) -> dict[str, Any]:
    """The domain data of a stored payload, as the workload's writers fold it."""
    decoded = json.loads(payload)
    return _as_data(decoded.get("data", decoded) if isinstance(decoded, dict) else None)


def row_data(data: str | None) -> dict[str, Any]:
    """The domain data of a row that selected ``sql.EVENT_DATA``."""
    return _as_data(json.loads(data) if data is not None else None)


def fold_events(
    events: Iterable[StoredEvent], state: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """``bench/domain.py``'s fold of a stream (or of the tail after a snapshot ``state``), as
    ``OrderState.as_dict()``; None when there is nothing at all."""
    current = None if state is None else OrderState.from_dict(dict(state))
    for event in events:
        if current is None:
            current = OrderState()
        fold(current, event.event_type, event_data(event.payload))
    return None if current is None else current.as_dict()


def fold_row(states: dict[str, OrderState], row: asyncpg.Record) -> None:
    """Fold one event row (aggregate_id, event_type, data) into its order's state."""
    state = states.get(row["aggregate_id"])
    if state is None:
        state = states[row["aggregate_id"]] = OrderState()
    fold(state, row["event_type"], row_data(row["data"]))


# --------------------------------------------------------------------------- projection lag


class CommitTimes:
    """When each event appended through this driver committed, until the projector applies it."""

    def __init__(self) -> None:
        # event id -> monotonic ns of its commit (see remember), for projection lag.
        self._commit_ns: dict[str, int] = {}
        self._lags_ns: list[int] = []
        self.untimed = 0

    def remember(self, event_ids: list[str]) -> None:
        # Called just before the round trip that commits: if the projector sees the events
        # before this task resumes, the lag is measured from the commit request (at most one
        # round trip early) instead of being lost or negative.
        commit_ns = self._commit_ns
        if len(commit_ns) >= LAG_TRACK_LIMIT:
            return
        now = time.monotonic_ns()
        for event_id in event_ids:
            commit_ns[event_id.lower()] = now

    def confirm(self, event_ids: list[str]) -> None:
        commit_ns = self._commit_ns
        now = time.monotonic_ns()
        for event_id in event_ids:
            key = event_id.lower()
            if key in commit_ns:  # not yet projected: the acknowledged commit time is exact
                commit_ns[key] = now

    def forget(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._commit_ns.pop(event_id.lower(), None)

    def projected(self, event_ids: Iterable[str], done_ns: int) -> None:
        """The events are in the read model as of ``done_ns``: record their lags."""
        commit_ns = self._commit_ns
        lags = self._lags_ns
        for event_id in event_ids:
            committed = commit_ns.pop(event_id, None)
            if committed is None:
                self.untimed += 1
            else:
                lags.append(done_ns - committed)

    def take_lags(self) -> list[int]:
        lags, self._lags_ns = self._lags_ns, []
        return lags


# --------------------------------------------------------------------------- the projector


async def project(pool: Connections, ns: Namespace, commits: CommitTimes, batch_size: int) -> int:
    """Apply the next batch of events to ``order_summaries``; the number applied (0: idle).

    Concurrent calls are serialised by an advisory lock. Raises what the database raises.
    """
    sql = ns.sql
    async with (
        pool.acquire() as conn,
        conn.transaction(),
    ):
        # Neither the lock nor the reads assign this transaction an xid, so the
        # tail query's snapshot horizon is not held back by the projector itself.
        await conn.execute(sql.projector_lock, ns.lock_space, PROJECTOR)
        last_txid, last_position = await conn.fetchrow(sql.checkpoint, PROJECTOR)
        rows = await conn.fetch(sql.tail, last_txid, last_position, batch_size)
        if not rows:
            return 0
        order_ids = list(dict.fromkeys(r["aggregate_id"] for r in rows))
        states = {
            r["order_id"]: OrderState.from_dict(json.loads(r["state"]))
            for r in await conn.fetch(sql.summaries_get, order_ids)
        }
        positions: dict[str, int] = {}
        for r in rows:
            fold_row(states, r)
            positions[r["aggregate_id"]] = r["global_position"]
        folded = [states[oid] for oid in order_ids]
        await conn.execute(
            sql.summaries_put,
            order_ids,
            [state.status for state in folded],
            [state.version for state in folded],
            [json.dumps(state.as_dict()) for state in folded],
            [positions[oid] for oid in order_ids],
        )
        last = rows[-1]
        await conn.execute(
            sql.checkpoint_put, PROJECTOR, last["txid_text"], last["global_position"], len(rows)
        )
    commits.projected((r["event_id"] for r in rows), time.monotonic_ns())
    return len(rows)


async def backlog(pool: Connections, ns: Namespace) -> int:
    """Events stored (committed, visible now) that the projector has not applied yet."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval(ns.sql.backlog, PROJECTOR))


async def catch_up(
    project_batch: Callable[[int], Awaitable[int]],
    count_backlog: Callable[[], Awaitable[int]],
    timeout_s: float,
    batch_size: int,
    poll_s: float,
) -> int:
    """Project until every committed event is applied; the number applied.

    Waits (polling) while an in-flight transaction holds the horizon back; raises
    DriverError when that takes longer than ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    total = 0
    while True:
        applied = await project_batch(batch_size)
        total += applied
        if applied:
            continue
        behind = await count_backlog()
        if behind == 0:
            return total
        if time.monotonic() >= deadline:
            raise DriverError(
                f"postgres: the projector is still {behind} events behind after "
                f"{timeout_s:g}s (a transaction stays open and holds the horizon back)"
            )
        await asyncio.sleep(poll_s)


# --------------------------------------------------------------------------- idempotent consumer


async def consume(pool: Connections, ns: Namespace, consumer: str, event_ids: Sequence[str]) -> int:
    """Record ``event_ids`` as processed by ``consumer``: the number not processed before.

    The processed-events insert and the consumer's read-model update (per-aggregate event
    tallies in ``consumer_tallies``) are one statement, hence one transaction.
    """
    async with pool.acquire() as conn:
        return int(await conn.fetchval(ns.sql.consume, consumer, list(event_ids)))


# ------------------------------------------------------------------- the pipeline's read model


async def prepare_read_model(pool: Connections, ns: Namespace) -> None:
    """Empty ``pipeline_summaries`` and ``pipeline_processed`` (``prepare_store`` created them
    and the ``apply_event`` function: creating a function from several workers at once fails,
    emptying a table does not)."""
    async with pool.acquire() as conn:
        await conn.execute(ns.sql.read_model_empty)


async def apply_event(pool: Connections, ns: Namespace, event: StoredEvent, guard: bool) -> str:
    """Apply one event to the read model in one autocommit round trip (``sql.py``'s
    ``apply_event`` function: the guard, the version check and the fold); its outcome."""
    async with pool.acquire() as conn:
        outcome: str = await conn.value(
            ns.sql.apply_event,
            (
                guard,
                event.event_id,
                event.aggregate_id,
                event.event_type,
                event.version,
                event.payload.decode(),
            ),
        )
    return outcome


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    return OrderState(
        version=row["version"],
        status=row["status"],
        order_no=row["order_no"],
        items=row["items"],
        total_cents=row["total_cents"],
    ).as_dict()


async def read_summary(
    pool: Connections, ns: Namespace, aggregate_id: str
) -> dict[str, Any] | None:
    """The aggregate's row as ``OrderState.as_dict()``; None when nothing was applied to it."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(ns.sql.read_summary, aggregate_id)
    return None if row is None else _summary(row)


async def read_summaries(pool: Connections, ns: Namespace) -> dict[str, dict[str, Any]]:
    """Every row, by aggregate id, as ``OrderState.as_dict()``."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(ns.sql.read_summaries)
    return {row["aggregate_id"]: _summary(row) for row in rows}
