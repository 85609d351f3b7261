"""Appends: the six strategies a user compares, how each detects a conflict, and the
client-side counts of what every attempt became.

Strategies (``strategy``)
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
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields

import asyncpg

from bench.drivers.base import AppendResult, StoredEvent
from bench.drivers.postgres.config import Strategy
from bench.drivers.postgres.pool import Connections, RetryableStoreError, Scrubber
from bench.drivers.postgres.projector import CommitTimes
from bench.drivers.postgres.sql import VERSION_CONSTRAINT, Namespace

_EventArgs = tuple[list[str], list[str], list[str], list[str], list[str]]
_Remember = Callable[[list[str]], None]
_AppendFn = Callable[
    [asyncpg.Connection, Namespace, str, _EventArgs, int, _Remember], Awaitable[int]
]


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


class _Conflict(Exception):
    """Raised inside an append transaction to roll it back; carries the version found."""

    def __init__(self, found: int | None) -> None:
        super().__init__(found)
        self.found = found
        # None: the streams row did not match (streams_cas); else max(version) was not expected.
        self.cas_miss = found is None


def _rows_affected(status: str) -> int:
    # asyncpg returns the command tag: "INSERT 0 1", "UPDATE 0".
    return int(status.rsplit(" ", 1)[-1])


# --------------------------------------------------------------------------- strategies


async def _insert(
    conn: asyncpg.Connection, ns: Namespace, aggregate_id: str, args: _EventArgs, expected: int
) -> int:
    ids, types, event_types, payloads, metadata = args
    if len(ids) == 1:
        await conn.execute(
            ns.sql.insert_one,
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
            ns.sql.insert_many,
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
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    # One autocommit statement: the commit happens within this round trip.
    remember(args[0])
    return await _insert(conn, ns, aggregate_id, args, expected)


async def _append_checked(
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
    isolation: str = "read_committed",
) -> int:
    """Read the stream's version, compare, insert: max_then_insert (and its unsafe twin) in
    READ COMMITTED, where the unique constraint catches the race; serializable in SSI."""
    async with conn.transaction(isolation=isolation):
        return await _compare_and_insert(conn, ns, aggregate_id, args, expected, remember)


async def _compare_and_insert(
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    """Inside the caller's transaction: read the stream's version, and insert when it is the
    expected one (a conflict otherwise)."""
    found = await conn.fetchval(ns.sql.max_version, aggregate_id)
    if found != expected:
        raise _Conflict(found)
    new_version = await _insert(conn, ns, aggregate_id, args, expected)
    remember(args[0])
    return new_version


async def _append_serializable(
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    return await _append_checked(conn, ns, aggregate_id, args, expected, remember, "serializable")


async def _append_advisory_lock(
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    async with conn.transaction():
        # The max must be read by a later statement than the lock: in READ COMMITTED each
        # statement takes its snapshot when it starts, so one combined statement would read
        # the version as it was before the lock holder committed.
        await conn.execute(ns.sql.lock, ns.lock_space, aggregate_id)
        return await _compare_and_insert(conn, ns, aggregate_id, args, expected, remember)


async def _append_streams_cas(
    conn: asyncpg.Connection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    new_version = expected + len(args[0])
    async with conn.transaction():
        if expected == 0:
            status = await conn.execute(ns.sql.cas_new, aggregate_id, new_version)
        else:
            status = await conn.execute(ns.sql.cas_update, aggregate_id, expected, new_version)
        if _rows_affected(status) != 1:
            raise _Conflict(None)
        await _insert(conn, ns, aggregate_id, args, expected)
        remember(args[0])
    return new_version


STRATEGIES: dict[Strategy, _AppendFn] = {
    "max_then_insert": _append_checked,
    "unsafe_max_then_insert": _append_checked,
    "insert_only": _append_insert_only,
    "streams_cas": _append_streams_cas,
    "advisory_lock": _append_advisory_lock,
    "serializable": _append_serializable,
}


# --------------------------------------------------------------------------- outcomes


class Appender:
    """Runs one strategy's appends and sorts each attempt into commit, conflict or error."""

    def __init__(
        self,
        strategy: Strategy,
        commits: CommitTimes,
        scrubber: Scrubber,
        count_error: Callable[[str], None],
    ) -> None:
        self._append_fn = STRATEGIES[strategy]
        self._commits = commits
        self._scrubber = scrubber
        self._count_error = count_error
        self.counters = AppendCounters()

    async def append(
        self,
        pool: Connections,
        ns: Namespace,
        aggregate_id: str,
        events: list[StoredEvent],
        expected_version: int,
    ) -> AppendResult:
        """Append ``events`` at versions expected+1.. or report a conflict (see the module)."""
        if not events:
            raise ValueError("append needs at least one event")
        counters = self.counters
        commits = self._commits
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
                new_version = await self._append_fn(
                    conn, ns, aggregate_id, args, expected_version, commits.remember
                )
        except _Conflict as conflict:
            counters.conflicts += 1
            if conflict.cas_miss:
                counters.cas_misses += 1
            else:
                counters.version_mismatches += 1
            commits.forget(args[0])
            return AppendResult(committed=False, version=conflict.found)
        except asyncpg.PostgresError as exc:
            commits.forget(args[0])
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
                self._count_error("deadlock")
                raise RetryableStoreError(
                    f"postgres: deadlock appending to {aggregate_id!r}; nothing was stored",
                    sqlstate=code,
                ) from exc
            raise self._scrubber.error(f"append to {aggregate_id!r}", exc) from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            # The commit's fate is unknown when the connection drops: not a conflict.
            counters.errors += 1
            raise self._scrubber.error(f"append to {aggregate_id!r}", exc) from exc
        except BaseException:
            counters.errors += 1
            commits.forget(args[0])
            raise
        counters.commits += 1
        commits.confirm(args[0])
        return AppendResult(committed=True, version=new_version)
