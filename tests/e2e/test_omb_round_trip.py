"""An OMB workload file run as it is (durations and rate overridden) on the memory target,
and its results exported as OMB's TestResult JSON, read back the way OMB's chart script reads
them, and checked against the run's own summary (issue 20)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.omb.export import PERCENTILES, TEST_RESULT_FIELDS
from tests.cli_support import run_bench_captured

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "omb"


def _read_like_omb_charts(path: Path) -> dict:
    """What OMB's bin/create_charts.py takes from a result file: the workload and driver
    names, the per-interval rates, and the aggregated latency quantile maps keyed by the
    percentile as a number."""
    result = json.loads(path.read_text())
    return {
        "workload": result["workload"],
        "driver": result["driver"],
        "publish_rate": [float(x) for x in result["publishRate"]],
        "consume_rate": [float(x) for x in result["consumeRate"]],
        "backlog": [int(x) for x in result["backlog"]],
        "publish_quantiles": {
            float(k): float(v) for k, v in result["aggregatedPublishLatencyQuantiles"].items()
        },
        "e2e_quantiles": {
            float(k): float(v) for k, v in result["aggregatedEndToEndLatencyQuantiles"].items()
        },
        "e2e_p99": float(result["aggregatedEndToEndLatency99pct"]),
        "publish_delay_p99": int(result["aggregatedPublishDelayLatency99pct"]),
    }


def test_an_omb_workload_runs_unchanged_and_exports_what_omb_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = FIXTURES / "workloads" / "1-topic-100-partitions-1kb-3-producers.yaml"
    results = tmp_path / "results"
    code, out, err = run_bench_captured(
        [
            "run",
            str(workload),
            "-t",
            "memory",
            "--set",
            "scenario.duration=2s",
            "--set",
            "scenario.warmup=500ms",
            "--set",
            "workload.rate=3000",
            "-o",
            str(results),
            "--no-report",
        ],
        capsys,
    )
    assert code == 0, err
    # What the import decided is said (on stderr, apart from the results).
    assert "RANDOM_NANO" in err and "allows it" in err
    run_dir = next(results.iterdir())
    code, out, err = run_bench_captured(["export-omb", str(run_dir)], capsys)
    assert code == 0, err
    assert out.strip().endswith("-omb.json")
    (exported,) = run_dir.glob("*-omb.json")
    raw = json.loads(exported.read_text())
    # Every field of OMB's TestResult, of the type OMB writes.
    missing = [name for name in TEST_RESULT_FIELDS if name not in raw]
    assert not missing, missing
    assert raw["messageSize"] == 1024 and raw["partitions"] == 100
    assert raw["producersPerTopic"] == 3 and raw["consumersPerTopic"] == 2
    summary = json.loads((run_dir / "000-memory" / "summary.json").read_text())
    charts = _read_like_omb_charts(exported)
    # OMB's lists cover the measured phase only: the timeseries' measure rows.
    with (run_dir / "000-memory" / "timeseries.csv").open() as handle:
        measured = [row for row in csv.DictReader(handle) if row["phase"] == "measure"]
    assert len(measured) >= 2 and len(charts["publish_rate"]) == len(measured)
    assert charts["publish_rate"] == [float(row["acked_per_s"]) for row in measured]
    for suffix, _ in PERCENTILES:
        assert len(raw[f"publishLatency{suffix}"]) == len(measured)
    assert all(2500 <= rate <= 3500 for rate in charts["publish_rate"]), charts["publish_rate"]
    # The same histograms as every eventbench table: e2e in ms, publish delay in µs.
    e2e_p99_ms = summary["latency_us"]["e2e"]["p99"] / 1e3
    assert charts["e2e_p99"] == pytest.approx(e2e_p99_ms, abs=0.001)
    assert charts["publish_delay_p99"] == round(summary["latency_us"]["schedule_lag"]["p99"])
    assert max(charts["e2e_quantiles"]) == 100.0
    assert raw["eventbench"]["latency"]["endToEndLatency"].startswith("intended send")
    assert raw["eventbench"]["audit"]["lost"] == 0


def test_export_refuses_a_run_with_no_stream_point(tmp_path: Path) -> None:
    from bench.errors import ResultsError
    from bench.omb.export import export_run

    with pytest.raises(ResultsError):
        export_run(tmp_path / "nothing-here")
