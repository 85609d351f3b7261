"""bench/verdict.py: the rules of a point's verdict, on summaries of known content."""

from __future__ import annotations

from typing import Any

import pytest

from bench.errors import ScenarioError
from bench.scenario import scenario_from_dict
from bench.verdict import judge, samples_needed, slo_entry, verdict_of, verdict_text


def _summary(**changes: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "status": "ok",
        "kind": "stream",
        "audit": {"sent": 10_000, "acked": 10_000, "failed": 0, "lost": 0, "duplicated": 0,
                  "reordered": 0},
        "errors": {"total": 0, "failed_in_window": 0, "scheduled_in_window": 10_000},
        "throughput": {"skipped": 0},
        "slo": {},
        "store": None,
    }  # fmt: skip
    summary.update(changes)
    return summary


def test_samples_needed_are_ten_beyond_the_percentile() -> None:
    assert samples_needed("p99") == 1000
    assert samples_needed("p999") == 10_000
    assert samples_needed("p50") == 20
    assert samples_needed("max") == 1


def test_an_slo_held_on_too_few_samples_is_insufficient_data_never_pass() -> None:
    latency = {"e2e": {"count": 5, "p99": 900.0}}
    entry = slo_entry("e2e.p99", 50_000.0, latency)
    assert entry["result"] == "insufficient data" and entry["pass"] is None
    # A broken SLO is broken on any number of samples.
    latency = {"e2e": {"count": 5, "p99": 70_844.415}}
    assert slo_entry("e2e.p99", 50_000.0, latency)["result"] == "fail"
    assert slo_entry("e2e.p99", 50_000.0, {})["result"] == "no data"


def test_each_broken_rule_is_a_reason_in_words_with_readable_units() -> None:
    summary = _summary(
        audit={"lost": 4, "duplicated": 2, "reordered": 3, "keys_reordered": 1},
        errors={"failed_in_window": 30, "scheduled_in_window": 10_000},
        slo={"e2e.p99": slo_entry("e2e.p99", 50_000.0, {"e2e": {"count": 9000, "p99": 70_844.4}})},
    )
    verdict = judge(summary)
    assert verdict.result == "fail"
    assert verdict.reasons == [
        "lost 4 acknowledged",
        "duplicated 2",
        "reordered 3 over 1 keys",
        "error rate 0.3% > 0.1% (30 failed or skipped of 10,000)",
        "SLO e2e.p99 70.84ms > 50.00ms",
    ]
    assert verdict_text({**summary, "verdict": verdict.as_dict()}).startswith("FAIL: lost 4")


def test_rules_allow_duplicates_and_reordering_and_set_the_error_threshold() -> None:
    summary = _summary(
        audit={"duplicated": 2, "reordered": 3},
        errors={"failed_in_window": 30, "scheduled_in_window": 10_000},
    )
    rules = {"allow_duplicates": True, "allow_reordering": True, "max_error_rate": 0.01}
    assert judge(summary, rules).result == "pass"


def test_a_store_fails_on_invariants_and_abandoned_commands() -> None:
    store = {
        "commands": 7000,
        "abandoned": 49,
        "invariants": {"ok": False, "violations": ["version gap in order-00000001 at 3"]},
    }
    verdict = judge(_summary(kind="store", store={**store, "errors": 30}))
    # Append errors that a retry overcame are no failure; abandoned commands are.
    assert verdict.reasons == [
        "invariant: version gap in order-00000001 at 3",
        "abandoned 49 of 7,000 commands (0.7% > 0.1%)",
    ]


def test_a_fault_the_target_never_recovered_from_fails_and_one_not_reached_is_doubted() -> None:
    row = {"action": "kill", "at_s": 3.0, "status": "done", "consumers_resumed": False}
    assert judge(_summary(faults=[row])).reasons == ["kill at 3s: deliveries never resumed"]
    row = {**row, "consumers_resumed": True, "recovery_s": None}
    assert judge(_summary(faults=[row])).reasons == ["kill at 3s: not recovered"]
    assert judge(_summary(faults=[{**row, "recovery_s": 1.2}])).result == "pass"
    late = {"action": "pause", "at_s": 9.0, "status": "not reached"}
    assert judge(_summary(faults=[late])).result == "inconclusive"


def test_a_point_that_did_not_finish_is_inconclusive_not_pass() -> None:
    assert judge(_summary(status="interrupted")).result == "inconclusive"
    failed = judge(_summary(status="failed", problems=["memory: setup timed out"]))
    assert failed.result == "inconclusive"
    assert failed.reasons == ["the point did not run to the end: memory: setup timed out"]


def test_an_old_summary_without_a_verdict_is_judged_on_reading() -> None:
    old = _summary(
        audit={"sent": 100, "failed": 0, "lost": 4},
        errors={"total": 0},
        slo={"e2e.p99": {"threshold_us": 50_000.0, "value_us": 10.0, "pass": True}},
    )
    assert verdict_of(old) == {"result": "fail", "reasons": ["lost 4 acknowledged"]}


def _scenario(verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": {"name": "v"},
        "targets": {"mem": {"driver": "memory"}},
        "verdict": verdict,
    }


def test_the_verdict_table_takes_a_percentage_or_a_fraction() -> None:
    rules = scenario_from_dict(_scenario({"max_error_rate": "0.5%"}), "v.toml").verdict
    assert rules.max_error_rate == pytest.approx(0.005)
    assert (
        scenario_from_dict(_scenario({"max_error_rate": 0.02}), "v.toml").verdict.max_error_rate
        == 0.02
    )
    with pytest.raises(ScenarioError, match="max_error_rate"):
        scenario_from_dict(_scenario({"max_error_rate": "lots"}), "v.toml")
    with pytest.raises(ScenarioError, match="allow_dupes"):
        scenario_from_dict(_scenario({"allow_dupes": True}), "v.toml")


def test_projection_failures_fail_the_point_naming_the_aggregates_hit() -> None:
    audit = {
        "reordered": 0,
        "projection_failures": 12,
        "keys_projection_failed": 5,
        "projection_stuck": 2,
    }
    verdict = judge(_summary(audit=audit))
    assert verdict.result == "fail"
    assert verdict.reasons == [
        "projection failures 12 over 5 aggregates, 2 never applied (their state never came)"
    ]
    # A workload that does not care for order says so once, for both counts.
    assert judge(_summary(audit=audit), {"allow_reordering": True}).result == "pass"
    # Not run (a pipeline, an older summary): no finding.
    assert judge(_summary(audit={"projection_failures": None})).result == "pass"


def test_an_order_projection_that_could_not_be_judged_is_never_a_pass() -> None:
    audit = {"reordered": 0, "projection_failures": None, "projection_note": "not judged: x"}
    verdict = judge(_summary(audit=audit))
    assert verdict.result == "inconclusive"
    assert verdict.reasons == ["order projection not judged: x"]
