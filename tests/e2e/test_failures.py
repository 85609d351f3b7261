"""Known production failures, reproduced on the memory target (no services): the failure shown
by a count, and the fix with that count at zero (scenarios/failures/)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict
from bench.verdict import judge
from tests.cli_support import run_bench_captured

FAILURES = Path(__file__).resolve().parents[2] / "scenarios" / "failures"


def _on_memory(name: str, duration: str = "3s") -> dict[str, Any]:
    raw = tomllib.loads((FAILURES / name).read_text())
    raw["scenario"]["duration"] = duration
    raw["targets"] = {"memory": raw["targets"]["memory"]}
    return raw


def _run(
    tmp_path: Path, raw: dict[str, Any], by: str = "partition_key"
) -> dict[str, dict[str, Any]]:
    """Each point's summary, by its workload field ``by``."""
    out = {}
    for point in expand(scenario_from_dict(raw, "failure.toml")):
        summary = PointRunner(
            point, "failure", tmp_path / f"p{point.index}", stop_requested=lambda: False
        ).run()
        out[getattr(point.workload, by)] = summary
    return out


def test_order_inversion_without_the_aggregate_key_and_the_fix(tmp_path: Path) -> None:
    runs = _run(tmp_path, _on_memory("order_inversion.toml"))
    fixed, broken = runs["aggregate"], runs["none"]
    for summary in (fixed, broken):
        audit = summary["audit"]
        assert audit["lost"] == 0 and audit["duplicated"] == 0, audit
        assert audit["received"] == audit["acked"] > 4000
    # The fix: every order's events in one partition, in order, applied in order.
    assert fixed["audit"]["reordered"] == 0
    assert fixed["audit"]["projection_failures"] == 0
    assert fixed["verdict"]["result"] == "pass", fixed["verdict"]
    # The failure: no key spreads an order over the partitions, and the 3 ms jitter between
    # them puts events ahead of the state they need.
    audit = broken["audit"]
    assert audit["reordered"] > 0 and audit["keys_reordered"] > 0
    assert audit["projection_failures"] > 0
    assert 0 < audit["keys_projection_failed"] <= 50  # the scenario's 50 aggregates
    # Every event was delivered: each one parked ahead of its state was applied in the end.
    assert audit["projection_stuck"] == 0
    assert broken["workload"]["partition_key"] == "none"
    assert broken["verdict"]["result"] == "fail"
    assert any(r.startswith("projection failures ") for r in broken["verdict"]["reasons"])
    # The verdict is the one the summary's figures give.
    assert judge(broken).reasons == broken["verdict"]["reasons"]


def test_an_event_id_key_spreads_an_aggregate_too(tmp_path: Path) -> None:
    raw = _on_memory("order_inversion.toml", duration="2s")
    raw["matrix"] = {"workload.partition_key": ["event_id"]}
    (summary,) = _run(tmp_path, raw).values()
    assert summary["audit"]["projection_failures"] > 0
    assert summary["audit"]["lost"] == 0


def test_redelivery_after_a_consumer_kill_applied_twice_and_the_guard(tmp_path: Path) -> None:
    raw = _on_memory("redelivery.toml", duration="4s")
    raw["scenario"]["drain_timeout"] = "10s"
    runs = _run(tmp_path, raw, by="apply")
    naive, guarded = runs["naive"], runs["guarded"]
    for summary in (naive, guarded):
        audit = summary["audit"]
        assert audit["lost"] == 0 and audit["received"] == audit["acked"] > 8000, audit
        fault = summary["faults"][0]
        assert fault["action"] == "kill_consumer" and fault["status"] == "done", fault
        # The 2 killed consumers each owed up to commit_every = 200 deliveries, and the memory
        # broker gives every one of them back: redelivered, and nothing else duplicated.
        assert 0 < audit["redelivery_owed"] <= 400
        assert audit["redelivered"] == audit["redelivery_owed"] == audit["duplicated"]
        assert audit["broker_duplicates"] == 0
        assert summary["latency_us"]["apply"]["count"] > 0
    # The failure: every redelivery applied a second time, and the point fails naming it.
    apply = naive["apply"]
    assert apply["mode"] == "naive" and apply["duplicates_skipped"] == 0
    assert apply["duplicates_applied"] == naive["audit"]["redelivered"]
    assert apply["applied"] == naive["audit"]["delivered"]
    assert naive["verdict"]["result"] == "fail"
    assert any("duplicates to the read model" in r for r in naive["verdict"]["reasons"])
    # The fix: the guard skips every redelivery; nothing is applied twice.
    apply = guarded["apply"]
    assert apply["duplicates_applied"] == 0
    assert apply["duplicates_skipped"] == guarded["audit"]["redelivered"]
    assert apply["applied"] == guarded["audit"]["received"]
    assert guarded["verdict"]["result"] == "pass", guarded["verdict"]
    assert judge(naive).reasons == naive["verdict"]["reasons"]


def test_a_graceful_consumer_restart_owes_nothing(tmp_path: Path) -> None:
    raw = _on_memory("redelivery.toml", duration="3s")
    raw["matrix"] = {}
    raw["workload"]["apply"] = "naive"
    raw["faults"] = [{"at": "2s", "action": "restart_consumer", "down_for": "0.2s"}]
    summary = _run(tmp_path, raw, by="apply")["naive"]
    audit = summary["audit"]
    assert summary["faults"][0]["status"] == "done", summary["faults"]
    assert audit["lost"] == 0 and audit["received"] == audit["acked"] > 6000
    # A stop commits what was processed: nothing owed, nothing delivered twice.
    assert audit["redelivery_owed"] == 0 and audit["duplicated"] == 0
    assert summary["apply"]["duplicates_applied"] == 0
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_schema_evolution_strict_fails_upcast_reads_everything_and_a_migration_keeps_meaning(
    tmp_path: Path,
) -> None:
    raw = tomllib.loads((FAILURES / "schema_evolution.toml").read_text())
    raw["targets"] = {"memory": raw["targets"]["memory"]}
    raw["workload"]["replay"].update(streams=300, events_per_stream=20)
    raw["matrix"] = {"workload.replay.reader": ["strict", "upcast", "upcast_and_rewrite"]}
    runs = {}
    for point in expand(scenario_from_dict(raw, "failure.toml")):
        runs[point.workload.replay.reader] = PointRunner(
            point, "failure", tmp_path / f"p{point.index}", stop_requested=lambda: False
        ).run()
    strict, upcasting, migrated = runs["strict"], runs["upcast"], runs["upcast_and_rewrite"]
    for summary in runs.values():
        assert summary["kind"] == "replay" and summary["status"] == "ok"
        replay = summary["replay"]
        assert replay["events"] == 6000 and 0 < replay["old_events"] < 6000
    # The failure: the current reader stops at the oldest stream's first event.
    read = strict["replay"]["replay"]
    assert read["events_read"] == 0 and read["unread"] == 6000
    assert read["first_unreadable"]["event_type"] == "OrderPlaced"
    assert strict["verdict"]["result"] == "fail"
    # The fix: every event read, every old one upcast, its cost measured.
    read = upcasting["replay"]["replay"]
    assert read["events_read"] == 6000 and read["unread"] == 0
    assert read["upcast_events"] == upcasting["replay"]["old_events"]
    assert read["upcast_ns_per_event"] > 0
    assert upcasting["latency_us"]["load"]["count"] == 300
    assert upcasting["verdict"]["result"] == "pass", upcasting["verdict"]
    # The migration: every old event rewritten once, then nothing left to upcast, and every
    # stream means what it meant.
    replay = migrated["replay"]
    assert replay["migration"]["rewritten"] == replay["old_events"]
    assert replay["replay"]["upcast_events"] == 0 and replay["replay"]["unread"] == 0
    assert replay["meaning_changed"] == 0
    assert migrated["verdict"]["result"] == "pass", migrated["verdict"]
    # The summary file holds what the run returned.
    saved = json.loads((tmp_path / "p0" / "summary.json").read_text())
    assert (
        saved["replay"]["replay"]["first_unreadable"]
        == strict["replay"]["replay"]["first_unreadable"]
    )


def test_snapshots_flatten_the_load_curve_and_archiving_keeps_the_fold(tmp_path: Path) -> None:
    raw = tomllib.loads((FAILURES / "snapshots.toml").read_text())
    raw["targets"] = {"memory": raw["targets"]["memory"]}
    raw["workload"]["replay"].update(streams=10, loads=50)
    raw["matrix"] = {
        "workload.replay.events_per_stream": [10, 2000],
        "workload.replay.snapshots": ["none", "every 50", "stale 100"],
    }
    runs = {}
    for point in expand(scenario_from_dict(raw, "failure.toml")):
        replay = point.workload.replay
        summary = PointRunner(
            point, "failure", tmp_path / f"p{point.index}", stop_requested=lambda: False
        ).run()
        runs[(replay.snapshots, replay.events_per_stream)] = summary
    for summary in runs.values():
        load = summary["replay"]["load"]
        assert summary["verdict"]["result"] == "pass", summary["verdict"]
        assert load["check"]["mismatched"] == 0 and load["check"]["sampled"] == 10
        assert load["archive"]["check"]["mismatched"] == 0
        assert summary["latency_us"]["load"]["count"] == 50

    def p50(policy: str, length: int) -> float:
        return float(runs[(policy, length)]["latency_us"]["load"]["p50"])

    def folded(policy: str, length: int) -> float:
        return float(runs[(policy, length)]["replay"]["load"]["events_folded_per_load"])

    # The failure: without snapshots a load folds the whole stream, and takes ever longer.
    assert folded("none", 2000) == 2000 and p50("none", 2000) > 20 * p50("none", 10)
    # The fix: a snapshot leaves 0-49 events to fold (stale 100: 0-99, and 100 more), whatever
    # the length.
    assert folded("every 50", 2000) == 22.5 and folded("stale 100", 2000) == 145
    assert p50("every 50", 2000) < p50("none", 2000) / 10
    # Archiving moves what the snapshots cover out of the live table (without snapshots:
    # nothing), and the live table shrinks by it.
    archive = runs[("every 50", 2000)]["replay"]["load"]["archive"]
    assert archive["moved"] == 10 * 2000 - 225
    assert archive["live_bytes_after"] < archive["live_bytes_before"] / 20
    assert runs[("none", 2000)]["replay"]["load"]["archive"]["moved"] == 0


def test_a_replay_run_prints_and_reports_its_own_tables_and_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    scenario = tmp_path / "snap.toml"
    raw = (FAILURES / "snapshots.toml").read_text()
    raw = raw.replace("streams = 20", "streams = 4").replace("loads = 200", "loads = 8")
    raw = raw.replace("[10, 100, 1000, 10000]", "[10, 200]")
    raw = raw.replace('["none", "every 50", "every 100", "stale 100"]', '["none", "every 50"]')
    scenario.write_text(raw)
    code, out, err = run_bench_captured(
        ["run", str(scenario), "-t", "memory", "-o", str(results)], capsys
    )
    assert code == 0, err
    # The terminal: the loads table, never the stream table's rates.
    assert "aggregate loads" in out and "folded/load" in out and "acked/s" not in out
    run_dir = next(results.iterdir())
    report = (run_dir / "report.md").read_text()
    assert "## Snapshots: load latency against stream length" in report
    assert "report-plots/snapshot-curve.png" in report
    assert (run_dir / "report-plots" / "snapshot-curve.png").stat().st_size > 1000
    # No stream summary of zeros for a replay: its figures are its section's.
    assert "## Summary" not in report or "0/s" not in report.split("## Summary")[1].split("##")[0]
    summary = json.loads(next(run_dir.glob("*/summary.json")).read_text())
    assert summary["kind"] == "replay" and summary["audit"] == {}
