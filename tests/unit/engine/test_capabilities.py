"""The driver seam's optional capabilities: asked for by type, and a missing one is said, not
skipped (issue 15)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bench import verdict
from bench.drivers import base
from bench.drivers.memory import MemoryDriver
from bench.drivers.postgres import PostgresDriver
from bench.engine.eventstore import StoreTotals, check_store, unchecked_invariants

ENGINE = Path(__file__).resolve().parents[3] / "bench" / "engine"


class MinimalStore:
    """A third-party store with the required protocol only: no way to list what it stored."""

    name = "minimal"
    kind = "store"

    async def verify(self) -> list[str]:
        return []


def _bare(cls: type) -> object:
    return cls.__new__(cls)  # an instance without a connection: capabilities are structural


def test_the_built_in_drivers_declare_their_capabilities_by_type():
    postgres_driver, memory = _bare(PostgresDriver), _bare(MemoryDriver)
    postgres = {
        cap.__name__
        for cap in (
            base.SharedStore,
            base.HistoryStore,
            base.SagaStateStore,
            base.ServerCounters,
            base.Snapshots,
            base.Projector,
            base.IdempotentConsumer,
            base.StoreLedgerCheck,
            base.StoredEventIds,
            base.ErrorKinds,
            base.InProcessFaults,
            base.Rereadable,
            base.Outbox,
            base.ReadModel,
        )
        if isinstance(postgres_driver, cap)
    }
    assert postgres == {
        "SharedStore",
        "HistoryStore",
        "SagaStateStore",
        "ServerCounters",
        "Snapshots",
        "Projector",
        "IdempotentConsumer",
        "StoreLedgerCheck",
        "StoredEventIds",
        "ErrorKinds",
        "Outbox",
        "ReadModel",
    }
    # The memory target keeps an outbox; its read model is the pipeline engine's own.
    assert isinstance(memory, base.Outbox) and not isinstance(memory, base.ReadModel)
    assert isinstance(memory, base.InProcessFaults)
    assert isinstance(memory, base.StoredEventIds)
    assert isinstance(memory, base.Rereadable)
    assert not isinstance(memory, base.SharedStore)
    assert base.runs_in_process(MemoryDriver) and not base.runs_in_process(PostgresDriver)
    # What the store summary lists (store.capabilities): the same answer, from the class.
    assert set(base.capabilities_of(PostgresDriver)) == postgres
    assert base.capabilities_of(MemoryDriver) == [
        "HistoryStore",
        "SagaStateStore",
        "StoredEventIds",
        "Outbox",
    ]
    # Both can be seeded with a history and migrated in place (workload.kind = "replay").
    assert isinstance(memory, base.HistoryStore) and isinstance(postgres_driver, base.HistoryStore)


def test_a_store_that_cannot_list_its_events_says_the_check_was_not_made():
    driver = MinimalStore()
    totals = StoreTotals()
    assert asyncio.run(check_store(driver, totals)) == []  # nothing it could check failed
    not_checked = unchecked_invariants(driver)
    assert len(not_checked) == 1 and "every acknowledged append stored once" in not_checked[0]
    assert "'minimal'" in not_checked[0]
    assert unchecked_invariants(_bare(MemoryDriver)) == []


def test_an_invariant_not_checked_is_never_a_pass():
    summary = {
        "status": "ok",
        "kind": "store",
        "store": {
            "commands": 100,
            "abandoned": 0,
            "invariants": {"ok": True, "violations": [], "not_checked": ["stored once: why"]},
        },
    }
    judged = verdict.judge(summary)
    assert judged.result == verdict.INCONCLUSIVE
    assert judged.reasons == ["not checked: stored once: why"]


def test_the_engine_asks_for_capabilities_by_type_not_by_name():
    probes = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(ENGINE.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bhasattr\(", line)
    ]
    assert probes == []


def test_a_driver_lacking_a_required_member_is_refused_when_loaded_not_when_run():
    class NoDescribe:
        name = "half"
        kind = "stream"
        config_model = base.DriverConfig
        describe = None  # not callable: as good as missing

        async def connect(self) -> None: ...
        async def prepare(self, topology) -> None: ...
        async def producer(self, topology, producer_id): ...
        async def consumer(self, topology, consumer_id, on_message): ...
        async def cleanup(self, topology) -> None: ...
        async def close(self) -> None: ...

    assert base.missing_members(NoDescribe) == ["describe()"]
    assert base.missing_members(MemoryDriver) == []
    assert base.missing_members(PostgresDriver) == []
    assert "append()" in base.missing_members(type("S", (), {"kind": "store"}))


def test_only_a_target_that_bounds_its_sends_goes_without_a_send_timer():
    assert isinstance(_bare(MemoryDriver), base.BoundedSends)
    assert not isinstance(_bare(PostgresDriver), base.BoundedSends)


def test_broker_knowledge_lives_on_the_driver_classes():
    from bench.drivers.nats import NatsDriver
    from bench.drivers.rabbitmq import RabbitMQDriver
    from bench.faults.inject import service_for

    assert base.sizing_of(RabbitMQDriver).partition_noun == "queues"
    assert "one leader" in (base.sizing_of(NatsDriver).scale_out_advice or "")
    assert base.sizing_of(MemoryDriver) == base.Sizing()
    assert [service_for(d) for d in ("nats", "rabbitmq", "postgres", "memory")] == [
        "nats",
        "rabbitmq",
        "postgres",
        None,
    ]
