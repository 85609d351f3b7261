"""The verdict through the real ``bench run``: a target that fails, drops or stalls never reads
as a pass, and the harness never reorders one key's events itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import run_bench

pytestmark = pytest.mark.slow

KILLED = """
[scenario]
name = "killed"
duration = "4s"
warmup = "1s"
drain_timeout = "2s"

[workload]
rate = 1000
schedule = "constant"
producers = 2
consumers = 2
partitions = 4
send_timeout = "3s"

[targets.mem]
driver = "memory"
service_time = "1ms"

[slo]
"e2e.p99" = "50ms"

[[faults]]
at = "2s"
action = "kill"
down_for = "20s"             # never back: the load ends inside the fault
"""

DROPPING = """
[scenario]
name = "dropping"
duration = "3s"
warmup = "500ms"

[workload]
rate = 1000
producers = 1
consumers = 1

[targets.mem]
driver = "memory"
service_time = "1ms"
drop_rate = 0.999

[slo]
"e2e.p99" = "50ms"
"""


def _run(tmp_path: Path, text: str, *extra: str) -> tuple[int, dict]:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text)
    results = tmp_path / "results"
    code = run_bench(["run", str(scenario), "-o", str(results), "-q", "--no-report", *extra])
    (summary_path,) = results.glob("*/*/summary.json")
    return code, json.loads(summary_path.read_text())


def test_a_killed_target_fails_its_verdict_and_reads_slow(tmp_path: Path) -> None:
    code, summary = _run(tmp_path, KILLED)
    assert summary["status"] == "ok"  # the point ran: the target is what failed
    # Without --fail-on verdict the exit code follows the status (the dropping target below
    # checks that --fail-on verdict exits 1).
    assert code == 0
    verdict = summary["verdict"]
    assert verdict["result"] == "fail"
    errors = summary["errors"]
    # Killed at 1 s into the 4 s window, never back: 3 of 4 seconds of sends refused.
    assert errors["scheduled_in_window"] == 4000
    assert 2900 <= errors["failed_in_window"] <= 3100
    assert any(r.startswith("error rate ") and "> 0.1%" in r for r in verdict["reasons"])
    # Failures count in response latency at no less than the send timeout (3 s), while the
    # success-only histogram keeps the fast acknowledgements apart.
    response, response_ok = summary["latency_us"]["response"], summary["latency_us"]["response_ok"]
    assert response["count"] == errors["scheduled_in_window"]
    assert response["p99"] >= 3_000_000
    assert response_ok["count"] == response["count"] - errors["failed_in_window"]
    assert response_ok["p99"] < 100_000
    # The fault was acted out to the end of the load; every error the run counted is its own.
    (fault,) = summary["faults"]
    assert fault["status"] == "done" and fault["restored_at_s"] is None
    assert fault["errors"] + fault.get("errors_before", 0) == errors["total"]
    assert "kill at 2s: deliveries never resumed" in verdict["reasons"]


def test_a_target_dropping_nearly_everything_fails_and_its_slo_lacks_data(tmp_path: Path) -> None:
    code, summary = _run(tmp_path, DROPPING, "--fail-on", "verdict")
    assert code == 1
    reasons = summary["verdict"]["reasons"]
    assert summary["audit"]["lost"] > 2900
    assert any(r.startswith("lost ") for r in reasons)
    slo = summary["slo"]["e2e.p99"]
    assert slo["result"] == "insufficient data" and slo["pass"] is None
    assert slo["samples"] < slo["samples_needed"] == 1000
    assert any("e2e.p99: insufficient data" in r for r in reasons)


def test_a_healthy_run_passes(tmp_path: Path) -> None:
    text = DROPPING.replace("drop_rate = 0.999\n", "")
    code, summary = _run(tmp_path, text, "--fail-on", "verdict")
    assert code == 0
    assert summary["verdict"] == {"result": "pass", "reasons": []}
    assert summary["slo"]["e2e.p99"]["result"] == "pass"


SATURATED = """
[scenario]
name = "saturated"
duration = "3s"
warmup = "1s"
drain_timeout = "20s"

[workload]
rate = 40000
producers = 2
consumers = 2
workers = 2
partitions = 4
max_in_flight = 64
aggregates = 1000

[targets.mem]
driver = "memory"
service_time = "1ms"
"""


def test_the_harness_never_reorders_a_key_at_saturation(tmp_path: Path) -> None:
    _, summary = _run(tmp_path, SATURATED)
    assert summary["status"] == "ok"
    # Slots woke out of order (the situation that reordered keys before) ...
    assert summary["harness"]["send_turn_waits"] > 0
    # ... and still every key's events reached the target, and the consumers, in order.
    assert summary["audit"]["reordered"] == 0
    assert summary["audit"]["lost"] == 0
    assert summary["audit"]["received"] == summary["audit"]["acked"] > 100_000
