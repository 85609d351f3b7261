"""The event-store workload through the whole engine, against the real PostgreSQL."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow

SAFE = ["max_then_insert", "insert_only", "streams_cas", "advisory_lock", "serializable"]


def run_store(tmp_path: Path, dsn: str, strategy: str, **workload: object) -> dict:
    raw = {
        "scenario": {"name": "es", "duration": "2s", "warmup": "500ms"},
        "workload": {
            "kind": "store",
            "rate": "max",
            "concurrency": 8,
            "producers": 1,
            "aggregates": 5,
            "payload_bytes": 200,
            "store": {"events_per_append": [1, 3], "redeliver_fraction": 0.2},
            **workload,
        },
        "targets": {"pg": {"driver": "postgres", "dsn": dsn, "strategy": strategy}},
    }
    point = expand(scenario_from_dict(raw, "es.toml"))[0]
    return PointRunner(point, "es", tmp_path / strategy, stop_requested=lambda: False).run()


@pytest.mark.parametrize("strategy", SAFE)
def test_every_safe_strategy_keeps_the_invariants_under_contention(
    tmp_path, postgres_dsn, strategy
):
    summary = run_store(tmp_path, postgres_dsn, strategy)
    store = summary["store"]
    assert summary["status"] == "ok", summary["problems"]
    assert summary["errors"]["total"] == 0, summary["errors"]
    assert store["invariants"] == {"ok": True, "violations": [], "not_checked": []}
    assert store["conflicts"] > 0, "5 hot aggregates and 8 writers must contend"
    assert store["commits"] > 50
    # Retry accounting adds up.
    assert store["attempts"] == store["commits"] + store["conflicts"] + store["errors"]
    # The projector ran and recorded lags; the idempotent consumer skipped every redelivery.
    assert store["projected"] >= store["events_committed"] * 0.9
    assert summary["latency_us"]["e2e"]["count"] > 0
    assert store["redelivered"] > 0 and store["duplicates_skipped"] == store["redelivered"]
    assert summary["target_info"]["product"] == "PostgreSQL"
    # Loads (first touch, and after every conflict) are timed against the stream's length.
    loads = store["load_latency_by_stream_length"]
    assert loads and sum(row["loads"] for row in loads) >= store["conflicts"] * 0.5
    assert all(row["p50_us"] > 0 for row in loads)
    assert store["server_counters"]["xact_commit"] >= store["commits"]


def test_the_negative_control_forks_streams_and_is_caught(tmp_path, postgres_dsn):
    summary = run_store(tmp_path, postgres_dsn, "unsafe_max_then_insert")
    assert summary["status"] == "ok"  # the point ran; the store is what failed
    assert summary["verdict"]["result"] == "fail"
    assert any(r.startswith("invariant: ") for r in summary["verdict"]["reasons"])
    assert not summary["store"]["invariants"]["ok"]
    assert any("forked" in v for v in summary["store"]["invariants"]["violations"])
    assert any("invariants violated" in p for p in summary["problems"])


def test_two_workers_write_disjoint_aggregates_so_they_never_conflict(tmp_path, postgres_dsn):
    # One writer per worker and as many aggregates as workers: each worker owns one aggregate,
    # so a conflict could only come from the two workers sharing one (and caching versions the
    # other one moves). The store's own checks (every acknowledged event stored once) hold.
    summary = run_store(
        tmp_path,
        postgres_dsn,
        "max_then_insert",
        workers=2,
        producers=2,
        concurrency=2,
        aggregates=2,
        store={"events_per_append": 1, "redeliver_fraction": 0.0, "projector": False},
    )
    store = summary["store"]
    assert summary["status"] == "ok", summary["problems"]
    assert store["invariants"]["ok"], store["invariants"]
    assert store["commits"] > 50
    assert store["conflicts"] == 0, store
    assert store["attempts"] == store["commits"]
