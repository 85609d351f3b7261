"""Appends: the six strategies a user compares, how each detects a conflict, and the
client-side counts of what every attempt became.

Every strategy checks and inserts in one statement (``sql.Checked``, or the
``append_locked`` function that ``prepare_store`` creates), so an append is one round trip in
autocommit; ``serializable`` alone needs its BEGIN and COMMIT around that statement (three).

Strategies (``strategy``)
    ``max_then_insert``   one statement: max(version), compare, INSERT when it is the expected
                          one; returns the version found. The unique constraint catches the race
                          between the read and the insert.
    ``insert_only``       one INSERT at expected+1..; the unique violation is the conflict.
    ``streams_cas``       one statement: UPDATE streams … WHERE version = expected (or INSERT …
                          ON CONFLICT DO NOTHING for a new stream) and the events' INSERT from
                          its RETURNING row; 0 rows = conflict (a cas miss).
    ``advisory_lock``     ``append_locked()``: pg_advisory_xact_lock(schema, aggregate), then
                          max, compare, INSERT, each statement on a fresh snapshot.
    ``serializable``      BEGIN ISOLATION LEVEL SERIALIZABLE; the max_then_insert statement;
                          COMMIT. 40001 and 23505 are conflicts.
    ``unsafe_max_then_insert``  max_then_insert on a schema *without* the unique constraint:
                          the negative control. It forks streams under contention and
                          ``verify()`` reports the duplicate versions.

With the outbox (``use_outbox()``), each strategy's statement also copies the events it
inserted into ``outbox`` (``sql.py``; for ``advisory_lock`` inside ``append_locked``, for
``serializable`` inside its transaction), and takes the aggregate's shard key as its last
parameter: still one statement, so the outbox rows commit or vanish with the events, and a
conflict, which inserts no event, writes no outbox row (``outbox.py``).

SQLSTATE 23505 on the (aggregate, version) constraint and 40001 are conflicts
(``AppendResult(committed=False)``); 40P01 is counted as ``"deadlock"`` and raised as
``RetryableStoreError``; every other database error is raised as ``StoreError``.

A version mismatch or a cas miss inserted nothing, but in autocommit its one statement's
transaction ends as a commit of nothing (it was a rollback when the check was its own
statement): the server's ``xact_rollback`` counts only the conflicts that raised an error.

Each append statement is prepared once per connection (``StoreConnection.value``), then
every call is one Bind/Execute/Sync through the prepared statement's ``fetchval``: measured
here (benchmarks/pgbench_append.py's raw loop shape, 4 and 16 connections), 3 to 10 µs of
client CPU per call less than ``Connection.fetchval`` with its statement-cache lookup. A
connection is taken and given back without a coroutine when one is idle (``Connections.take``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from bench.drivers.base import AppendResult, StoredEvent
from bench.drivers.postgres.config import Strategy
from bench.drivers.postgres.outbox import shard_key
from bench.drivers.postgres.pool import (
    Connections,
    RetryableStoreError,
    Scrubber,
    StoreConnection,
)
from bench.drivers.postgres.projector import CommitTimes
from bench.drivers.postgres.sql import VERSION_CONSTRAINT, Namespace

_EventArgs = tuple[list[str], list[str], list[str], list[str], list[str]]
_Remember = Callable[[list[str]], None]
_AppendFn = Callable[[StoreConnection, Namespace, str, _EventArgs, int, _Remember], Awaitable[int]]


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


# Metadata repeats (the workload's is {"command": name}): the JSON of string-only metadata is
# encoded once per content (only strings: 1, 1.0 and True are equal keys with different JSON).
_METADATA_JSON: dict[tuple[tuple[str, str], ...], str] = {}
_METADATA_JSON_LIMIT = 4096


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    items = tuple(metadata.items())
    # Only string-valued items are cached, and a str never equals a non-str: a hit is exact.
    text = _METADATA_JSON.get(items)
    if text is not None:
        return text
    text = json.dumps(dict(metadata))
    if len(_METADATA_JSON) < _METADATA_JSON_LIMIT and all(type(v) is str for _, v in items):
        _METADATA_JSON[items] = text
    return text


class _Conflict(Exception):
    """The append's check failed (nothing was inserted; inside serializable's transaction it
    rolls the transaction back); carries the version found."""

    def __init__(self, found: int | None) -> None:
        super().__init__(found)
        self.found = found
        # None: the streams row did not match (streams_cas); else max(version) was not expected.
        self.cas_miss = found is None


# --------------------------------------------------------------------------- strategies


def _params(
    ns: Namespace, aggregate_id: str, args: _EventArgs, expected: int
) -> tuple[object, ...]:
    """The one-statement appends' parameters (see ``sql.Checked``): scalars for one event,
    arrays for several, and the shard key last when the appends write the outbox."""
    ids, types, event_types, payloads, metadata = args
    if len(ids) == 1:
        params: tuple[object, ...] = (
            ids[0],
            aggregate_id,
            types[0],
            event_types[0],
            expected,
            payloads[0],
            metadata[0],
        )
    else:
        params = (ids, aggregate_id, expected, types, event_types, payloads, metadata)
    return (*params, shard_key(aggregate_id)) if ns.outbox else params


async def _append_insert_only(
    conn: StoreConnection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    # One autocommit statement: the commit happens within this round trip.
    ids = args[0]
    remember(ids)
    if len(ids) == 1:
        # insert_one's $5 is the version itself, not the expected one.
        await conn.value(ns.sql.insert_one, _params(ns, aggregate_id, args, expected + 1))
    else:
        await conn.value(ns.sql.insert_many, _params(ns, aggregate_id, args, expected))
    return expected + len(ids)


async def _append_checked(
    conn: StoreConnection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    """max_then_insert (and its unsafe twin): one autocommit statement reads the version and
    inserts when it is the expected one."""
    remember(args[0])
    statement = ns.sql.checked.max_then_insert[len(args[0]) > 1]
    found = await conn.value(statement, _params(ns, aggregate_id, args, expected))
    if found != expected:
        raise _Conflict(found)
    return expected + len(args[0])


async def _append_serializable(
    conn: StoreConnection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    # The same statement as max_then_insert, in a SERIALIZABLE transaction (SSI): the
    # isolation level can only be chosen by the BEGIN.
    statement = ns.sql.checked.max_then_insert[len(args[0]) > 1]
    async with conn.transaction(isolation="serializable"):
        found = await conn.value(statement, _params(ns, aggregate_id, args, expected))
        if found != expected:
            raise _Conflict(found)
        remember(args[0])
    return expected + len(args[0])


async def _append_advisory_lock(
    conn: StoreConnection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    # append_locked() takes the lock, then reads the max on a fresh snapshot (sql.py says why
    # that needs a function), in one autocommit round trip.
    ids, types, event_types, payloads, metadata = args
    remember(ids)
    params: tuple[object, ...] = (
        ns.lock_space,
        aggregate_id,
        expected,
        ids,
        types,
        event_types,
        payloads,
        metadata,
    )
    if ns.outbox:
        params = (*params, shard_key(aggregate_id))
    found = await conn.value(ns.sql.append_locked, params)
    if found != expected:
        raise _Conflict(found)
    return expected + len(ids)


async def _append_streams_cas(
    conn: StoreConnection,
    ns: Namespace,
    aggregate_id: str,
    args: _EventArgs,
    expected: int,
    remember: _Remember,
) -> int:
    checked = ns.sql.checked
    many = len(args[0]) > 1
    statement = checked.cas_new[many] if expected == 0 else checked.cas_update[many]
    remember(args[0])
    changed = await conn.value(statement, _params(ns, aggregate_id, args, expected))
    if changed != 1:
        raise _Conflict(None)
    return expected + len(args[0])


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
        if len(events) == 1:
            e = events[0]
            args: _EventArgs = (
                [e.event_id],
                [e.aggregate_type],
                [e.event_type],
                [e.payload.decode()],
                [_metadata_json(e.metadata)],
            )
        else:
            args = (
                [e.event_id for e in events],
                [e.aggregate_type for e in events],
                [e.event_type for e in events],
                [e.payload.decode() for e in events],
                [_metadata_json(e.metadata) for e in events],
            )
        conn = None
        try:
            # An idle connection without a coroutine (nearly always, one writer per
            # connection); else wait for one, or reconnect a closed one.
            conn = pool.take() or await pool.get()
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
            await pool.put(conn)  # type: ignore[arg-type]  # a conflict had a connection
            return AppendResult(committed=False, version=conflict.found)
        except asyncpg.PostgresError as exc:
            commits.forget(args[0])
            if conn is not None:
                await pool.put(conn)
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
            if conn is not None:
                await pool.put(conn)
            raise self._scrubber.error(f"append to {aggregate_id!r}", exc) from exc
        except BaseException:
            counters.errors += 1
            commits.forget(args[0])
            if conn is not None:
                await pool.put(conn)
            raise
        if conn.is_in_transaction():  # never after a commit; put() rolls back
            await pool.put(conn)
        else:
            pool.give(conn)
        counters.commits += 1
        commits.confirm(args[0])
        return AppendResult(committed=True, version=new_version)
