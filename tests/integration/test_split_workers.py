"""Producers and consumers in separate worker processes, and a drain that asks the broker how
much it still holds (issue 16), against real brokers."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


def _point(target: dict, workload: dict | None = None):
    raw = {
        "scenario": {"name": "roles", "duration": "2s", "warmup": "1s", "drain_timeout": "15s"},
        "workload": {
            "rate": 800,
            "producers": 2,
            "consumers": 2,
            "partitions": 4,
            "aggregates": 50,
            "workers": {"producers": 1, "consumers": 1},
            **(workload or {}),
        },
        "targets": {"t": target},
    }
    return expand(scenario_from_dict(raw, "roles.toml"))[0]


def test_split_roles_deliver_everything_exactly_once_in_order(tmp_path: Path, nats_url):
    point = _point({"driver": "nats", "servers": [nats_url]})
    summary = PointRunner(point, "roles", tmp_path / "p", stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    workers = summary["harness"]["per_worker"]
    # Worker 0 only produced, worker 1 only consumed.
    assert workers[0]["sent"] == summary["audit"]["sent"] > 1500
    assert workers[0]["delivered"] == 0
    assert workers[1]["sent"] == 0
    assert workers[1]["delivered"] == summary["audit"]["delivered"]
    audit = summary["audit"]
    assert audit["lost"] == audit["duplicated"] == audit["reordered"] == 0, audit
    assert summary["workload"]["consumer_workers"] == 1
    assert summary["drain"]["ended_by"] == "all received"
    # e2e latency is measured across processes on the shared monotonic clock.
    assert summary["latency_us"]["e2e"]["count"] > 1000
    assert 0 < summary["latency_us"]["e2e"]["p50"] < 1_000_000
