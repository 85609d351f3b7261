"""summary.json as pure functions of a point's facts: no process, no target, no file (issue 15)."""

from __future__ import annotations

from array import array
from typing import Any

import pytest

from bench.drivers.base import Topology
from bench.engine.summary import PointFacts, client_bound, summarize
from bench.engine.target import StoreCheck
from bench.engine.workers import KINDS
from bench.metrics.audit import ACK_OK, ConsumerLedger, ProducerLedger
from bench.metrics.recorder import new_histogram
from bench.scenario import expand, scenario_from_dict
from bench.workload import key_namer


def _point(kind: str = "stream", **workload: Any):
    raw = {
        "scenario": {"name": "s", "duration": "2s", "warmup": "1s"},
        "workload": {"rate": 100, "producers": 2, "consumers": 2, "workers": 2, "kind": kind,
                     **workload},
        "targets": {"mem": {"driver": "memory"}},
    }  # fmt: skip
    return expand(scenario_from_dict(raw, "t.toml"))[0]


def _final(producer: int, sent: int, received: int, point) -> dict[str, Any]:
    """One worker's final report: ``sent`` acknowledged events, the first ``received`` seen."""
    ledger = ProducerLedger(producer)
    ledger.keys = array("I", [0] * sent)
    ledger.acks = bytearray([ACK_OK] * sent)
    consumers = ConsumerLedger()
    name = key_namer(point.workload)(0)
    for seq in range(received):
        consumers.record(producer, seq, name, seq)
    zero = dict.fromkeys(KINDS, 0)
    return {
        "producers": [ledger.export()], "consumers": consumers.export(),
        "sent": sent, "acked": sent, "failed": 0, "delivered": received,
        "sent_in_window": sent, "acked_in_window": sent, "received_in_window": received,
        "in_flight_peak": 3, "oversize": 0, "skipped": 0,
        "acked_intended_in_window": sent, "failed_intended_in_window": 0,
        "errors": {"timeout": 1}, "negatives": zero, "clamped": zero,
        "send_turn_waits": 2,
    }  # fmt: skip


def _facts(point, finals, **overrides: Any) -> PointFacts:
    values: dict[str, Any] = {
        "point": point,
        "run_id": "r",
        "dir_name": "000-mem",
        "topology": Topology("t", 8, 2, 2, "g"),
        "workers": 2,
        "finals": finals,
        "measured": {kind: new_histogram() for kind in KINDS},
        "loop_lag": new_histogram(),
        "cpu_samples": [20.0, 35.0],
        "status": "ok",
        "problems": [],
        "describe": {"product": "memory"},
        "started_at": 1.0,
        **overrides,
    }
    return PointFacts(**values)


def test_the_workers_counts_are_summed_and_the_audit_merged():
    point = _point()
    summary = summarize(_facts(point, [_final(0, 100, 100, point), _final(1, 60, 58, point)]))
    assert summary["status"] == "ok"
    assert summary["throughput"]["sent_per_s"] == pytest.approx(160 / 2)
    assert summary["errors"]["by_kind"] == {"timeout": 2}
    assert summary["harness"]["send_turn_waits"] == 4
    assert summary["harness"]["cpu_pct_max_worker"] == 35.0
    assert summary["audit"]["lost"] == 2
    assert summary["verdict"]["result"] == "fail"
    assert summary["verdict"]["reasons"][0].startswith("lost 2 acknowledged")


def test_a_missing_worker_report_is_a_problem_and_no_report_at_all_fails_the_point():
    point = _point()
    one = summarize(_facts(point, [_final(0, 10, 10, point)]))
    assert one["problems"] == ["only 1 of 2 workers reported results"]
    none = summarize(_facts(point, []))
    assert none["status"] == "failed"
    assert none["problems"] == ["no worker reported results"]
    assert none["verdict"]["result"] == "inconclusive"


def test_facts_are_not_mutated():
    point = _point()
    facts = _facts(point, [])
    summarize(facts)
    assert facts.status == "ok" and facts.problems == []


def test_a_store_check_from_the_coordinator_reaches_the_store_summary():
    point = _point(kind="store", consumers=0)
    final = _final(0, 0, 0, point)
    final["store"] = {"commands": 4, "attempts": 5, "commits": 4, "conflicts": 1}
    check = StoreCheck(violations=["a fork"], counters_before={"xact_commit": 10},
                       counters_after={"xact_commit": 25})  # fmt: skip
    summary = summarize(_facts(point, [final], workers=1, store_check=check))
    store = summary["store"]
    assert store["conflict_rate"] == pytest.approx(1 / 5)
    assert store["server_counters"] == {"xact_commit": 15}
    assert store["invariants"] == {"ok": False, "violations": ["a fork"], "not_checked": []}
    assert summary["problems"] == ["store invariants violated: a fork"]
    assert summary["status"] == "ok"  # the point ran; its verdict fails
    assert summary["verdict"]["result"] == "fail"


def test_the_harness_is_the_limit_only_when_it_was_saturated_and_missed_the_schedule():
    workload = _point().workload
    latency = {"schedule_lag": {"p99": 50.0}}
    kept = {"skipped": 0, "sent_in_window": 200}
    assert client_bound(workload, 2.0, latency, kept, 99.0, 100.0) == (False, [])
    missed = {"skipped": 0, "sent_in_window": 100}
    bound, reasons = client_bound(workload, 2.0, latency, missed, 99.0, 100.0)
    assert bound and reasons == ["a worker used 99% of a core", "sent 100 of 200 scheduled events"]
    assert client_bound(workload, 2.0, latency, missed, 50.0, 100.0) == (False, [])


def test_an_interrupted_point_gives_rates_over_the_window_it_measured():
    # 1 s of warm-up, 2 s planned window; the interrupt came 0.5 s into the window.
    point = _point()
    finals = [_final(0, 50, 50, point), _final(1, 50, 50, point)]
    t0 = 10_000_000_000
    stopped = summarize(
        _facts(point, finals, status="interrupted", t0_ns=t0, stopped_ns=t0 + 1_500_000_000)
    )
    assert stopped["workload"]["duration_s"] == pytest.approx(0.5)
    assert stopped["throughput"]["acked_per_s"] == pytest.approx(100 / 0.5)
    # Stopped during the warm-up: no window at all, and no rate made up.
    early = summarize(_facts(point, finals, status="interrupted", t0_ns=t0, stopped_ns=t0 + 1))
    assert early["workload"]["duration_s"] == 0
    assert early["throughput"]["acked_per_s"] == 0
    # A run that went its course keeps the planned window.
    full = summarize(_facts(point, finals, t0_ns=t0))
    assert full["workload"]["duration_s"] == 2
    assert full["throughput"]["acked_per_s"] == pytest.approx(100 / 2)
