"""The example third-party driver of docs/writing-a-driver.md through ``bench run``: found by
its own entry point (PYTHONPATH, no pip), in the coordinator and in the worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.targets import THIRD_PARTY_PATH

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """
[scenario]
name = "loopback-example"
description = "The example third-party driver, end to end"
duration = "1s"
warmup = "200ms"
seed = 1

[workload]
rate = 500
payload_bytes = 256
aggregates = 50
event_types = { OrderPlaced = 1.0 }
producers = 2
consumers = 2
partitions = 2

[targets.loopback]
driver = "loopback"
ack_delay = "100us"
"""


@pytest.mark.slow
def test_bench_run_with_the_example_driver_exits_0_with_an_exact_audit(tmp_path: Path) -> None:
    scenario = tmp_path / "loopback.toml"
    scenario.write_text(SCENARIO)
    results = tmp_path / "results"
    path = os.pathsep.join(p for p in (str(THIRD_PARTY_PATH), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(scenario), "-o", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (summary_path,) = results.glob("*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["driver"] == "loopback" and summary["status"] == "ok"
    assert summary["target_info"]["product"] == "eventbench loopback (example driver)"
    assert summary["verdict"]["result"] == "pass"
    audit = summary["audit"]
    assert audit["sent"] >= 400  # 500/s for 1 s plus the warm-up, give or take the schedule
    assert audit["acked"] == audit["received"] == audit["sent"]
    assert audit["lost"] == audit["duplicated"] == audit["reordered"] == 0
    assert audit["unknown_received"] == 0
