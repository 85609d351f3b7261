"""``PostgresDriver``: the store driver the engine talks to. It ties the package's parts
together (connections, schema, appends, read side, projector, checks) and declares the
optional capabilities of ``bench/drivers/base.py`` by implementing their methods."""

from __future__ import annotations

import json
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar, Literal

import asyncpg

from bench.drivers.base import (
    AppendResult,
    DriverConfig,
    DriverContext,
    OutboxEntry,
    StoredEvent,
)
from bench.drivers.postgres import outbox, projector
from bench.drivers.postgres import verify as checks
from bench.drivers.postgres.append import AppendCounters, Appender
from bench.drivers.postgres.config import PostgresConfig, dsn_address, schema_for
from bench.drivers.postgres.pool import (
    DB_ERRORS,
    Connections,
    Scrubber,
    StoreError,
    open_connections,
)
from bench.drivers.postgres.projector import CommitTimes, fold_events
from bench.drivers.postgres.sql import Namespace
from bench.errors import DriverError


class PostgresDriver:
    """A PostgreSQL event store reached through ``pool_size`` asyncpg connections."""

    name: ClassVar[str] = "postgres"
    kind: ClassVar[Literal["stream", "store", "both"]] = "store"
    config_model: ClassVar[type[DriverConfig]] = PostgresConfig

    @classmethod
    def service_name(cls) -> str:
        """The ``bench up`` service this target runs on, here."""
        return "postgres"

    def __init__(self, config: PostgresConfig, context: DriverContext | None = None) -> None:
        self.config = config
        self.context = context or DriverContext()
        self._address = dsn_address(config.dsn.get_secret_value())
        self._scrubber = Scrubber(config.dsn.get_secret_value())
        self._pool: Connections | None = None
        self._outbox = False
        self._ns = self._namespace(config.schema_name)
        self._new_run()

    # -- helpers
    def _namespace(self, schema: str) -> Namespace:
        return Namespace.of(
            schema, self.config.strategy == "unsafe_max_then_insert", outbox=self._outbox
        )

    def _new_run(self) -> None:
        """Fresh append counts and projection lags (a new run point starts)."""
        self._commits = CommitTimes()
        self._appender = Appender(
            self.config.strategy,
            self._commits,
            self._scrubber,
            lambda kind: self.context.count_error(kind),
        )

    @property
    def schema(self) -> str:
        return self._ns.schema

    @property
    def counters(self) -> AppendCounters:
        """Client-side outcome counts of this run point's append attempts."""
        return self._appender.counters

    @property
    def projection_untimed(self) -> int:
        """Events projected without a commit time here (appended by another process)."""
        return self._commits.untimed

    def scrub(self, text: str) -> str:
        return self._scrubber.scrub(text)

    def _require_pool(self) -> Connections:
        if self._pool is None:
            raise DriverError("postgres: not connected (call connect() first)")
        return self._pool

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return self._scrubber.error(what, exc)

    # -- lifecycle
    async def connect(self) -> None:
        """Open the pool (``pool_size`` connections) within ``connect_timeout``."""
        if self._pool is not None:
            return
        self._pool = await open_connections(
            self.config, self._scrubber, lambda: self.context.count_error("reconnect")
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout_s=5.0)

    async def describe(self) -> dict[str, Any]:
        """Server product and version, effective settings, strategy; never the DSN's secrets."""
        pool = self._require_pool()
        names = (
            "server_version",
            "server_version_num",
            "default_transaction_isolation",
            "synchronous_commit",
            "fsync",
            "wal_level",
            "shared_buffers",
            "max_connections",
            "track_commit_timestamp",
        )
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
                list(names),
            )
            server_version = await conn.fetchval("SHOW server_version")
        settings = {r["name"]: r["setting"] + (r["unit"] or "") for r in rows}
        default_isolation = settings.get("default_transaction_isolation", "read committed")
        return {
            "product": "PostgreSQL",
            "version": server_version,
            "client": f"asyncpg {_package_version('asyncpg')}",
            "address": self._address,
            "schema": self.schema,
            "strategy": self.config.strategy,
            "isolation": (
                "serializable" if self.config.strategy == "serializable" else default_isolation
            ),
            "snapshot_every": self.config.snapshot_every,
            "pool_size": self.config.pool_size,
            "outbox": self._outbox,
            "settings": self.config.public_settings(),
            "server_settings": settings,
        }

    # -- schema (SharedStore)
    async def prepare_store(self, namespace: str | None = None) -> None:
        """Drop and recreate this run point's schema (``namespace`` or the configured one)."""
        pool = self._require_pool()
        if namespace is not None:
            self._ns = self._namespace(schema_for(namespace))
        try:
            async with (
                pool.acquire() as conn,
                conn.transaction(),
            ):
                for statement in self._ns.sql.create:
                    await conn.execute(statement)
        except DB_ERRORS as exc:
            raise self._error(f"creating schema {self.schema!r}", exc) from exc
        pool.forget_statements()
        self._new_run()

    async def attach_store(self, namespace: str) -> None:
        """Use the schema that ``prepare_store(namespace)`` created (another process did)."""
        self._ns = self._namespace(schema_for(namespace))
        if self._pool is not None:
            self._pool.forget_statements()

    async def drop_store(self) -> None:
        """Drop the current run point's schema and everything in it."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(self._ns.sql.drop)
        except DB_ERRORS as exc:
            raise self._error(f"dropping schema {self.schema!r}", exc) from exc

    # -- append
    def append(
        self, aggregate_id: str, events: list[StoredEvent], expected_version: int
    ) -> Coroutine[Any, Any, AppendResult]:
        """Append ``events`` at versions expected+1.. or report a conflict (awaitable).

        The events' own ``version`` fields are ignored: the store assigns versions. Raises
        ``RetryableStoreError`` on a deadlock and ``StoreError`` on any other database error.
        The appender's coroutine itself, not one wrapped around it (one frame less per append).
        """
        return self._appender.append(
            self._require_pool(), self._ns, aggregate_id, events, expected_version
        )

    def error_kind(self, exc: BaseException) -> str:
        """The error's class with its SQLSTATE, when PostgreSQL gave one."""
        code = exc.sqlstate if isinstance(exc, StoreError | asyncpg.PostgresError) else None
        name = type(exc).__name__
        return f"{name}:{code}" if code else name

    # -- saga state (SagaStateStore)
    async def prepare_saga_state(self, namespace: str) -> None:
        """The point's schema (``prepare_store``) with a saga_state table in it."""
        await self.prepare_store(namespace)
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(self._ns.sql.create_saga_state)
        except DB_ERRORS as exc:
            raise self._error("creating the saga state table", exc) from exc

    async def save_saga_state(self, saga_id: str, status: str, step: int, version: int) -> None:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(self._ns.sql.save_saga_state, saga_id, status, step, version)
        except DB_ERRORS as exc:
            raise self._error(f"saving saga {saga_id!r}", exc) from exc

    async def load_saga_states(self) -> dict[str, tuple[str, int]]:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(self._ns.sql.load_saga_states)
        except DB_ERRORS as exc:
            raise self._error("reading the saga states", exc) from exc
        return {row["saga_id"]: (row["status"], row["step"]) for row in rows}

    async def drop_saga_state(self) -> None:
        await self.drop_store()

    # -- a seeded history (HistoryStore)
    async def seed_history(self, events: Sequence[StoredEvent]) -> None:
        """COPY the events in, and each stream's version, in one transaction (a restore:
        no expected-version check, no outbox)."""
        pool = self._require_pool()
        versions: dict[str, int] = {}
        for event in events:
            versions[event.aggregate_id] = max(versions.get(event.aggregate_id, 0), event.version)
        records = [
            (
                e.event_id,
                e.aggregate_id,
                e.aggregate_type,
                e.event_type,
                e.version,
                e.payload.decode(),
                json.dumps(dict(e.metadata)),
            )
            for e in events
        ]
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(
                    "events",
                    schema_name=self.schema,
                    columns=[
                        "event_id",
                        "aggregate_id",
                        "aggregate_type",
                        "event_type",
                        "version",
                        "payload",
                        "metadata",
                    ],
                    records=records,
                )
                await conn.execute(
                    self._ns.sql.seed_streams, list(versions), list(versions.values())
                )
        except DB_ERRORS as exc:
            raise self._error("seeding the history", exc) from exc

    async def seed_snapshots(self, snapshots: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    self._ns.sql.seed_snapshots,
                    [a for a, _, _ in snapshots],
                    [v for _, v, _ in snapshots],
                    [json.dumps(state) for _, _, state in snapshots],
                )
        except DB_ERRORS as exc:
            raise self._error("seeding snapshots", exc) from exc

    async def archive_before_snapshots(self) -> int:
        """Move what the snapshots cover to events_archive, in one transaction."""
        pool = self._require_pool()
        sql = self._ns.sql
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.create_archive)
                status = await conn.execute(sql.archive)
        except DB_ERRORS as exc:
            raise self._error("archiving events", exc) from exc
        return int(status.rsplit(" ", 1)[-1])

    async def load_archived(self, aggregate_id: str) -> list[StoredEvent]:
        return await self._events_of(self._ns.sql.load_archived, aggregate_id, "archived load")

    async def table_bytes(self) -> dict[str, int]:
        """The events tables' sizes on disk (indexes and TOAST included), after VACUUM FULL:
        what they hold, not the dead rows a bulk load or a move left behind."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(self._ns.sql.vacuum_events)
                live, archive = await conn.fetchrow(self._ns.sql.table_bytes)
        except DB_ERRORS as exc:
            raise self._error("measuring the events tables", exc) from exc
        return {"live": int(live), "archive": int(archive)}

    async def rewrite_events(self, events: Sequence[StoredEvent]) -> None:
        """Replace the payload and metadata of these events, in one transaction."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    self._ns.sql.rewrite,
                    [e.event_id for e in events],
                    [e.payload.decode() for e in events],
                    [json.dumps(dict(e.metadata)) for e in events],
                )
        except DB_ERRORS as exc:
            raise self._error("rewriting events", exc) from exc
        updated = int(status.rsplit(" ", 1)[-1])
        if updated != len(events):
            raise DriverError(
                f"postgres: a rewrite updated {updated} of {len(events)} events (the rest are "
                "not stored)"
            )

    # -- read side (Snapshots)
    @staticmethod
    def _stored(aggregate_id: str, row: asyncpg.Record) -> StoredEvent:
        return StoredEvent(
            event_id=str(row["event_id"]),
            aggregate_id=aggregate_id,
            aggregate_type=row["aggregate_type"],
            event_type=row["event_type"],
            version=row["version"],
            payload=row["payload"].encode(),
            metadata=json.loads(row["metadata"]),
        )

    async def load(self, aggregate_id: str) -> list[StoredEvent]:
        """The whole stream in version order (full replay, no snapshot)."""
        return await self._events_of(self._ns.sql.load, aggregate_id, "load")

    async def _events_of(self, query: str, aggregate_id: str, what: str) -> list[StoredEvent]:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(query, aggregate_id)
        except DB_ERRORS as exc:
            raise self._error(f"{what} of {aggregate_id!r}", exc) from exc
        return [self._stored(aggregate_id, row) for row in rows]

    def snapshot_every(self) -> int:
        return self.config.snapshot_every

    async def load_with_snapshot(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        """(snapshot state or None, snapshot version or 0, the events after it) in one query."""
        if self.config.snapshot_every == 0:
            return None, 0, await self.load(aggregate_id)
        return await self.load_snapshot_tail(aggregate_id)

    async def load_snapshot_tail(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        """(snapshot state or None, snapshot version or 0, the events after it) in one query,
        whatever ``snapshot_every`` says (HistoryStore)."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(self._ns.sql.load_snapshot, aggregate_id)
        except DB_ERRORS as exc:
            raise self._error(f"load of {aggregate_id!r}", exc) from exc
        if not rows:
            return None, 0, []
        first = rows[0]
        state = json.loads(first["state"]) if first["state"] is not None else None
        snapshot_version = first["snapshot_version"] or 0
        events = [self._stored(aggregate_id, row) for row in rows if row["event_id"] is not None]
        return state, snapshot_version, events

    async def save_snapshot(
        self, aggregate_id: str, version: int, state: Mapping[str, Any]
    ) -> None:
        """Keep ``state`` as of ``version`` unless a newer snapshot is already stored."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    self._ns.sql.save_snapshot, aggregate_id, version, json.dumps(dict(state))
                )
        except DB_ERRORS as exc:
            raise self._error(f"snapshot of {aggregate_id!r}", exc) from exc

    async def load_order(self, aggregate_id: str) -> tuple[dict[str, Any] | None, int]:
        """The order's current state (``bench/domain.py``'s fold, as a dict) and version,
        snapshot-aware (None, 0 for a new order).

        Takes a snapshot when the stream has grown by ``snapshot_every`` events since the last
        one, as the load that noticed it (the command side's load is where it is cheapest).
        """
        snapshot, snapshot_version, events = await self.load_with_snapshot(aggregate_id)
        state = fold_events(events, snapshot)
        current = events[-1].version if events else snapshot_version
        every = self.config.snapshot_every
        if state is not None and every and current // every > snapshot_version // every:
            await self.save_snapshot(aggregate_id, current, state)
        return state, current

    # -- projector (Projector, IdempotentConsumer)
    async def project(self, batch_size: int = 500) -> int:
        """Apply the next batch of events to ``order_summaries``; the number applied (0: idle).

        Concurrent calls are serialised by an advisory lock, so several tasks may call it.
        """
        try:
            return await projector.project(
                self._require_pool(), self._ns, self._commits, batch_size
            )
        except DB_ERRORS as exc:
            raise self._error("projection", exc) from exc

    def take_projection_lags(self) -> list[int]:
        """The projection lags (ns, commit → read model committed) observed since the last call."""
        return self._commits.take_lags()

    async def projection_backlog(self) -> int:
        """Events stored (committed, visible now) that the projector has not applied yet."""
        return await projector.backlog(self._require_pool(), self._ns)

    async def catch_up(
        self, timeout_s: float = 30.0, batch_size: int = 500, poll_s: float = 0.01
    ) -> int:
        """Project until every committed event is applied; the number applied (DriverError
        when an open transaction holds the horizon back longer than ``timeout_s``)."""
        return await projector.catch_up(
            self.project, self.projection_backlog, timeout_s, batch_size, poll_s
        )

    async def consume_idempotently(
        self, consumer: str, event_ids: Sequence[str]
    ) -> tuple[int, int]:
        """Handle ``event_ids`` for ``consumer`` exactly once: (processed, skipped duplicates)."""
        if not event_ids:
            return 0, 0
        try:
            processed = await projector.consume(self._require_pool(), self._ns, consumer, event_ids)
        except DB_ERRORS as exc:
            raise self._error(f"consumption by {consumer!r}", exc) from exc
        return processed, len(event_ids) - processed

    # -- the transactional outbox (Outbox)
    def use_outbox(self) -> None:
        """From now on every append writes its events to the outbox in its own statement.

        Before ``prepare_store`` (which then creates the table) or ``attach_store``: every
        process that appends to a point with an outbox must call it, since this driver's
        statements decide whether an append writes the outbox, not the schema it attaches to.
        """
        if self._outbox:
            return
        self._outbox = True
        self._ns = self._namespace(self._ns.schema)
        if self._pool is not None:
            self._pool.forget_statements()

    async def outbox_fetch(self, shard: int, shards: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unpublished entries of the aggregates of ``shard`` of ``shards``
        (``partition_of``), in position order (per aggregate, version order: outbox.py)."""
        try:
            return await outbox.fetch(self._require_pool(), self._ns, shard, shards, limit)
        except DB_ERRORS as exc:
            raise self._error("outbox fetch", exc) from exc

    async def outbox_mark(self, positions: Sequence[int]) -> None:
        """Delete these published entries: they are never fetched again."""
        try:
            await outbox.mark(self._require_pool(), self._ns, positions)
        except DB_ERRORS as exc:
            raise self._error("outbox mark", exc) from exc

    async def outbox_pending(self) -> int:
        """Entries not yet marked: the outbox backlog."""
        try:
            return await outbox.pending(self._require_pool(), self._ns)
        except DB_ERRORS as exc:
            raise self._error("outbox count", exc) from exc

    # -- the pipeline's read model (ReadModel)
    async def prepare_read_model(self, guard: bool) -> None:
        """Empty the read model and the processed event ids (the schema has both, ``guard``
        or not: without it the processed ids stay empty)."""
        try:
            await projector.prepare_read_model(self._require_pool(), self._ns)
        except DB_ERRORS as exc:
            raise self._error("emptying the read model", exc) from exc

    async def apply_event(self, event: StoredEvent, guard: bool) -> str:
        """Apply one event in one transaction: APPLIED, DUPLICATE_SKIPPED, DUPLICATE_APPLIED
        or OUT_OF_ORDER (``sql.py``'s ``apply_event`` function says when)."""
        try:
            return await projector.apply_event(self._require_pool(), self._ns, event, guard)
        except DB_ERRORS as exc:
            raise self._error(f"applying {event.event_id} to the read model", exc) from exc

    async def read_summary(self, aggregate_id: str) -> dict[str, Any] | None:
        """The aggregate's read-model row (``OrderState.as_dict()``), None when it has none."""
        try:
            return await projector.read_summary(self._require_pool(), self._ns, aggregate_id)
        except DB_ERRORS as exc:
            raise self._error(f"read of {aggregate_id!r}", exc) from exc

    async def read_summaries(self) -> dict[str, dict[str, Any]]:
        """Every read-model row, by aggregate id."""
        try:
            return await projector.read_summaries(self._require_pool(), self._ns)
        except DB_ERRORS as exc:
            raise self._error("read of the read model", exc) from exc

    # -- checks (StoredEventIds, StoreLedgerCheck, ServerCounters)
    async def verify(self) -> list[str]:
        """The store's invariants; each violation as one sentence. Empty: all hold."""
        try:
            return await checks.verify(self._require_pool(), self._ns, self.config.strategy)
        except DB_ERRORS as exc:
            raise self._error("verify", exc) from exc

    async def stored_event_ids(self) -> set[str]:
        """Every stored event id (canonical lower-case uuid text)."""
        return await checks.stored_event_ids(self._require_pool(), self._ns)

    async def check_ledger(
        self, acknowledged: Iterable[str], conflicted: Iterable[str]
    ) -> list[str]:
        """Each acknowledged event stored exactly once, none of a conflicted attempt stored."""
        return await checks.check_ledger(self._require_pool(), self._ns, acknowledged, conflicted)

    async def server_counters(self) -> dict[str, int]:
        """pg_stat_database for this database (whole database, between runs: see verify.py)."""
        return await checks.server_counters(self._require_pool())


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None
