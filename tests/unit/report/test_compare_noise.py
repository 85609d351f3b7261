"""bench compare calls a change within noise "same", and a broken figure "n/a" (issue 13).

The defect: a single run against a single run labelled ``-0/s -0.0%`` as "worse".
"""

from __future__ import annotations

import json
import math

import pytest

from bench.report.compare import (
    BETTER,
    NOISE,
    NOT_A_NUMBER,
    SAME,
    WORSE,
    Group,
    compare,
    compare_row,
    to_csv,
    to_frame,
    to_markdown,
)
from bench.report.tables import metric
from tests.fabricate import make_run, points


def _row(key: str, base: list[float], cand: list[float]):
    return compare_row("p", metric(key), base, cand)


def test_a_throughput_change_that_rounds_to_zero_is_same_and_shown_without_a_sign(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(kafka={"throughput_factor": 0.9997}), seed=1)
    comparison = compare(Group.from_specs([base]), Group.from_specs([cand]))
    frame = to_frame(comparison)
    row = frame[(frame["point"] == "kafka") & (frame["metric"] == "throughput.acked_per_s")]
    # 1000/s -> 999.7/s: the "-0/s -0.0%" row.
    diff, pct, verdict = row[["diff", "diff%", "verdict"]].iloc[0]
    assert verdict == SAME
    assert diff == "0/s" and pct == "-0.03%"
    assert "-0/s" not in frame["diff"].tolist() and "-0.0%" not in frame["diff%"].tolist()
    assert any(note.startswith("same: a change under 2% for rates") for note in comparison.notes)


@pytest.mark.parametrize(
    ("key", "base", "cand", "verdict"),
    [
        ("throughput.acked_per_s", 1000.0, 999.7, SAME),  # -0.03%
        ("throughput.acked_per_s", 1000.0, 985.0, SAME),  # -1.5%: under the 2% a rerun moves
        ("throughput.acked_per_s", 1000.0, 950.0, WORSE),  # -5%
        ("throughput.acked_per_s", 1000.0, 1050.0, BETTER),
        ("e2e.p99", 20_000.0, 20_600.0, SAME),  # +3%
        ("e2e.p99", 20_000.0, 22_000.0, WORSE),  # +10%, 2 ms
        ("e2e.p99", 20_000.0, 17_000.0, BETTER),
        ("e2e.p50", 100.0, 140.0, SAME),  # +40%, but 40 us: the platform's wake-up jitter
        ("e2e.p50", 100.0, 400.0, WORSE),
        ("audit.lost", 0.0, 4.0, WORSE),  # counts are exact: any change counts
        ("audit.lost", 4.0, 0.0, BETTER),
        ("errors.total", 1000.0, 1001.0, WORSE),
        ("audit.lost", 0.0, 0.0, SAME),
    ],
)
def test_single_runs_are_better_or_worse_only_beyond_the_metric_minimum(key, base, cand, verdict):
    assert _row(key, [base], [cand]).verdict == verdict


@pytest.mark.parametrize(
    ("base", "cand"),
    [
        ([math.nan], [1000.0]),
        ([1000.0], [math.inf]),
        ([1000.0, 990.0, 1010.0], [980.0, math.nan, 1000.0]),
    ],
)
def test_a_value_that_is_not_a_number_is_never_better_or_worse(base, cand):
    for key in ("throughput.acked_per_s", "e2e.p99", "audit.lost"):
        row = _row(key, base, cand)
        assert row.verdict == NOT_A_NUMBER, key
        assert row.diff is None and row.diff_pct is None
        assert any("not a number" in note for note in row.notes)
        assert not row.regressed


def test_a_broken_summary_reads_as_n_a_in_every_format(tmp_path):
    base = make_run(tmp_path, "base", points(), seed=1)
    cand = make_run(tmp_path, "cand", points(), seed=1)
    path = next(cand.glob("*-kafka/summary.json"))
    summary = json.loads(path.read_text())
    summary["latency_us"]["e2e"]["p99"] = math.nan  # json writes NaN, and reads it back
    path.write_text(json.dumps(summary))
    comparison = compare(Group.from_specs([base]), Group.from_specs([cand]), ["e2e.p99"])
    (kafka,) = [row for row in comparison.rows if row.point == "kafka"]
    assert kafka.verdict == NOT_A_NUMBER
    assert "n/a; not a number in the candidate" in to_markdown([comparison])
    assert ",n/a," in to_csv([comparison])


def test_a_significant_change_too_small_to_matter_is_same_and_a_large_one_is_not():
    base = [1000.0, 1001.0, 1000.5, 999.5, 1000.2]
    tiny = [v - 5 for v in base]  # -0.5%: Mann-Whitney separates them, but it is noise in use
    large = [v - 100 for v in base]
    row = _row("throughput.acked_per_s", base, tiny)
    assert row.p_value is not None and row.p_value < 0.05
    assert row.verdict == SAME
    row = _row("throughput.acked_per_s", base, large)
    assert row.p_value < 0.05 and row.verdict == WORSE


def test_groups_that_overlap_stay_within_noise():
    row = _row("e2e.p99", [10_000, 13_000, 8_000, 12_000, 9_000], [12_500, 8_500, 13_000, 9_500])
    assert row.diff_pct is not None and row.diff_pct > 5
    assert row.verdict == NOISE
