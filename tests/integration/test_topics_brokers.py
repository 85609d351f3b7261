"""Many topics on the real brokers (issue 20): 100 topics, one producer and one consumer each,
created and removed by the coordinator within the setup budget, every message audited."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.engine.target import SETUP_TIMEOUT_S
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("broker_target", ["kafka", "nats"], indirect=True)
def test_a_hundred_topics_are_created_read_and_removed(tmp_path: Path, broker_target: dict) -> None:
    raw = {
        "scenario": {"name": "topics", "duration": "1s", "warmup": "200ms", "seed": 5},
        "workload": {
            "rate": 500,
            "topics": 100,
            "partitions": 1,
            "producers": 100,
            "consumers": 100,
            "workers": 2,
        },
        "targets": {"t": broker_target},
    }
    point = expand(scenario_from_dict(raw, "topics.toml"))[0]
    summary = PointRunner(point, "topics", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    topology = summary["topology"]
    assert topology["topics"] == 100
    assert 0 < topology["create_s"] < SETUP_TIMEOUT_S
    assert 0 < topology["remove_s"] < SETUP_TIMEOUT_S
    audit = summary["audit"]
    assert audit["acked"] == 600
    if broker_target["driver"] == "kafka" and audit["lost"]:
        # Tansu's memory storage drops a few acknowledged records now and then: the loss is
        # re-read per topic and sorted, never hidden.
        loss = audit["loss"]
        assert loss["checked"] and loss["not_stored"] + loss["not_delivered"] == audit["lost"]
        assert summary["verdict"]["status"] == "fail"
    else:
        assert audit["received"] == 600 and audit["lost"] == 0, audit
        assert audit["duplicated"] == 0 and audit["reordered"] == 0, audit
