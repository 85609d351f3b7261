"""find-max against the real PostgreSQL event store: bounded in time, judged on commands
(abandoned commands, projection lag), and its answer holds up in a fixed-rate run."""

import json
from pathlib import Path

from bench.capacity.checks import Criteria
from tests.integration.capacity_support import assert_a_fixed_rate_run_agrees, bounded_find_max

SLO_P99_US = 50_000


def scenario(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "store-capacity.toml"
    path.write_text(
        f"""
[scenario]
name = "store-capacity"
duration = "4s"
warmup = "1s"
drain_timeout = "5s"

[workload]
kind = "store"
rate = 200
producers = 1
max_in_flight = 4
aggregates = 10000
keys = "uniform"
payload_bytes = 256

[workload.store]
events_per_append = [1, 3]

[targets.pg]
driver = "postgres"
dsn = "{dsn}"
strategy = "streams_cas"

[slo]
"response.p99" = "50ms"
"""
    )
    return path


def test_find_max_on_the_postgres_store_is_bounded_and_agrees_with_a_fixed_rate_run(
    tmp_path, postgres_dsn
):
    path = scenario(tmp_path, postgres_dsn)
    search, run_dir = bounded_find_max(path, tmp_path / "search")
    assert search["server"]["product"] == "PostgreSQL"
    assert search["kind"] == "store" and search["writers"] == 4
    assert search["max_rate_per_s"] > 50
    # Every open-loop probe was judged on the store's own terms: abandoned commands, and the
    # projector keeping up (PostgreSQL has one), never a consumer backlog.
    for probe in search["probes"]:
        if probe["rate_per_s"] is None:
            continue
        names = [c["name"] for c in probe["checks"]]
        assert "projection keeps up" in names and "backlog bounded" not in names, names
        errors = next(c for c in probe["checks"] if c["name"] == "errors")
        assert "commands abandoned" in errors["value"]
    # The store's invariants held in every probe (a violation fails the point).
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for point in manifest["points"]:
        summary = json.loads((run_dir / point["dir"] / "summary.json").read_text())
        assert summary["store"]["invariants"]["ok"], summary["store"]["invariants"]
    criteria = Criteria(slo_us={"response.p99": 2 * SLO_P99_US})
    # Since appends take one round trip (issue 16) the knee is about 3,400 appends/s, where
    # PostgreSQL and the client saturate this machine's 2 cores together (host-bound): fixed
    # 4 s runs at exactly that rate fell behind 3 times of 3 in CI. One bracket step (10%)
    # under the answer must hold.
    assert_a_fixed_rate_run_agrees(path, tmp_path, search, criteria, "sent_per_s", margin=0.9)
