"""bench locust's plain-data worker spec: what crosses the wire, and what never does."""

from __future__ import annotations

import json

import msgpack
import pytest

from bench.drivers.base import Topology
from bench.engine.workers import WorkerSpec
from bench.locust.wire import spec_from_wire, spec_to_wire
from bench.scenario import Workload, validate_target

OPTIONS = {
    "driver": "nats",
    "servers": ["nats://127.0.0.1:4222"],
    "user": "bench",
    "password": "${env:EB_TEST_LOCUST_SECRET}",
}


def spec(monkeypatch) -> WorkerSpec:
    monkeypatch.setenv("EB_TEST_LOCUST_SECRET", "s3cret-on-the-master")
    return WorkerSpec(
        index=1,
        driver="nats",
        driver_config=validate_target("t", OPTIONS, "test"),
        workload=Workload.model_validate({"rate": 500, "producers": 4, "consumers": 2}),
        topology=Topology("eb-x", 4, 4, 2, "eb-x-g"),
        producer_ids=(1, 3),
        consumer_ids=(1,),
        seed=7,
        rate_per_producer=125.0,
        slots_per_producer=64,
        warmup_ns=1_000_000_000,
        duration_ns=4_000_000_000,
        backlog_ns=10_000_000_000,
        interval_ns=1_000_000_000,
        exact_pacing=True,
        prepare_here=False,
        describe=False,
        log_path="/tmp/x.log",
        timeline=True,
        faults=((2.0, "kill", 1.5),),
    )


def test_a_spec_survives_the_wire(monkeypatch):
    original = spec(monkeypatch)
    wire = spec_to_wire(original, "t", OPTIONS)
    # Locust carries it with msgpack; JSON-safe too.
    carried = msgpack.loads(msgpack.dumps(wire), strict_map_key=False)
    json.dumps(carried)
    monkeypatch.setenv("EB_TEST_LOCUST_SECRET", "s3cret-on-the-worker")
    back = spec_from_wire(carried)
    for name in ("index", "producer_ids", "consumer_ids", "seed", "rate_per_producer", "faults"):
        assert getattr(back, name) == getattr(original, name), name
    assert back.topology == original.topology
    assert back.workload == original.workload
    # The secret is resolved on the worker's machine, from its own environment.
    assert back.driver_config.password.get_secret_value() == "s3cret-on-the-worker"


def test_the_wire_never_carries_a_resolved_secret(monkeypatch):
    wire = spec_to_wire(spec(monkeypatch), "t", OPTIONS)
    text = json.dumps(wire)
    assert "s3cret" not in text
    assert "${env:EB_TEST_LOCUST_SECRET}" in text


def test_a_spec_from_another_version_is_refused(monkeypatch):
    wire = spec_to_wire(spec(monkeypatch), "t", OPTIONS)
    wire["version"] = 99
    with pytest.raises(ValueError, match="version"):
        spec_from_wire(wire)
