"""Every SQL statement of the driver, for one run point's schema.

``prepare_store(namespace)`` drops and recreates one PostgreSQL schema per run point
(``namespace`` sanitised to an identifier, else the configured ``schema``) holding:
``events`` (uuid primary key, ``unique (aggregate_id, version)`` except for the negative
control, a ``global_position`` identity and the writing transaction's ``txid``),
``streams`` (for ``streams_cas``), ``snapshots``, ``order_summaries`` (the read model),
``projections`` (the projector's checkpoint), ``processed_events`` and
``consumer_tallies`` (idempotent consumption), and the pipeline's read model
(``pipeline_summaries``, ``pipeline_processed`` and the ``apply_event`` function). After
``use_outbox()`` it also holds ``outbox``, and every append statement writes it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from bench.domain import ADD, CANCEL, CONFIRM, EVENT_OF, PLACE, SHIP
from bench.drivers.base import APPLIED, DUPLICATE_APPLIED, DUPLICATE_SKIPPED, OUT_OF_ORDER

# The unique constraint whose violation is a version conflict (a duplicate event id is not).
VERSION_CONSTRAINT = "events_stream_version"
PROJECTOR = "order_summaries"
# Examples listed per kind of violation; the total is always given.
EXAMPLES = 10
# What the fold reads of an event's payload: the workload wraps the domain data in "data"
# next to its padding (bench/workload.py), so only that much leaves the server.
EVENT_DATA = "coalesce(e.payload -> 'data', e.payload)"


EVENT_COLUMNS = "event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata"
OUTBOX_COLUMNS = f"shard_key, {EVENT_COLUMNS}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Namespace:
    """One run point's schema: its name, its statements and its advisory lock space, and
    whether its appends write the outbox (their statements then take the shard key last)."""

    schema: str
    sql: Sql
    lock_space: int
    outbox: bool = False

    @classmethod
    def of(cls, schema: str, unsafe: bool, outbox: bool = False) -> Namespace:
        # Advisory locks are cluster-wide; keying them by schema keeps run points apart.
        return cls(schema, Sql(schema, unsafe, outbox), lock_space_of(schema), outbox)


def lock_space_of(key: str) -> int:
    """An advisory lock space (int4) for ``key``: crc32, shifted into int4's range."""
    return zlib.crc32(key.encode()) - 2**31


class Sql:
    """Every statement, qualified with one run point's schema (quoted, never interpolated raw)."""

    def __init__(self, schema: str, unsafe: bool, outbox: bool = False) -> None:
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
            *_read_model_tables(s),
            _apply_event_function(s, lock_space_of(f"{schema}/read_model")),
        ]
        if outbox:
            self.create.append(_outbox_table(s))
        self.drop = f"DROP SCHEMA IF EXISTS {s} CASCADE"
        cols = EVENT_COLUMNS
        insert_one = f"INSERT INTO {s}.events ({cols}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        # One statement for any number of events (one round trip); ORDER BY keeps the
        # identity values in version order.
        insert_many = f"""INSERT INTO {s}.events ({cols})
            SELECT e.event_id, $2, e.aggregate_type, e.event_type, $3::int + e.ord::int,
                   e.payload, e.metadata
            FROM unnest($1::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata, ord)
            ORDER BY e.ord"""
        if outbox:
            # The outbox rows come from the events INSERT's RETURNING, in the same statement:
            # a unique violation aborts both, and a commit commits both.
            insert_one, insert_many = (
                f"WITH ins AS ({insert} RETURNING {cols}) {_to_outbox(s, '$8::bigint')}"
                for insert in (insert_one, insert_many)
            )
        self.insert_one = insert_one
        self.insert_many = insert_many
        self.checked = Checked(s, outbox)
        self.append_locked = (
            f"SELECT {s}.append_locked($1::int, $2::text, $3::int, $4::uuid[], $5::text[], "
            "$6::text[], $7::jsonb[], $8::jsonb[]" + (", $9::bigint)" if outbox else ")")
        )
        self.create.append(_append_locked_function(s, cols, outbox))
        # A migration step (HistoryStore.rewrite_events): events keep their id, stream and
        # version; only what they carry changes.
        self.rewrite = f"""UPDATE {s}.events e SET payload = u.payload, metadata = u.metadata
            FROM unnest($1::uuid[], $2::jsonb[], $3::jsonb[]) AS u(event_id, payload, metadata)
            WHERE e.event_id = u.event_id"""
        # An orchestrator's saga state (SagaStateStore).
        self.create_saga_state = f"""CREATE TABLE IF NOT EXISTS {s}.saga_state (
                saga_id text PRIMARY KEY,
                status text NOT NULL,
                step int NOT NULL,
                version int NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )"""
        # A write older than the stored state (a retry that hung while the server was down)
        # changes nothing.
        self.save_saga_state = f"""INSERT INTO {s}.saga_state (saga_id, status, step, version)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (saga_id) DO UPDATE
               SET status = excluded.status, step = excluded.step, version = excluded.version,
                   updated_at = now()
               WHERE {s}.saga_state.version < excluded.version"""
        self.load_saga_states = f"SELECT saga_id, status, step FROM {s}.saga_state"
        self.seed_streams = f"""INSERT INTO {s}.streams (aggregate_id, version)
            SELECT * FROM unnest($1::text[], $2::int[])"""
        self.seed_snapshots = f"""INSERT INTO {s}.snapshots (aggregate_id, version, state)
            SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[])
            ON CONFLICT (aggregate_id) DO UPDATE
               SET version = excluded.version, state = excluded.state, taken_at = now()"""
        # Archiving (HistoryStore): the events a snapshot covers leave the live table.
        self.create_archive = f"""CREATE TABLE IF NOT EXISTS {s}.events_archive (
                event_id uuid PRIMARY KEY,
                aggregate_id text NOT NULL,
                aggregate_type text NOT NULL,
                event_type text NOT NULL,
                version int NOT NULL,
                payload jsonb NOT NULL,
                metadata jsonb NOT NULL,
                recorded_at timestamptz NOT NULL,
                global_position bigint NOT NULL,
                UNIQUE (aggregate_id, version)
            )"""
        archived_cols = (
            "event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata, "
            "recorded_at, global_position"
        )
        self.archive = f"""WITH moved AS (
                DELETE FROM {s}.events e USING {s}.snapshots n
                 WHERE e.aggregate_id = n.aggregate_id AND e.version <= n.version
             RETURNING e.*)
            INSERT INTO {s}.events_archive ({archived_cols})
            SELECT {archived_cols} FROM moved"""
        self.load_archived = (
            "SELECT e.event_id, e.aggregate_type, e.event_type, e.version, e.payload, "
            f"e.metadata FROM {s}.events_archive e WHERE e.aggregate_id = $1 ORDER BY e.version"
        )
        self.vacuum_events = f"VACUUM FULL {s}.events"  # the archive is only ever appended
        self.table_bytes = (
            f"SELECT pg_total_relation_size('{s}.events'), "
            f"coalesce(pg_total_relation_size(to_regclass('{s}.events_archive')), 0)"
        )
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
        # -- the outbox (bench/drivers/postgres/outbox.py)
        self.outbox_fetch = f"""SELECT o.position, o.event_id::text, o.aggregate_id,
                   o.aggregate_type, o.event_type, o.version, o.payload, o.metadata
            FROM {s}.outbox o
            WHERE o.shard_key % $2::bigint = $1::bigint
            ORDER BY o.position
            LIMIT $3"""
        self.outbox_mark = f"DELETE FROM {s}.outbox WHERE position = ANY($1::bigint[])"
        self.outbox_pending = f"SELECT count(*) FROM {s}.outbox"
        # -- the pipeline's read model (projector.py)
        self.read_model_empty = f"TRUNCATE {s}.pipeline_summaries, {s}.pipeline_processed"
        self.apply_event = (
            f"SELECT {s}.apply_event($1::bool, $2::uuid, $3::text, $4::text, $5::int, $6::jsonb)"
        )
        summary_cols = "aggregate_id, version, status, order_no, items, total_cents"
        self.read_summary = (
            f"SELECT {summary_cols} FROM {s}.pipeline_summaries WHERE aggregate_id = $1"
        )
        self.read_summaries = f"SELECT {summary_cols} FROM {s}.pipeline_summaries"


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
# With the outbox, every statement takes one more parameter, $8 shard_key (outbox.shard_key),
# and copies the events INSERT's RETURNING rows into the outbox in the same statement.


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


def _to_outbox(s: str, shard_key: str) -> str:
    """INSERT the rows of ``ins`` (the events INSERT's RETURNING) into the outbox. ORDER BY
    version: within one append, the outbox positions follow the versions (RETURNING's order
    is not promised)."""
    return f"""INSERT INTO {s}.outbox ({OUTBOX_COLUMNS})
            SELECT {shard_key}, {EVENT_COLUMNS} FROM ins ORDER BY version"""


def _inserted(s: str, source: str, where: str, many: bool, outbox: bool) -> str:
    """The WITH items that run the guarded events INSERT (``ins``), and with the outbox, copy
    what it inserted there: a guard that inserts no event leaves no outbox row either."""
    insert = _insert_guarded(s, source, where, many)
    if not outbox:
        return f"ins AS ({insert} RETURNING 1)"
    return (
        f"ins AS ({insert} RETURNING {EVENT_COLUMNS}), "
        f"ob AS ({_to_outbox(s, '$8::bigint')} RETURNING 1)"
    )


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

    def __init__(self, s: str, outbox: bool = False) -> None:
        self.max_then_insert = tuple(
            f"""WITH cur AS (
                    SELECT coalesce(max(version), 0) AS v FROM {s}.events
                    WHERE aggregate_id = $2::text
                ), {_inserted(s, "cur", f"cur.v = {_expected(many)}", many, outbox)}
                SELECT v FROM cur"""
            for many in (False, True)
        )
        self.cas_new = tuple(
            f"""WITH cas AS (
                    INSERT INTO {s}.streams (aggregate_id, version)
                    VALUES ($2::text, {_new_version(many)})
                    ON CONFLICT (aggregate_id) DO NOTHING RETURNING 1
                ), {_inserted(s, "cas", "true", many, outbox)}
                SELECT count(*)::int FROM cas"""
            for many in (False, True)
        )
        self.cas_update = tuple(
            f"""WITH cas AS (
                    UPDATE {s}.streams SET version = {_new_version(many)}
                    WHERE aggregate_id = $2::text AND version = {_expected(many)} RETURNING 1
                ), {_inserted(s, "cas", "true", many, outbox)}
                SELECT count(*)::int FROM cas"""
            for many in (False, True)
        )


def _append_locked_function(s: str, cols: str, outbox: bool) -> str:
    """``advisory_lock`` as a server-side function: one round trip in autocommit.

    The max must be read after the lock is held, by a statement that starts after it: a
    read-committed statement reads a snapshot taken when it starts, so a single SQL statement
    would read the version as it was before the previous lock holder committed. In a VOLATILE
    PL/pgSQL function each statement takes a fresh snapshot (as separate statements from the
    client did), and the transaction-level lock is held until the implicit transaction ends.
    Returns the version found: ≠ expected is a version mismatch, and nothing was inserted.
    With the outbox it takes the shard key last and copies the inserted events to the outbox
    in the same statement as their INSERT (so in the lock's transaction).
    """
    insert = f"""INSERT INTO {s}.events ({cols})
            SELECT e.event_id, p_aggregate, e.aggregate_type, e.event_type,
                   p_expected + e.ord::int, e.payload, e.metadata
              FROM unnest(p_ids, p_types, p_event_types, p_payloads, p_metadata)
                   WITH ORDINALITY AS e(event_id, aggregate_type, event_type, payload, metadata,
                                        ord)
             ORDER BY e.ord"""
    if outbox:
        insert = f"WITH ins AS ({insert} RETURNING {cols}) {_to_outbox(s, 'p_shard')}"
    shard_arg = ", p_shard bigint" if outbox else ""
    return f"""CREATE FUNCTION {s}.append_locked(
            p_space int, p_aggregate text, p_expected int, p_ids uuid[], p_types text[],
            p_event_types text[], p_payloads jsonb[], p_metadata jsonb[]{shard_arg}
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
            {insert};
            RETURN found_version;
        END
        $fn$"""


# --------------------------------------------------------------------------- the pipeline


def _outbox_table(s: str) -> str:
    """The transactional outbox (outbox.py says how it is written, read and why in order).

    ``position`` is an identity with the sequence's default CACHE 1, so positions are drawn in
    time order across sessions (a cache per session would hand out interleaved ranges).
    ``shard_key`` is the aggregate id's full crc32 (0 to 2^32-1, hence bigint), written by the
    append, so that ``shard_key % shards`` is ``partition_of(aggregate_id, shards)`` for any
    number of relays chosen after the rows were written.
    """
    return f"""CREATE TABLE {s}.outbox (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                shard_key bigint NOT NULL,
                event_id uuid NOT NULL,
                aggregate_id text NOT NULL,
                aggregate_type text NOT NULL,
                event_type text NOT NULL,
                version int NOT NULL,
                payload jsonb NOT NULL,
                metadata jsonb NOT NULL
            )"""


def _read_model_tables(s: str) -> list[str]:
    """The pipeline's read model (``OrderState.as_dict()``'s fields, one row per aggregate)
    and its guard's processed event ids. Apart from ``order_summaries``, which the tailing
    projector owns (its checkpoint and its rows are updated together)."""
    return [
        f"""CREATE TABLE {s}.pipeline_summaries (
                aggregate_id text PRIMARY KEY,
                version int NOT NULL,
                status text NOT NULL,
                order_no int NOT NULL,
                items bigint NOT NULL,
                total_cents bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )""",
        f"""CREATE TABLE {s}.pipeline_processed (
                event_id uuid PRIMARY KEY,
                processed_at timestamptz NOT NULL DEFAULT now()
            )""",
    ]


def _apply_event_function(s: str, lock_space: int) -> str:
    """``apply_event(guard, event_id, aggregate, event_type, version, payload)``: one event
    applied to ``pipeline_summaries`` in one autocommit round trip; returns the outcome
    (``bench.drivers.base``'s APPLIED, DUPLICATE_SKIPPED, DUPLICATE_APPLIED, OUT_OF_ORDER).

    One aggregate's applications are serialised by a transaction-level advisory lock (its own
    space, apart from ``append_locked``'s), taken before the row is read: a redelivery racing
    the first delivery waits, then reads the committed row (each PL/pgSQL statement takes a
    fresh snapshot), and the first event of an aggregate needs no insert-or-retry loop.

    With the guard, the event id is recorded first (ON CONFLICT DO NOTHING: known means
    DUPLICATE_SKIPPED, nothing changed). A rejected event's id is deleted again, so that it is
    not taken for processed when it comes back in order. An id never processed at a version
    already applied is rejected as OUT_OF_ORDER: another event took that version (a forked
    stream, as ``unsafe_max_then_insert`` makes), so applying it would fold two histories into
    one row and skipping it would claim it was seen (bench/engine/pipeline.py's
    MemoryReadModel does the same). Without the guard, such an event is folded again, as a
    naive projection does (DUPLICATE_APPLIED), and the version stays the highest applied.

    The fold is the SQL twin of ``bench.domain.fold`` (a projection written in SQL, one round
    trip; folding in Python would need BEGIN, the guard's insert, a locked read, the write and
    COMMIT: three or four round trips more per event). The payload's domain data is read as
    ``projector.event_data`` reads it. tests/integration/test_postgres_pipeline.py compares
    the rows with ``bench.domain.fold`` of the stored events, every event type included.
    """
    r = f"{s}.pipeline_summaries"
    return f"""CREATE FUNCTION {s}.apply_event(
            p_guard bool, p_event_id uuid, p_aggregate text, p_event_type text, p_version int,
            p_payload jsonb
        ) RETURNS text LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            cur_version int := 0;
            cur_status text := 'none';
            cur_order_no int := 0;
            cur_items bigint := 0;
            cur_total bigint := 0;
            has_row bool;
            outcome text;
            data jsonb;
            qty bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock({lock_space}, hashtext(p_aggregate));
            SELECT r.version, r.status, r.order_no, r.items, r.total_cents
              INTO cur_version, cur_status, cur_order_no, cur_items, cur_total
              FROM {r} r WHERE r.aggregate_id = p_aggregate;
            has_row := FOUND;
            IF NOT has_row THEN
                cur_version := 0; cur_status := 'none'; cur_order_no := 0;
                cur_items := 0; cur_total := 0;
            END IF;
            IF p_guard THEN
                INSERT INTO {s}.pipeline_processed (event_id) VALUES (p_event_id)
                ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN
                    RETURN '{DUPLICATE_SKIPPED}';
                END IF;
            END IF;
            IF p_version > cur_version + 1 OR (p_guard AND p_version <= cur_version) THEN
                IF p_guard THEN
                    DELETE FROM {s}.pipeline_processed WHERE event_id = p_event_id;
                END IF;
                RETURN '{OUT_OF_ORDER}';
            END IF;
            outcome := CASE WHEN p_version <= cur_version THEN '{DUPLICATE_APPLIED}'
                            ELSE '{APPLIED}' END;
            data := coalesce(p_payload -> 'data', p_payload);
            IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
                data := '{{}}';
            END IF;
            CASE p_event_type
            WHEN '{EVENT_OF[PLACE]}' THEN
                cur_status := 'placed'; cur_items := 0; cur_total := 0;
                cur_order_no := cur_order_no + 1;
            WHEN '{EVENT_OF[ADD]}' THEN
                qty := coalesce(trunc((data ->> 'qty')::numeric), 1);
                cur_items := cur_items + qty;
                cur_total := cur_total
                             + coalesce(trunc((data ->> 'price_cents')::numeric), 0) * qty;
            WHEN '{EVENT_OF[CONFIRM]}' THEN
                cur_status := 'confirmed';
            WHEN '{EVENT_OF[SHIP]}' THEN
                cur_status := 'shipped';
            WHEN '{EVENT_OF[CANCEL]}' THEN
                cur_status := 'cancelled';
            ELSE
                NULL;  -- an unknown event type only moves the version, as the fold does
            END CASE;
            IF has_row THEN
                UPDATE {r} SET version = greatest(cur_version, p_version), status = cur_status,
                       order_no = cur_order_no, items = cur_items, total_cents = cur_total,
                       updated_at = now()
                 WHERE aggregate_id = p_aggregate;
            ELSE
                INSERT INTO {r} (aggregate_id, version, status, order_no, items, total_cents)
                VALUES (p_aggregate, p_version, cur_status, cur_order_no, cur_items, cur_total);
            END IF;
            RETURN outcome;
        END
        $fn$"""
