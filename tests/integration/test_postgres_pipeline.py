"""The PostgreSQL driver's side of the pipeline workload, against the real server: the
transactional outbox written by every append strategy (exactly the committed appends, sharded
like ``partition_of``, in version order per aggregate, also under concurrent appends with a
relay draining it meanwhile), and the read model's apply outcomes and fold.

Each test writes into its own schema (a unique name) and drops it at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_args

import asyncpg
import pytest

from bench.domain import EVENT_OF, PLACE, OrderState
from bench.drivers.base import (
    APPLIED,
    DUPLICATE_APPLIED,
    DUPLICATE_SKIPPED,
    OUT_OF_ORDER,
    Outbox,
    OutboxEntry,
    ReadModel,
    StoredEvent,
    partition_of,
)
from bench.drivers.postgres import (
    ORDER_CANCELLED,
    ORDER_CONFIRMED,
    ORDER_ITEM_ADDED,
    ORDER_PLACED,
    ORDER_SHIPPED,
    SAFE_STRATEGIES,
    PostgresConfig,
    PostgresDriver,
    StoreError,
    Strategy,
    fold_events,
)

T = TypeVar("T")

TEST_DEADLINE_S = 60.0
ALL_STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
SHARDS = 3


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), TEST_DEADLINE_S)

    return asyncio.run(bounded())


async def open_store(dsn: str, outbox: bool = True, **options: Any) -> PostgresDriver:
    driver = PostgresDriver(
        PostgresConfig.model_validate({"driver": "postgres", "dsn": dsn, **options})
    )
    await driver.connect()
    if outbox:
        driver.use_outbox()
    await driver.prepare_store(f"eb_test_{uuid.uuid4().hex[:12]}")
    return driver


async def close_store(driver: PostgresDriver) -> None:
    try:
        await driver.drop_store()
    finally:
        await driver.close()


def event(aggregate_id: str, event_type: str, data: dict[str, Any] | None = None) -> StoredEvent:
    """An event as the workload writes it: the domain data wrapped in "data", with padding."""
    payload = {"data": data if data is not None else {}, "pad": "x" * 16}
    return StoredEvent(
        event_id=str(uuid.uuid4()),
        aggregate_id=aggregate_id,
        aggregate_type="Order",
        event_type=event_type,
        version=0,  # the store assigns versions
        payload=json.dumps(payload).encode(),
        metadata={"command": "test"},
    )


def item(aggregate_id: str, qty: int, price_cents: int) -> StoredEvent:
    return event(aggregate_id, ORDER_ITEM_ADDED, {"qty": qty, "price_cents": price_cents})


async def fetch_all(driver: PostgresDriver, shards: int = 1) -> list[OutboxEntry]:
    entries: list[OutboxEntry] = []
    for shard in range(shards):
        entries += await driver.outbox_fetch(shard, shards, 10_000)
    return entries


# --------------------------------------------------------------------------- the outbox


def test_the_driver_declares_both_pipeline_capabilities() -> None:
    assert issubclass(PostgresDriver, Outbox)
    assert issubclass(PostgresDriver, ReadModel)


@pytest.mark.parametrize("strategy", ALL_STRATEGIES)
def test_outbox_holds_exactly_the_committed_appends(postgres_dsn: str, strategy: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy=strategy)
        try:
            aggregates = [f"order-{i}" for i in range(8)]
            conflicted: set[str] = set()
            for aggregate in aggregates:
                placed = await driver.append(aggregate, [event(aggregate, ORDER_PLACED)], 0)
                assert placed.committed
                # Two events in one append: the multi-row statements write the outbox too.
                two = [item(aggregate, 1, 100), item(aggregate, 2, 250)]
                assert (await driver.append(aggregate, two, 1)).committed
                # A stale expected version (one event, then two): a conflict, nothing written.
                for size in (1, 2):
                    stale = [item(aggregate, 5, 1) for _ in range(size)]
                    result = await driver.append(aggregate, stale, 1)
                    assert not result.committed
                    conflicted.update(e.event_id for e in stale)
                confirmed = await driver.append(aggregate, [event(aggregate, ORDER_CONFIRMED)], 3)
                assert confirmed.committed

            stored = {e.event_id: e for a in aggregates for e in await driver.load(a)}
            entries = await fetch_all(driver)
            # Exactly the committed events, once each, as the events table holds them.
            assert len(entries) == len(stored)
            assert sorted(e.event.event_id for e in entries) == sorted(stored)
            assert not conflicted & {e.event.event_id for e in entries}
            for entry in entries:
                assert entry.event == stored[entry.event.event_id]
            assert await driver.outbox_pending() == len(stored) == 4 * len(aggregates)
            # Position order: increasing, and per aggregate the versions' order.
            positions = [e.position for e in entries]
            assert positions == sorted(positions) and len(set(positions)) == len(positions)
            by_aggregate: dict[str, list[int]] = defaultdict(list)
            for entry in entries:
                by_aggregate[entry.event.aggregate_id].append(entry.event.version)
            assert all(versions == [1, 2, 3, 4] for versions in by_aggregate.values())

            # Shards partition the aggregates as partition_of does: disjoint, all covered.
            shards = [await driver.outbox_fetch(s, SHARDS, 10_000) for s in range(SHARDS)]
            for shard, part in enumerate(shards):
                assert all(partition_of(e.event.aggregate_id, SHARDS) == shard for e in part)
                assert [e.position for e in part] == sorted(e.position for e in part)
            ids = [e.event.event_id for part in shards for e in part]
            assert sorted(ids) == sorted(stored)
            assert all(shards)  # the 8 aggregates fall in all 3 shards
            # The limit takes the first positions of the shard.
            assert await driver.outbox_fetch(1, SHARDS, 2) == shards[1][:2]

            # Marking removes from fetch and from pending; the rest stays.
            marked = [e.position for e in entries[::2]]
            await driver.outbox_mark(marked)
            left = await fetch_all(driver)
            assert [e.position for e in left] == [e.position for e in entries[1::2]]
            assert await driver.outbox_pending() == len(left)
            await driver.outbox_mark([e.position for e in left])
            assert await fetch_all(driver) == []
            assert await driver.outbox_pending() == 0
            assert await driver.verify() == []
            assert (await driver.describe())["outbox"] is True
        finally:
            await close_store(driver)

    run(scenario)


def test_appends_write_no_outbox_without_use_outbox(postgres_dsn: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, outbox=False)
        try:
            assert (await driver.append("order-1", [event("order-1", ORDER_PLACED)], 0)).committed
            assert len(await driver.load("order-1")) == 1
            assert (await driver.describe())["outbox"] is False
            with pytest.raises(StoreError, match="outbox"):  # no table: none was written
                await driver.outbox_pending()
        finally:
            await close_store(driver)

    run(scenario)


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_concurrent_appends_reach_a_relay_in_version_order(
    postgres_dsn: str, strategy: str
) -> None:
    """Writers on several connections contend for few aggregates while one relay per shard
    fetches, publishes (records) and marks: each aggregate's events are published once each,
    in version order, although positions are drawn before commits that finish out of order."""
    writers, aggregates, commands = 8, 4, 12

    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy=strategy, pool_size=writers + SHARDS)
        published: dict[str, list[int]] = defaultdict(list)
        committed: set[str] = set()
        published_while_writing: list[int] = []
        writing = True

        async def writer(index: int) -> None:
            rng = random.Random(index)
            for _ in range(commands):
                aggregate = f"order-{rng.randrange(aggregates)}"
                for _attempt in range(100):
                    state, version = await driver.load_order(aggregate)
                    if state is None:
                        events = [event(aggregate, ORDER_PLACED)]
                    else:
                        events = [item(aggregate, 1, 10) for _ in range(rng.choice((1, 2)))]
                    if (await driver.append(aggregate, events, version)).committed:
                        committed.update(e.event_id for e in events)
                        break
                    await asyncio.sleep(rng.random() * 0.002)
                else:
                    raise AssertionError(f"{aggregate}: 100 conflicts in a row")

        async def relay(shard: int) -> None:
            while True:
                stopping = not writing
                entries = await driver.outbox_fetch(shard, SHARDS, 50)
                if not stopping:
                    published_while_writing.extend(e.position for e in entries)
                for entry in entries:
                    assert partition_of(entry.event.aggregate_id, SHARDS) == shard
                    published[entry.event.aggregate_id].append(entry.event.version)
                await driver.outbox_mark([e.position for e in entries])
                if stopping and not entries:
                    return
                await asyncio.sleep(0.001)

        try:
            relays = [asyncio.ensure_future(relay(shard)) for shard in range(SHARDS)]
            await asyncio.gather(*(writer(i) for i in range(writers)))
            writing = False
            await asyncio.gather(*relays)
            assert await driver.outbox_pending() == 0
            for aggregate, versions in published.items():
                stream = await driver.load(aggregate)
                assert versions == list(range(1, len(stream) + 1)), aggregate
            assert sum(len(v) for v in published.values()) == len(committed)
            assert await driver.stored_event_ids() == committed
            assert driver.counters.conflicts > 0  # the writers did contend
            assert published_while_writing  # and the relay drained while they wrote
        finally:
            await close_store(driver)

    run(scenario)


# --------------------------------------------------------------------------- the read model


async def stream_of(driver: PostgresDriver, aggregate: str) -> list[StoredEvent]:
    """Placed, two items (qty 2 at 150, qty 1 at 99), confirmed: versions 1 to 4."""
    events = [
        event(aggregate, ORDER_PLACED),
        item(aggregate, 2, 150),
        item(aggregate, 1, 99),
        event(aggregate, ORDER_CONFIRMED),
    ]
    assert (await driver.append(aggregate, events, 0)).committed
    return await driver.load(aggregate)


async def at_once(dsn: str, driver: PostgresDriver, event: StoredEvent, guard: bool) -> list[str]:
    """The event applied twice, the two transactions meeting in the server: a side
    transaction holds the read model's table until both wait for a lock (the table's or the
    aggregate's), then lets them go. Another connection watches (pg_stat_activity is a
    snapshot per transaction, so the holder would not see them arrive)."""
    schema = driver.schema
    holder, watcher = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute(f'LOCK TABLE "{schema}".pipeline_summaries IN ACCESS EXCLUSIVE MODE')
        calls = [asyncio.ensure_future(driver.apply_event(event, guard)) for _ in range(2)]
        waiting = """SELECT count(*) FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%apply_event%'"""
        while await watcher.fetchval(waiting, schema) < 2:
            await asyncio.sleep(0.005)
        await hold.rollback()
        return sorted(await asyncio.gather(*calls))
    finally:
        await holder.close()
        await watcher.close()


def summary(**fields: Any) -> dict[str, Any]:
    return OrderState(**fields).as_dict()


def test_read_model_with_guard_skips_duplicates_and_rejects_out_of_order(
    postgres_dsn: str,
) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, outbox=False)
        try:
            await driver.prepare_read_model(guard=True)
            v1, v2, v3, v4 = await stream_of(driver, "order-1")
            # The first event delivered twice at once: one applies, the other finds its id.
            first = await at_once(postgres_dsn, driver, v1, True)
            assert first == sorted([APPLIED, DUPLICATE_SKIPPED])
            placed = summary(version=1, status="placed", order_no=1)
            assert await driver.read_summary("order-1") == placed
            # Ahead of the next version: rejected, nothing changed, its id not recorded.
            assert await driver.apply_event(v3, True) == OUT_OF_ORDER
            assert await driver.read_summary("order-1") == placed
            assert await driver.apply_event(v2, True) == APPLIED
            assert await driver.apply_event(v2, True) == DUPLICATE_SKIPPED
            assert await driver.apply_event(v3, True) == APPLIED  # back in order: applied
            # A version already applied under an id never seen (a forked stream): rejected.
            fork = StoredEvent(
                str(uuid.uuid4()), "order-1", "Order", ORDER_ITEM_ADDED, 3, v3.payload
            )
            assert await driver.apply_event(fork, True) == OUT_OF_ORDER
            assert await driver.apply_event(v4, True) == APPLIED
            assert await driver.apply_event(v1, True) == DUPLICATE_SKIPPED
            expected = summary(version=4, status="confirmed", order_no=1, items=3, total_cents=399)
            assert await driver.read_summary("order-1") == expected
            assert await driver.read_summaries() == {"order-1": expected}
            assert await driver.read_summary("order-2") is None
            # Emptying forgets the rows and the processed ids.
            await driver.prepare_read_model(guard=True)
            assert await driver.read_summaries() == {}
            assert await driver.apply_event(v1, True) == APPLIED
        finally:
            await close_store(driver)

    run(scenario)


def test_read_model_without_guard_applies_a_duplicate_again(postgres_dsn: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, outbox=False)
        try:
            await driver.prepare_read_model(guard=False)
            v1, v2, _v3, v4 = await stream_of(driver, "order-1")
            assert await driver.apply_event(v1, False) == APPLIED
            assert await driver.apply_event(v2, False) == APPLIED
            assert await driver.apply_event(v2, False) == DUPLICATE_APPLIED
            # The item (qty 2 at 150) counted twice; the version stays the highest applied.
            doubled = summary(version=2, status="placed", order_no=1, items=4, total_cents=600)
            assert await driver.read_summary("order-1") == doubled
            assert await driver.apply_event(v4, False) == OUT_OF_ORDER
            assert await driver.read_summary("order-1") == doubled
            # A first event delivered twice at once: the aggregate's lock makes the second
            # wait for the first's row (without it, both would insert one: a unique violation).
            w1 = (await stream_of(driver, "order-2"))[0]
            twice = await at_once(postgres_dsn, driver, w1, False)
            assert twice == sorted([APPLIED, DUPLICATE_APPLIED])
            placed_twice = summary(version=1, status="placed", order_no=2)
            assert await driver.read_summary("order-2") == placed_twice
        finally:
            await close_store(driver)

    run(scenario)


def test_read_model_equals_the_fold_of_the_store(postgres_dsn: str) -> None:
    """Every event type (an unknown one too), payloads with and without the "data" wrapper,
    several orders in one stream; relayed through the outbox, some delivered twice."""

    async def scenario() -> None:
        driver = await open_store(postgres_dsn)
        try:
            await driver.prepare_read_model(guard=True)
            histories = {
                "order-a": [
                    event("order-a", ORDER_PLACED, {"order_no": 1}),
                    item("order-a", 3, 125),
                    event("order-a", ORDER_ITEM_ADDED, {}),  # qty 1, price 0 by default
                    event("order-a", ORDER_CONFIRMED),
                    event("order-a", ORDER_SHIPPED),
                    event("order-a", EVENT_OF[PLACE]),
                    item("order-a", 2, 500),
                    event("order-a", ORDER_CANCELLED),
                ],
                "order-b": [
                    event("order-b", ORDER_PLACED),
                    event("order-b", "OrderAudited", {"qty": 9}),  # skipped by the fold
                    StoredEvent(  # domain data at the top level, no "data" wrapper
                        str(uuid.uuid4()),
                        "order-b",
                        "Order",
                        ORDER_ITEM_ADDED,
                        0,
                        b'{"qty": "4", "price_cents": 25}',
                    ),
                ],
                "order-c": [event("order-c", ORDER_PLACED)],
            }
            for aggregate, events in histories.items():
                for version, e in enumerate(events):
                    assert (await driver.append(aggregate, [e], version)).committed
            entries = await fetch_all(driver, SHARDS)
            outcomes = [await driver.apply_event(e.event, True) for e in entries]
            again = [await driver.apply_event(e.event, True) for e in entries[::3]]
            assert outcomes == [APPLIED] * len(entries)
            assert again == [DUPLICATE_SKIPPED] * len(again)
            await driver.outbox_mark([e.position for e in entries])

            folded = {a: fold_events(await driver.load(a)) for a in histories}
            assert await driver.read_summaries() == folded
            for aggregate, state in folded.items():
                assert await driver.read_summary(aggregate) == state
            assert folded["order-b"] == summary(
                version=3, status="placed", order_no=1, items=4, total_cents=100
            )
            assert folded["order-a"]["order_no"] == 2
        finally:
            await close_store(driver)

    run(scenario)
