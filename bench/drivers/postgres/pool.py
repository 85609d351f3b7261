"""The driver's connections to the server: opening them with one-line errors, lending them
out, and turning a database error into a ``StoreError`` with the DSN's secrets scrubbed."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.drivers.postgres.config import PostgresConfig, dsn_address, dsn_secrets
from bench.errors import DriverError
from bench.redaction import redact_text

# What a store operation may raise from the database or the network.
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# How often a connect retries while the server says it is starting up (57P03).
STARTING_UP_RETRY_S = 0.1


class StoreError(DriverError):
    """A database error during a store operation that is neither a conflict nor retryable."""

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class RetryableStoreError(StoreError):
    """The attempt failed for a reason a retry can cure (a deadlock): nothing was stored."""


class Scrubber:
    """Removes a DSN's secrets from text that may reach a user, and names failures with it."""

    def __init__(self, dsn: str) -> None:
        self._secrets = dsn_secrets(dsn)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_text(text)

    def error(self, what: str, exc: BaseException) -> StoreError:
        """``what`` failed because of ``exc``, as one line (with the SQLSTATE when there is one)."""
        if isinstance(exc, asyncpg.PostgresError):
            code = exc.sqlstate
            return StoreError(
                f"postgres: {what} failed: SQLSTATE {code}: {self.scrub(str(exc))}", sqlstate=code
            )
        return StoreError(f"postgres: {what} failed: {self.scrub(repr(exc))}")


class StoreConnection(asyncpg.Connection):
    """asyncpg's connection, with the append statements prepared on it once.

    ``value(query, args)`` runs a prepared statement's ``fetchval``: the same
    Bind/Execute/Sync as ``Connection.fetchval``, without its per-call statement-cache lookup
    and three Python layers (measured here: 3 to 10 µs of client CPU less per call, within
    1 to 4 µs of asyncpg's protocol called directly, which is private API).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: dict[str, Any] = {}

    async def value(self, query: str, args: tuple[object, ...]) -> Any:
        statement = self.prepared.get(query)
        if statement is None:
            statement = await self.prepare(query)
            self.prepared[query] = statement
        try:
            return await statement.fetchval(*args)
        except asyncpg.InvalidCachedStatementError:
            # The schema changed under the statement (a run point recreated it): prepare anew.
            del self.prepared[query]
            raise


class Lease:
    """``async with connections.acquire() as conn``: one connection, returned on exit."""

    __slots__ = ("_conn", "_owner")

    def __init__(self, owner: Connections) -> None:
        self._owner = owner
        self._conn: StoreConnection | None = None

    async def __aenter__(self) -> StoreConnection:
        self._conn = await self._owner.get()
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._owner.put(self._conn)


class Connections:
    """A fixed set of connections handed out last-in first-out.

    asyncpg's Pool spends about 45 µs of client CPU per acquire and release with a timeout (a
    wait_for task, a shielded release task, a reset query unless replaced): measured here it
    took appends from 11.7k/s to 7.8k/s at 16 writers. The driver keeps no session state, so it
    needs none of that: a list of open connections, reopened when one is found closed, and a
    FIFO of futures for writers that find none idle (a returned connection goes straight to
    the first of them). The append path takes and returns a connection without a coroutine
    (``take`` / ``give``) when one is idle, as it nearly always is with one writer per
    connection.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[StoreConnection]],
        size: int,
        acquire_timeout_s: float,
        on_reconnect: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._size = size
        self._acquire_timeout_s = acquire_timeout_s
        self._on_reconnect = on_reconnect
        self._idle: list[StoreConnection] = []
        self._waiters: deque[asyncio.Future[StoreConnection]] = deque()
        self._all: list[StoreConnection] = []

    async def open(self) -> None:
        results = await asyncio.gather(
            *(self._connect() for _ in range(self._size)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, StoreConnection)]
        failed = [r for r in results if not isinstance(r, StoreConnection)]
        if failed:
            for conn in opened:
                conn.terminate()
            raise failed[0]
        self._all = opened
        self._idle = list(opened)

    def acquire(self) -> Lease:
        return Lease(self)

    def forget_statements(self) -> None:
        """Drop every connection's prepared appends (the schema they name was recreated)."""
        for conn in self._all:
            conn.prepared.clear()

    def take(self) -> StoreConnection | None:
        """An idle open connection, or None (then ``get`` waits for one or reconnects)."""
        idle = self._idle
        if idle and not idle[-1].is_closed():
            return idle.pop()
        return None

    def give(self, conn: StoreConnection) -> None:
        """Return a connection that is not inside a transaction (else ``put``)."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def get(self) -> StoreConnection:
        idle = self._idle
        if idle:
            conn = idle.pop()
        else:
            # More writers than connections: they queue here, as long as acquire_timeout.
            waiter: asyncio.Future[StoreConnection] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self._acquire_timeout_s):
                    conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection in the same turn as the timeout or a cancel.
                    self.give(waiter.result())
                else:
                    waiter.cancel()
                raise
        if conn.is_closed():
            try:
                fresh = await self._connect()
            except BaseException:
                self.give(conn)  # keep the slot; the next get tries again
                raise
            self._all[self._all.index(conn)] = fresh
            self._on_reconnect()
            conn = fresh
        return conn

    async def put(self, conn: StoreConnection) -> None:
        # A transaction can only be left open by a cancellation inside its rollback.
        if not conn.is_closed() and conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except DB_ERRORS:
                conn.terminate()
        self.give(conn)

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


async def open_connections(
    config: PostgresConfig, scrubber: Scrubber, on_reconnect: Callable[[], None]
) -> Connections:
    """``pool_size`` connections within ``connect_timeout``; DriverError with one line if not."""
    dsn = config.dsn.get_secret_value()
    address = dsn_address(dsn)
    settings = {
        "application_name": "eventbench",
        "statement_timeout": str(round(config.statement_timeout * 1000)),
    }
    kwargs: dict[str, Any] = {}
    if config.ssl is not None:
        kwargs["ssl"] = config.ssl

    async def connect() -> asyncpg.Connection:
        # A server that is starting up (after a restart, or a crash recovery) refuses with
        # SQLSTATE 57P03 for a moment: that is worth waiting for, within connect_timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.connect_timeout
        while True:
            try:
                conn: StoreConnection = await asyncpg.connect(
                    dsn,
                    timeout=max(0.001, deadline - loop.time()),
                    server_settings=settings,
                    connection_class=StoreConnection,
                    **kwargs,
                )
                return conn
            except asyncpg.CannotConnectNowError:
                if loop.time() + STARTING_UP_RETRY_S >= deadline:
                    raise
                await asyncio.sleep(STARTING_UP_RETRY_S)

    connections = Connections(connect, config.pool_size, config.acquire_timeout, on_reconnect)
    try:
        await asyncio.wait_for(connections.open(), timeout=config.connect_timeout)
    except TimeoutError:
        raise DriverError(
            f"postgres: no answer from {address} within {config.connect_timeout:g}s",
            hint="is PostgreSQL running? `bench up postgres` starts the local one",
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = scrubber.scrub(str(exc).strip() or type(exc).__name__)
        raise DriverError(
            f"postgres: cannot connect to {address}: {reason}",
            hint="check the dsn (BENCH_POSTGRES_DSN) and that the server accepts connections",
        ) from None
    return connections
