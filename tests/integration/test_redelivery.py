"""Redelivery after a consumer kill, on the real brokers (issue 18, failure 2): the consumers
die before they commit (Kafka) or acknowledge (RabbitMQ, NATS) what they processed, the broker
delivers it again to their replacements, the audit counts it as redelivered (apart from the
broker's own duplicates), and the guarded read model skips every one. The naive read model's
'applied twice = redelivered' is asserted on the memory target (tests/e2e/test_failures.py);
here one guarded point per broker keeps the suite short."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


@pytest.fixture(params=["kafka", "nats", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> dict:
    name = request.param
    if name == "kafka":
        return {
            "driver": "kafka",
            "bootstrap_servers": request.getfixturevalue("kafka_bootstrap"),
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 6000,
            "commit": "explicit",
            "commit_every": 100,
        }
    if name == "nats":
        return {
            "driver": "nats",
            "servers": [request.getfixturevalue("nats_url")],
            "ack_every": 100,
            "ack_wait": "1s",
        }
    return {"driver": "rabbitmq", "url": request.getfixturevalue("rabbitmq_url"), "ack_every": 100}


def test_a_killed_consumers_uncommitted_messages_come_again_and_the_guard_skips_them(
    tmp_path: Path, target: dict
) -> None:
    raw = {
        "scenario": {
            "name": "redeliver",
            "duration": "2s",
            "warmup": "500ms",
            "drain_timeout": "30s",
        },
        "workload": {
            "rate": 1000,
            "producers": 1,
            "consumers": 2,
            "partitions": 4,
            "aggregates": 100,
            "payload_bytes": 128,
            "apply": "guarded",
        },
        "faults": [{"at": "1s", "action": "kill_consumer", "down_for": "200ms"}],
        "verdict": {"allow_reordering": True},  # a JetStream redelivery comes after newer ones
        "targets": {"t": target},
    }
    point = expand(scenario_from_dict(raw, "redeliver.toml"))[0]
    summary = PointRunner(point, "redeliver", tmp_path, stop_requested=lambda: False).run()
    fault = summary["faults"][0]
    assert fault["status"] == "done", fault
    audit = summary["audit"]
    if audit["lost"]:
        # Tansu 0.6's live fetches skip a record now and then: only a stored one is excused.
        loss = audit["loss"]
        assert loss["checked"] and loss["not_delivered"] == audit["lost"] <= 4, loss
    assert audit["acked"] > 2000
    # What the killed consumers owed (under 100 per consumer, or per partition read: NATS has
    # a reader per partition) came again, and is counted apart from
    # the duplicates the broker made by itself.
    assert 0 < audit["redelivery_owed"] < 400, audit
    assert audit["redelivered"] == audit["redelivery_owed"], audit
    assert audit["duplicated"] == audit["redelivered"] + audit["broker_duplicates"]
    apply = summary["apply"]
    assert apply["duplicates_applied"] == 0, apply
    assert apply["duplicates_skipped"] == audit["duplicated"]
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
