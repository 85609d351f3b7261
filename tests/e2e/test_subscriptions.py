"""Fan-out (``workload.subscriptions``, issue 20) on the memory target: every subscription
receives every message, each is audited on its own, and the point's audit is their sum."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.metrics.audit import ConsumerLedger, ProducerLedger, merge_subscriptions
from bench.scenario import expand, scenario_from_dict


def _run(tmp_path: Path, **workload: object) -> dict:
    raw = {
        "scenario": {"name": "fan-out", "duration": "1s", "warmup": "200ms", "seed": 7},
        "workload": {"rate": 1000, "consumers": 2, "partitions": 4, **workload},
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "fan-out.toml"))[0]
    return PointRunner(point, "fan-out", tmp_path, stop_requested=lambda: False).run()


@pytest.mark.parametrize("workers", [1, 2])
def test_three_subscriptions_each_receive_every_message(tmp_path: Path, workers: int) -> None:
    summary = _run(tmp_path, subscriptions=3, workers=workers, producers=2)
    assert summary["status"] == "ok", summary["problems"]
    audit = summary["audit"]
    acked = audit["acked"]
    assert acked == 1200 and len(audit["subscriptions"]) == 3
    for sub in audit["subscriptions"]:
        assert sub["received"] == acked and sub["lost"] == 0 and sub["duplicated"] == 0
    # The point's audit is the sum: every subscription's deliveries, none lost.
    assert audit["received"] == 3 * acked and audit["lost"] == 0
    assert summary["latency_us"]["e2e"]["count"] == 3 * 1000  # the window's, every group's
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
    with (tmp_path / "timeseries.csv").open() as handle:
        last = handle.read().strip().splitlines()[-1]
    assert last.split(",")[-1] == "0"  # no backlog left in any subscription


def test_a_loss_in_one_subscription_is_its_own_and_the_points() -> None:
    producer = ProducerLedger(0)
    for key in (1, 2, 3):
        producer.keys.append(key)
        producer.acks.append(1)
    whole, partial = ConsumerLedger(), ConsumerLedger()
    for seq, key in enumerate((1, 2, 3)):
        whole.record(0, seq, f"k{key}", 1)
        if seq != 1:
            partial.record(0, seq, f"k{key}", 1)
    audit = merge_subscriptions(
        [producer.export()], [[whole.export()], [partial.export()], [whole.export()]]
    )
    assert [s["lost"] for s in audit.subscriptions or []] == [0, 1, 0]
    assert audit.lost == 1 and audit.received == 8 and audit.acked == 3


def test_fan_out_of_what_cannot_fan_out_is_one_line() -> None:
    from bench.errors import ScenarioError

    for workload, words in (
        ({"kind": "store", "subscriptions": 2}, "for streams"),
        ({"subscriptions": 2, "consumers": 0}, "needs consumers"),
        ({"subscriptions": 2, "apply": "naive"}, "one consumer group"),
    ):
        raw = {
            "scenario": {"name": "x"},
            "workload": workload,
            "targets": {"memory": {"driver": "memory"}},
        }
        with pytest.raises(ScenarioError, match=words):
            expand(scenario_from_dict(raw, "x.toml"))
    raw = {
        "scenario": {"name": "x", "duration": "2s"},
        "workload": {"subscriptions": 2},
        "targets": {"memory": {"driver": "memory"}},
        "faults": [{"at": "1s", "action": "pause", "down_for": "500ms"}],
    }
    with pytest.raises(ScenarioError, match="subscriptions = 1"):
        expand(scenario_from_dict(raw, "x.toml"))
