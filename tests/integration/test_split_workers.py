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


def test_the_drain_goes_on_while_the_broker_still_holds_messages(tmp_path: Path, nats_url):
    """Deliveries went quiet with messages missing: the coordinator asks the broker, from its
    own connection, and keeps draining while the consumers' lag is above 0."""
    import asyncio

    from bench.drivers.base import DriverContext, Message, as_stream, load_driver
    from bench.engine.target import SharedTarget

    point = _point({"driver": "nats", "servers": [nats_url]})
    runner = PointRunner(point, "lag", tmp_path / "p", stop_requested=lambda: False)
    topology = runner._topology()
    runner.shared = SharedTarget(point, topology)

    async def publish(n: int) -> None:
        driver = as_stream(load_driver("nats")(point.driver_config, DriverContext()))
        await driver.connect()
        try:
            producer = await driver.producer(topology, 0)
            for seq in range(n):
                key = f"order-{seq % 5}"
                await producer.send(
                    Message(key, b"{}", "OrderPlaced", f"id-{seq}", "c", 0, seq, seq // 5 + 1, 0)
                )
            await producer.close()
        finally:
            await driver.close()

    asyncio.run(runner.shared.prepare(runner.store_check))
    try:
        # Nothing stored: the broker holds none, the drain ends, and the answer is kept.
        assert runner._broker_still_holds(3) is False
        assert runner.drain["broker_lag"] == {"missing": 3, "held": 0}
        assert runner.drain["extended_for_lag"] == 0
        asyncio.run(publish(40))  # stored, and no consumer has read them
        assert runner._broker_still_holds(40) is True
        assert runner.drain["broker_lag"] == {"missing": 40, "held": 40}
        assert runner.drain["extended_for_lag"] == 1
    finally:
        asyncio.run(runner.shared.cleanup())
    # A broker with nothing left (the stream is gone: it cannot tell) ends the drain.
    assert runner._broker_still_holds(40) is False
    assert runner.drain["broker_lag"] == {"missing": 40, "held": None}
    assert runner.drain["extended_for_lag"] == 1
