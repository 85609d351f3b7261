"""A pipeline run's report, terminal table, compare, check and history, from a real run of the
memory store and broker (no services): an outbox point that passes and a dual-write point whose
relay crash loses events (the negative control), 1.5 s of load each. bench run writes the
report the tests read.

What is held: the waterfall, the backlog and the visible spectrum are drawn; every figure of
the pipeline table, the latency table and the verdicts is the summary's; a failure reads as a
failure everywhere; and the commands that read runs read this one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import pipeline as pipeline_report
from bench.report.plots import spectrum_plot
from bench.report.tables import load
from bench.units import format_count, format_latency_us, format_rate
from tests.report_numbers import banner_and_tables, missing_numbers

SCENARIO = """
[scenario]
name = "pl-report"
duration = "1s"
warmup = "500ms"
seed = 3
drain_timeout = "10s"

[workload]
kind = "pipeline"
rate = 300
aggregates = 60
payload_bytes = 128
consumers = 2
partitions = 4

[workload.pipeline]
crash_at = "900ms"
crash_for = "200ms"
queries_per_s = 40

[matrix]
"workload.pipeline.relay" = ["outbox", "dual_write"]

[targets.memory]
driver = "memory"
"""
ENV = {"COLUMNS": "250", "PATH": "/usr/bin:/bin"}


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-report")
    path = root / "pl.toml"
    path.write_text(SCENARIO)
    done = bench("run", str(path), "-o", str(root / "results"), "--fail-on", "verdict", timeout=180)
    # The dual-write point fails on purpose: the run's exit code says so.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: 1 point(s) did not pass: memory relay=dual_write" in done.stderr
    (found,) = (root / "results").iterdir()
    return found


def summaries(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(run_dir.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        out[summary["pipeline"]["relay"]] = summary
    return out


def md_table(md: str, heading: str) -> list[dict[str, str]]:
    """The first pipe table after ``heading`` in report.md, as rows of cells by column."""
    lines = md.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def test_the_negative_control_is_caught_and_the_outbox_holds(run_dir: Path) -> None:
    found = summaries(run_dir)
    assert found["outbox"]["verdict"]["result"] == "pass", found["outbox"]["verdict"]
    dual = found["dual_write"]
    assert dual["verdict"]["result"] == "fail"
    assert dual["pipeline"]["invariants"]["never_applied"] > 0
    assert dual["pipeline"]["totals"]["not_published"] > 0


def test_the_report_draws_the_waterfall_the_backlog_and_the_visible_spectrum(
    run_dir: Path,
) -> None:
    # bench run wrote it; bench report writes it again, the same way.
    done = bench("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    page = (run_dir / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert "Pipeline: stage latency waterfall" in images
    assert "Pipeline: outbox backlog and deliveries waiting over time" in images
    assert "visible latency spectrum" in images
    # A pipeline's e2e is its visible latency: drawn once, as visible.
    assert "e2e latency spectrum" not in images
    for name in ("pipeline-waterfall", "pipeline-backlog", "spectrum-visible"):
        assert (run_dir / "report-plots" / f"{name}.png").stat().st_size > 5000, name
    md = (run_dir / "report.md").read_text()
    assert "![Pipeline: stage latency waterfall](report-plots/pipeline-waterfall.png)" in md
    # The waterfall and the backlog sit in the pipeline section, not among the other plots.
    section = md.split("## Pipeline\n", 1)[1].split("\n## ", 1)[0]
    assert "pipeline-waterfall.png" in section and "pipeline-backlog.png" in section


def test_the_pipeline_table_carries_the_summary_figures(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    rows = {row["mode"]: row for row in md_table(md, "## Pipeline\n")}
    assert set(rows) == {"outbox + guard", "dual write + guard"}
    for mode, relay in (("outbox + guard", "outbox"), ("dual write + guard", "dual_write")):
        summary = summaries(run_dir)[relay]
        row, pipeline = rows[mode], summary["pipeline"]
        latency, totals = summary["latency_us"], pipeline["totals"]
        invariants = pipeline["invariants"]
        assert row["visible p50"] == format_latency_us(latency["visible"]["p50"])
        assert row["visible p99"] == format_latency_us(latency["visible"]["p99"])
        for stage in ("append", "relay", "broker", "apply"):
            assert row[f"{stage} p99"] == format_latency_us(latency[stage]["p99"]), stage
            # The summary's stage figures and its latency section are one.
            assert pipeline["stages_us"][stage]["p99"] == latency[stage]["p99"]
        assert row["applied/s"] == format_rate(pipeline["applied_per_s"])
        assert row["never applied"] == format_count(invariants["never_applied"])
        assert row["dup applied/skipped"] == (
            f"{format_count(totals['duplicates_applied'])}/"
            f"{format_count(totals['duplicates_skipped'])}"
        )
        assert row["republished"] == format_count(totals["republished"])
        assert row["not published"] == format_count(totals["not_published"])
        assert row["read model ≠ fold"] == (
            f"{format_count(invariants['aggregates_differing'])} of "
            f"{format_count(invariants['aggregates_checked'])}"
        )
        queries = pipeline["queries"]
        assert queries["count"] > 0
        assert row["read-your-writes"].endswith(f" of {format_count(queries['count'])}")
        if summary["verdict"]["result"] == "pass":
            assert (row["verdict"], row["invariants"]) == ("pass", "hold")
        else:
            assert row["verdict"] == "FAIL"
            assert row["invariants"] == f"{len(invariants['violations'])} violated"
    # The outbox's peak is the table's, and the dual write has no outbox.
    outbox = summaries(run_dir)["outbox"]["pipeline"]["outbox_backlog"]["peak"]
    assert rows["outbox + guard"]["outbox peak"] == format_count(outbox)
    assert rows["dual write + guard"]["outbox peak"] == "-"


def test_the_latency_table_and_the_plots_count_what_the_summary_counts(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    rows = md_table(md, "## Latency (measurement window)\n")
    run = load(run_dir)
    for point in run.points:
        latency = point.summary["latency_us"]
        for stage in ("append", "relay", "broker", "apply", "visible"):
            (row,) = [r for r in rows if r["point"] == point.label and r["kind"] == stage]
            assert row["count"] == format_count(latency[stage]["count"]), stage
            assert row["p99"] == format_latency_us(latency[stage]["p99"]), stage
    visible = spectrum_plot(run.points, "visible")
    waterfall = pipeline_report.waterfall_plot(run.points)
    assert visible is not None and waterfall is not None
    expected = {p.label: p.summary["latency_us"]["visible"]["count"] for p in run.points}
    assert visible.counts == expected == waterfall.counts
    backlog = pipeline_report.backlog_plot(run.points)
    assert backlog is not None
    for point in run.points:
        samples = point.summary["pipeline"]["outbox_backlog"]["samples"]
        assert backlog.counts[point.label] == len(samples)


def test_a_failure_reads_as_a_failure_in_every_part_of_the_report(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert 'class="banner fail"' in page
    banner, tables = banner_and_tables(page)
    assert "relay=dual_write: ok · FAIL: pipeline: " in banner
    assert "relay=outbox:" not in banner
    # Every number the banner states is printed in some table.
    assert missing_numbers(banner, tables) == []
    md = (run_dir / "report.md").read_text()
    summary_rows = {r["point"]: r for r in md_table(md, "## Summary\n")}
    judged = {r["point"]: r for r in md_table(md, "### What the verdicts judged\n")}
    for summary in summaries(run_dir).values():
        label = summary["label"]
        if summary["verdict"]["result"] == "pass":
            assert summary_rows[label]["invariants"] == "hold"
            assert label not in judged
            continue
        assert summary_rows[label]["verdict"] == "FAIL"
        assert summary_rows[label]["invariants"].startswith("VIOLATED: pipeline: ")
        never = summary["pipeline"]["invariants"]["never_applied"]
        assert judged[label]["never applied"] == format_count(never)
        assert judged[label]["invariants"].endswith("violated")
    violations = md_table(md, "### Invariant violations\n")
    quoted = [r["violation"] for r in violations]
    for violation in summaries(run_dir)["dual_write"]["pipeline"]["invariants"]["violations"]:
        assert f"pipeline: {violation}" in quoted


def test_the_terminal_table_says_fail_and_quotes_the_violations_under_it(run_dir: Path) -> None:
    done = bench("show", str(run_dir))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    found = summaries(run_dir)
    rows = [line for line in out.splitlines() if "memory →" in line]
    outbox_row = next(r for r in rows if "outbox +" in r)
    dual_row = next(r for r in rows if "dual write" in r)
    assert "hold" in outbox_row and "ok · pass" in outbox_row
    assert "violated" in dual_row and "ok · FAIL" in dual_row
    visible = format_latency_us(found["outbox"]["latency_us"]["visible"]["p50"])
    assert visible in outbox_row
    never = format_count(found["dual_write"]["pipeline"]["invariants"]["never_applied"])
    assert f" {never} " in dual_row
    # The reasons, under the table, as the verdict stored them.
    flat = " ".join(out.split())
    first = found["dual_write"]["verdict"]["reasons"][0]
    assert " ".join(first.split())[:60] in flat


def test_compare_check_and_history_read_a_pipeline_run(run_dir: Path) -> None:
    compared = bench("compare", str(run_dir), str(run_dir), "--format", "csv")
    assert compared.returncode == 0, compared.stderr
    for key in ("visible.p99", "relay.p99", "pipeline.applied_per_s", "pipeline.never_applied"):
        assert key in compared.stdout, key
    checked = bench("check", str(run_dir), "--baseline", str(run_dir))
    # Nothing regressed against itself, but the dual-write point's verdict failed: never a pass.
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "relay=dual_write" in checked.stdout and "verdict: fail" in checked.stdout
    history = bench("history", str(run_dir.parent), "-m", "visible.p99")
    assert history.returncode == 0, history.stderr
    outbox = summaries(run_dir)["outbox"]["latency_us"]["visible"]["p99"]
    assert format_latency_us(outbox) in history.stdout
