"""The order schema's versions, the upcaster chain, the strict reader and the seeded history
(bench/schema_evolution.py), and the replay's own checks on the memory store."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest

from bench.drivers.base import StoredEvent
from bench.engine import replay as replay_mod
from bench.scenario import expand, scenario_from_dict
from bench.schema_evolution import (
    Unreadable,
    current_version,
    decode,
    fold,
    history,
    new_view,
    read_strict,
    rewritten,
    schema_version,
    upcast,
)
from bench.verdict import judge


def _event(event_type: str, version: int, data: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        "id-1",
        "Order-1",
        "Order",
        event_type,
        1,
        json.dumps({"data": data}).encode(),
        {"schema_version": str(version)},
    )


def test_the_chain_takes_each_old_version_to_the_current_one() -> None:
    v1 = {"order_no": 1, "customer": "c-7"}
    assert upcast("OrderPlaced", 1, v1) == {
        "order_no": 1,
        "customerId": "c-7",
        "currency": "EUR",
        "shippingMethod": "standard",
    }
    v2 = {"order_no": 1, "customer": "c-7", "currency": "USD", "shippingMethod": "express"}
    assert upcast("OrderPlaced", 2, v2)["currency"] == "USD"  # v2's own fields are kept
    assert upcast("OrderItemAdded", 1, {"sku": "s", "qty": 2, "price": "12.34"}) == {
        "sku": "s",
        "qty": 2,
        "price_cents": 1234,
    }
    # A current event, or a type that never changed, is left as it is.
    assert upcast("OrderShipped", 1, {"order_no": 3}) == {"order_no": 3}


def test_the_strict_reader_reads_only_current_events() -> None:
    with pytest.raises(Unreadable) as caught:
        read_strict(_event("OrderPlaced", 1, {"order_no": 1, "customer": "c"}))
    assert caught.value.version == 1 and "expected v3" in str(caught.value)
    # Current by its metadata, but a field is missing: unreadable too.
    with pytest.raises(Unreadable, match="no currency"):
        read_strict(
            _event("OrderPlaced", 3, {"order_no": 1, "customerId": "c", "shippingMethod": "x"})
        )
    current = {"order_no": 1, "customerId": "c", "currency": "GBP", "shippingMethod": "express"}
    assert read_strict(_event("OrderPlaced", 3, current)) == current
    # An event without a schema version was written before versions were recorded: v1.
    bare = StoredEvent("i", "a", "Order", "OrderConfirmed", 2, b'{"data": {}}', {})
    assert schema_version(bare) == 1 and read_strict(bare) == {}


def test_a_rewritten_event_keeps_its_identity_and_reads_strictly() -> None:
    old = _event("OrderItemAdded", 1, {"order_no": 1, "sku": "s", "qty": 1, "price": "0.99"})
    new = rewritten(old, upcast("OrderItemAdded", 1, decode(old)))
    assert (new.event_id, new.aggregate_id, new.version) == (old.event_id, "Order-1", 1)
    assert schema_version(new) == current_version("OrderItemAdded") == 2
    assert read_strict(new)["price_cents"] == 99


def test_the_seeded_history_writes_the_first_part_of_each_stream_with_old_releases() -> None:
    streams = list(history(200, 20, 0.5, seed=3, aggregate_type="Order"))
    assert len(streams) == 200 and all(len(s) == 20 for s in streams)
    ids = [e.event_id for s in streams for e in s]
    assert len(set(ids)) == len(ids)
    versions: Counter[tuple[str, int]] = Counter()
    for stream in streams:
        assert [e.version for e in stream] == list(range(1, 21))
        for position, event in enumerate(stream):
            version = schema_version(event)
            versions[(event.event_type, version)] += 1
            if position >= 10 or event.event_type not in ("OrderPlaced", "OrderItemAdded"):
                assert version == current_version(event.event_type)
            elif event.event_type == "OrderPlaced":
                assert version == (1 if position < 5 else 2)
            else:
                assert version == 1
        # Every stream folds with the upcasting reader, as one order after another.
        view = new_view()
        for event in stream:
            fold(
                view,
                event.event_type,
                upcast(event.event_type, schema_version(event), decode(event)),
            )
        assert view["version"] == 20 and view["order_no"] >= 1
    assert versions[("OrderPlaced", 1)] and versions[("OrderPlaced", 2)]
    assert versions[("OrderPlaced", 3)] and versions[("OrderItemAdded", 1)]
    # The same seed, the same history.
    again = list(history(200, 20, 0.5, seed=3, aggregate_type="Order"))
    assert [e.payload for s in again for e in s] == [e.payload for s in streams for e in s]


def _point(reader: str) -> Any:
    raw = {
        "scenario": {"name": "se", "seed": 5},
        "workload": {
            "kind": "replay",
            "replay": {"streams": 50, "events_per_stream": 12, "reader": reader},
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    return expand(scenario_from_dict(raw, "se.toml"))[0]


def _run(reader: str) -> dict[str, Any]:
    return asyncio.run(replay_mod.run_replay(_point(reader), "ns", lambda: False, lambda k: None))


def test_a_migration_that_changes_what_a_stream_means_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fine = _run("upcast_and_rewrite")
    assert fine["meaning_changed"] == 0
    assert fine["migration"]["rewritten"] == fine["old_events"] > 0
    assert fine["replay"]["events_read"] == fine["events"] == 600

    def wrong(event: StoredEvent, data: dict[str, Any]) -> StoredEvent:
        if "currency" in data:
            data = {**data, "currency": "XXX"}  # a rewrite that loses the old orders' currency
        return rewritten(event, data)

    monkeypatch.setattr(replay_mod, "rewritten", wrong)
    broken = _run("upcast_and_rewrite")
    assert broken["meaning_changed"] > 0
    sample = broken["migration"]["changed_samples"][0]
    assert sample["before"]["currency"] != sample["after"]["currency"] == "XXX"
    summary = {"status": "ok", "kind": "replay", "replay": broken}
    assert any("changed what" in r for r in judge(summary).reasons)


def test_the_strict_reader_names_the_event_it_stopped_at() -> None:
    result = _run("strict")
    first = result["replay"]["first_unreadable"]
    assert first["event_type"] == "OrderPlaced" and first["schema_version"] == 1
    assert first["reader_expects"] == 3 and first["position"] == 1
    assert result["replay"]["unread"] == result["events"] == 600
    reasons = judge({"status": "ok", "kind": "replay", "replay": result}).reasons
    assert reasons and "OrderPlaced v1" in reasons[0] and "600 events left unread" in reasons[0]


def test_the_snapshot_versions_spread_the_streams_over_the_interval() -> None:
    from bench.engine.replay import _snapshot_version

    assert _snapshot_version(1000, 0, 0) == 0  # no snapshots
    # 10 streams over an interval of 50: 0, 5, 10, ... 45 events after the snapshot.
    tails = [1000 - _snapshot_version(1000, 50, 0, i, 10) for i in range(10)]
    assert tails == list(range(0, 50, 5))
    # A stale snapshot is one interval older; a stream shorter than that has none.
    assert _snapshot_version(1000, 100, 1, 0, 1) == 900
    assert _snapshot_version(60, 100, 1, 0, 1) == 0


def _loads(snapshots: str, archive: bool = True, length: int = 120) -> dict[str, Any]:
    raw = {
        "scenario": {"name": "snap", "seed": 2},
        "workload": {
            "kind": "replay",
            "replay": {
                "measure": "load",
                "streams": 10,
                "events_per_stream": length,
                "old_fraction": 0.3,
                "loads": 40,
                "snapshots": snapshots,
                "archive": archive,
            },
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "snap.toml"))[0]
    return asyncio.run(replay_mod.run_replay(point, "ns", lambda: False, lambda k: None))


def test_loads_through_snapshots_fold_what_a_full_replay_folds() -> None:
    none, every = _loads("none"), _loads("every 50")
    assert none["load"]["events_folded_per_load"] == 120
    # 10 streams over 50: 0, 5, ..., 45 events after the snapshot, 22.5 on average.
    assert every["load"]["events_folded_per_load"] == 22.5
    assert every["load"]["snapshots_written"] == 10
    for result in (none, every):
        assert result["load"]["check"] == {"sampled": 10, "mismatched": 0, "samples": []}
        assert result["load_latency_us"]["count"] == 40
    # Archiving moves what the snapshots cover (none: nothing), and the archive plus the live
    # table still fold to the history.
    archive = every["load"]["archive"]
    assert archive["moved"] == 10 * 120 - 225
    assert archive["live_bytes_after"] < archive["live_bytes_before"]
    assert archive["check"]["mismatched"] == 0
    assert none["load"]["archive"]["moved"] == 0


def test_a_snapshot_that_does_not_match_its_stream_fails_the_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = replay_mod.measure_loads

    async def corrupting(store: Any, aggregates: Any, snapshots: Any, *rest: Any) -> Any:
        # A snapshotter that counted one item too many in every snapshot.
        wrong = [(a, v, {**s, "items": s["items"] + 1}) for a, v, s in snapshots]
        return await original(store, aggregates, wrong, *rest)

    monkeypatch.setattr(replay_mod, "measure_loads", corrupting)
    result = _loads("every 50", archive=False)
    check = result["load"]["check"]
    assert (
        check["mismatched"] > 0
        and check["samples"][0]["full_replay"] != check["samples"][0]["snapshot_and_tail"]
    )
    reasons = judge({"status": "ok", "kind": "replay", "replay": result}).reasons
    assert any(r.startswith("a snapshot plus its tail folded differently") for r in reasons)


def test_no_snapshot_below_its_interval_and_the_check_sample_spans_the_tails() -> None:
    from bench.engine.replay import _snapshot_version

    # A store that snapshots every 50 events has none of a 10-event stream.
    assert all(_snapshot_version(10, 50, 0, i, 10) == 0 for i in range(10))
    assert _snapshot_version(60, 50, 0, 9, 10) == 0  # 60 - 45 = 15 < 50: none
    result = _loads("every 50", archive=False, length=10)
    assert result["load"]["snapshots_written"] == 0
    assert result["load"]["events_folded_per_load"] == 10
    # The sample is spread over the streams: 4 of 20 checked, with different tails.
    raw = {
        "scenario": {"name": "snap", "seed": 2},
        "workload": {
            "kind": "replay",
            "replay": {
                "measure": "load",
                "streams": 20,
                "events_per_stream": 100,
                "loads": 10,
                "snapshots": "every 50",
                "check_sample": 4,
            },
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "snap.toml"))[0]
    checked = asyncio.run(replay_mod.run_replay(point, "ns", lambda: False, lambda k: None))
    assert checked["load"]["check"]["sampled"] == 4
    tails = {100 - _snapshot_version(100, 50, 0, k * 20 // 4, 20) for k in range(4)}
    assert len(tails) == 4


@pytest.mark.parametrize(
    ("replay", "extra", "words"),
    [
        ({"snapshots": "every ²", "measure": "load"}, {}, 'give "none", "every N"'),
        ({"streams": 1000, "events_per_stream": 100_000}, {}, "at most 10,000,000 are seeded"),
        (
            {"measure": "load", "streams": 10, "events_per_stream": 100_000, "loads": 10_000},
            {},
            "events to fold",
        ),
        ({}, {"rate": 500}, "rate: a replay has no load"),
        ({}, {"consumers": 3}, "consumers: a replay has no load"),
    ],
)
def test_a_replay_refuses_what_would_change_nothing_or_never_end(
    replay: dict[str, Any], extra: dict[str, Any], words: str
) -> None:
    from bench.errors import ScenarioError

    raw = {
        "scenario": {"name": "r"},
        "workload": {"kind": "replay", "replay": replay, **extra},
        "targets": {"memory": {"driver": "memory"}},
    }
    with pytest.raises(ScenarioError, match=re.escape(words)):
        expand(scenario_from_dict(raw, "r.toml"))


def test_a_replay_refuses_a_duration_and_a_broker() -> None:
    from bench.errors import ScenarioError

    raw: dict[str, Any] = {
        "scenario": {"name": "r", "duration": "30s"},
        "workload": {"kind": "replay"},
        "targets": {"memory": {"driver": "memory"}},
    }
    with pytest.raises(ScenarioError, match=r"scenario\.duration: a replay has no load"):
        expand(scenario_from_dict(raw, "r.toml"))
    raw["scenario"] = {"name": "r"}
    raw["targets"] = {"k": {"driver": "kafka"}}
    with pytest.raises(ScenarioError, match="cannot be seeded with a history"):
        expand(scenario_from_dict(raw, "r.toml"))
