"""find-max against a real broker (NATS JetStream): bounded in time, and its answer holds up
in an ordinary fixed-rate run at that rate."""

from pathlib import Path

from bench.capacity.checks import Criteria
from tests.integration.capacity_support import assert_a_fixed_rate_run_agrees, bounded_find_max

SLO_P99_US = 50_000


def scenario(tmp_path: Path, nats_url: str) -> Path:
    path = tmp_path / "nats-capacity.toml"
    path.write_text(
        f"""
[scenario]
name = "nats-capacity"
duration = "4s"
warmup = "1s"
drain_timeout = "5s"

[workload]
rate = 1000
payload_bytes = 1024
keys = "uniform"
producers = 2
consumers = 2
partitions = 4
max_in_flight = 64

[targets.nats]
driver = "nats"
servers = ["{nats_url}"]
publish = "pipelined"
publish_window = 64

[slo]
"e2e.p99" = "50ms"
"""
    )
    return path


def test_find_max_on_nats_is_bounded_and_agrees_with_a_fixed_rate_run(tmp_path, nats_url):
    path = scenario(tmp_path, nats_url)
    search, _ = bounded_find_max(path, tmp_path / "search")
    assert search["server"]["product"] == "NATS Server"
    # Far under what NATS takes here (thousands/s): the probes say why if it ever is not.
    probes = [
        (p["phase"], p["rate_per_s"], p["achieved_per_s"], p["verdict"], p["latency_us"]["e2e"])
        for p in search["probes"]
    ]
    assert search["max_rate_per_s"] > 100, probes
    # A single run's p99 at the very edge of the SLO gets twice the SLO; a rate past the knee
    # is far over.
    criteria = Criteria(slo_us={"e2e.p99": 2 * SLO_P99_US})
    assert_a_fixed_rate_run_agrees(path, tmp_path, search, criteria, "acked_per_s")
