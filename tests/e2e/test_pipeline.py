"""The CQRS pipeline (workload.kind = "pipeline") on the memory targets: stage figures that
follow injected delays, the invariants, and both negative controls caught.

Each point runs 2 s of load at 300 commands/s in one worker: a few seconds per test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.engine.runner import PointRunner
from bench.errors import ScenarioError
from bench.scenario import expand, scenario_from_dict

MS = 1000.0  # µs


def scenario(pipeline: dict[str, Any] | None = None, **targets: dict[str, Any]) -> dict:
    return {
        "scenario": {"name": "pl", "duration": "2s", "warmup": "500ms", "drain_timeout": "10s"},
        "workload": {
            "kind": "pipeline",
            "rate": 300,
            "aggregates": 100,
            "payload_bytes": 256,
            "consumers": 2,
            "partitions": 4,
            "pipeline": pipeline or {},
        },
        "targets": targets or {"memory": {"driver": "memory"}},
    }


def run(tmp_path: Path, raw: dict) -> list[dict]:
    points = expand(scenario_from_dict(raw, "pl.toml"))
    return [
        PointRunner(point, "pl", tmp_path / f"p{point.index}", stop_requested=lambda: False).run()
        for point in points
    ]


def test_a_delay_in_the_broker_shows_in_its_stages_and_not_in_the_append(tmp_path: Path) -> None:
    raw = scenario(
        {"store": "store"},
        store={"driver": "memory"},
        slow_broker={"driver": "memory", "service_time": "2ms"},
        slow_store={"driver": "memory", "service_time": "2ms"},
    )
    # Two points, one per broker; the store target is the store of both.
    broker, store_too = run(tmp_path, raw)
    assert broker["target"] == "slow_broker" and store_too["target"] == "slow_store"
    for summary in (broker, store_too):
        assert summary["status"] == "ok", summary["problems"]
        assert summary["verdict"]["result"] == "pass", summary["verdict"]
        pipeline = summary["pipeline"]
        assert pipeline["invariants"]["ok"] and pipeline["drained"], pipeline["invariants"]
        assert pipeline["invariants"]["never_applied"] == 0
        assert pipeline["invariants"]["outbox_pending"] == 0
        assert pipeline["totals"]["applied"] == summary["store"]["events_committed"] > 500
        latency = summary["latency_us"]
        for stage in ("append", "relay", "broker", "apply", "visible"):
            assert latency[stage]["count"] > 400, stage
        # visible is the whole: command intended -> read model; e2e says the same.
        assert latency["visible"]["p50"] >= latency["append"]["p50"]
        assert latency["e2e"]["p50"] == latency["visible"]["p50"]
    # The memory broker's 2 ms: acknowledged (relay) and delivered (broker) that late.
    stages = broker["latency_us"]
    assert stages["broker"]["p50"] >= 2 * MS and stages["relay"]["p50"] >= 2 * MS
    # Not in the append (a margin for a busy machine's loop lag, which every stage shares).
    assert stages["broker"]["p50"] - stages["append"]["p50"] >= 1.5 * MS
    assert stages["visible"]["p50"] >= 2 * MS
    # The store is the other memory target here: its 2 ms is not this point's store.
    assert broker["pipeline"]["store_target"] == "store"
    assert store_too["latency_us"]["broker"]["p50"] >= 2 * MS  # slow_store is its broker


def test_a_delay_in_the_store_shows_in_the_append_and_not_in_the_broker(tmp_path: Path) -> None:
    raw = scenario(
        {"store": "store"},
        store={"driver": "memory", "service_time": "2ms"},
        broker={"driver": "memory"},
    )
    (summary,) = run(tmp_path, raw)
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
    stages = summary["latency_us"]
    assert stages["append"]["p50"] >= 2 * MS
    assert stages["append"]["p50"] - stages["broker"]["p50"] >= 1.5 * MS
    assert summary["pipeline"]["invariants"]["ok"]


def test_an_outbox_relay_crash_republishes_and_the_guard_applies_each_event_once(
    tmp_path: Path,
) -> None:
    (summary,) = run(tmp_path, scenario({"crash_at": "1s", "crash_for": "200ms"}))
    pipeline = summary["pipeline"]
    totals = pipeline["totals"]
    assert totals["relay_restarts"] == 2  # each of the 2 relays died once
    # One relay sample per event, as for every stage: a republish is not timed again.
    latency = summary["latency_us"]
    assert latency["relay"]["count"] == latency["visible"]["count"] == latency["append"]["count"]
    assert totals["republished"] > 0
    assert totals["duplicates_skipped"] == totals["republished"]
    assert totals["duplicates_applied"] == 0
    assert pipeline["invariants"]["ok"], pipeline["invariants"]
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_without_the_guard_a_republished_event_is_applied_twice_and_the_check_says_so(
    tmp_path: Path,
) -> None:
    raw = scenario({"crash_at": "1s", "crash_for": "200ms", "idempotency": "none"})
    (summary,) = run(tmp_path, raw)
    pipeline = summary["pipeline"]
    totals = pipeline["totals"]
    assert totals["republished"] > 0
    assert totals["duplicates_applied"] == totals["republished"]
    assert pipeline["invariants"]["applied_twice"] == totals["republished"]
    assert not pipeline["invariants"]["ok"]
    assert summary["verdict"]["result"] == "fail"
    assert any("duplicate applications" in r for r in summary["verdict"]["reasons"])


def test_a_dual_write_crash_loses_the_events_committed_inside_it(tmp_path: Path) -> None:
    raw = scenario({"relay": "dual_write", "crash_at": "1s", "crash_for": "200ms"})
    (summary,) = run(tmp_path, raw)
    pipeline = summary["pipeline"]
    totals = pipeline["totals"]
    invariants = pipeline["invariants"]
    # About 200 ms x 300 commands/s were committed and never published.
    assert 30 <= totals["not_published"] <= 120, totals
    # Every event published was received (the broker lost nothing) ...
    assert summary["audit"]["lost"] == 0 and summary["audit"]["sent"] == totals["published"]
    # ... yet the read model misses the crash's events, and those behind them per aggregate.
    assert invariants["never_applied"] >= totals["not_published"]
    # By id: the first events the read model never saw are the crash's first commits.
    assert len(totals["not_published_ids"]) == 10  # the samples kept
    assert invariants["never_applied_ids"] == totals["not_published_ids"]
    assert invariants["aggregates_differing"] > 0
    assert summary["verdict"]["result"] == "fail"
    assert any("never published" in r for r in summary["verdict"]["reasons"])
    # The store kept every commit: the loss is the pipeline's, never the store's.
    assert summary["store"]["invariants"]["ok"]


def test_the_terminal_table_leads_with_visible_and_the_invariants(tmp_path: Path) -> None:
    path = tmp_path / "pl.toml"
    path.write_text(
        "\n".join(
            [
                '[scenario]\nname = "pl"\nduration = "1s"\nwarmup = "500ms"',
                '[workload]\nkind = "pipeline"\nrate = 200\naggregates = 50\nconsumers = 1',
                '[targets.memory]\ndriver = "memory"',
            ]
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(path), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if "visible p50" in line)
    assert header.index("visible p50") < header.index("invariants") < header.index("append p99")
    assert "hold" in done.stdout
    (summary_path,) = (tmp_path / "r").glob("*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["kind"] == "pipeline" and summary["pipeline"]["invariants"]["ok"]


@pytest.mark.parametrize(
    ("pipeline", "targets", "field"),
    [
        ({"store": "nope"}, {"memory": {"driver": "memory"}}, "workload.pipeline.store"),
        ({}, {"a": {"driver": "memory"}, "b": {"driver": "memory"}}, "workload.pipeline.store"),
    ],
)
def test_a_pipeline_without_its_store_is_refused_naming_the_field(
    pipeline: dict[str, Any], targets: dict[str, Any], field: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        expand(scenario_from_dict(scenario(pipeline, **targets), "pl.toml"))
    assert caught.value.field == field


def test_a_pipeline_on_a_shared_store_and_several_workers_is_refused_for_now() -> None:
    raw = scenario({"store": "pg"}, pg={"driver": "postgres"}, broker={"driver": "memory"})
    raw["workload"].update(workers=2, producers=2)
    with pytest.raises(ScenarioError) as caught:
        expand(scenario_from_dict(raw, "pl.toml"))
    assert caught.value.field == "workload.workers"
    raw = scenario()
    raw["workload"].update(workers=2, producers=1)
    with pytest.raises(ScenarioError) as caught:
        expand(scenario_from_dict(raw, "pl.toml"))
    assert caught.value.field == "workload.producers"


def test_memory_pipelines_on_two_workers_are_one_point_with_one_audit(tmp_path: Path) -> None:
    # The memory store and broker live in each worker: two independent pipelines, each half
    # the aggregates and half the rate, merged into one point.
    raw = scenario({"crash_at": "1s", "crash_for": "100ms"})
    raw["workload"].update(workers=2, producers=2, rate=600)
    (summary,) = run(tmp_path, raw)
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
    pipeline = summary["pipeline"]
    assert pipeline["invariants"]["ok"] and pipeline["drained"]
    assert pipeline["totals"]["relay_restarts"] == 4  # 2 relays in each of 2 workers
    # Four relays, four producers in the audit: every acknowledged send received once.
    audit = summary["audit"]
    assert audit["sent"] == pipeline["totals"]["published"] and audit["lost"] == 0
    assert audit["duplicated"] == 0 and audit["unknown_received"] == 0
    assert summary["store"]["events_committed"] == pipeline["totals"]["applied"] > 1000
    assert pipeline["throughput_per_s"]["applied"] >= 500


def test_a_table_of_broker_to_store_gives_each_broker_its_own_store() -> None:
    raw = scenario(
        {"store": {"both": "both", "broker": "store"}},
        both={"driver": "memory"},
        store={"driver": "memory", "service_time": "1ms"},
        broker={"driver": "memory"},
        unused={"driver": "memory"},
    )
    points = expand(scenario_from_dict(raw, "pl.toml"))
    assert [(p.target, p.store_target) for p in points] == [("both", "both"), ("broker", "store")]
    assert points[1].store_config is not None and points[1].store_config.service_time == 0.001
    bad = scenario({"store": {"broker": "nope"}}, broker={"driver": "memory"})
    with pytest.raises(ScenarioError) as caught:
        expand(scenario_from_dict(bad, "pl.toml"))
    assert caught.value.field == "workload.pipeline.store.broker"


def test_pipeline_options_on_another_kind_are_refused_not_ignored() -> None:
    # The table would be ignored, and the run would not be the one the file describes.
    raw = scenario({"relays": 3})
    raw["workload"]["kind"] = "stream"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "pl.toml")
    assert caught.value.field == "workload.pipeline"
    assert 'set kind = "pipeline"' in str(caught.value)
    # An empty (default) table on a stream scenario is no change: it still expands.
    raw["workload"]["pipeline"] = {}
    (point,) = expand(scenario_from_dict(raw, "pl.toml"))
    assert point.workload.kind == "stream"


def test_a_stage_slo_is_judged_and_refused_outside_a_pipeline(tmp_path: Path) -> None:
    raw = scenario()
    raw["slo"] = {"visible.p99": "1us"}
    (summary,) = run(tmp_path, raw)
    assert summary["slo"]["visible.p99"]["result"] == "fail"
    assert summary["verdict"]["result"] == "fail"
    raw["workload"]["kind"] = "stream"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "pl.toml")
    assert "pipeline stage" in str(caught.value)


def test_the_pipeline_scenario_on_the_memory_target_shows_the_fix_and_both_negative_controls(
    tmp_path: Path,
) -> None:
    scenario_file = Path(__file__).resolve().parents[2] / "scenarios" / "pipeline.toml"
    sets = [
        "scenario.duration=1500ms",
        "scenario.warmup=500ms",
        "workload.rate=800",  # 1,200 visible samples: enough for the scenario's p99 SLO
        "workload.pipeline.crash_at=1s",
        "workload.pipeline.crash_for=150ms",
    ]
    argv = [sys.executable, "-m", "bench.cli", "run", str(scenario_file), "-t", "memory"]
    for item in sets:
        argv += ["--set", item]
    done = subprocess.run(
        [*argv, "-o", str(tmp_path / "r"), "-q", "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summaries = {
        (s["params"]["workload.pipeline.relay"], s["params"]["workload.pipeline.idempotency"]): s
        for s in (json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/*/summary.json"))
    }
    assert len(summaries) == 4
    fix = summaries[("outbox", "processed_events")]
    assert fix["verdict"]["result"] == "pass", fix["verdict"]
    assert fix["pipeline"]["totals"]["duplicates_skipped"] > 0
    no_guard = summaries[("outbox", "none")]
    assert no_guard["pipeline"]["totals"]["duplicates_applied"] > 0
    assert no_guard["verdict"]["result"] == "fail"
    for guard in ("processed_events", "none"):
        dual = summaries[("dual_write", guard)]
        assert dual["pipeline"]["totals"]["not_published"] > 0
        assert dual["verdict"]["result"] == "fail"


def test_each_stage_has_its_throughput_over_the_window_and_they_agree(tmp_path: Path) -> None:
    (summary,) = run(tmp_path, scenario())
    rates = summary["pipeline"]["throughput_per_s"]
    # 300 commands/s, one or more events each; nothing lost, so every stage passes them all.
    assert rates["committed"] >= 250
    for stage in ("published", "consumed", "applied"):
        assert rates[stage] == pytest.approx(rates["committed"], rel=0.1), (stage, rates)
    assert rates["applied"] == summary["pipeline"]["applied_per_s"]
    assert rates["applied"] == summary["throughput"]["received_per_s"]


def test_a_broker_kill_under_a_pipeline_keeps_the_invariants_and_shows_the_applies_stop(
    tmp_path: Path,
) -> None:
    raw = scenario()
    raw["faults"] = [{"at": "1200ms", "action": "kill", "down_for": "300ms"}]
    (summary,) = run(tmp_path, raw)
    (fault,) = summary["faults"]
    assert fault["status"] == "done"
    # The read model stopped changing while the broker was down; the commands did not.
    assert fault["consumer_outage_s"] >= 0.3 and fault["producer_outage_s"] < 0.2
    # Sends refused while it was down stayed in the outbox and went out afterwards, once.
    totals = summary["pipeline"]["totals"]
    assert totals["publish_failed"] > 0 and totals["duplicates_applied"] == 0
    assert summary["pipeline"]["invariants"]["ok"], summary["pipeline"]["invariants"]
    assert fault["audit"] is None  # a pipeline's broker hop is audited over the run


def test_the_drain_waits_for_events_not_sends(tmp_path: Path) -> None:
    # A crash makes the relays publish a batch twice; the drain ends once every event is in
    # the read model, long before drain_timeout (10 s), and says so.
    raw = scenario({"crash_at": "1s", "crash_for": "100ms"})
    (summary,) = run(tmp_path, raw)
    assert summary["pipeline"]["totals"]["republished"] > 0
    assert summary["pipeline"]["drained"] and summary["drain"]["ended_by"] == "all applied"
    assert summary["ended_at"] - summary["started_at"] < 8


def test_a_fault_on_the_store_is_refused_where_it_cannot_act() -> None:
    # The memory store lives in the worker: no service to act on.
    raw = scenario()
    raw["faults"] = [{"at": "1s", "action": "kill", "down_for": "300ms", "on": "store"}]
    with pytest.raises(ScenarioError) as caught:
        expand(scenario_from_dict(raw, "pl.toml"))
    assert caught.value.field == "faults.0.on"
    # A store fault on a stream workload names the field.
    raw["workload"]["kind"] = "stream"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "pl.toml")
    assert 'faults[0].on = "store"' in str(caught.value)


def test_a_crash_after_the_load_and_an_override_of_a_matrix_axis_are_refused(
    tmp_path: Path,
) -> None:
    raw = scenario({"crash_at": "2500ms"})  # warmup 500 ms + duration 2 s: the load's end
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "pl.toml")
    assert "crash_at" in str(caught.value) and "never crash" in str(caught.value)
    raw = scenario()
    raw["matrix"] = {"workload.pipeline.relay": ["outbox", "dual_write"]}
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "pl.toml", ["workload.pipeline.relay=dual_write"])
    assert caught.value.field == "workload.pipeline.relay"
    narrowed = scenario_from_dict(raw, "pl.toml", ['matrix.workload.pipeline.relay=["outbox"]'])
    assert [p.params for p in expand(narrowed)] == [{"workload.pipeline.relay": "outbox"}]


def test_find_max_never_calls_a_rate_that_loses_events_sustainable(tmp_path: Path) -> None:
    from bench.capacity.checks import Criteria, judge

    raw = scenario({"relay": "dual_write", "crash_at": "1s", "crash_for": "200ms"})
    (point,) = expand(scenario_from_dict(raw, "pl.toml"))
    summary = PointRunner(point, "pl", tmp_path / "p", stop_requested=lambda: False).run()
    checks = {c.name: c for c in judge(summary, tmp_path / "p", Criteria())}
    assert not checks["invariants"].passed, checks["invariants"]
    assert "never reached the read model" in checks["invariants"].value
