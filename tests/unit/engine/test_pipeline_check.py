"""The pipeline's invariant check on the memory store and read model: an event applied that
the writers never saw commit is a violation only if the store does not hold it either."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from bench.drivers.base import DriverContext, StoredEvent
from bench.drivers.memory import MemoryConfig, MemoryDriver
from bench.engine.pipeline import MemoryReadModel, check_pipeline


def _event(event_id: str, version: int) -> StoredEvent:
    payload = json.dumps({"data": {"items": 1, "amount": 10}}).encode()
    return StoredEvent(event_id, "order-1", "Order", "OrderPlaced", version, payload)


def test_a_commit_whose_answer_was_lost_is_committed_and_an_unknown_event_is_not() -> None:
    async def scenario() -> tuple[list[str], dict]:
        store = MemoryDriver(MemoryConfig(), DriverContext())
        await store.prepare_store()
        read_model = MemoryReadModel()
        await read_model.prepare_read_model(guard=True)
        # e1 committed and acknowledged; e2 committed, but its writer saw the command fail
        # (the store went away before it answered COMMIT). Both were relayed and applied.
        result = await store.append("order-1", [_event("e1", 1), _event("e2", 2)], 0)
        assert result.committed
        stored = await store.load("order-1")
        for event in stored:
            await read_model.apply_event(event, guard=True)
        # e3 was applied too, and nothing holds it: a violation.
        await read_model.apply_event(_event("e3", 3), guard=True)
        projection = SimpleNamespace(
            applied_count={"e1": 1, "e2": 1, "e3": 1},
            totals=SimpleNamespace(out_of_order=0),
        )
        relays = SimpleNamespace(
            totals=SimpleNamespace(not_published=0),
            committed_aggregates={"order-1"},
            mode="dual_write",
        )
        return await check_pipeline(store, read_model, ["e1"], projection, relays)  # type: ignore[arg-type]

    problems, figures = asyncio.run(scenario())
    assert figures["committed_unacknowledged"] == 1
    assert figures["committed_unacknowledged_ids"] == ["e2"]
    assert figures["applied_not_committed"] == 1
    assert any("store does not hold (e.g. e3)" in p for p in problems), problems
    assert not any("e2" in p for p in problems), problems
