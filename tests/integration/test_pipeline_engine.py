"""The whole pipeline through the engine on real services: PostgreSQL as the store (outbox and
read model in the database) with each real broker, a few hundred commands per second for 2 s.
The invariants hold and every stage is recorded; without the guard, a relay crash's republished
events are applied twice in the PostgreSQL read model and the check names them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(tmp_path: Path, broker: dict[str, Any], dsn: str, **pipeline: Any) -> dict:
    raw = {
        "scenario": {"name": "pl", "duration": "2s", "warmup": "500ms", "drain_timeout": "15s"},
        "workload": {
            "kind": "pipeline",
            "rate": 200,
            "aggregates": 200,
            "payload_bytes": 256,
            "consumers": 2,
            "partitions": 4,
            "pipeline": {"store": "pg", **pipeline},
        },
        "targets": {
            "pg": {"driver": "postgres", "dsn": dsn, "strategy": "max_then_insert"},
            "broker": broker,
        },
    }
    (point,) = expand(scenario_from_dict(raw, "pl.toml"))
    return PointRunner(point, "pl", tmp_path / "p", stop_requested=lambda: False).run()


def assert_pipeline_held(summary: dict) -> None:
    assert summary["status"] == "ok", summary["problems"]
    pipeline = summary["pipeline"]
    assert pipeline["read_model"] == "store"  # the PostgreSQL read model, not the worker's
    invariants = pipeline["invariants"]
    assert invariants["checked"] and invariants["ok"], invariants["violations"]
    assert invariants["never_applied"] == invariants["applied_twice"] == 0
    assert invariants["outbox_pending"] == 0 and invariants["aggregates_differing"] == 0
    assert pipeline["drained"]
    committed = summary["store"]["events_committed"]
    assert committed > 300 and pipeline["totals"]["applied"] == committed
    assert summary["store"]["invariants"]["ok"]
    for stage in ("append", "relay", "broker", "apply", "visible"):
        assert summary["latency_us"][stage]["count"] > 250, stage
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_postgres_through_kafka(tmp_path: Path, postgres_dsn: str, kafka_bootstrap: str) -> None:
    broker = {"driver": "kafka", "bootstrap_servers": kafka_bootstrap, "fetch_max_wait_ms": 10}
    summary = run(tmp_path, broker, postgres_dsn)
    lost = summary["audit"]["lost"]
    if lost:
        # Tansu 0.6 skips a stored record for a live group now and then (0-4 in 18,000): the
        # pipeline must then say the event never reached the read model, never hide it.
        assert lost <= 4
        assert summary["pipeline"]["invariants"]["never_applied"] >= lost
        assert summary["verdict"]["result"] == "fail"
        warnings.warn(f"Tansu skipped {lost} stored records (a known fault)", stacklevel=1)
        return
    assert_pipeline_held(summary)


def test_postgres_through_rabbitmq(tmp_path: Path, postgres_dsn: str, rabbitmq_url: str) -> None:
    assert_pipeline_held(run(tmp_path, {"driver": "rabbitmq", "url": rabbitmq_url}, postgres_dsn))


def test_postgres_through_nats(tmp_path: Path, postgres_dsn: str, nats_url: str) -> None:
    assert_pipeline_held(run(tmp_path, {"driver": "nats", "servers": [nats_url]}, postgres_dsn))


def test_without_the_guard_the_postgres_read_model_applies_a_republish_twice(
    tmp_path: Path, postgres_dsn: str
) -> None:
    summary = run(
        tmp_path,
        {"driver": "memory"},
        postgres_dsn,
        idempotency="none",
        crash_at="1500ms",
        crash_for="200ms",
    )
    pipeline = summary["pipeline"]
    totals = pipeline["totals"]
    assert totals["relay_restarts"] == 2 and totals["republished"] > 0
    assert totals["duplicates_applied"] == totals["republished"]
    assert pipeline["invariants"]["applied_twice"] == totals["republished"]
    assert summary["verdict"]["result"] == "fail"


def test_jetstream_deduplicates_a_relay_republish_and_nothing_reads_as_lost(
    tmp_path: Path, postgres_dsn: str, nats_url: str
) -> None:
    summary = run(
        tmp_path,
        {"driver": "nats", "servers": [nats_url]},
        postgres_dsn,
        idempotency="none",
        crash_at="1500ms",
        crash_for="200ms",
    )
    totals = summary["pipeline"]["totals"]
    assert totals["republished"] > 0
    # Nats-Msg-Id = event id: JetStream acknowledged each republish and delivered none.
    assert totals["broker_deduplicated"] == totals["republished"]
    assert totals["duplicates_applied"] == totals["duplicates_skipped"] == 0
    assert summary["audit"]["lost"] == 0
    assert summary["audit"]["sent"] + totals["broker_deduplicated"] == totals["published"]
    # The drain waited for events, not sends: it ended with everything applied.
    assert summary["drain"]["ended_by"] == "all applied"
    assert_pipeline_held(summary)
