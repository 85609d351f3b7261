"""bench check never passes on garbage (issue 14): a NaN or an infinity, a baseline that did not
complete, a gate that compared nothing. Each is a failure with its reason (exit 1) or a usage
error naming the manifest (exit 2), never "PASS"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ResultsError
from bench.report.compare import Group
from bench.report.gate import check
from tests.cli_support import run_bench_captured
from tests.fabricate import make_run, points

runner = CliRunner()


def _check(candidate: Path, baseline: Path):
    return runner.invoke(app, ["check", str(candidate), "--baseline", str(baseline)])


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # json writes NaN and Infinity, and reads them back


def _set(summary: dict, dotted: str, value: float) -> None:
    *parents, last = dotted.split(".")
    node = summary
    for part in parents:
        node = node[part]
    node[last] = value


def _crash(run_dir: Path, status: str = "running") -> Path:
    """What a coordinator that died mid-run (a full disk) leaves: the manifest still says
    ``status``, and no point wrote its summary."""
    _edit(run_dir / "manifest.json", lambda m: m.update(status=status))
    for summary in run_dir.glob("*/summary.json"):
        summary.unlink()
    return run_dir


# --------------------------------------------------------------------------- not a number


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_us.e2e.p99", math.nan),
        ("latency_us.response.p50", math.inf),
        ("throughput.acked_per_s", math.nan),
        ("throughput.received_per_s", math.inf),
    ],
)
def test_a_non_finite_metric_in_the_candidate_fails_the_gate(tmp_path, field, value):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)  # the same figures, but for one
    _edit(next(cand.glob("*-kafka/summary.json")), lambda s: _set(s, field, value))
    result = _check(cand, base)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL")
    metric = field.removeprefix("latency_us.")
    assert f"FAIL  kafka  {metric}: not a number in the candidate" in result.output
    assert f"candidate {value:g}" in result.output
    assert "never a pass" in result.output


@pytest.mark.parametrize("field", ["audit.lost", "errors.total", "throughput.skipped"])
def test_a_non_finite_count_is_a_damaged_file(tmp_path, capsys, field):
    # A count is an integer when the runner writes it: NaN there is damage, one line, exit 2.
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    path = next(cand.glob("*-kafka/summary.json"))
    _edit(path, lambda s: _set(s, field, math.nan))
    code, out, err = run_bench_captured(["check", str(cand), "--baseline", str(base)], capsys)
    assert code == 2 and "PASS" not in out, (out, err)
    assert err.splitlines()[0] == f"error: {path}: {field}: nan is not a count"


def test_a_non_finite_metric_in_the_baseline_fails_the_gate(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    _edit(
        next(base.glob("*-memory/summary.json")), lambda s: _set(s, "latency_us.e2e.p50", -math.inf)
    )
    result = _check(cand, base)
    assert result.exit_code == 1, result.output
    assert "FAIL  memory  e2e.p50: not a number in the baseline (baseline -inf" in result.output


def test_a_non_finite_metric_fails_with_repetitions_too(tmp_path):
    bases = [make_run(tmp_path, f"b{i}", points(), seed=i) for i in range(4)]
    cands = [make_run(tmp_path, f"c{i}", points(), seed=10 + i) for i in range(4)]
    _edit(
        next(cands[2].glob("*-kafka/summary.json")),
        lambda s: _set(s, "latency_us.e2e.p99", math.nan),
    )
    result = check(
        Group.from_specs([",".join(map(str, cands))]), Group.from_specs([",".join(map(str, bases))])
    )
    assert not result.passed and result.exit_code == 1
    (failure,) = [f for f in result.failures if f.name == "e2e.p99"]
    assert failure.message.startswith("not a number in the candidate")


def test_compare_shows_a_non_finite_metric_as_n_a_never_better(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    _edit(
        next(cand.glob("*-kafka/summary.json")),
        lambda s: _set(s, "throughput.acked_per_s", math.nan),
    )
    result = runner.invoke(app, ["compare", str(base), str(cand), "-m", "throughput"])
    assert result.exit_code == 0, result.output
    kafka = [line for line in result.output.splitlines() if line.lstrip("│ ").startswith("kafka")]
    assert kafka and "n/a" in kafka[0] and "better" not in kafka[0], result.output
    assert "nan%" not in result.output.lower()


# --------------------------------------------------------------------------- incomplete runs


def test_a_crashed_baseline_is_a_usage_error_naming_its_manifest(tmp_path, capsys):
    # Issue 14: the baseline died of a full disk (manifest "running", no summaries), and the
    # candidate lost 1,966 messages; the gate made 1 check and passed.
    base = _crash(make_run(tmp_path, "base", points(), seed=1))
    cand = make_run(tmp_path, "cand", points(kafka={"lost": 1966}), seed=2)
    code, out, err = run_bench_captured(["check", str(cand), "--baseline", str(base)], capsys)
    assert code == 2, (out, err)
    assert "PASS" not in out
    first = err.splitlines()[0]
    assert first.startswith("error:")
    assert f"{base / 'manifest.json'}: status:" in first
    assert "the baseline run did not complete (status 'running', 2 of 2 points without a " in first


@pytest.mark.parametrize("status", ["interrupted", "failed", "running"])
def test_a_baseline_that_did_not_end_ok_is_refused(tmp_path, status):
    base = make_run(tmp_path, "base", points(), seed=1)
    _edit(base / "manifest.json", lambda m: m.update(status=status))
    cand = make_run(tmp_path, "cand", points(), seed=2)
    result = _check(cand, base)
    assert isinstance(result.exception, ResultsError), result.output
    assert result.exception.exit_code == 2
    assert f"did not complete (status {status!r})" in str(result.exception)


def test_a_baseline_with_a_point_without_its_summary_is_refused(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)  # the manifest says ok
    next(base.glob("*-kafka/summary.json")).unlink()
    cand = make_run(tmp_path, "cand", points(), seed=2)
    with pytest.raises(ResultsError, match=r"did not complete \(1 of 2 points without a summary"):
        check(Group.from_specs([cand]), Group.from_specs([base]))


def test_one_incomplete_repetition_of_the_baseline_is_refused(tmp_path):
    bases = [make_run(tmp_path, f"b{i}", points(), seed=i) for i in range(3)]
    _crash(bases[1], "interrupted")
    cand = make_run(tmp_path, "cand", points(), seed=9)
    with pytest.raises(ResultsError, match=r"b1/manifest.json: status: the baseline"):
        check(Group.from_specs([cand]), Group.from_specs([",".join(map(str, bases))]))


def test_a_crashed_run_checked_against_itself_never_passes(tmp_path, capsys):
    # Issue 14: "PASS: 0 checks, no regression, every SLO holds".
    crashed = _crash(make_run(tmp_path, "x", points(), seed=1))
    code, out, err = run_bench_captured(["check", str(crashed), "--baseline", str(crashed)], capsys)
    assert code == 2 and "PASS" not in out, (out, err)
    assert "did not complete" in err


def test_an_incomplete_candidate_fails_with_its_reason(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    _edit(cand / "manifest.json", lambda m: m.update(status="interrupted"))
    result = _check(cand, base)
    assert result.exit_code == 1, result.output
    assert "FAIL  cand  run: the candidate run did not complete (status 'interrupted')" in (
        result.output
    )


def test_an_old_manifest_without_a_status_is_judged_by_its_points(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    _edit(base / "manifest.json", lambda m: m.pop("status"))
    cand = make_run(tmp_path, "cand", points(), seed=1)
    assert _check(cand, base).exit_code == 0
    next(base.glob("*-memory/summary.json")).unlink()
    assert isinstance(_check(cand, base).exception, ResultsError)


# --------------------------------------------------------------------------- nothing compared


def test_zero_comparable_checks_fail_with_the_reason(tmp_path):
    # Complete runs ("ok") with no point at all: nothing was compared, so nothing passed.
    empty = make_run(tmp_path, "empty", [], seed=1)
    result = _check(empty, empty)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL")
    assert "comparable checks: nothing to compare: no gated metric of any point" in result.output


def test_points_without_a_gated_figure_are_zero_comparable_checks(tmp_path):
    def strip(summary: dict) -> None:
        for section in ("throughput", "latency_us", "audit", "errors", "slo"):
            summary[section] = {}

    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    for run in (base, cand):
        for path in run.glob("*/summary.json"):
            _edit(path, strip)
    result = check(Group.from_specs([cand]), Group.from_specs([base]))
    assert not result.passed
    assert [f.name for f in result.failures if f.point == "run"] == ["comparable checks"]


def test_a_complete_pair_still_passes(tmp_path):
    # The rules above leave an honest pass alone.
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    result = _check(cand, base)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS")


def test_an_slo_measured_as_not_a_number_never_holds(tmp_path):
    # The stored "pass" says true; the value it judged is NaN.
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    _edit(
        next(cand.glob("*-kafka/summary.json")),
        lambda s: s["slo"]["e2e.p99"].update(value_us=math.nan),
    )
    result = _check(cand, base)
    assert result.exit_code == 1, result.output
    assert "FAIL  kafka  slo e2e.p99: not a number: measured nan against 50" in result.output
