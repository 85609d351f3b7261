"""The PostgreSQL event store driver against the real server: every append strategy under
contention, the negative control, the gap-safe projector, retry accounting, snapshots,
idempotent consumption and connection errors.

Each test writes into its own schema (a unique name) and drops it at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bench.domain import fold_all
from bench.drivers.base import DriverContext, StoredEvent
from bench.drivers.postgres import (
    ORDER_CONFIRMED,
    ORDER_ITEM_ADDED,
    ORDER_PLACED,
    ORDER_SHIPPED,
    SAFE_STRATEGIES,
    PostgresConfig,
    PostgresDriver,
    RetryableStoreError,
    StoreError,
    fold_events,
)
from bench.errors import DriverError

T = TypeVar("T")

WRITERS = 20
AGGREGATES = 5
COMMANDS_PER_WRITER = 12
MAX_ATTEMPTS = 60  # per command: load, decide, append; reload and retry on conflict
ITEMS_BEFORE_CONFIRM = 60  # 5 aggregates x ~63 events: room for all 240 commands
HAMMER_DEADLINE_S = 30.0
TEST_DEADLINE_S = 120.0
PAYLOAD = b'{"sku": "sku-1", "quantity": 1}'


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), TEST_DEADLINE_S)

    return asyncio.run(bounded())


def config(dsn: str, **options: Any) -> PostgresConfig:
    return PostgresConfig.model_validate({"driver": "postgres", "dsn": dsn, **options})


async def open_store(
    dsn: str, context: DriverContext | None = None, **options: Any
) -> PostgresDriver:
    driver = PostgresDriver(config(dsn, **options), context or DriverContext())
    await driver.connect()
    await driver.prepare_store(f"eb_test_{uuid.uuid4().hex[:12]}")
    return driver


async def close_store(driver: PostgresDriver) -> None:
    try:
        await driver.drop_store()
    finally:
        await driver.close()


def event(aggregate_id: str, event_type: str) -> StoredEvent:
    return StoredEvent(
        event_id=str(uuid.uuid4()),
        aggregate_id=aggregate_id,
        aggregate_type="Order",
        event_type=event_type,
        version=0,  # the store assigns versions
        payload=PAYLOAD,
        metadata={"correlation_id": "test"},
    )


def decide(state: dict[str, Any] | None, rng: random.Random) -> list[str] | None:
    """The command side of the test's order: the next events, or None (a business rejection)."""
    status = "new" if state is None else state["status"]
    if status == "new":
        return [ORDER_PLACED]
    if status == "placed":
        if state is not None and state["items"] < ITEMS_BEFORE_CONFIRM:
            # Sometimes two events in one append, so the multi-row insert is contended too.
            return [ORDER_ITEM_ADDED] * rng.choice((1, 1, 2))
        return [ORDER_CONFIRMED]
    if status == "confirmed":
        return [ORDER_SHIPPED]
    return None


@dataclass
class Tally:
    attempts: int = 0
    commits: int = 0
    conflicts: int = 0
    errors: int = 0
    rejections: int = 0
    abandoned: int = 0
    # event id -> (aggregate, version) for every acknowledged append.
    committed: dict[str, tuple[str, int]] = field(default_factory=dict)
    # event ids of attempts that conflicted or failed (each attempt uses fresh ids).
    not_committed: set[str] = field(default_factory=set)


async def command(
    driver: PostgresDriver, aggregate_id: str, tally: Tally, rng: random.Random
) -> None:
    for _ in range(MAX_ATTEMPTS):
        state, version = await driver.load_order(aggregate_id)
        types = decide(state, rng)
        if types is None:
            tally.rejections += 1
            return
        events = [event(aggregate_id, t) for t in types]
        ids = [e.event_id for e in events]
        tally.attempts += 1
        try:
            result = await driver.append(aggregate_id, events, version)
        except RetryableStoreError:
            tally.errors += 1
            tally.not_committed.update(ids)
            continue
        if result.committed:
            tally.commits += 1
            assert result.version == version + len(events)
            for offset, event_id in enumerate(ids, start=1):
                tally.committed[event_id] = (aggregate_id, version + offset)
            return
        tally.conflicts += 1
        tally.not_committed.update(ids)
        await asyncio.sleep(rng.random() * 0.002)  # jittered backoff before reload
    tally.abandoned += 1


async def hammer(driver: PostgresDriver, aggregates: list[str], seed: int = 7) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + HAMMER_DEADLINE_S

    async def writer(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        for _ in range(COMMANDS_PER_WRITER):
            if time.monotonic() > deadline:
                return
            await command(driver, rng.choice(aggregates), tally, rng)

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    return tally


async def assert_store_consistent(
    driver: PostgresDriver, aggregates: list[str], tally: Tally
) -> None:
    assert await driver.verify() == []
    stored = await driver.stored_event_ids()
    # Exactly the acknowledged events are stored, and nothing of a conflicted attempt.
    assert stored == set(tally.committed)
    assert not (stored & tally.not_committed)
    assert await driver.check_ledger(tally.committed, tally.not_committed) == []
    for aggregate_id in aggregates:
        stream = await driver.load(aggregate_id)
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        for e in stream:
            assert tally.committed[e.event_id] == (aggregate_id, e.version)


# --------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_contended_appends_never_fork_a_stream(postgres_dsn: str, strategy: str) -> None:
    errors: list[str] = []

    async def scenario() -> tuple[Tally, dict[str, int]]:
        driver = await open_store(
            postgres_dsn,
            DriverContext(count_error=errors.append),
            strategy=strategy,
            pool_size=WRITERS,
            snapshot_every=10,
        )
        try:
            aggregates = [f"order-{i}" for i in range(AGGREGATES)]
            tally = await hammer(driver, aggregates)
            await driver.catch_up(timeout_s=10)
            await assert_store_consistent(driver, aggregates, tally)
            return tally, driver.counters.as_dict()
        finally:
            await close_store(driver)

    tally, counters = run(scenario)
    print(
        f"\n{strategy}: attempts={tally.attempts} commits={tally.commits} "
        f"conflicts={tally.conflicts} errors={tally.errors} rejections={tally.rejections} "
        f"counters={counters}"
    )
    assert tally.commits > AGGREGATES
    assert tally.conflicts > 0, "20 writers on 5 aggregates must collide"
    assert tally.abandoned == 0
    assert tally.attempts == tally.commits + tally.conflicts + tally.errors
    assert counters["attempts"] == tally.attempts
    assert counters["commits"] == tally.commits
    assert counters["conflicts"] == tally.conflicts
    assert counters["errors"] == tally.errors == counters["deadlocks"] == len(errors)


# How each safe strategy reports a lost race, on its one-statement path.
CONFLICT_KIND = {
    "max_then_insert": ("version_mismatches", "unique_violations"),
    "insert_only": ("unique_violations",),
    "streams_cas": ("cas_misses",),
    "advisory_lock": ("version_mismatches",),
    "serializable": ("version_mismatches", "unique_violations", "serialization_failures"),
}


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_two_writers_at_the_same_version_one_wins_one_conflict(
    postgres_dsn: str, strategy: str
) -> None:
    """Two appends in flight at once on one aggregate at the same expected version (new
    streams at 0, then at 1, one and two events each): exactly one commits, the other is one
    counted conflict of the strategy's own kind, and only the winner's events are stored."""
    races = 15

    async def scenario() -> tuple[list[tuple[bool, bool]], dict[str, int], list[str]]:
        driver = await open_store(postgres_dsn, strategy=strategy, pool_size=2, snapshot_every=0)
        try:
            outcomes: list[tuple[bool, bool]] = []
            problems: list[str] = []
            for i in range(races):
                aggregate = f"race-{i}"
                for expected in (0, 1):
                    if expected == 1:
                        # The winner of the first race left the stream at 1 or 2: reset it to
                        # a stream of exactly one event for the second race.
                        aggregate = f"race-{i}-b"
                        first = await driver.append(aggregate, [event(aggregate, "A")], 0)
                        assert first.committed
                    one = [event(aggregate, "A")]
                    two = [event(aggregate, "B"), event(aggregate, "B")]
                    a, b = await asyncio.gather(
                        driver.append(aggregate, one, expected),
                        driver.append(aggregate, two, expected),
                    )
                    outcomes.append((a.committed, b.committed))
                    winner = one if a.committed else two
                    stream = await driver.load(aggregate)
                    want = [e.event_id for e in winner]
                    got = [e.event_id for e in stream][expected:]
                    if got != want:
                        problems.append(f"{aggregate}@{expected}: stored {got}, winner {want}")
            problems += await driver.verify()
            return outcomes, driver.counters.as_dict(), problems
        finally:
            await close_store(driver)

    outcomes, counters, problems = run(scenario)
    print(f"\n{strategy}: {counters}")
    assert problems == []
    assert all(a != b for a, b in outcomes), outcomes  # one winner, one loser, every race
    assert counters["conflicts"] == len(outcomes)
    assert counters["commits"] == len(outcomes) + races  # + the second races' first events
    assert counters["errors"] == 0
    assert sum(counters[kind] for kind in CONFLICT_KIND[strategy]) == counters["conflicts"]


def test_negative_control_forks_and_verify_catches_it(postgres_dsn: str) -> None:
    async def scenario() -> list[str]:
        driver = await open_store(
            postgres_dsn, strategy="unsafe_max_then_insert", pool_size=WRITERS, snapshot_every=0
        )
        try:
            aggregates = [f"order-{i}" for i in range(AGGREGATES)]
            problems: list[str] = []
            # A fork needs two writers between the same read and insert: near certain with 20
            # writers on 5 aggregates, but bounded retries keep the test honest if it is not.
            for round_ in range(3):
                await hammer(driver, aggregates, seed=round_)
                problems = await driver.verify()
                if problems:
                    break
            return problems
        finally:
            await close_store(driver)

    problems = run(scenario)
    print("\n" + "\n".join(problems[:5]))
    assert any("the stream forked" in p for p in problems), problems


# --------------------------------------------------------------------------- projector


def test_projector_skips_nothing_behind_a_slow_transaction(postgres_dsn: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy="insert_only", pool_size=4)
        slow = await asyncpg.connect(postgres_dsn)
        try:
            for i in range(5):
                assert (
                    await driver.append(f"early-{i}", [event(f"early-{i}", ORDER_PLACED)], 0)
                ).committed
            assert await driver.project() == 5

            # A writer takes a global position, then stays in flight while later ones commit.
            schema = '"' + driver.schema + '"'
            slow_id = str(uuid.uuid4())
            await slow.execute("BEGIN")
            slow_position = await slow.fetchval(
                f"INSERT INTO {schema}.events (event_id, aggregate_id, aggregate_type, "
                "event_type, version, payload, metadata) "
                "VALUES ($1, 'slow-1', 'Order', 'OrderPlaced', 1, '{}', '{}') "
                "RETURNING global_position",
                slow_id,
            )
            hold = asyncio.create_task(slow.execute("SELECT pg_sleep(1.5)"))
            try:
                for i in range(20):
                    late = f"late-{i}"
                    assert (await driver.append(late, [event(late, ORDER_PLACED)], 0)).committed
                # What a naive "position > last seen" tailer faces: later positions visible,
                # the slow one not yet. Having read them, it would never look back.
                visible = await driver.stored_event_ids()
                assert slow_id not in visible
                async with driver._require_pool().acquire() as conn:
                    max_visible = await conn.fetchval(
                        f"SELECT max(global_position) FROM {schema}.events"
                    )
                assert max_visible > slow_position

                during = 0
                for _ in range(5):
                    during += await driver.project()
                    await asyncio.sleep(0.05)
                assert not hold.done(), "the slow transaction must still be open"
                # The horizon is held at the slow transaction: nothing after it is applied yet.
                assert during == 0
                assert await driver.projection_backlog() == 20
            finally:
                await hold
                await slow.execute("COMMIT")

            assert await driver.catch_up(timeout_s=10) == 21
            assert await driver.verify() == []
            async with driver._require_pool().acquire() as conn:
                summaries = {
                    r["order_id"]: json.loads(r["state"])
                    for r in await conn.fetch(
                        f"SELECT order_id, state FROM {schema}.order_summaries"
                    )
                }
            expected = {f"early-{i}" for i in range(5)} | {f"late-{i}" for i in range(20)}
            assert set(summaries) == expected | {"slow-1"}
            for order_id, state in summaries.items():
                replayed = fold_events([e for e in await driver.load(order_id)])
                assert state == replayed
            lags = driver.take_projection_lags()
            assert len(lags) == 25 and driver.projection_untimed == 1  # slow-1 came from outside
            # The late events waited for the slow transaction: their lag shows it.
            assert sorted(lags)[5] > 1_000_000_000
            print(f"\nprojection lags (ms): {[round(lag / 1e6) for lag in lags]}")
        finally:
            await slow.close()
            await close_store(driver)

    run(scenario)


def test_projector_orders_transactions_numerically(postgres_dsn: str) -> None:
    """Two finished transactions whose ids straddle a digit boundary (9999 < 10000), applied
    one per batch: ordering their text would apply version 2 before version 1."""

    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy="insert_only")
        try:
            schema = '"' + driver.schema + '"'
            async with driver._require_pool().acquire() as conn:
                # The highest digit boundary below the server's current id (a fresh server is
                # in the thousands, a busy one in the millions): both ids are long finished.
                # The column's default is only a default, so the test can pick them.
                current = int(await conn.fetchval("SELECT pg_current_xact_id()::text"))
                boundary = 10 ** (len(str(current - 1)) - 1)
                assert 10 <= boundary < current
                for txid, version, event_type in (
                    (boundary - 1, 1, ORDER_PLACED),
                    (boundary, 2, ORDER_ITEM_ADDED),
                ):
                    await conn.execute(
                        f"INSERT INTO {schema}.events (event_id, aggregate_id, aggregate_type, "
                        "event_type, version, payload, txid) "
                        "VALUES ($1, 'order-1', 'Order', $2, $3, '{}', $4::text::xid8)",
                        str(uuid.uuid4()),
                        event_type,
                        version,
                        str(txid),
                    )
            assert await driver.project(batch_size=1) == 1
            assert await driver.project(batch_size=1) == 1
            assert await driver.project(batch_size=1) == 0
            assert await driver.verify() == []
        finally:
            await close_store(driver)

    run(scenario)


def test_the_read_model_is_the_domain_fold(postgres_dsn: str) -> None:
    """The projector, verify and load_order fold with bench/domain.py, the fold the workload's
    writers and snapshots use: quantities and prices from the payload's data, one order after
    another in one stream (issue 15: the driver's own fold counted events, not quantities)."""

    def written(event_type: str, **data: Any) -> StoredEvent:
        # As bench/workload.py writes it: the domain data, then the padding.
        payload = json.dumps({"data": data, "pad": "x" * 200}).encode()
        return StoredEvent(str(uuid.uuid4()), "order-1", "Order", event_type, 0, payload)

    stream = [
        written(ORDER_PLACED, order_no=1),
        written(ORDER_ITEM_ADDED, order_no=1, qty=2, price_cents=150),
        written(ORDER_ITEM_ADDED, order_no=1, qty=1, price_cents=1000),
        written(ORDER_CONFIRMED, order_no=1),
        written(ORDER_SHIPPED, order_no=1),
        written(ORDER_PLACED, order_no=2),
        written(ORDER_ITEM_ADDED, order_no=2, qty=3, price_cents=200),
    ]

    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy="insert_only", snapshot_every=3)
        try:
            for version, e in enumerate(stream):
                assert (await driver.append("order-1", [e], version)).committed
            # One event per batch: each pass continues from the stored summary.
            while await driver.project(batch_size=1):
                pass
            assert await driver.verify() == []
            async with driver._require_pool().acquire() as conn:
                summary = json.loads(
                    await conn.fetchval(
                        f'SELECT state FROM "{driver.schema}".order_summaries '
                        "WHERE order_id = 'order-1'"
                    )
                )
            domain = fold_all([(e.event_type, e.payload) for e in await driver.load("order-1")])
            assert summary == domain.as_dict() == fold_events(await driver.load("order-1"))
            assert summary == {
                "version": 7,
                "status": "placed",
                "order_no": 2,
                "items": 3,
                "total_cents": 600,
            }
            # The snapshot-aware load takes a snapshot the engine can read back.
            assert await driver.load_order("order-1") == (summary, 7)
            snapshot, snapshot_version, tail = await driver.load_with_snapshot("order-1")
            assert (snapshot, snapshot_version, tail) == (summary, 7, [])
        finally:
            await close_store(driver)

    run(scenario)


# --------------------------------------------------------------------------- accounting


def test_retry_accounting_adds_up_on_client_and_server(postgres_dsn: str) -> None:
    async def scenario() -> tuple[Tally, dict[str, int], dict[str, int]]:
        driver = await open_store(postgres_dsn, strategy="max_then_insert", pool_size=WRITERS)
        try:
            before = await driver.server_counters()
            tally = await hammer(driver, [f"order-{i}" for i in range(AGGREGATES)], seed=11)
            after = await driver.server_counters()
            return tally, {k: after[k] - before[k] for k in after}, driver.counters.as_dict()
        finally:
            await close_store(driver)

    tally, server, counters = run(scenario)
    print(f"\nclient: {tally.attempts} attempts {counters}; server diff: {server}")
    assert tally.attempts == tally.commits + tally.conflicts + tally.errors
    assert tally.conflicts > 0
    assert counters["conflicts"] == counters["version_mismatches"] + counters["unique_violations"]
    # The database is shared with other clients, whose transactions only add. Every attempt
    # is one transaction; a version mismatch is one statement that inserted nothing and so
    # ends as a commit, while a unique violation rolls its statement's transaction back.
    assert server["xact_commit"] + server["xact_rollback"] >= tally.attempts
    assert server["xact_commit"] >= tally.commits
    assert server["xact_rollback"] >= counters["unique_violations"]


# --------------------------------------------------------------------------- snapshots


def test_snapshot_load_equals_full_replay(postgres_dsn: str) -> None:
    async def timed(fn: Callable[[], Awaitable[Any]], repeats: int = 15) -> tuple[Any, float]:
        samples, result = [], None
        for _ in range(repeats):
            start = time.perf_counter_ns()
            result = await fn()
            samples.append(time.perf_counter_ns() - start)
        return result, statistics.median(samples)

    async def scenario() -> float:
        driver = await open_store(postgres_dsn, strategy="insert_only", snapshot_every=50)
        try:
            order = "order-long"
            version = 0
            batches = [[ORDER_PLACED] + [ORDER_ITEM_ADDED] * 49]
            batches += [[ORDER_ITEM_ADDED] * 50 for _ in range(18)]
            batches += [[ORDER_ITEM_ADDED] * 49 + [ORDER_CONFIRMED]]
            for types in batches:
                result = await driver.append(order, [event(order, t) for t in types], version)
                assert result.committed
                version = result.version or 0
            assert version == 1000

            async def full_replay() -> dict[str, Any] | None:
                return fold_events(await driver.load(order))

            async def with_snapshot() -> dict[str, Any] | None:
                state, _, tail = await driver.load_with_snapshot(order)
                return fold_events(tail, state)

            replayed, full_ns = await timed(full_replay)
            assert replayed is not None and replayed["version"] == 1000
            assert replayed["items"] == 998 and replayed["status"] == "confirmed"
            # The first snapshot-aware load takes the snapshot.
            assert await driver.load_order(order) == (replayed, 1000)
            snapshot, snapshot_version, tail = await driver.load_with_snapshot(order)
            assert (snapshot, snapshot_version, tail) == (replayed, 1000, [])
            from_snapshot, snapshot_ns = await timed(with_snapshot)
            assert from_snapshot == replayed

            # An older snapshot never replaces a newer one; events after it are replayed.
            await driver.save_snapshot(order, 10, {"status": "placed"})
            shipped = await driver.append(order, [event(order, ORDER_SHIPPED)], 1000)
            assert shipped.committed
            snapshot, snapshot_version, tail = await driver.load_with_snapshot(order)
            assert snapshot_version == 1000 and [e.version for e in tail] == [1001]
            assert fold_events(tail, snapshot) == fold_events(await driver.load(order))
            ratio = full_ns / snapshot_ns
            print(
                f"\n1000-event stream: full replay {full_ns / 1e6:.2f} ms, "
                f"with snapshot {snapshot_ns / 1e6:.2f} ms, ratio {ratio:.1f}x"
            )
            return ratio
        finally:
            await close_store(driver)

    run(scenario)


# --------------------------------------------------------------------------- consumption, errors


def test_idempotent_consumer_skips_redeliveries(postgres_dsn: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy="insert_only")
        try:
            ids = []
            for i in range(10):
                e = event(f"order-{i % 3}", ORDER_PLACED if i < 3 else ORDER_ITEM_ADDED)
                stream = await driver.load(e.aggregate_id)
                assert (await driver.append(e.aggregate_id, [e], len(stream))).committed
                ids.append(e.event_id)
            assert await driver.consume_idempotently("mailer", ids[:6]) == (6, 0)
            # A redelivered batch overlapping the first, with a duplicate inside it.
            assert await driver.consume_idempotently("mailer", [*ids[4:], ids[9]]) == (4, 3)
            # Another consumer processes independently.
            assert await driver.consume_idempotently("billing", ids) == (10, 0)
            assert await driver.verify() == []
        finally:
            await close_store(driver)

    run(scenario)


def test_database_errors_are_raised_not_swallowed(postgres_dsn: str) -> None:
    async def scenario() -> None:
        driver = await open_store(postgres_dsn, strategy="max_then_insert")
        try:
            first = event("order-1", ORDER_PLACED)
            assert (await driver.append("order-1", [first], 0)).committed
            # The same event id again is a duplicate event, not a version conflict.
            with pytest.raises(StoreError) as info:
                await driver.append("order-2", [first], 0)
            assert info.value.sqlstate == "23505"
            bad = StoredEvent(str(uuid.uuid4()), "order-1", "Order", ORDER_CONFIRMED, 0, b"{no")
            with pytest.raises(StoreError) as info:
                await driver.append("order-1", [bad], 1)
            assert info.value.sqlstate == "22P02"  # invalid jsonb
            assert driver.counters.errors == 2 and driver.counters.conflicts == 0
        finally:
            await close_store(driver)

    run(scenario)


def test_more_writers_than_connections_queue_for_them_and_time_out(postgres_dsn: str) -> None:
    """Writers beyond pool_size wait for a connection (each handed over in turn), and one
    that waits longer than acquire_timeout fails as an error, leaving the pool whole."""

    async def scenario() -> None:
        driver = await open_store(
            postgres_dsn, strategy="max_then_insert", pool_size=2, acquire_timeout="300ms"
        )
        try:
            results = await asyncio.gather(
                *(
                    driver.append(f"order-{i}", [event(f"order-{i}", ORDER_PLACED)], 0)
                    for i in range(12)
                )
            )
            assert all(r.committed for r in results)
            pool = driver._pool
            assert pool is not None
            held = [await pool.get(), await pool.get()]  # every connection busy
            with pytest.raises(StoreError, match="TimeoutError"):
                await driver.append("order-x", [event("order-x", ORDER_PLACED)], 0)
            for conn in held:
                pool.give(conn)
            assert (await driver.append("order-x", [event("order-x", ORDER_PLACED)], 0)).committed
            counters = driver.counters
            assert (counters.attempts, counters.commits, counters.errors) == (14, 13, 1)
            assert len(pool._idle) == 2 and not pool._waiters
        finally:
            await close_store(driver)

    run(scenario)


def test_unreachable_port_fails_fast_without_leaking_the_password(postgres_dsn: str) -> None:
    secret = "s3cret-pw"

    async def scenario() -> dict[str, Any]:
        unreachable = PostgresDriver(
            config(f"postgresql://postgres:{secret}@127.0.0.1:1/postgres", connect_timeout="3s"),
            DriverContext(),
        )
        start = time.monotonic()
        with pytest.raises(DriverError) as info:
            await unreachable.connect()
        assert time.monotonic() - start < 3.5
        line = f"{info.value} {info.value.hint}"
        assert "127.0.0.1:1" in str(info.value) and "\n" not in str(info.value)
        assert secret not in line

        # Trust authentication ignores the password, so this connects; nothing may show it.
        host = postgres_dsn.split("@", 1)[1]
        driver = PostgresDriver(
            config(f"postgresql://postgres:{secret}@{host}", pool_size=2), DriverContext()
        )
        await driver.connect()
        try:
            described = await driver.describe()
        finally:
            await driver.close()
        assert secret not in json.dumps(described)
        assert secret not in repr(driver.config)
        return described

    described = run(scenario)
    assert described["product"] == "PostgreSQL"
    assert described["version"].startswith(("15", "16", "17"))
    assert described["strategy"] == "max_then_insert" and described["pool_size"] == 2


# --------------------------------------------------------------------------- starting up (57P03)

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


async def _starting_up_then_proxy(
    upstream: tuple[str, int], refusals: int | None
) -> tuple[asyncio.Server, list[int]]:
    """A server on a free port that answers the first ``refusals`` connections (every one when
    None) as PostgreSQL does while it starts up (FATAL 57P03), then relays to ``upstream``."""
    attempts: list[int] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # SSLRequest / GSSENCRequest: "N", then the StartupMessage
            length = int.from_bytes(await reader.readexactly(4), "big")
            body = await reader.readexactly(length - 4)
            if int.from_bytes(body[:4], "big") not in (_SSL_REQUEST, _GSSENC_REQUEST):
                break
            writer.write(b"N")
        fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
        writer.write(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
        await writer.drain()
        writer.close()

    async def relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(1)
        if refusals is None or len(attempts) <= refusals:
            await refuse(reader, writer)
            return
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        await asyncio.gather(
            relay(reader, up_writer), relay(up_reader, writer), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, attempts


def test_connect_waits_while_the_server_is_starting_up(postgres_dsn: str) -> None:
    parts = urlsplit(postgres_dsn)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)

    async def scenario() -> None:
        server, attempts = await _starting_up_then_proxy(upstream, refusals=3)
        port = server.sockets[0].getsockname()[1]
        dsn = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        driver = PostgresDriver(config(dsn, pool_size=1, connect_timeout="5s"), DriverContext())
        try:
            await driver.connect()
            assert (await driver.describe())["product"] == "PostgreSQL"
            assert len(attempts) == 4  # three refusals, then the connection
        finally:
            await driver.close()
            server.close()

        # A server that never finishes starting up: a one-line error within connect_timeout.
        server, attempts = await _starting_up_then_proxy(upstream, refusals=None)
        port = server.sockets[0].getsockname()[1]
        dsn = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        driver = PostgresDriver(config(dsn, pool_size=1, connect_timeout="1s"), DriverContext())
        start = time.monotonic()
        try:
            with pytest.raises(DriverError) as info:
                await driver.connect()
        finally:
            server.close()
        assert time.monotonic() - start < 2.0
        assert len(attempts) > 2
        assert "\n" not in str(info.value)

    run(scenario)
