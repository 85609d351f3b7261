"""Fan-out on the real brokers (issue 20): three subscriptions (Kafka consumer groups, NATS
durable consumers, RabbitMQ queue sets), each receiving every message, audited exactly."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict
from tests.integration.conftest import broker_options

pytestmark = pytest.mark.slow


@pytest.fixture(params=["kafka", "nats", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> dict:
    return broker_options(request, request.param)


def test_three_subscriptions_each_get_every_message(tmp_path: Path, target: dict) -> None:
    raw = {
        "scenario": {"name": "fan-out", "duration": "1s", "warmup": "200ms", "seed": 3},
        "workload": {"rate": 300, "partitions": 2, "consumers": 1, "subscriptions": 3},
        "targets": {"t": target},
    }
    point = expand(scenario_from_dict(raw, "fan-out.toml"))[0]
    summary = PointRunner(point, "fan-out", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    audit = summary["audit"]
    assert audit["acked"] == 360
    subs = audit["subscriptions"]
    assert len(subs) == 3, audit
    for sub in subs:
        assert sub["received"] == 360 and sub["lost"] == 0 and sub["reordered"] == 0, subs
    assert audit["received"] == 3 * 360
