"""bench compare: diffs judged by each metric's direction; repetitions judged by Mann-Whitney."""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ScenarioError
from bench.report.compare import (
    BETTER,
    NOISE,
    SAME,
    WORSE,
    Group,
    compare,
    min_p_value,
    to_csv,
    to_html,
    to_markdown,
)


def _rows(comparison, point):
    return {row.metric.key: row for row in comparison.rows if row.point == point}


def test_slower_latency_is_worse_and_faster_is_better(golden):
    base = Group.from_specs([golden.base])
    worse = _rows(compare(base, Group.from_specs([golden.regress])), "kafka")
    assert worse["e2e.p99"].verdict == WORSE
    assert 40 < worse["e2e.p99"].diff_pct < 60
    better = _rows(compare(base, Group.from_specs([golden.improve])), "kafka")
    assert better["e2e.p99"].verdict == BETTER
    assert better["e2e.p99"].diff_pct < -20
    assert better["throughput.acked_per_s"].verdict == SAME


def test_lower_throughput_is_worse(golden, tmp_path):
    from tests.fabricate import make_run, points

    slow = make_run(tmp_path, "slow", points(kafka={"throughput_factor": 0.8}), seed=9)
    rows = _rows(compare(Group.from_specs([golden.base]), Group.from_specs([slow])), "kafka")
    assert rows["throughput.acked_per_s"].verdict == WORSE
    assert round(rows["throughput.acked_per_s"].diff_pct) == -20


def test_repetitions_that_overlap_are_within_noise(golden):
    comparison = compare(
        Group.from_specs([",".join(map(str, golden.noisy_base_group))]),
        Group.from_specs([",".join(map(str, golden.noisy_cand_group))]),
    )
    kafka = _rows(comparison, "kafka")
    assert kafka["e2e.p99"].diff_pct > 10  # the medians differ…
    assert kafka["e2e.p99"].verdict == NOISE  # …but not beyond the runs' own spread
    assert kafka["e2e.p99"].p_value >= 0.05
    assert any("noisy baseline" in note for note in kafka["e2e.p99"].notes)


def test_repetitions_that_separate_are_significant(golden):
    comparison = compare(
        Group.from_specs([",".join(map(str, golden.base_group))]),
        Group.from_specs([",".join(map(str, golden.regress_group))]),
    )
    row = _rows(comparison, "kafka")["e2e.p99"]
    assert row.verdict == WORSE and row.p_value < 0.05
    assert len(row.baseline) == len(row.candidate) == 5


def test_too_few_repetitions_are_said_to_be_too_few():
    assert min_p_value(3, 3) >= 0.05 > min_p_value(4, 4)


def test_the_formats_carry_every_row(golden):
    comparisons = [
        compare(Group.from_specs([golden.base]), Group.from_specs([golden.regress]), ["e2e.p99"]),
        compare(Group.from_specs([golden.base]), Group.from_specs([golden.improve]), ["e2e.p99"]),
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(comparisons))))
    assert [(r["candidate"], r["point"], r["verdict"]) for r in rows] == [
        ("regress", "memory", rows[0]["verdict"]),
        ("regress", "kafka", "worse"),
        ("improve", "memory", rows[2]["verdict"]),
        ("improve", "kafka", "better"),
    ]
    assert "🔴 worse" in to_markdown(comparisons) and "🟢 better" in to_markdown(comparisons)
    page = to_html(comparisons)
    assert 'class="num worse"' in page and 'class="num better"' in page


def test_the_command_prints_a_table_and_writes_files(golden, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(golden.base), str(golden.regress), "-m", "e2e.p99"])
    assert result.exit_code == 0, result.output
    assert "kafka" in result.output and "+50" in result.output.replace(" ", "")
    out = tmp_path / "c.md"
    result = runner.invoke(
        app,
        [
            "compare",
            str(golden.base),
            str(golden.regress),
            str(golden.improve),
            "--format",
            "md",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().count("## baseline base") == 2
    bad = runner.invoke(app, ["compare", str(golden.base), str(golden.regress), "-m", "e2e.p98"])
    assert isinstance(bad.exception, ScenarioError) and bad.exception.exit_code == 2
    assert "bench compare: --metric: unknown metric 'e2e.p98'" in str(bad.exception)
