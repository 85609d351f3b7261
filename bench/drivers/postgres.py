"""The PostgreSQL event store driver (asyncpg): schema, append strategies, read side, invariants.

This module owns everything eventbench knows about PostgreSQL as an event store: the
``PostgresConfig`` options, the schema a run point writes into, the six append strategies a
user compares, the read side (replay, snapshots, the order-summary projector, idempotent
consumption), the store's invariants (``verify``) and what ``describe()`` reports.

Schema
    ``prepare_store(namespace)`` drops and recreates one PostgreSQL schema per run point
    (``namespace`` sanitised to an identifier, else the configured ``schema``) holding:
    ``events`` (uuid primary key, ``unique (aggregate_id, version)`` except for the negative
    control, a ``global_position`` identity and the writing transaction's ``txid``),
    ``streams`` (for ``streams_cas``), ``snapshots``, ``order_summaries`` (the read model),
    ``projections`` (the projector's checkpoint), ``processed_events`` and
    ``consumer_tallies`` (idempotent consumption).

Append strategies (``strategy``)
    ``max_then_insert``   BEGIN; SELECT max(version); compare; INSERT; COMMIT. The unique
                          constraint catches the race between the read and the insert.
    ``insert_only``       one autocommit INSERT at expected+1..; the unique violation is the
                          conflict (one round trip: the fastest path).
    ``streams_cas``       BEGIN; UPDATE streams … WHERE version = expected (or INSERT … ON
                          CONFLICT DO NOTHING for a new stream); 0 rows = conflict; INSERT; COMMIT.
    ``advisory_lock``     BEGIN; pg_advisory_xact_lock(schema, aggregate); max; compare; INSERT.
    ``serializable``      as max_then_insert at SERIALIZABLE; 40001 and 23505 are conflicts.
    ``unsafe_max_then_insert``  max_then_insert on a schema *without* the unique constraint:
                          the negative control. It forks streams under contention and
                          ``verify()`` reports the duplicate versions.

    SQLSTATE 23505 on the (aggregate, version) constraint and 40001 are conflicts
    (``AppendResult(committed=False)``); 40P01 is counted as ``"deadlock"`` and raised as
    ``RetryableStoreError``; every other database error is raised as ``StoreError``.

Projector
    Identity values are assigned at insert but transactions commit in another order, so a
    tailer that remembers "the highest position seen" skips an event whose transaction was
    still in flight when a later position became visible. Every event row records
    ``txid = pg_current_xact_id()``; the projector reads in ``(txid, global_position)`` order
    and only rows with ``txid < pg_snapshot_xmin(pg_current_snapshot())``: every transaction
    below that horizon has finished, and no transaction that starts writing later can get an
    xid below it, so nothing can ever appear behind the checkpoint. The read model and the
    checkpoint are updated in one transaction. The price: a long writer anywhere in the cluster
    delays projection (lag), it never causes a skip.

Projection lag is measured from the append's commit as this driver saw it (monotonic clock)
to the projector's commit, for events appended through the same driver instance; events
appended by other processes are counted as untimed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
from pydantic import ConfigDict, Field, SecretStr, field_validator

from bench.drivers.base import AppendResult, DriverConfig, DriverContext, StoredEvent
from bench.errors import DriverError
from bench.redaction import redact_text, secret_values
from bench.units import Duration

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

Strategy = Literal[
    "max_then_insert",
    "insert_only",
    "streams_cas",
    "advisory_lock",
    "serializable",
    "unsafe_max_then_insert",
]
SAFE_STRATEGIES: tuple[Strategy, ...] = (
    "max_then_insert",
    "insert_only",
    "streams_cas",
    "advisory_lock",
    "serializable",
)
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

# The unique constraint whose violation is a version conflict (a duplicate event id is not).
VERSION_CONSTRAINT = "events_stream_version"
PROJECTOR = "order_summaries"
# Commit times kept for projection lag (about 150 bytes each); beyond this, events are untimed.
_LAG_TRACK_LIMIT = 262_144
# Examples listed per kind of violation; the total is always given.
_EXAMPLES = 10

_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _default_dsn() -> SecretStr:
    return SecretStr(os.environ.get("BENCH_POSTGRES_DSN", DEFAULT_DSN))


class PostgresConfig(DriverConfig):
    """Options of a ``driver = "postgres"`` target."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    driver: Literal["postgres"] = "postgres"
    dsn: SecretStr = Field(default_factory=_default_dsn)
    # "schema" would shadow a BaseModel attribute; scenarios still write `schema = "…"`.
    schema_name: str = Field(default="eventbench", alias="schema", min_length=1, max_length=63)
    strategy: Strategy = "max_then_insert"
    pool_size: int = Field(default=16, ge=1, le=1000)
    snapshot_every: int = Field(default=50, ge=0)
    statement_timeout: Duration = 30.0
    # How long an append waits for a free pool connection (writers > pool_size queue here).
    acquire_timeout: Duration = 30.0
    # libpq's sslmode names; None: whatever the DSN says (asyncpg's default is "prefer").
    ssl: SslMode | None = None

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT_RE.match(value):
            raise ValueError(
                f"{value!r} is not a plain schema name: use lower-case letters, digits and _"
            )
        return value

    def public_settings(self) -> dict[str, Any]:
        """Every option as given or defaulted, the DSN left out (for describe and results)."""
        out = self.model_dump(mode="json", by_alias=True, exclude={"dsn"})
        out["dsn"] = public_dsn(self.dsn.get_secret_value())
        return out


class StoreError(DriverError):
    """A database error during a store operation that is neither a conflict nor retryable."""

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class RetryableStoreError(StoreError):
    """The attempt failed for a reason a retry can cure (a deadlock): nothing was stored."""


# --------------------------------------------------------------------------- DSN hygiene


def public_dsn(dsn: str) -> str:
    """The DSN without user information and password parameters."""
    if "://" not in dsn:  # libpq's key=value form: "host=... password=..."
        return redact_text(dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k not in ("password", "sslpassword", "user")]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def dsn_address(dsn: str) -> str:
    """``host:port`` of a DSN, for one-line errors."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")[2]
    try:
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:  # several hosts, or a port that is not a number
        return netloc or "localhost:5432"
    return f"{host}:{port}"


def _secrets_of(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    found = secret_values(dsn)
    try:
        if parts.password:
            found += [parts.password, unquote(parts.password)]
    except ValueError:
        pass
    found += [v for k, v in parse_qsl(parts.query) if k in ("password", "sslpassword") and v]
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def schema_for(namespace: str) -> str:
    """A safe PostgreSQL schema name for a run point's namespace (stable, at most 63 bytes)."""
    name = re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    if not name or not _IDENT_RE.match(name):
        name = f"eb_{name}"
    if len(name) > 63:
        # Postgres would truncate silently and two long names could collide.
        name = f"{name[:54]}_{zlib.crc32(namespace.encode()):08x}"
    return name


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _rows_affected(status: str) -> int:
    # asyncpg returns the command tag: "INSERT 0 1", "UPDATE 0".
    return int(status.rsplit(" ", 1)[-1])


# --------------------------------------------------------------------------- the order aggregate


class OrderEvent(Protocol):
    """What the fold reads from an event (StoredEvent has it; so do the projector's rows)."""

    @property
    def event_type(self) -> str: ...

    @property
    def version(self) -> int: ...


ORDER_PLACED = "OrderPlaced"
ORDER_ITEM_ADDED = "OrderItemAdded"
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_SHIPPED = "OrderShipped"
ORDER_CANCELLED = "OrderCancelled"

# The lifecycle: which events each status accepts, and the status each leads to.
# place → (add items) → confirm → ship, or cancel before shipping.
ORDER_NEXT: dict[str, tuple[str, ...]] = {
    "new": (ORDER_PLACED,),
    "placed": (ORDER_ITEM_ADDED, ORDER_CONFIRMED, ORDER_CANCELLED),
    "confirmed": (ORDER_SHIPPED, ORDER_CANCELLED),
    # The workload's streams carry one order after another (bench/domain.py): once an order
    # is shipped or cancelled, the next OrderPlaced starts the next order.
    "shipped": (ORDER_PLACED,),
    "cancelled": (ORDER_PLACED,),
}
_STATUS_AFTER = {
    ORDER_PLACED: "placed",
    ORDER_ITEM_ADDED: "placed",
    ORDER_CONFIRMED: "confirmed",
    ORDER_SHIPPED: "shipped",
    ORDER_CANCELLED: "cancelled",
}


def new_order_state() -> dict[str, Any]:
    return {"status": "new", "version": 0, "items": 0, "invalid_transitions": 0}


def fold_order(state: Mapping[str, Any] | None, event: OrderEvent) -> dict[str, Any]:
    """The order after ``event``: a pure function of the previous state and the event.

    Events are facts, so the fold is total: an event the lifecycle does not allow from the
    current status (or an unknown type) leaves the status alone and is counted in
    ``invalid_transitions``; deciding what may be appended is the command side's job.
    """
    new = new_order_state() if state is None else dict(state)
    new["version"] = event.version
    if event.event_type in ORDER_NEXT[new["status"]]:
        new["status"] = _STATUS_AFTER[event.event_type]
        if event.event_type == ORDER_ITEM_ADDED:
            new["items"] += 1
    else:
        new["invalid_transitions"] += 1
    return new


def fold_events(
    events: Iterable[OrderEvent], state: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Fold a stream (or the tail after a snapshot); None when there is nothing at all."""
    current: dict[str, Any] | None = None if state is None else dict(state)
    for event in events:
        current = fold_order(current, event)
    return current


@dataclass(frozen=True, slots=True)
class _Row:
    event_type: str
    version: int


# --------------------------------------------------------------------------- SQL


class _Sql:
    """Every statement, qualified with one run point's schema (quoted, never interpolated raw)."""

    def __init__(self, schema: str, unsafe: bool) -> None:
        s = _quote(schema)
        self.schema = schema
        version_key = (
            f"CREATE INDEX events_stream ON {s}.events (aggregate_id, version)"
            if unsafe
            else f"ALTER TABLE {s}.events ADD CONSTRAINT {VERSION_CONSTRAINT} "
            "UNIQUE (aggregate_id, version)"
        )
        self.create = [
            f"DROP SCHEMA IF EXISTS {s} CASCADE",
            f"CREATE SCHEMA {s}",
            f"""CREATE TABLE {s}.events (
                event_id uuid PRIMARY KEY,
                aggregate_id text NOT NULL,
                aggregate_type text NOT NULL,
                event_type text NOT NULL,
                version int NOT NULL CHECK (version > 0),
                payload jsonb NOT NULL,
                metadata jsonb NOT NULL DEFAULT '{{}}',
                recorded_at timestamptz NOT NULL DEFAULT now(),
                global_position bigint GENERATED ALWAYS AS IDENTITY,
                txid xid8 NOT NULL DEFAULT pg_current_xact_id()
            )""",
            version_key,
            f"CREATE INDEX events_tail ON {s}.events (txid, global_position)",
            f"CREATE TABLE {s}.streams (aggregate_id text PRIMARY KEY, version int NOT NULL)",
            f"""CREATE TABLE {s}.snapshots (
                aggregate_id text PRIMARY KEY,
                version int NOT NULL,
                state jsonb NOT NULL,
                taken_at timestamptz NOT NULL DEFAULT now()
            )""",
            f"""CREATE TABLE {s}.order_summaries (
                order_id text PRIMARY KEY,
                status text NOT NULL,
                version int NOT NULL,
                state jsonb NOT NULL,
                last_position bigint NOT NULL,
                updated_at timestamptz NOT NULL
            )""",
            f"""CREATE TABLE {s}.projections (
                name text PRIMARY KEY,
                last_txid xid8 NOT NULL DEFAULT '0',
                last_position bigint NOT NULL DEFAULT 0,
                events bigint NOT NULL DEFAULT 0,
                updated_at timestamptz
            )""",
            f"INSERT INTO {s}.projections (name) VALUES ('{PROJECTOR}')",
            f"""CREATE TABLE {s}.processed_events (
                consumer text NOT NULL,
                event_id uuid NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, event_id)
            )""",
            f"""CREATE TABLE {s}.consumer_tallies (
                consumer text NOT NULL,
                aggregate_id text NOT NULL,
                events bigint NOT NULL,
                PRIMARY KEY (consumer, aggregate_id)
            )""",
        ]
        self.drop = f"DROP SCHEMA IF EXISTS {s} CASCADE"
        cols = "event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata"
        self.insert_one = f"INSERT INTO {s}.events ({cols}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        # One statement for any number of events (one round trip); ORDER BY keeps the
        # identity values in version order.
        self.insert_many = f"""INSERT INTO {s}.events ({cols})
            SELECT e.event_id, $2, e.aggregate_type, e.event_type, $3::int + e.ord::int,
                   e.payload, e.metadata
            FROM unnest($1::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata, ord)
            ORDER BY e.ord"""
        self.max_version = (
            f"SELECT coalesce(max(version), 0) FROM {s}.events WHERE aggregate_id = $1"
        )
        self.cas_new = (
            f"INSERT INTO {s}.streams (aggregate_id, version) VALUES ($1, $2) "
            "ON CONFLICT (aggregate_id) DO NOTHING"
        )
        self.cas_update = (
            f"UPDATE {s}.streams SET version = $3 WHERE aggregate_id = $1 AND version = $2"
        )
        self.lock = "SELECT pg_advisory_xact_lock($1::int, hashtext($2))"
        event_cols = "e.event_id, e.aggregate_type, e.event_type, e.version, e.payload, e.metadata"
        self.load = (
            f"SELECT {event_cols} FROM {s}.events e WHERE e.aggregate_id = $1 "
            "ORDER BY e.version, e.global_position"
        )
        # Snapshot and the events after it in one round trip (the snapshot repeats per row).
        self.load_snapshot = f"""SELECT s.version AS snapshot_version, s.state, {event_cols}
            FROM (SELECT $1::text AS aggregate_id) a
            LEFT JOIN {s}.snapshots s ON s.aggregate_id = a.aggregate_id
            LEFT JOIN {s}.events e
                   ON e.aggregate_id = a.aggregate_id AND e.version > coalesce(s.version, 0)
            ORDER BY e.version, e.global_position"""
        self.save_snapshot = f"""INSERT INTO {s}.snapshots (aggregate_id, version, state)
            VALUES ($1, $2, $3)
            ON CONFLICT (aggregate_id) DO UPDATE
               SET version = excluded.version, state = excluded.state, taken_at = now()
             WHERE {s}.snapshots.version < excluded.version"""
        self.projector_lock = "SELECT pg_advisory_xact_lock($1::int, hashtext($2))"
        self.checkpoint = (
            f"SELECT last_txid::text AS last_txid_text, last_position FROM {s}.projections "
            "WHERE name = $1"
        )
        # The text copy of txid gets its own name: ORDER BY prefers an output column over a
        # table column of the same name, and text order breaks at every new digit (99999 <
        # 100000 numerically, not as text): that re-applied events in an early version.
        self.tail = f"""SELECT e.event_id::text, e.aggregate_id, e.event_type, e.version,
                   e.txid::text AS txid_text, e.global_position
            FROM {s}.events e
            WHERE (e.txid, e.global_position) > ($1::text::xid8, $2::bigint)
              AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY e.txid, e.global_position
            LIMIT $3"""
        self.backlog = f"""SELECT count(*) FROM {s}.events e, {s}.projections p
            WHERE p.name = $1 AND (e.txid, e.global_position) > (p.last_txid, p.last_position)"""
        self.summaries_get = (
            f"SELECT order_id, state FROM {s}.order_summaries WHERE order_id = ANY($1::text[])"
        )
        self.summaries_put = f"""INSERT INTO {s}.order_summaries
                (order_id, status, version, state, last_position, updated_at)
            SELECT u.*, now()
            FROM unnest($1::text[], $2::text[], $3::int[], $4::jsonb[], $5::bigint[]) AS u
            ON CONFLICT (order_id) DO UPDATE
               SET status = excluded.status, version = excluded.version, state = excluded.state,
                   last_position = excluded.last_position, updated_at = excluded.updated_at"""
        self.checkpoint_put = f"""UPDATE {s}.projections
            SET last_txid = $2::text::xid8, last_position = $3, events = events + $4,
                updated_at = now()
            WHERE name = $1"""
        # Marking processed and updating the consumer's read model in one statement, hence one
        # transaction: a duplicate delivery inserts nothing and so tallies nothing.
        self.consume = f"""WITH fresh AS (
                INSERT INTO {s}.processed_events (consumer, event_id)
                SELECT $1, id FROM unnest($2::uuid[]) AS id
                ON CONFLICT DO NOTHING
                RETURNING event_id
            ), tallied AS (
                INSERT INTO {s}.consumer_tallies (consumer, aggregate_id, events)
                SELECT $1, e.aggregate_id, count(*)
                FROM fresh JOIN {s}.events e USING (event_id)
                GROUP BY e.aggregate_id
                ON CONFLICT (consumer, aggregate_id)
                DO UPDATE SET events = {s}.consumer_tallies.events + excluded.events
                RETURNING 1
            )
            SELECT count(*) FROM fresh"""
        self.event_ids = f"SELECT event_id::text FROM {s}.events"
        self.ledger_acknowledged = f"""SELECT a.id::text, count(e.event_id)
            FROM (SELECT DISTINCT id FROM unnest($1::uuid[]) AS id) a
            LEFT JOIN {s}.events e ON e.event_id = a.id
            GROUP BY a.id HAVING count(e.event_id) <> 1 ORDER BY 1"""
        self.ledger_conflicted = f"""SELECT DISTINCT a.id::text
            FROM unnest($1::uuid[]) AS a(id) JOIN {s}.events e ON e.event_id = a.id ORDER BY 1"""
        self.duplicates = f"""SELECT aggregate_id, version, count(*) AS copies,
                   count(*) OVER () AS total
            FROM {s}.events GROUP BY aggregate_id, version HAVING count(*) > 1
            ORDER BY aggregate_id, version LIMIT {_EXAMPLES}"""
        self.gaps = f"""SELECT aggregate_id, min(version) AS lo, max(version) AS hi,
                   count(DISTINCT version) AS n, count(*) OVER () AS total
            FROM {s}.events GROUP BY aggregate_id
            HAVING min(version) <> 1 OR max(version) <> count(DISTINCT version)
            ORDER BY aggregate_id LIMIT {_EXAMPLES}"""
        self.streams_mismatch = f"""SELECT coalesce(st.aggregate_id, ev.aggregate_id), st.version,
                   ev.version, count(*) OVER () AS total
            FROM {s}.streams st
            FULL JOIN (SELECT aggregate_id, max(version) AS version FROM {s}.events
                       GROUP BY aggregate_id) ev ON ev.aggregate_id = st.aggregate_id
            WHERE st.version IS DISTINCT FROM ev.version
            ORDER BY 1 LIMIT {_EXAMPLES}"""
        self.processed_dups = f"""SELECT consumer, event_id::text, count(*) AS copies,
                   count(*) OVER () AS total
            FROM {s}.processed_events GROUP BY consumer, event_id HAVING count(*) > 1
            ORDER BY 1, 2 LIMIT {_EXAMPLES}"""
        self.tally_mismatch = f"""WITH expected AS (
                SELECT p.consumer, e.aggregate_id, count(*) AS n
                FROM {s}.processed_events p JOIN {s}.events e USING (event_id)
                GROUP BY p.consumer, e.aggregate_id)
            SELECT coalesce(x.consumer, t.consumer), coalesce(x.aggregate_id, t.aggregate_id),
                   x.n, t.events, count(*) OVER () AS total
            FROM expected x FULL JOIN {s}.consumer_tallies t
                 ON t.consumer = x.consumer AND t.aggregate_id = x.aggregate_id
            WHERE x.n IS DISTINCT FROM t.events
            ORDER BY 1, 2 LIMIT {_EXAMPLES}"""
        self.summaries_all = f"SELECT order_id, state FROM {s}.order_summaries"
        self.projected_events = f"""SELECT aggregate_id, event_type, version FROM {s}.events
            WHERE (txid, global_position) <= ($1::text::xid8, $2::bigint)
            ORDER BY aggregate_id, version, txid, global_position"""


class _Conflict(Exception):
    """Raised inside an append transaction to roll it back; carries the version found."""

    def __init__(self, found: int | None) -> None:
        super().__init__(found)
        self.found = found
        # None: the streams row did not match (streams_cas); else max(version) was not expected.
        self.cas_miss = found is None


@dataclass(slots=True)
class AppendCounters:
    """Client-side outcome counts of append attempts (attempts = commits + conflicts + errors)."""

    attempts: int = 0
    commits: int = 0
    conflicts: int = 0
    # Of the conflicts, how they were detected.
    version_mismatches: int = 0
    unique_violations: int = 0
    serialization_failures: int = 0
    cas_misses: int = 0
    deadlocks: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_EventArgs = tuple[list[str], list[str], list[str], list[str], list[str]]
_AppendFn = Callable[[asyncpg.Connection, str, _EventArgs, int], Awaitable[int]]


class _Lease:
    """``async with connections.acquire() as conn``: one connection, returned on exit."""

    __slots__ = ("_conn", "_owner")

    def __init__(self, owner: _Connections) -> None:
        self._owner = owner
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn = await self._owner.get()
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._owner.put(self._conn)


class _Connections:
    """A fixed set of connections handed out last-in first-out.

    asyncpg's Pool spends about 45 µs of client CPU per acquire and release with a timeout (a
    wait_for task, a shielded release task, a reset query unless replaced): measured here it
    took appends from 11.7k/s to 7.8k/s at 16 writers. The driver keeps no session state, so it
    needs none of that: a queue of open connections, reopened when one is found closed.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        size: int,
        acquire_timeout_s: float,
        on_reconnect: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._size = size
        self._acquire_timeout_s = acquire_timeout_s
        self._on_reconnect = on_reconnect
        self._idle: asyncio.LifoQueue[asyncpg.Connection] = asyncio.LifoQueue()
        self._all: list[asyncpg.Connection] = []

    async def open(self) -> None:
        results = await asyncio.gather(
            *(self._connect() for _ in range(self._size)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, asyncpg.Connection)]
        failed = [r for r in results if not isinstance(r, asyncpg.Connection)]
        if failed:
            for conn in opened:
                conn.terminate()
            raise failed[0]
        self._all = opened
        for conn in opened:
            self._idle.put_nowait(conn)

    def acquire(self) -> _Lease:
        return _Lease(self)

    async def get(self) -> asyncpg.Connection:
        idle = self._idle
        if idle.empty():
            # More writers than connections: they queue here, as long as acquire_timeout.
            async with asyncio.timeout(self._acquire_timeout_s):
                conn = await idle.get()
        else:
            conn = idle.get_nowait()
        if conn.is_closed():
            try:
                fresh = await self._connect()
            except BaseException:
                idle.put_nowait(conn)  # keep the slot; the next get tries again
                raise
            self._all[self._all.index(conn)] = fresh
            self._on_reconnect()
            conn = fresh
        return conn

    async def put(self, conn: asyncpg.Connection) -> None:
        # A transaction can only be left open by a cancellation inside its rollback.
        if not conn.is_closed() and conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn.terminate()
        self._idle.put_nowait(conn)

    async def each(self, statement: str) -> None:
        """Run ``statement`` on every connection (waiting for busy ones, acquire_timeout each)."""
        leased = [await self.get() for _ in range(self._size)]
        try:
            for conn in leased:
                await conn.execute(statement)
        finally:
            for conn in leased:
                await self.put(conn)

    async def close(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(c.close() for c in self._all if not c.is_closed()))
        except TimeoutError:
            # A connection stuck in a query: cut it rather than hang the run's shutdown.
            for conn in self._all:
                conn.terminate()


# --------------------------------------------------------------------------- the driver


class PostgresDriver:
    """A PostgreSQL event store reached through ``pool_size`` asyncpg connections."""

    name: ClassVar[str] = "postgres"
    kind: ClassVar[Literal["stream", "store", "both"]] = "store"
    config_model: ClassVar[type[DriverConfig]] = PostgresConfig

    def __init__(self, config: PostgresConfig, context: DriverContext | None = None) -> None:
        self.config = config
        self.context = context or DriverContext()
        self._dsn = config.dsn.get_secret_value()
        self._address = dsn_address(self._dsn)
        self._secrets = _secrets_of(self._dsn)
        self._pool: _Connections | None = None
        self._schema = config.schema_name
        self._sql = _Sql(self._schema, config.strategy == "unsafe_max_then_insert")
        self._lock_space = self._lock_key(self._schema)
        self._append_fn: _AppendFn = {
            "max_then_insert": self._append_checked,
            "unsafe_max_then_insert": self._append_checked,
            "insert_only": self._append_insert_only,
            "streams_cas": self._append_streams_cas,
            "advisory_lock": self._append_advisory_lock,
            "serializable": self._append_serializable,
        }[config.strategy]
        self.counters = AppendCounters()
        # event id -> monotonic ns of its commit (see _remember_commit), for projection lag.
        self._commit_ns: dict[str, int] = {}
        self._lags_ns: list[int] = []
        self.projection_untimed = 0

    # -- helpers
    @staticmethod
    def _lock_key(schema: str) -> int:
        # Advisory locks are cluster-wide; keying them by schema keeps run points apart.
        return zlib.crc32(schema.encode()) - 2**31

    @property
    def schema(self) -> str:
        return self._schema

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_text(text)

    def _require_pool(self) -> _Connections:
        if self._pool is None:
            raise DriverError("postgres: not connected (call connect() first)")
        return self._pool

    def _error(self, what: str, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.PostgresError):
            code = exc.sqlstate
            return StoreError(
                f"postgres: {what} failed: SQLSTATE {code}: {self.scrub(str(exc))}", sqlstate=code
            )
        return StoreError(f"postgres: {what} failed: {self.scrub(repr(exc))}")

    # -- lifecycle
    async def connect(self) -> None:
        """Open the pool (``pool_size`` connections) within ``connect_timeout``."""
        if self._pool is not None:
            return
        cfg = self.config
        settings = {
            "application_name": "eventbench",
            "statement_timeout": str(round(cfg.statement_timeout * 1000)),
        }
        kwargs: dict[str, Any] = {}
        if cfg.ssl is not None:
            kwargs["ssl"] = cfg.ssl

        def connect() -> Awaitable[asyncpg.Connection]:
            return asyncpg.connect(
                self._dsn, timeout=cfg.connect_timeout, server_settings=settings, **kwargs
            )

        connections = _Connections(
            connect,
            cfg.pool_size,
            cfg.acquire_timeout,
            lambda: self.context.count_error("reconnect"),
        )
        try:
            await asyncio.wait_for(connections.open(), timeout=cfg.connect_timeout)
            self._pool = connections
        except TimeoutError:
            raise DriverError(
                f"postgres: no answer from {self._address} within {cfg.connect_timeout:g}s",
                hint="is PostgreSQL running? `bench up postgres` starts the local one",
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = self.scrub(str(exc).strip() or type(exc).__name__)
            raise DriverError(
                f"postgres: cannot connect to {self._address}: {reason}",
                hint="check the dsn (BENCH_POSTGRES_DSN) and that the server accepts connections",
            ) from None

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
            "schema": self._schema,
            "strategy": self.config.strategy,
            "isolation": (
                "serializable" if self.config.strategy == "serializable" else default_isolation
            ),
            "snapshot_every": self.config.snapshot_every,
            "pool_size": self.config.pool_size,
            "settings": self.config.public_settings(),
            "server_settings": settings,
        }

    # -- schema
    async def prepare_store(self, namespace: str | None = None) -> None:
        """Drop and recreate this run point's schema (``namespace`` or the configured one)."""
        pool = self._require_pool()
        if namespace is not None:
            self._schema = schema_for(namespace)
            self._sql = _Sql(self._schema, self.config.strategy == "unsafe_max_then_insert")
            self._lock_space = self._lock_key(self._schema)
        try:
            async with (
                pool.acquire() as conn,
                conn.transaction(),
            ):
                for statement in self._sql.create:
                    await conn.execute(statement)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error(f"creating schema {self._schema!r}", exc) from exc
        self.counters = AppendCounters()
        self._commit_ns.clear()
        self._lags_ns = []
        self.projection_untimed = 0

    async def attach_store(self, namespace: str) -> None:
        """Use the schema that ``prepare_store(namespace)`` created (another process did)."""
        self._schema = schema_for(namespace)
        self._sql = _Sql(self._schema, self.config.strategy == "unsafe_max_then_insert")
        self._lock_space = self._lock_key(self._schema)

    async def drop_store(self) -> None:
        """Drop the current run point's schema and everything in it."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(self._sql.drop)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error(f"dropping schema {self._schema!r}", exc) from exc

    # -- append
    async def append(
        self, aggregate_id: str, events: list[StoredEvent], expected_version: int
    ) -> AppendResult:
        """Append ``events`` at versions expected+1.. or report a conflict.

        The events' own ``version`` fields are ignored: the store assigns versions. Raises
        ``RetryableStoreError`` on a deadlock and ``StoreError`` on any other database error.
        """
        if not events:
            raise ValueError("append needs at least one event")
        pool = self._require_pool()
        counters = self.counters
        counters.attempts += 1
        args: _EventArgs = (
            [e.event_id for e in events],
            [e.aggregate_type for e in events],
            [e.event_type for e in events],
            [e.payload.decode() for e in events],
            [json.dumps(dict(e.metadata)) for e in events],
        )
        try:
            async with pool.acquire() as conn:
                new_version = await self._append_fn(conn, aggregate_id, args, expected_version)
        except _Conflict as conflict:
            counters.conflicts += 1
            if conflict.cas_miss:
                counters.cas_misses += 1
            else:
                counters.version_mismatches += 1
            self._forget_commit(args[0])
            return AppendResult(committed=False, version=conflict.found)
        except asyncpg.PostgresError as exc:
            self._forget_commit(args[0])
            code = exc.sqlstate
            if code == "23505" and getattr(exc, "constraint_name", None) == VERSION_CONSTRAINT:
                counters.conflicts += 1
                counters.unique_violations += 1
                return AppendResult(committed=False, version=None)
            if code == "40001":
                counters.conflicts += 1
                counters.serialization_failures += 1
                return AppendResult(committed=False, version=None)
            counters.errors += 1
            if code == "40P01":
                counters.deadlocks += 1
                self.context.count_error("deadlock")
                raise RetryableStoreError(
                    f"postgres: deadlock appending to {aggregate_id!r}; nothing was stored",
                    sqlstate=code,
                ) from exc
            raise self._error(f"append to {aggregate_id!r}", exc) from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            # The commit's fate is unknown when the connection drops: not a conflict.
            counters.errors += 1
            raise self._error(f"append to {aggregate_id!r}", exc) from exc
        except BaseException:
            counters.errors += 1
            self._forget_commit(args[0])
            raise
        counters.commits += 1
        self._confirm_commit(args[0])
        return AppendResult(committed=True, version=new_version)

    async def _insert(
        self, conn: asyncpg.Connection, aggregate_id: str, args: _EventArgs, expected: int
    ) -> int:
        ids, types, event_types, payloads, metadata = args
        if len(ids) == 1:
            await conn.execute(
                self._sql.insert_one,
                ids[0],
                aggregate_id,
                types[0],
                event_types[0],
                expected + 1,
                payloads[0],
                metadata[0],
            )
        else:
            await conn.execute(
                self._sql.insert_many,
                ids,
                aggregate_id,
                expected,
                types,
                event_types,
                payloads,
                metadata,
            )
        return expected + len(ids)

    async def _append_insert_only(
        self, conn: asyncpg.Connection, aggregate_id: str, args: _EventArgs, expected: int
    ) -> int:
        # One autocommit statement: the commit happens within this round trip.
        self._remember_commit(args[0])
        return await self._insert(conn, aggregate_id, args, expected)

    async def _append_checked(
        self,
        conn: asyncpg.Connection,
        aggregate_id: str,
        args: _EventArgs,
        expected: int,
        isolation: str = "read_committed",
    ) -> int:
        """Read the stream's version, compare, insert: max_then_insert (and its unsafe twin) in
        READ COMMITTED, where the unique constraint catches the race; serializable in SSI."""
        async with conn.transaction(isolation=isolation):
            found = await conn.fetchval(self._sql.max_version, aggregate_id)
            if found != expected:
                raise _Conflict(found)
            new_version = await self._insert(conn, aggregate_id, args, expected)
            self._remember_commit(args[0])
        return new_version

    async def _append_serializable(
        self, conn: asyncpg.Connection, aggregate_id: str, args: _EventArgs, expected: int
    ) -> int:
        return await self._append_checked(conn, aggregate_id, args, expected, "serializable")

    async def _append_advisory_lock(
        self, conn: asyncpg.Connection, aggregate_id: str, args: _EventArgs, expected: int
    ) -> int:
        async with conn.transaction():
            # The max must be read by a later statement than the lock: in READ COMMITTED each
            # statement takes its snapshot when it starts, so one combined statement would read
            # the version as it was before the lock holder committed.
            await conn.execute(self._sql.lock, self._lock_space, aggregate_id)
            found = await conn.fetchval(self._sql.max_version, aggregate_id)
            if found != expected:
                raise _Conflict(found)
            new_version = await self._insert(conn, aggregate_id, args, expected)
            self._remember_commit(args[0])
        return new_version

    async def _append_streams_cas(
        self, conn: asyncpg.Connection, aggregate_id: str, args: _EventArgs, expected: int
    ) -> int:
        new_version = expected + len(args[0])
        async with conn.transaction():
            if expected == 0:
                status = await conn.execute(self._sql.cas_new, aggregate_id, new_version)
            else:
                status = await conn.execute(
                    self._sql.cas_update, aggregate_id, expected, new_version
                )
            if _rows_affected(status) != 1:
                raise _Conflict(None)
            await self._insert(conn, aggregate_id, args, expected)
            self._remember_commit(args[0])
        return new_version

    # -- projection lag bookkeeping
    def _remember_commit(self, event_ids: list[str]) -> None:
        # Called just before the round trip that commits: if the projector sees the events
        # before this task resumes, the lag is measured from the commit request (at most one
        # round trip early) instead of being lost or negative.
        commit_ns = self._commit_ns
        if len(commit_ns) >= _LAG_TRACK_LIMIT:
            return
        now = time.monotonic_ns()
        for event_id in event_ids:
            commit_ns[event_id.lower()] = now

    def _confirm_commit(self, event_ids: list[str]) -> None:
        commit_ns = self._commit_ns
        now = time.monotonic_ns()
        for event_id in event_ids:
            key = event_id.lower()
            if key in commit_ns:  # not yet projected: the acknowledged commit time is exact
                commit_ns[key] = now

    def _forget_commit(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._commit_ns.pop(event_id.lower(), None)

    def snapshot_every(self) -> int:
        return self.config.snapshot_every

    def error_kind(self, exc: BaseException) -> str:
        """The error's class with its SQLSTATE, when PostgreSQL gave one."""
        code = exc.sqlstate if isinstance(exc, StoreError | asyncpg.PostgresError) else None
        name = type(exc).__name__
        return f"{name}:{code}" if code else name

    def take_projection_lags(self) -> list[int]:
        """The projection lags (ns, commit → read model committed) observed since the last call."""
        lags, self._lags_ns = self._lags_ns, []
        return lags

    # -- read side
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
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(self._sql.load, aggregate_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error(f"load of {aggregate_id!r}", exc) from exc
        return [self._stored(aggregate_id, row) for row in rows]

    async def load_with_snapshot(
        self, aggregate_id: str
    ) -> tuple[dict[str, Any] | None, int, list[StoredEvent]]:
        """(snapshot state or None, snapshot version or 0, the events after it) in one query."""
        if self.config.snapshot_every == 0:
            return None, 0, await self.load(aggregate_id)
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(self._sql.load_snapshot, aggregate_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
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
                    self._sql.save_snapshot, aggregate_id, version, json.dumps(dict(state))
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error(f"snapshot of {aggregate_id!r}", exc) from exc

    async def load_order(self, aggregate_id: str) -> tuple[dict[str, Any] | None, int]:
        """The order's current state and version, snapshot-aware (None, 0 for a new order).

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

    # -- projector
    async def project(self, batch_size: int = 500) -> int:
        """Apply the next batch of events to ``order_summaries``; the number applied (0: idle).

        Concurrent calls are serialised by an advisory lock, so several tasks may call it.
        """
        pool = self._require_pool()
        sql = self._sql
        try:
            async with (
                pool.acquire() as conn,
                conn.transaction(),
            ):
                # Neither the lock nor the reads assign this transaction an xid, so the
                # tail query's snapshot horizon is not held back by the projector itself.
                await conn.execute(sql.projector_lock, self._lock_space, PROJECTOR)
                last_txid, last_position = await conn.fetchrow(sql.checkpoint, PROJECTOR)
                rows = await conn.fetch(sql.tail, last_txid, last_position, batch_size)
                if not rows:
                    return 0
                order_ids = list(dict.fromkeys(r["aggregate_id"] for r in rows))
                states: dict[str, dict[str, Any] | None] = {
                    r["order_id"]: json.loads(r["state"])
                    for r in await conn.fetch(sql.summaries_get, order_ids)
                }
                positions: dict[str, int] = {}
                for r in rows:
                    order_id = r["aggregate_id"]
                    states[order_id] = fold_order(
                        states.get(order_id), _Row(r["event_type"], r["version"])
                    )
                    positions[order_id] = r["global_position"]
                folded = [states[oid] or new_order_state() for oid in order_ids]
                await conn.execute(
                    sql.summaries_put,
                    order_ids,
                    [state["status"] for state in folded],
                    [state["version"] for state in folded],
                    [json.dumps(state) for state in folded],
                    [positions[oid] for oid in order_ids],
                )
                last = rows[-1]
                await conn.execute(
                    sql.checkpoint_put,
                    PROJECTOR,
                    last["txid_text"],
                    last["global_position"],
                    len(rows),
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error("projection", exc) from exc
        done_ns = time.monotonic_ns()
        commit_ns = self._commit_ns
        lags = self._lags_ns
        for r in rows:
            committed = commit_ns.pop(r["event_id"], None)
            if committed is None:
                self.projection_untimed += 1
            else:
                lags.append(done_ns - committed)
        return len(rows)

    async def projection_backlog(self) -> int:
        """Events stored (committed, visible now) that the projector has not applied yet."""
        pool = self._require_pool()
        async with pool.acquire() as conn:
            return int(await conn.fetchval(self._sql.backlog, PROJECTOR))

    async def catch_up(
        self, timeout_s: float = 30.0, batch_size: int = 500, poll_s: float = 0.01
    ) -> int:
        """Project until every committed event is applied; the number applied.

        Waits (polling) while an in-flight transaction holds the horizon back; raises
        DriverError when that takes longer than ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        total = 0
        while True:
            applied = await self.project(batch_size)
            total += applied
            if applied:
                continue
            backlog = await self.projection_backlog()
            if backlog == 0:
                return total
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"postgres: the projector is still {backlog} events behind after "
                    f"{timeout_s:g}s (a transaction stays open and holds the horizon back)"
                )
            await asyncio.sleep(poll_s)

    # -- idempotent consumption
    async def consume_idempotently(
        self, consumer: str, event_ids: Sequence[str]
    ) -> tuple[int, int]:
        """Handle ``event_ids`` for ``consumer`` exactly once: (processed, skipped duplicates).

        The processed-events insert and the consumer's read-model update (per-aggregate event
        tallies in ``consumer_tallies``) are one statement, hence one transaction.
        """
        if not event_ids:
            return 0, 0
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                processed = int(await conn.fetchval(self._sql.consume, consumer, list(event_ids)))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error(f"consumption by {consumer!r}", exc) from exc
        return processed, len(event_ids) - processed

    # -- ledger checks and counters
    async def stored_event_ids(self) -> set[str]:
        """Every stored event id (canonical lower-case uuid text)."""
        pool = self._require_pool()
        async with pool.acquire() as conn:
            return {r[0] for r in await conn.fetch(self._sql.event_ids)}

    async def check_ledger(
        self, acknowledged: Iterable[str], conflicted: Iterable[str]
    ) -> list[str]:
        """Check the engine's ledger: each acknowledged event stored exactly once, and no event
        of a conflicted attempt stored. Ids that a later attempt committed (a retry re-using its
        event ids) count as acknowledged, not conflicted. One sentence per violation."""
        acked = sorted({i.lower() for i in acknowledged})
        lost = sorted({i.lower() for i in conflicted} - set(acked))
        pool = self._require_pool()
        problems: list[str] = []
        async with pool.acquire() as conn:
            wrong = await conn.fetch(self._sql.ledger_acknowledged, acked)
            leaked = await conn.fetch(self._sql.ledger_conflicted, lost)
        for event_id, copies in wrong[:_EXAMPLES]:
            problems.append(f"acknowledged event {event_id} is stored {copies} times, not once")
        if len(wrong) > _EXAMPLES:
            problems.append(f"{len(wrong)} acknowledged events in all are not stored exactly once")
        for (event_id,) in leaked[:_EXAMPLES]:
            problems.append(f"event {event_id} of a conflicted append was stored anyway")
        if len(leaked) > _EXAMPLES:
            problems.append(f"{len(leaked)} events of conflicted appends in all were stored")
        return problems

    async def server_counters(self) -> dict[str, int]:
        """pg_stat_database for this database: diff a reading before and after a run.

        A backend publishes its counts when it goes idle, but at most once a second and
        otherwise only 10 s later; so first every connection of this driver is told to publish
        on its next idle moment (PostgreSQL 15+), which is the end of that same statement. The
        counts are for the whole database, other clients included. Call it between runs, not
        during one: it takes every connection in turn.
        """
        pool = self._require_pool()
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

    # -- invariants
    async def verify(self) -> list[str]:
        """The store's invariants; each violation as one sentence. Empty: all hold."""
        pool = self._require_pool()
        problems: list[str] = []
        try:
            # One snapshot for everything, so a projector running meanwhile cannot make its
            # checkpoint and its read model look inconsistent.
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                await self._verify_streams(conn, problems)
                await self._verify_projection(conn, problems)
                await self._verify_consumers(conn, problems)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._error("verify", exc) from exc
        return problems

    async def _verify_streams(self, conn: asyncpg.Connection, problems: list[str]) -> None:
        sql = self._sql
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
        if self.config.strategy == "streams_cas":
            rows = await conn.fetch(sql.streams_mismatch)
            for r in rows:
                problems.append(
                    f"{r[0]}: the streams table says version {r[1]} but the events end at {r[2]}"
                )
            if rows and rows[0]["total"] > len(rows):
                problems.append(f"{rows[0]['total']} streams in all disagree with their events")

    async def _verify_projection(self, conn: asyncpg.Connection, problems: list[str]) -> None:
        sql = self._sql
        last_txid, last_position = await conn.fetchrow(sql.checkpoint, PROJECTOR)
        summaries = {
            r["order_id"]: json.loads(r["state"]) for r in await conn.fetch(sql.summaries_all)
        }
        # The read model must equal the fold of exactly the events up to the checkpoint: an
        # event the projector skipped is below the checkpoint yet missing from the read model.
        folded: dict[str, dict[str, Any]] = {}
        async for r in conn.cursor(sql.projected_events, last_txid, last_position, prefetch=5000):
            order_id = r["aggregate_id"]
            folded[order_id] = fold_order(folded.get(order_id), _Row(r["event_type"], r["version"]))
        wrong = [
            order_id
            for order_id in sorted(folded.keys() | summaries.keys())
            if folded.get(order_id) != summaries.get(order_id)
        ]
        for order_id in wrong[:_EXAMPLES]:
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
        if len(wrong) > _EXAMPLES:
            problems.append(f"{len(wrong)} order summaries in all differ from the fold of events")

    async def _verify_consumers(self, conn: asyncpg.Connection, problems: list[str]) -> None:
        sql = self._sql
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


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None
