"""The checks that judge one open-loop probe, on fabricated summaries and timeseries."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from bench.capacity.checks import (
    BACKLOG,
    ERRORS,
    HARNESS,
    INVARIANTS,
    KEEPS_UP,
    PROJECTION,
    RUN,
    Check,
    Criteria,
    judge,
    trend,
    verdict,
)
from bench.engine.intervals import TIMESERIES_COLUMNS

RATE = 1000.0
WINDOW_S = 5


def make_summary(**changes: Any) -> dict[str, Any]:
    """A healthy probe at 1000/s for 5 s with one consumer; ``changes`` replace top-level keys
    and, for dicts, merge into them."""
    summary: dict[str, Any] = {
        "status": "ok",
        "problems": [],
        "latency_us": {
            kind: {"p50": 1500.0, "p99": 4000.0, "p999": 6000.0, "max": 9000.0}
            for kind in ("e2e", "response", "service", "schedule_lag")
        },
        "workload": {"rate_per_s": RATE, "duration_s": float(WINDOW_S), "consumers": 1},
        "throughput": {
            "sent_per_s": RATE,
            "acked_per_s": RATE,
            "received_per_s": RATE,
            "skipped": 0,
        },
        "errors": {"total": 0},
        "audit": {"lost": 0, "sent": int(RATE * WINDOW_S)},
        "client_bound": False,
        "client_bound_reasons": [],
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(summary.get(key), dict):
            summary[key] = {**summary[key], **value}
        else:
            summary[key] = value
    return summary


def write_timeseries(
    point_dir: Path,
    response_p50_us: list[float],
    backlog: list[float] | None = None,
    warmup_rows: int = 2,
    columns: tuple[str, ...] = TIMESERIES_COLUMNS,
    e2e_p50_us: list[float] | None = None,
) -> Path:
    """A timeseries.csv with warm-up rows (planted outliers) then one measure row per value,
    one second apart."""
    point_dir.mkdir(parents=True, exist_ok=True)
    backlog = backlog if backlog is not None else [0.0] * len(response_p50_us)
    e2e: list[float | str] = list(e2e_p50_us) if e2e_p50_us else [""] * len(response_p50_us)
    rows = []
    for i in range(warmup_rows):
        rows.append(
            {"t_s": i + 1, "phase": "warmup", "response_p50_us": 9e9, "backlog": 9e9,
             "e2e_p50_us": 9e9}
        )  # fmt: skip
    for i, (p50, queued, lag) in enumerate(zip(response_p50_us, backlog, e2e, strict=True)):
        rows.append(
            {
                "t_s": warmup_rows + i + 1,
                "phase": "measure",
                "response_p50_us": p50,
                "backlog": queued,
                "e2e_p50_us": lag,
            }
        )
    rows.append({"t_s": warmup_rows + len(response_p50_us) + 1, "phase": "drain"})
    with (point_dir / "timeseries.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for interval, row in enumerate(rows):
            full = {
                "interval": interval,
                "sent_per_s": RATE,
                "acked_per_s": RATE,
                "received_per_s": RATE,
                "errors": 0,
                "in_flight": 3,
                **row,
            }
            writer.writerow(full)
    return point_dir


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def flat(value: float, n: int = WINDOW_S) -> list[float]:
    return [value] * n


def climbing(first: float, per_s: float, n: int = WINDOW_S) -> list[float]:
    return [first + per_s * i for i in range(n)]


# --------------------------------------------------------------------------- keeps up


def test_a_stationary_response_p50_keeps_up(tmp_path):
    point = write_timeseries(tmp_path / "p", [2000.0, 2100.0, 1950.0, 2050.0, 2000.0])
    check = by_name(judge(make_summary(), point, Criteria()))[KEEPS_UP]
    assert check.passed
    assert "sent 1000/s" in check.value


def test_a_response_p50_climbing_50ms_per_second_fails_keeps_up(tmp_path):
    point = write_timeseries(tmp_path / "p", climbing(2000.0, 50_000.0))
    check = by_name(judge(make_summary(), point, Criteria()))[KEEPS_UP]
    assert not check.passed
    # Four seconds between the first and last measure rows: +200 ms over the window.
    assert "response p50 +200.0 ms over the window" in check.value


def test_a_climb_within_half_the_first_p50_is_tolerated(tmp_path):
    # Allowed growth is max(10 ms, 50% of the first p50): 50 ms for a 100 ms p50.
    point = write_timeseries(tmp_path / "p", climbing(100_000.0, 7_500.0))  # +30 ms
    assert by_name(judge(make_summary(), point, Criteria()))[KEEPS_UP].passed
    steeper = write_timeseries(tmp_path / "q", climbing(100_000.0, 15_000.0))  # +60 ms
    assert not by_name(judge(make_summary(), steeper, Criteria()))[KEEPS_UP].passed


def test_warmup_rows_do_not_count_towards_the_trend(tmp_path):
    # The warm-up rows carry a 9e9 µs p50; a reader that kept them would see a huge fall.
    point = write_timeseries(tmp_path / "p", flat(2000.0), warmup_rows=3)
    growth, first = trend(
        [r for r in csv.DictReader((point / "timeseries.csv").open()) if r["phase"] == "measure"],
        "response_p50_us",
    )
    assert growth == pytest.approx(0.0, abs=1e-6)
    assert first == 2000.0
    assert by_name(judge(make_summary(), point, Criteria()))[KEEPS_UP].passed


def test_skipped_events_fail_keeps_up(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(throughput={"skipped": 12})
    check = by_name(judge(summary, point, Criteria()))[KEEPS_UP]
    assert not check.passed
    assert "12 skipped" in check.value


def test_sending_under_95_percent_of_the_rate_fails_keeps_up(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    check = by_name(judge(make_summary(throughput={"sent_per_s": 900.0}), point, Criteria()))[
        KEEPS_UP
    ]
    assert not check.passed
    assert "sent 900/s of 1000/s" in check.value
    ok = by_name(judge(make_summary(throughput={"sent_per_s": 960.0}), point, Criteria()))
    assert ok[KEEPS_UP].passed


def test_keeps_up_without_a_timeseries_judges_the_rates_alone(tmp_path):
    missing = tmp_path / "never-written"
    assert by_name(judge(make_summary(), missing, Criteria()))[KEEPS_UP].passed
    slow = make_summary(throughput={"sent_per_s": 500.0})
    assert not by_name(judge(slow, missing, Criteria()))[KEEPS_UP].passed


# --------------------------------------------------------------------------- backlog


def test_a_growing_backlog_fails_backlog_bounded(tmp_path):
    # Allowed: max(100 events, 1% of 1000/s x 5 s) = 100; this grows 200/s, +800 in the window.
    point = write_timeseries(tmp_path / "p", flat(2000.0), backlog=climbing(0.0, 200.0))
    check = by_name(judge(make_summary(), point, Criteria()))[BACKLOG]
    assert not check.passed
    assert check.value == "+800 events over the window"
    assert check.limit == "<= +100 events, delivery delay climb <= 10 ms"


def test_a_flat_backlog_passes_backlog_bounded(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0), backlog=[500, 520, 490, 510, 500])
    check = by_name(judge(make_summary(), point, Criteria()))[BACKLOG]
    assert check.passed


def test_the_backlog_allowance_scales_with_the_events_in_the_window(tmp_path):
    # 100k/s for 5 s: 1% is 5000 events, so +800 is noise there.
    point = write_timeseries(tmp_path / "p", flat(2000.0), backlog=climbing(0.0, 200.0))
    summary = make_summary(workload={"rate_per_s": 100_000.0}, throughput={"sent_per_s": 1e5})
    check = by_name(judge(summary, point, Criteria()))[BACKLOG]
    assert check.passed
    assert check.limit.startswith("<= +5000 events")


def test_a_climbing_delivery_delay_fails_backlog_bounded_while_the_count_stays_small(tmp_path):
    # A consumer 10 events/s behind: +40 events in the window, well under the 100 allowed,
    # but each delivery comes 8 ms later after its acknowledgement than the one a second before.
    point = write_timeseries(
        tmp_path / "p", flat(2000.0), backlog=climbing(0.0, 10.0), e2e_p50_us=climbing(6000, 8000)
    )
    check = by_name(judge(make_summary(), point, Criteria()))[BACKLOG]
    assert not check.passed
    assert check.value == "+40 events, delivery delay +32.0 ms over the window"
    steady = write_timeseries(
        tmp_path / "q", flat(2000.0), e2e_p50_us=[6000, 9000, 5000, 7000, 6000]
    )
    assert by_name(judge(make_summary(), steady, Criteria()))[BACKLOG].passed


def test_a_producer_falling_behind_is_keeps_up_s_failure_not_the_backlog_s(tmp_path):
    # Acknowledgements come 50 ms later every second and deliveries follow them at once.
    response = climbing(2000, 50_000)
    point = write_timeseries(tmp_path / "p", response, e2e_p50_us=[r + 3000 for r in response])
    checks = by_name(judge(make_summary(), point, Criteria()))
    assert not checks[KEEPS_UP].passed
    assert checks[BACKLOG].passed, checks[BACKLOG]
    delay = re.search(r"delivery delay ([-+]\d+\.\d) ms", checks[BACKLOG].value)
    assert delay and abs(float(delay.group(1))) < 0.1, checks[BACKLOG].value


def test_without_a_backlog_column_the_acked_and_received_rates_decide(tmp_path):
    columns = tuple(c for c in TIMESERIES_COLUMNS if c != "backlog")
    point = write_timeseries(tmp_path / "p", flat(2000.0), columns=columns)
    lagging = make_summary(throughput={"received_per_s": 900.0})  # 100/s x 5 s = +500
    check = by_name(judge(lagging, point, Criteria()))[BACKLOG]
    assert not check.passed
    assert check.value == "+500 events over the window"
    assert by_name(judge(make_summary(), point, Criteria()))[BACKLOG].passed


def test_no_consumers_means_no_backlog_check(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0), backlog=climbing(0.0, 10_000.0))
    names = [c.name for c in judge(make_summary(workload={"consumers": 0}), point, Criteria())]
    assert BACKLOG not in names
    assert names == [KEEPS_UP, ERRORS, HARNESS]


# --------------------------------------------------------------------------- SLOs


def test_an_slo_above_its_threshold_fails_and_one_below_passes(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    criteria = Criteria(slo_us={"e2e.p99": 50_000.0, "response.p50": 5_000.0})
    summary = make_summary(latency_us={"e2e": {"p99": 60_000.0}, "response": {"p50": 1500.0}})
    checks = by_name(judge(summary, point, criteria))
    assert not checks["slo e2e.p99"].passed
    assert checks["slo e2e.p99"].value == "60.00ms"
    assert checks["slo e2e.p99"].limit == "<= 50.00ms"
    assert checks["slo response.p50"].passed
    assert verdict(list(checks.values())) == "fail"


def test_an_slo_exactly_at_its_threshold_holds(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(latency_us={"e2e": {"p99": 50_000.0}})
    checks = by_name(judge(summary, point, Criteria(slo_us={"e2e.p99": 50_000.0})))
    assert checks["slo e2e.p99"].passed


def test_an_slo_without_data_fails(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary()
    summary["latency_us"] = {"response": {"p99": 100.0}}  # no e2e at all
    criteria = Criteria(slo_us={"e2e.p99": 50_000.0, "response.p999": 1000.0})
    checks = by_name(judge(summary, point, criteria))
    assert not checks["slo e2e.p99"].passed
    assert checks["slo e2e.p99"].value == "no data"
    assert not checks["slo response.p999"].passed
    assert checks["slo response.p999"].value == "no data"


# --------------------------------------------------------------------------- errors


def test_errors_and_losses_above_a_tenth_of_a_percent_fail(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(errors={"total": 3}, audit={"lost": 3, "sent": 5000})  # 0.12%
    check = by_name(judge(summary, point, Criteria()))[ERRORS]
    assert not check.passed
    assert check.value == "0.120% (3 errors, 3 lost of 5000)"


def test_errors_and_losses_below_a_tenth_of_a_percent_pass(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(errors={"total": 2}, audit={"lost": 2, "sent": 5000})  # 0.08%
    assert by_name(judge(summary, point, Criteria()))[ERRORS].passed
    at_limit = make_summary(errors={"total": 5}, audit={"lost": 0, "sent": 5000})  # 0.1%
    assert by_name(judge(at_limit, point, Criteria()))[ERRORS].passed


def test_the_error_threshold_comes_from_the_criteria(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(errors={"total": 40}, audit={"lost": 0, "sent": 5000})  # 0.8%
    assert not by_name(judge(summary, point, Criteria()))[ERRORS].passed
    loose = Criteria(error_threshold=0.01)
    assert by_name(judge(summary, point, loose))[ERRORS].passed


# --------------------------------------------------------------------------- verdicts


def test_a_client_bound_probe_is_client_bound_even_when_other_checks_fail(tmp_path):
    point = write_timeseries(tmp_path / "p", climbing(2000.0, 50_000.0))
    summary = make_summary(
        client_bound=True,
        client_bound_reasons=["cpu 97%"],
        throughput={"skipped": 40},
        errors={"total": 500},
    )
    checks = judge(summary, point, Criteria(slo_us={"e2e.p99": 1.0}))
    named = by_name(checks)
    assert not named[HARNESS].passed
    assert named[HARNESS].value == "client-bound: cpu 97%"
    assert not named[KEEPS_UP].passed and not named[ERRORS].passed
    assert verdict(checks) == "client-bound"


def test_all_checks_passing_gives_pass(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    criteria = Criteria(slo_us={"e2e.p99": 50_000.0})
    checks = judge(make_summary(), point, criteria)
    assert [c.name for c in checks] == ["slo e2e.p99", KEEPS_UP, BACKLOG, ERRORS, HARNESS]
    assert all(c.passed for c in checks)
    assert verdict(checks) == "pass"


def test_one_failing_check_gives_fail(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    checks = judge(make_summary(throughput={"skipped": 1}), point, Criteria())
    assert verdict(checks) == "fail"


def test_a_failed_point_adds_a_failing_run_check_first(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    summary = make_summary(status="failed", problems=["driver crashed", "no acks"])
    checks = judge(summary, point, Criteria())
    assert checks[0].name == RUN
    assert not checks[0].passed
    assert checks[0].value == "driver crashed; no acks"
    assert verdict(checks) == "fail"


def test_a_failed_point_without_problems_names_its_status(tmp_path):
    point = write_timeseries(tmp_path / "p", flat(2000.0))
    checks = judge(make_summary(status="interrupted", problems=None), point, Criteria())
    assert checks[0] == Check(RUN, False, "interrupted", "the point runs")


# --------------------------------------------------------------------------- trend


def _rows(times: list[float], values: list[float | str], column: str = "x") -> list[dict]:
    return [{"t_s": str(t), column: str(v)} for t, v in zip(times, values, strict=True)]


def test_trend_of_a_perfect_line_is_slope_times_window():
    times = [float(t) for t in range(2, 12)]  # a 9 s window
    growth, first = trend(_rows(times, [3.0 * t + 7.0 for t in times]), "x")
    assert growth == pytest.approx(27.0)
    assert first == pytest.approx(13.0)


def test_trend_barely_moves_for_one_noisy_interval():
    times = [float(t) for t in range(10)]
    values = [100.0] * 10
    values[4] = 1100.0  # one spike of +1000 in the middle
    growth, _ = trend(_rows(times, values), "x")
    assert growth is not None and abs(growth) < 100.0


def test_trend_with_fewer_than_three_points_is_last_minus_first():
    assert trend(_rows([1.0, 2.0], [5.0, 12.0]), "x") == (7.0, 5.0)
    assert trend(_rows([1.0], [5.0]), "x") == (0.0, 5.0)


def test_trend_skips_empty_cells_and_says_none_without_data():
    rows = _rows([1.0, 2.0, 3.0, 4.0], ["", "10", "", "30"])
    assert trend(rows, "x") == (20.0, 10.0)
    assert trend(_rows([1.0, 2.0], ["", ""]), "x") == (None, None)
    assert trend(_rows([1.0, 2.0], ["1", "2"]), "missing") == (None, None)
    assert trend([], "x") == (None, None)


# --------------------------------------------------------------------------- event stores


def store_summary(
    commands: int = 5000, abandoned: int = 0, projection: bool = True, **changes: Any
) -> dict[str, Any]:
    """A store probe: commands instead of events, no consumers, e2e = projection lag."""
    summary = make_summary(
        kind="store",
        workload={"consumers": 0},
        audit={"lost": 0, "sent": 0},
        store={"commands": commands, "abandoned": abandoned, "errors": 3, "conflicts": 40},
        **changes,
    )
    if not projection:
        summary["latency_us"]["e2e"] = {"p50": None, "p99": None}
    return summary


def write_projection(point_dir: Path, lag_p50_us: list[float]) -> Path:
    return write_timeseries(point_dir, flat(1500.0, len(lag_p50_us)), e2e_p50_us=lag_p50_us)


def test_a_store_counts_abandoned_commands_not_retried_errors(tmp_path):
    # 3 errors and 40 conflicts were retried into commits: no command was lost.
    checks = by_name(judge(store_summary(), write_projection(tmp_path, flat(8000.0)), Criteria()))
    assert checks[ERRORS].passed, checks[ERRORS]
    assert "0 of 5000 commands abandoned" in checks[ERRORS].value
    assert BACKLOG not in checks
    failing = by_name(
        judge(store_summary(abandoned=6), write_projection(tmp_path, flat(8000.0)), Criteria())
    )
    assert not failing[ERRORS].passed  # 0.12% > 0.1%
    assert "6 of 5000 commands abandoned" in failing[ERRORS].value


def test_a_store_that_forks_a_stream_never_sustains_the_rate(tmp_path):
    point = write_projection(tmp_path, flat(8000.0))
    assert by_name(judge(store_summary(), point, Criteria()))[INVARIANTS].passed
    forked = store_summary()
    forked["store"]["invariants"] = {"ok": False, "violations": ["forked order-00000007 at 4"]}
    check = by_name(judge(forked, point, Criteria()))[INVARIANTS]
    assert not check.passed and "forked order-00000007 at 4" in check.value


def test_a_store_projection_falling_behind_fails_projection_keeps_up(tmp_path):
    behind = judge(store_summary(), write_projection(tmp_path, climbing(5000, 40_000)), Criteria())
    check = by_name(behind)[PROJECTION]
    assert not check.passed
    assert "+160.0 ms" in check.value
    assert verdict(behind) == "fail"
    steady = judge(store_summary(), write_projection(tmp_path, flat(5000.0)), Criteria())
    assert by_name(steady)[PROJECTION].passed
    assert verdict(steady) == "pass"


def test_a_store_without_a_projector_has_no_projection_check(tmp_path):
    checks = by_name(
        judge(store_summary(projection=False), write_timeseries(tmp_path, flat(1500.0)), Criteria())
    )
    assert PROJECTION not in checks and BACKLOG not in checks
    assert checks[KEEPS_UP].passed and checks[ERRORS].passed
