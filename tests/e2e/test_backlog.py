"""Backlog build and drain (``workload.backlog``, issue 20) on the memory target: consumers
held back until the producers built 2 MiB, then resumed to read it while the producers keep
sending; the terminal, summary.json and the reports show the same figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.report.backlog import backlog_row
from bench.scenario import expand, scenario_from_dict
from tests.cli_support import bench, only_run

BACKLOG_MESSAGES = 2048  # 2 MiB of 1 KiB bodies


def _run(tmp_path: Path, rate: float, duration: str = "3s", **workload: object) -> dict:
    raw = {
        "scenario": {"name": "backlog", "duration": duration, "warmup": "0s", "seed": 5},
        "workload": {
            "rate": rate,
            "payload_bytes": 1024,
            "backlog": "2MiB",
            "partitions": 4,
            **workload,
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "backlog.toml"))[0]
    return PointRunner(point, "backlog", tmp_path, stop_requested=lambda: False).run()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_backlog_builds_then_drains_while_producers_keep_sending(
    tmp_path: Path, workers: int
) -> None:
    summary = _run(tmp_path, 2000, workers=workers, producers=2, consumers=2)
    assert summary["status"] == "ok", summary["problems"]
    backlog = summary["backlog"]
    assert backlog["backlog_messages"] == BACKLOG_MESSAGES
    assert backlog["built"] and backlog["drained"], backlog
    # Built at 2,000/s: about a second in, never before the 2,048th ack could exist.
    assert 1.0 <= backlog["built_s"] < 2.0
    assert backlog["owed_at_resume"] >= BACKLOG_MESSAGES
    assert backlog["drain_s"] > 0 and backlog["drain_read_per_s"] > 2000
    assert backlog["consumers_started_ms"] is not None
    catchup = summary["latency_us"]["catchup"]
    # Every message of the backlog waited in it: the catch-up e2e is at least its share.
    assert catchup["count"] >= BACKLOG_MESSAGES and catchup["p50"] > 100_000
    assert summary["audit"]["lost"] == 0 and summary["audit"]["acked"] == 6000
    assert summary["workload"]["backlog_bytes"] == 2 * 2**20
    assert summary["workload"]["backlog_drain_ratio"] == 1.0
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_a_backlog_the_load_cannot_build_fails_the_point(tmp_path: Path) -> None:
    # 300/s for 2 s is 600 messages: never the 2,048 of the backlog.
    summary = _run(tmp_path, 300, duration="2s")
    backlog = summary["backlog"]
    assert summary["status"] == "ok", summary["problems"]
    assert not backlog["built"] and backlog["resumed"]  # resumed when the load ended
    # The live counts at the load's end (up to 50 ms old): about all 600 sent.
    owed = backlog["owed_at_resume"]
    assert 500 <= owed <= 600 and backlog["drained"]
    assert summary["verdict"]["result"] == "fail"
    assert summary["verdict"]["reasons"] == [
        "backlog not built: 2,048 messages never acknowledged within the load "
        f"({owed} owed when the consumers resumed)"
    ]


@pytest.mark.slow
def test_the_terminal_and_the_reports_show_the_summarys_backlog(tmp_path: Path) -> None:
    scenario = tmp_path / "backlog.toml"
    scenario.write_text(
        '[scenario]\nname = "backlog"\nduration = "3s"\nwarmup = "0s"\n'
        '[workload]\nrate = 2000\npayload_bytes = 1024\nbacklog = "2MiB"\n'
        "backlog_drain_ratio = 0.9\n"
        '[targets.memory]\ndriver = "memory"\n'
    )
    results = tmp_path / "results"
    ran = bench("run", str(scenario), "-o", str(results))
    assert ran.returncode == 0, ran.stderr
    run_dir = only_run(results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / manifest["points"][0]["dir"] / "summary.json").read_text())
    assert summary["workload"]["backlog_drain_ratio"] == 0.9
    row = backlog_row(summary, summary["label"])
    assert row["built in"] != "not built" and row["drain"] != "not drained"
    markdown = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert "## Backlog" in markdown and "<h2>Backlog</h2>" in html
    for name in ("built in", "owed at resume", "drain", "drain read/s", "catch-up e2e p99"):
        assert row[name] in ran.stdout, (name, row[name])
        assert row[name] in markdown and row[name] in html, (name, row[name])
