"""The event-store workload on the in-process store: accounting, invariants, contention."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from bench.engine.eventstore import AggregatePartition
from bench.engine.runner import PointRunner
from bench.scenario import Workload, expand, scenario_from_dict

pytestmark = pytest.mark.slow


def run_store(tmp_path: Path, workload: dict) -> dict:
    raw = {
        "scenario": {"name": "st", "duration": "2s", "warmup": "500ms"},
        "workload": {"kind": "store", "producers": 1, **workload},
        "targets": {"mem": {"driver": "memory", "service_time": "200us"}},
    }
    point = expand(scenario_from_dict(raw, "t.toml"))[0]
    return PointRunner(point, "t", tmp_path / "p", stop_requested=lambda: False).run()


def test_contended_appends_add_up_and_keep_the_invariants(tmp_path):
    summary = run_store(tmp_path, {"rate": "max", "concurrency": 16, "aggregates": 5})
    store = summary["store"]
    assert summary["status"] == "ok", summary["problems"]
    assert summary["errors"]["total"] == 0, summary["errors"]
    assert store["invariants"]["ok"], store["invariants"]
    assert store["conflicts"] > 0 and store["commits"] > 0 and store["rejections"] > 0
    assert store["attempts"] == store["commits"] + store["conflicts"] + store["errors"]
    assert store["accounting_adds_up"]
    assert store["retries"] >= store["conflicts"] - store["abandoned"] - 16
    assert summary["latency_us"]["service"]["count"] > 0
    assert summary["latency_us"]["response"]["count"] > 0


def test_without_contention_there_are_no_conflicts(tmp_path):
    summary = run_store(tmp_path, {"rate": 300, "max_in_flight": 1, "aggregates": 100_000})
    store = summary["store"]
    assert store["conflicts"] == 0 and store["invariants"]["ok"]
    assert store["goodput_per_s"] == pytest.approx(
        300 * (1 - store["rejections"] / store["commands"]), rel=0.1
    )


# --------------------------------------------------------------------------- partitions


def _workload(**fields: object) -> Workload:
    return Workload.model_validate({"kind": "store", "producers": 4, **fields})


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
@pytest.mark.parametrize("keys", ["uniform", "zipf:1.0", "hot:0.2:0.8"])
def test_two_workers_never_write_the_same_aggregate(workers, keys):
    workload = _workload(aggregates=50, workers=workers, keys=keys)
    partitions = [AggregatePartition.of(workload, i) for i in range(workers)]
    drawn = [set(p.draw(np.random.default_rng([7, i]), 20_000)) for i, p in enumerate(partitions)]
    for i, j in itertools.combinations(range(workers), 2):
        assert not drawn[i] & drawn[j], (i, j)
    # Together they write every aggregate, each in exactly one partition.
    assert set().union(*drawn) == set(range(50))
    for index in range(50):
        assert sum(index in p for p in partitions) == 1
    assert sum(p.size for p in partitions) == 50


def test_a_partition_keeps_the_relative_weights_of_its_aggregates():
    workload = _workload(aggregates=100, workers=2, keys="hot:0.1:0.9")
    for index in range(2):
        part = AggregatePartition.of(workload, index)
        draws = np.array(part.draw(np.random.default_rng(index), 100_000))
        # 5 of the 10 hot aggregates (0..9) fall in each partition, and they keep 90% of it.
        assert np.isin(draws, range(10)).mean() == pytest.approx(0.9, abs=0.01)
        assert set(draws[draws < 10].tolist()) == set(range(index, 10, 2))


def test_fewer_aggregates_than_workers_are_shared_by_every_worker():
    workload = _workload(aggregates=2, workers=3)
    for index in range(3):
        part = AggregatePartition.of(workload, index)
        assert set(part.draw(np.random.default_rng(index), 1000)) == {0, 1}


# --------------------------------------------------------------------------- events


def test_event_payloads_are_the_json_of_their_data_and_padding():
    """The writers format payloads directly: the text must be json.dumps of the data the
    writer folds, wrapped in "data", then the padding, for every event type."""
    import asyncio
    import json

    from bench.domain import COMMANDS, OrderState, decide
    from bench.engine.eventstore import StoreWriters
    from bench.timing import PreciseTimer
    from bench.workload import aggregate_id

    workload = _workload(
        aggregates=10,
        payload_bytes=400,
        aggregate_type="Invoice",
        store={"events_per_append": [1, 3]},
    )
    writers = StoreWriters(
        None,  # type: ignore[arg-type]  # _events never touches the driver
        workload,
        0,
        7,
        PreciseTimer(loop := asyncio.new_event_loop()),
        lambda kind: None,
        lambda: False,
    )
    seen = set()
    for status in ("none", "placed", "confirmed"):
        state = OrderState(version=3, status=status, order_no=2)
        for command in COMMANDS:
            types = decide(state, command)
            if types is None:
                continue
            events, datas = writers._events("order-1", state, types, command)
            assert len(events) == len(datas) >= 1
            for offset, (event, data) in enumerate(zip(events, datas, strict=True), start=1):
                seen.add(event.event_type)
                pad = "x" * (400 - 120)
                expected = json.dumps({"data": data})[:-1] + ', "pad": "' + pad + '"}'
                assert event.payload == expected.encode()
                assert json.loads(event.payload)["data"] == data
                assert event.version == state.version + offset
                assert event.metadata == {"command": command}
    loop.close()
    assert "OrderItemAdded" in seen and "OrderPlaced" in seen
    # Aggregate ids are formatted in place too: the same text as aggregate_id().
    writers._keys, writers._pos = [0, 7, 123_456_789], 0
    assert [writers._key() for _ in range(3)] == [
        aggregate_id(workload.aggregate_type, i) for i in (0, 7, 123_456_789)
    ]
