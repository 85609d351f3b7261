"""Every SQL statement of the driver, for one run point's schema.

``prepare_store(namespace)`` drops and recreates one PostgreSQL schema per run point
(``namespace`` sanitised to an identifier, else the configured ``schema``) holding:
``events`` (uuid primary key, ``unique (aggregate_id, version)`` except for the negative
control, a ``global_position`` identity and the writing transaction's ``txid``),
``streams`` (for ``streams_cas``), ``snapshots``, ``order_summaries`` (the read model),
``projections`` (the projector's checkpoint), ``processed_events`` and
``consumer_tallies`` (idempotent consumption).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# The unique constraint whose violation is a version conflict (a duplicate event id is not).
VERSION_CONSTRAINT = "events_stream_version"
PROJECTOR = "order_summaries"
# Examples listed per kind of violation; the total is always given.
EXAMPLES = 10
# What the fold reads of an event's payload: the workload wraps the domain data in "data"
# next to its padding (bench/workload.py), so only that much leaves the server.
EVENT_DATA = "coalesce(e.payload -> 'data', e.payload)"


EVENT_COLUMNS = "event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Namespace:
    """One run point's schema: its name, its statements and its advisory lock space."""

    schema: str
    sql: Sql
    lock_space: int

    @classmethod
    def of(cls, schema: str, unsafe: bool) -> Namespace:
        # Advisory locks are cluster-wide; keying them by schema keeps run points apart.
        return cls(schema, Sql(schema, unsafe), zlib.crc32(schema.encode()) - 2**31)


class Sql:
    """Every statement, qualified with one run point's schema (quoted, never interpolated raw)."""

    def __init__(self, schema: str, unsafe: bool) -> None:
        s = quote(schema)
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
        cols = EVENT_COLUMNS
        self.insert_one = f"INSERT INTO {s}.events ({cols}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        # One statement for any number of events (one round trip); ORDER BY keeps the
        # identity values in version order.
        self.insert_many = f"""INSERT INTO {s}.events ({cols})
            SELECT e.event_id, $2, e.aggregate_type, e.event_type, $3::int + e.ord::int,
                   e.payload, e.metadata
            FROM unnest($1::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata, ord)
            ORDER BY e.ord"""
        self.checked = Checked(s)
        self.append_locked = (
            f"SELECT {s}.append_locked($1::int, $2::text, $3::int, $4::uuid[], $5::text[], "
            "$6::text[], $7::jsonb[], $8::jsonb[])"
        )
        self.create.append(_append_locked_function(s, cols))
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
                   {EVENT_DATA} AS data, e.txid::text AS txid_text, e.global_position
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
            ORDER BY aggregate_id, version LIMIT {EXAMPLES}"""
        self.gaps = f"""SELECT aggregate_id, min(version) AS lo, max(version) AS hi,
                   count(DISTINCT version) AS n, count(*) OVER () AS total
            FROM {s}.events GROUP BY aggregate_id
            HAVING min(version) <> 1 OR max(version) <> count(DISTINCT version)
            ORDER BY aggregate_id LIMIT {EXAMPLES}"""
        self.streams_mismatch = f"""SELECT coalesce(st.aggregate_id, ev.aggregate_id), st.version,
                   ev.version, count(*) OVER () AS total
            FROM {s}.streams st
            FULL JOIN (SELECT aggregate_id, max(version) AS version FROM {s}.events
                       GROUP BY aggregate_id) ev ON ev.aggregate_id = st.aggregate_id
            WHERE st.version IS DISTINCT FROM ev.version
            ORDER BY 1 LIMIT {EXAMPLES}"""
        self.processed_dups = f"""SELECT consumer, event_id::text, count(*) AS copies,
                   count(*) OVER () AS total
            FROM {s}.processed_events GROUP BY consumer, event_id HAVING count(*) > 1
            ORDER BY 1, 2 LIMIT {EXAMPLES}"""
        self.tally_mismatch = f"""WITH expected AS (
                SELECT p.consumer, e.aggregate_id, count(*) AS n
                FROM {s}.processed_events p JOIN {s}.events e USING (event_id)
                GROUP BY p.consumer, e.aggregate_id)
            SELECT coalesce(x.consumer, t.consumer), coalesce(x.aggregate_id, t.aggregate_id),
                   x.n, t.events, count(*) OVER () AS total
            FROM expected x FULL JOIN {s}.consumer_tallies t
                 ON t.consumer = x.consumer AND t.aggregate_id = x.aggregate_id
            WHERE x.n IS DISTINCT FROM t.events
            ORDER BY 1, 2 LIMIT {EXAMPLES}"""
        self.summaries_all = f"SELECT order_id, state FROM {s}.order_summaries"
        self.projected_events = f"""SELECT e.aggregate_id, e.event_type, e.version,
                   {EVENT_DATA} AS data
            FROM {s}.events e
            WHERE (e.txid, e.global_position) <= ($1::text::xid8, $2::bigint)
            ORDER BY e.aggregate_id, e.version, e.txid, e.global_position"""


# --------------------------------------------------------------------------- one-statement appends
#
# Each append strategy's check and insert in one statement, so that an append is one round trip
# in autocommit (serializable alone wraps it in BEGIN … COMMIT: an isolation level cannot be
# chosen from inside a statement). Parameters, for one event:
#     $1 event_id, $2 aggregate_id, $3 aggregate_type, $4 event_type, $5 expected, $6 payload,
#     $7 metadata
# and for several (arrays, in version order):
#     $1 event_ids, $2 aggregate_id, $3 expected, $4 aggregate_types, $5 event_types,
#     $6 payloads, $7 metadata
# The events get versions expected+1, expected+2, … Every statement returns one value.


def _insert_guarded(s: str, source: str, where: str, many: bool) -> str:
    """INSERT the append's events, selected FROM ``source`` WHERE ``where``: no row of the
    guard, no events (the guard decides, in the same statement and snapshot)."""
    if many:
        return f"""INSERT INTO {s}.events ({EVENT_COLUMNS})
            SELECT e.event_id, $2::text, e.aggregate_type, e.event_type, $3::int + e.ord::int,
                   e.payload, e.metadata
            FROM {source},
                 unnest($1::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata, ord)
            WHERE {where}
            ORDER BY e.ord"""
    return f"""INSERT INTO {s}.events ({EVENT_COLUMNS})
            SELECT $1::uuid, $2::text, $3::text, $4::text, $5::int + 1, $6::jsonb, $7::jsonb
            FROM {source} WHERE {where}"""


def _expected(many: bool) -> str:
    return "$3::int" if many else "$5::int"


def _new_version(many: bool) -> str:
    return "$3::int + cardinality($1::uuid[])" if many else "$5::int + 1"


class Checked:
    """The one-statement appends, each as (one event, several events).

    ``max_then_insert`` (and its unsafe twin, and serializable inside its transaction):
        reads max(version) and inserts only when it is the expected one, in one statement (one
        snapshot); returns the version found. Found ≠ expected: a version mismatch, nothing
        inserted. The race between the read and the insert is still caught by the unique
        constraint (23505), as with two statements: a read-committed snapshot is per statement.
    ``streams_cas``:
        the compare-and-set on ``streams`` (UPDATE … WHERE version = expected, or INSERT … ON
        CONFLICT DO NOTHING for a new stream) and the events' INSERT selected from its RETURNING
        row; returns the rows the compare-and-set changed (0: a cas miss, nothing inserted).
        A concurrent UPDATE makes this one wait for its row and re-check ``version = expected``
        on the committed row (read committed's re-evaluation), exactly as the two statements did.
    """

    def __init__(self, s: str) -> None:
        self.max_then_insert = tuple(
            f"""WITH cur AS (
                    SELECT coalesce(max(version), 0) AS v FROM {s}.events
                    WHERE aggregate_id = $2::text
                ), ins AS ({_insert_guarded(s, "cur", f"cur.v = {_expected(many)}", many)}
                    RETURNING 1)
                SELECT v FROM cur"""
            for many in (False, True)
        )
        self.cas_new = tuple(
            f"""WITH cas AS (
                    INSERT INTO {s}.streams (aggregate_id, version)
                    VALUES ($2::text, {_new_version(many)})
                    ON CONFLICT (aggregate_id) DO NOTHING RETURNING 1
                ), ins AS ({_insert_guarded(s, "cas", "true", many)} RETURNING 1)
                SELECT count(*)::int FROM cas"""
            for many in (False, True)
        )
        self.cas_update = tuple(
            f"""WITH cas AS (
                    UPDATE {s}.streams SET version = {_new_version(many)}
                    WHERE aggregate_id = $2::text AND version = {_expected(many)} RETURNING 1
                ), ins AS ({_insert_guarded(s, "cas", "true", many)} RETURNING 1)
                SELECT count(*)::int FROM cas"""
            for many in (False, True)
        )


def _append_locked_function(s: str, cols: str) -> str:
    """``advisory_lock`` as a server-side function: one round trip in autocommit.

    The max must be read after the lock is held, by a statement that starts after it: a
    read-committed statement reads a snapshot taken when it starts, so a single SQL statement
    would read the version as it was before the previous lock holder committed. In a VOLATILE
    PL/pgSQL function each statement takes a fresh snapshot (as separate statements from the
    client did), and the transaction-level lock is held until the implicit transaction ends.
    Returns the version found: ≠ expected is a version mismatch, and nothing was inserted.
    """
    return f"""CREATE FUNCTION {s}.append_locked(
            p_space int, p_aggregate text, p_expected int, p_ids uuid[], p_types text[],
            p_event_types text[], p_payloads jsonb[], p_metadata jsonb[]
        ) RETURNS int LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            found_version int;
        BEGIN
            PERFORM pg_advisory_xact_lock(p_space, hashtext(p_aggregate));
            SELECT coalesce(max(ev.version), 0) INTO found_version
              FROM {s}.events ev WHERE ev.aggregate_id = p_aggregate;
            IF found_version <> p_expected THEN
                RETURN found_version;
            END IF;
            INSERT INTO {s}.events ({cols})
            SELECT e.event_id, p_aggregate, e.aggregate_type, e.event_type,
                   p_expected + e.ord::int, e.payload, e.metadata
              FROM unnest(p_ids, p_types, p_event_types, p_payloads, p_metadata)
                   WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata,
                                        ord)
             ORDER BY e.ord;
            RETURN found_version;
        END
        $fn$"""
