"""The PostgreSQL event store driver (asyncpg): schema, append strategies, read side, invariants.

This package owns everything eventbench knows about PostgreSQL as an event store: the
``PostgresConfig`` options, the schema a run point writes into, the six append strategies a
user compares, the read side (replay, snapshots, the order-summary projector, idempotent
consumption), the store's invariants (``verify``) and what ``describe()`` reports. The order
aggregate itself is ``bench/domain.py``'s: its fold is the read model's and the snapshots'.

Modules: ``config`` (options, DSN hygiene, schema names), ``sql`` (every statement, per run
point's schema), ``pool`` (connections and database errors), ``append`` (the strategies,
conflict detection, counters), ``projector`` (projection, catch-up, lags, the idempotent
consumer), ``outbox`` (a pipeline's transactional outbox and read model: ``Outbox``,
``ReadModel``), ``verify`` (invariants, ledger, stored ids, server counters) and ``driver``
(``PostgresDriver``). The entry point ``bench.drivers.postgres:PostgresDriver`` and the names
below are re-exported here.
"""

from bench.drivers.postgres.append import AppendCounters
from bench.drivers.postgres.config import (
    DEFAULT_DSN,
    SAFE_STRATEGIES,
    PostgresConfig,
    Strategy,
    dsn_address,
    public_dsn,
    schema_for,
)
from bench.drivers.postgres.driver import PostgresDriver
from bench.drivers.postgres.pool import RetryableStoreError, StoreError
from bench.drivers.postgres.projector import (
    ORDER_CANCELLED,
    ORDER_CONFIRMED,
    ORDER_ITEM_ADDED,
    ORDER_PLACED,
    ORDER_SHIPPED,
    fold_events,
)

__all__ = [
    "DEFAULT_DSN",
    "ORDER_CANCELLED",
    "ORDER_CONFIRMED",
    "ORDER_ITEM_ADDED",
    "ORDER_PLACED",
    "ORDER_SHIPPED",
    "SAFE_STRATEGIES",
    "AppendCounters",
    "PostgresConfig",
    "PostgresDriver",
    "RetryableStoreError",
    "StoreError",
    "Strategy",
    "dsn_address",
    "fold_events",
    "public_dsn",
    "schema_for",
]
