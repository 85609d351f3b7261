"""The event-store workload on the in-process store: accounting, invariants, contention."""

from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


def run_store(tmp_path: Path, workload: dict) -> dict:
    raw = {
        "scenario": {"name": "st", "duration": "2s", "warmup": "500ms"},
        "workload": {"kind": "store", "producers": 1, **workload},
        "targets": {"mem": {"driver": "memory", "service_time": "200us"}},
    }
    point = expand(scenario_from_dict(raw, "t.toml"))[0]
    return PointRunner(point, "t", tmp_path / "p", stop_requested=lambda: False).run()


def test_contended_appends_add_up_and_keep_the_invariants(tmp_path):
    summary = run_store(tmp_path, {"rate": "max", "concurrency": 16, "aggregates": 5})
    store = summary["store"]
    assert summary["status"] == "ok", summary["problems"]
    assert summary["errors"]["total"] == 0, summary["errors"]
    assert store["invariants"]["ok"], store["invariants"]
    assert store["conflicts"] > 0 and store["commits"] > 0 and store["rejections"] > 0
    assert store["attempts"] == store["commits"] + store["conflicts"] + store["errors"]
    assert store["accounting_adds_up"]
    assert store["retries"] >= store["conflicts"] - store["abandoned"] - 16
    assert summary["latency_us"]["service"]["count"] > 0
    assert summary["latency_us"]["response"]["count"] > 0


def test_without_contention_there_are_no_conflicts(tmp_path):
    summary = run_store(tmp_path, {"rate": 300, "max_in_flight": 1, "aggregates": 100_000})
    store = summary["store"]
    assert store["conflicts"] == 0 and store["invariants"]["ok"]
    assert store["goodput_per_s"] == pytest.approx(
        300 * (1 - store["rejections"] / store["commands"]), rel=0.1
    )
