"""Order inversion from a wrong partition key, on the real brokers (issue 18, failure 1): a
producer that sends no key spreads an aggregate's events over the partitions, and the audit and
the order projection both count it. Keyed by the aggregate, neither finds anything: every
broker's run in test_engine_brokers.py asserts that."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


def run(tmp_path: Path, target: dict, partition_key: str) -> dict:
    raw = {
        "scenario": {"name": "inv", "duration": "2s", "warmup": "500ms", "drain_timeout": "15s"},
        "workload": {
            "rate": 2000,
            "producers": 1,
            "consumers": 4,
            "partitions": 8,
            # One aggregate at 2,000/s: its next event 0.5 ms later, in another partition, so any
            # drift between partitions inverts it (RabbitMQ, 10 aggregates at 1,000/s: once 0).
            "aggregates": 1,
            "payload_bytes": 256,
            "partition_key": partition_key,
        },
        "targets": {"t": target},
    }
    point = expand(scenario_from_dict(raw, "inv.toml"))[0]
    return PointRunner(point, "inv", tmp_path / partition_key, stop_requested=lambda: False).run()


def delivered_all(audit: dict) -> None:
    assert audit["duplicated"] == 0, audit
    if audit["lost"]:
        # Tansu 0.6's live fetches skip a record now and then: only a stored one is excused.
        loss = audit["loss"]
        assert loss["checked"] and loss["not_delivered"] == audit["lost"] <= 4, loss
    assert audit["acked"] > 1500


@pytest.fixture(params=["kafka", "kafka-confluent", "nats", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> dict:
    name = request.param
    if name.startswith("kafka"):
        if name == "kafka-confluent":
            pytest.importorskip("confluent_kafka")
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        client = {"client": "confluent"} if name == "kafka-confluent" else {}
        return {
            "driver": "kafka",
            "bootstrap_servers": bootstrap,
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 6000,
            **client,
        }
    if name == "nats":
        return {"driver": "nats", "servers": [request.getfixturevalue("nats_url")]}
    return {"driver": "rabbitmq", "url": request.getfixturevalue("rabbitmq_url")}


def test_no_partition_key_inverts_an_aggregates_order_and_the_projection_counts_it(
    tmp_path: Path, target: dict
) -> None:
    broken = run(tmp_path, target, "none")
    audit = broken["audit"]
    delivered_all(audit)
    # The aggregate reached the consumers through its header (Kafka) or envelope: every
    # acknowledged event was matched to its aggregate and counted.
    assert audit["unknown_received"] == 0
    assert audit["reordered"] > 0 and audit["keys_reordered"] > 0, audit
    assert audit["projection_failures"] > 0 and audit["keys_projection_failed"] > 0, audit
    assert broken["verdict"]["result"] == "fail"
