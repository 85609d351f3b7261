"""bench check: the right verdict and exit code for every golden pair."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ResultsError, ScenarioError
from bench.report.compare import Group
from bench.report.gate import check, parse_percent, parse_threshold

runner = CliRunner()


def _check(candidate, baseline, *args):
    return runner.invoke(app, ["check", str(candidate), "--baseline", str(baseline), *args])


def _group(paths):
    return ",".join(str(p) for p in paths)


def test_an_injected_regression_fails_and_says_where_and_why(golden):
    result = _check(golden.regress, golden.base)
    assert result.exit_code == 1
    assert result.output.startswith("FAIL")
    assert "FAIL  kafka  e2e.p99: regressed:" in result.output
    assert "beyond the 10% threshold" in result.output
    assert "single runs (no repetitions): the threshold alone decides" in result.output
    assert "FAIL  memory" not in result.output


def test_an_improvement_passes_and_is_reported(golden):
    result = _check(golden.improve, golden.base)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS")
    assert "improved  kafka  e2e.p99" in result.output


def test_a_noise_only_difference_passes(golden):
    assert _check(golden.noise, golden.base).exit_code == 0


def test_a_regression_within_a_raised_threshold_passes(golden):
    loose = ["--max-regression", "60%"]
    assert _check(golden.regress, golden.base, *loose).exit_code == 0
    tight_p99 = [*loose, "--threshold", "e2e.p99=20%"]
    result = _check(golden.regress, golden.base, *tight_p99)
    assert result.exit_code == 1
    assert "e2e.p99" in result.output and "20% threshold" in result.output


def test_a_broken_slo_fails_even_without_a_regression(golden):
    result = _check(golden.slo_broken, golden.base)
    assert result.exit_code == 1
    assert "kafka  slo e2e.p99: SLO broken" in result.output


def test_any_lost_event_fails_when_the_baseline_lost_none(golden):
    result = _check(golden.lost, golden.base)
    assert result.exit_code == 1
    assert "audit.lost" in result.output and "any increase from zero counts" in result.output


def test_a_failed_verdict_fails_the_gate_even_when_the_baseline_failed_alike(golden):
    # No regression (the baseline lost the same 4 events), but a loss is never a pass.
    result = _check(golden.lost, golden.lost)
    assert result.exit_code == 1
    assert "kafka  verdict: fail: lost 4 acknowledged" in result.output


def test_a_missing_point_fails(golden, tmp_path):
    from tests.fabricate import make_run, points

    only_memory = make_run(tmp_path, "only-memory", points()[:1], seed=3)
    result = _check(only_memory, golden.base)
    assert result.exit_code == 1 and "kafka  point: in the baseline but missing" in result.output


def test_repetitions_need_significance_as_well_as_the_threshold(golden):
    noisy = check(
        Group.from_specs([_group(golden.noisy_cand_group)]),
        Group.from_specs([_group(golden.noisy_base_group)]),
    )
    assert noisy.passed, [f.message for f in noisy.failures]
    p99 = next(f for f in noisy.findings if f.point == "kafka" and f.name == "e2e.p99")
    assert p99.message.startswith("within noise")

    result = _check(_group(golden.regress_group), _group(golden.base_group))
    assert result.exit_code == 1
    assert "significant (Mann-Whitney p=0.008" in result.output


def test_junit_and_markdown_summary(golden, tmp_path):
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    result = _check(golden.regress, golden.base, "--junit", str(junit), "--summary", str(summary))
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    # points x metrics, the SLOs and a verdict per point
    assert len(cases) == int(suite.get("tests", "0")) == 2 * 10 + 2 + 2
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert ("bench.check.kafka", "e2e.p99") in failed
    assert all(cls == "bench.check.kafka" for cls, _ in failed)
    text = summary.read_text()
    assert text.startswith("## ❌ bench check failed")
    assert "| kafka | e2e.p99 | regressed:" in text


def test_bad_input_is_one_clear_error(golden, tmp_path):
    result = _check(tmp_path / "missing", golden.base)
    assert isinstance(result.exception, ResultsError)
    assert "missing: not a directory" in str(result.exception)
    for option, value in (("--threshold", "e2e.p99"), ("--max-regression", "ten")):
        bad = _check(golden.base, golden.base, option, value)
        assert isinstance(bad.exception, ScenarioError) and bad.exception.exit_code == 2
        assert f"bench check: {option}:" in str(bad.exception)


def test_threshold_parsing():
    assert parse_percent("10%") == parse_percent("10") == 10.0
    assert parse_threshold("throughput=5%") == ("throughput.acked_per_s", 5.0)
    with pytest.raises(ValueError, match="unknown metric"):
        parse_threshold("e2e.p98=5%")
