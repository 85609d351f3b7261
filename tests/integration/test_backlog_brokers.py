"""Backlog build and drain on the real brokers (issue 20): consumers held back while 1 MiB
builds up in Kafka (Tansu) and NATS JetStream, then resumed to read it while producers keep
sending. Bounded: 1,000/s for 3 s."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow

BACKLOG_MESSAGES = 1024  # 1 MiB of 1 KiB bodies


@pytest.mark.parametrize("broker_target", ["kafka", "nats"], indirect=True)
def test_a_backlog_builds_and_drains_on_a_broker(tmp_path: Path, broker_target: dict) -> None:
    raw = {
        "scenario": {"name": "backlog", "duration": "3s", "warmup": "0s", "seed": 3},
        "workload": {
            "rate": 1000,
            "payload_bytes": 1024,
            "backlog": "1MiB",
            "partitions": 2,
            "consumers": 1,
        },
        "targets": {"t": broker_target},
    }
    point = expand(scenario_from_dict(raw, "backlog.toml"))[0]
    summary = PointRunner(point, "backlog", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    backlog = summary["backlog"]
    assert backlog["backlog_messages"] == BACKLOG_MESSAGES
    assert backlog["built"] and backlog["drained"], backlog
    assert 1.0 <= backlog["built_s"] < 3.0
    assert backlog["owed_at_resume"] >= BACKLOG_MESSAGES
    assert backlog["drain_s"] > 0 and backlog["drain_read_per_s"] > 0
    assert backlog["consumers_started_ms"] is not None
    assert summary["latency_us"]["catchup"]["count"] >= BACKLOG_MESSAGES
    audit = summary["audit"]
    assert audit["acked"] == 3000 and audit["lost"] == 0 and audit["received"] == 3000
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
    print(broker_target["driver"], backlog, summary["latency_us"]["catchup"])
