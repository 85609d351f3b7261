"""The find-max search against fake targets of known capacity: no load is generated, each
probe's summary and timeseries are fabricated from the rate the search asked for."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.capacity.checks import Criteria
from bench.capacity.search import Search, SearchResult, Settings
from bench.engine.intervals import TIMESERIES_COLUMNS
from bench.scenario import RunPoint, expand, scenario_from_dict

CAPACITY = 2000.0
PRECISION = 0.05


def base_point(consumers: int = 1) -> RunPoint:
    raw = {
        "scenario": {"name": "cap", "duration": "10s", "warmup": "1s", "seed": 7},
        "workload": {"rate": 1000, "producers": 1, "consumers": consumers},
        "targets": {"mem": {"driver": "memory"}},
    }
    return expand(scenario_from_dict(raw, "test.toml"))[0]


@dataclass
class FakeTarget:
    """A broker that sustains ``capacity`` events/s open-loop.

    Above it, the response time climbs by (rate - capacity) / capacity seconds every second.
    The knobs model the other ways a rate can be unsustainable.
    """

    root: Path
    capacity: float = CAPACITY
    closed_loop_per_s: float | None = None  # None: the same as ``capacity``
    closed_loop_acked: bool = True
    p99_slo_rate: float | None = None  # e2e p99 = 50 ms x rate / this
    client_bound_above: float | None = None
    long_runs_fail_above: float | None = None  # runs of 10 s or more fail above this rate
    calls: list[tuple[RunPoint, str]] = field(default_factory=list)

    def execute(self, point: RunPoint, slug: str) -> tuple[dict[str, Any], Path]:
        self.calls.append((point, slug))
        point_dir = self.root / slug
        point_dir.mkdir(parents=True)
        w = point.workload
        meta = point.scenario.scenario
        if w.closed_loop:
            top = self.closed_loop_per_s or self.capacity
            acked = min(top, w.concurrency * 500.0) if self.closed_loop_acked else 0.0
            summary = self._summary(point, rate=0.0, sent=acked, acked=acked, p99_us=3000.0)
            self._timeseries(point_dir, meta.warmup, meta.duration, meta.interval, 0.0)
            return summary, point_dir
        rate = float(w.rate)
        acked = min(rate, self.capacity)
        climb_per_s = max(0.0, (rate - self.capacity) / self.capacity)  # seconds per second
        long_run = meta.duration >= 10.0
        if self.long_runs_fail_above is not None and long_run and rate > self.long_runs_fail_above:
            climb_per_s = max(climb_per_s, 0.02)  # falls 20 ms behind every second
        p99_us = 4000.0
        if self.p99_slo_rate is not None:
            p99_us = 50_000.0 * rate / self.p99_slo_rate
        summary = self._summary(point, rate=rate, sent=rate, acked=acked, p99_us=p99_us)
        if self.client_bound_above is not None and rate > self.client_bound_above:
            summary["client_bound"] = True
            summary["client_bound_reasons"] = ["loop lag p90 12ms"]
        self._timeseries(point_dir, meta.warmup, meta.duration, meta.interval, climb_per_s)
        return summary, point_dir

    def _summary(
        self, point: RunPoint, rate: float, sent: float, acked: float, p99_us: float
    ) -> dict[str, Any]:
        w = point.workload
        duration = point.scenario.scenario.duration
        return {
            "status": "ok",
            "problems": [],
            "target_info": {"product": "fake", "version": "1.0"},
            "latency_us": {
                kind: {"p50": 1500.0, "p99": p99_us, "p999": p99_us * 1.5, "max": p99_us * 2}
                for kind in ("e2e", "response", "service", "schedule_lag")
            },
            "workload": {"rate_per_s": rate, "duration_s": duration, "consumers": w.consumers},
            "throughput": {
                "sent_per_s": sent,
                "acked_per_s": acked,
                "received_per_s": acked,
                "skipped": 0,
            },
            "errors": {"total": 0},
            "audit": {"lost": 0, "sent": int(sent * duration)},
            "client_bound": False,
            "client_bound_reasons": [],
        }

    @staticmethod
    def _timeseries(
        point_dir: Path, warmup_s: float, duration_s: float, interval_s: float, climb: float
    ) -> None:
        with (point_dir / "timeseries.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(TIMESERIES_COLUMNS))
            writer.writeheader()
            n_warm = round(warmup_s / interval_s)
            n_measure = round(duration_s / interval_s)
            for i in range(n_warm + n_measure):
                t = (i + 1) * interval_s
                phase = "warmup" if i < n_warm else "measure"
                behind_s = climb * max(0.0, t - warmup_s)
                row = dict.fromkeys(TIMESERIES_COLUMNS, "")
                row.update(
                    interval=i,
                    t_s=f"{t:.3f}",
                    phase=phase,
                    response_p50_us=f"{2000.0 + behind_s * 1e6:.1f}",
                    backlog="0",
                )
                writer.writerow(row)


def run_search(
    fake: FakeTarget,
    stop_requested: Callable[[], bool] = lambda: False,
    base: RunPoint | None = None,
    **settings: Any,
) -> tuple[SearchResult, list[tuple[SearchResult, Any]]]:
    reports: list[tuple[SearchResult, Any]] = []
    search = Search(
        base or base_point(),
        0,
        Settings(precision=PRECISION, probe_duration_s=5.0, **settings),
        fake.execute,
        lambda result, probe: reports.append((result, probe)),
        stop_requested,
    )
    return search.find_max(), reports


def open_loop(result: SearchResult) -> list:
    return [p for p in result.probes if p.rate_per_s is not None]


# --------------------------------------------------------------------------- found


def test_finds_a_known_capacity_within_the_precision(tmp_path):
    result, _ = run_search(FakeTarget(tmp_path))
    assert result.status == "found"
    lo, hi = result.max_rate_per_s, result.upper_rate_per_s
    assert lo is not None and hi is not None
    assert lo <= CAPACITY < hi
    assert (hi - lo) / lo <= PRECISION
    assert result.precision == pytest.approx((hi - lo) / lo)
    assert result.verified
    assert "keeps up" in result.limited_by
    assert result.saturation_per_s == CAPACITY
    assert result.server == {"product": "fake", "version": "1.0"}


def test_every_probe_is_recorded_with_a_verdict_and_reported(tmp_path):
    fake = FakeTarget(tmp_path)
    result, reports = run_search(fake, max_probes=30)
    assert 0 < len(result.probes) < 30
    assert len(fake.calls) == len(result.probes)
    assert [probe for _, probe in reports] == result.probes
    for probe in result.probes:
        assert (tmp_path / probe.dir / "timeseries.csv").exists()
        if probe.rate_per_s is None:
            assert probe.phase == "ramp" and probe.verdict == "measured" and not probe.checks
        else:
            assert probe.verdict in ("pass", "fail")
            assert probe.checks
            # The verdict matches the model: the target sustains its capacity, no more.
            assert (probe.verdict == "pass") == (probe.rate_per_s <= CAPACITY), probe
    assert [p.index for p in result.probes] == list(range(len(result.probes)))


def test_the_ramp_doubles_concurrency_until_throughput_stops_growing(tmp_path):
    result, _ = run_search(FakeTarget(tmp_path))
    ramp = [p for p in result.probes if p.phase == "ramp"]
    # 500/s per connection, capped at 2000/s: c1 500, c2 1000, c4 2000, c8 2000 (no growth).
    assert [p.concurrency for p in ramp] == [1, 2, 4, 8]
    assert [p.achieved_per_s for p in ramp] == [500.0, 1000.0, 2000.0, 2000.0]
    assert result.probes[: len(ramp)] == ramp


def test_probes_run_short_and_the_verification_runs_the_scenario_duration(tmp_path):
    fake = FakeTarget(tmp_path)
    result, _ = run_search(fake)
    by_slug = {slug: point for point, slug in fake.calls}
    verify = [p for p in result.probes if p.phase == "verify"]
    assert len(verify) == 1
    assert verify[0].rate_per_s == result.max_rate_per_s
    for probe in result.probes:
        point = by_slug[probe.dir]
        meta = point.scenario.scenario
        assert point.params["probe"] == probe.phase
        assert meta.warmup == 1.0
        if probe.rate_per_s is None:
            assert point.workload.closed_loop
            assert point.workload.concurrency == probe.concurrency
            assert meta.duration == 2.5  # half a probe
        else:
            assert point.workload.rate == pytest.approx(probe.rate_per_s)
            expected = 10.0 if probe.phase == "verify" else 5.0
            assert meta.duration == expected
            # At least five intervals in every window, for the trends.
            assert meta.duration / meta.interval >= 5


def test_a_closed_loop_above_the_open_loop_capacity_brackets_down(tmp_path):
    fake = FakeTarget(tmp_path, capacity=1300.0, closed_loop_per_s=4000.0)
    result, _ = run_search(fake)
    rates = [p.rate_per_s for p in open_loop(result)]
    assert rates[:3] == [4000.0, 2000.0, 1000.0]  # fail, fail, pass: halving to a pass
    assert result.status == "found"
    lo, hi = result.max_rate_per_s, result.upper_rate_per_s
    assert lo is not None and hi is not None
    assert lo <= 1300.0 < hi
    assert (hi - lo) / lo <= PRECISION


def test_the_probe_budget_stops_the_search(tmp_path):
    result, _ = run_search(FakeTarget(tmp_path), max_probes=8)
    assert result.status == "budget"
    assert len(result.probes) == 8
    assert any("8 probes" in note for note in result.notes)
    # The best answer so far is still kept, as a lower bound.
    assert result.max_rate_per_s is not None and result.max_rate_per_s <= CAPACITY


# --------------------------------------------------------------------------- other limits


def test_an_slo_bound_target_finds_the_rate_where_the_slo_breaks(tmp_path):
    r0 = 1500.0
    fake = FakeTarget(tmp_path, p99_slo_rate=r0)
    result, _ = run_search(fake, criteria=Criteria(slo_us={"e2e.p99": 50_000.0}))
    assert result.status == "found"
    lo, hi = result.max_rate_per_s, result.upper_rate_per_s
    assert lo is not None and hi is not None
    assert lo <= r0 < hi
    assert (hi - lo) / lo <= PRECISION
    assert result.limited_by == ["slo e2e.p99"]
    assert result.verified


def test_a_client_bound_harness_gives_harness_bound_with_a_note(tmp_path):
    harness_top = 1500.0
    fake = FakeTarget(tmp_path, client_bound_above=harness_top)
    result, _ = run_search(fake)
    assert result.status == "harness-bound"
    lo, hi = result.max_rate_per_s, result.upper_rate_per_s
    assert lo is not None and hi is not None
    assert lo <= harness_top < hi < CAPACITY
    assert result.limited_by == ["harness"]
    assert any("client-bound" in n and "loop lag p90 12ms" in n for n in result.notes)
    assert "the harness was the limit" in result.headline
    assert any(p.verdict == "client-bound" for p in result.probes)


def test_a_failed_verification_falls_back_below_it(tmp_path):
    # Short probes pass up to 2000/s, but a full-length run falls behind above 1800/s.
    fake = FakeTarget(tmp_path, long_runs_fail_above=1800.0)
    result, _ = run_search(fake)
    failed_verify = [p for p in result.probes if p.phase == "verify" and p.verdict == "fail"]
    assert failed_verify
    assert failed_verify[0].rate_per_s is not None and failed_verify[0].rate_per_s > 1800.0
    assert result.status == "found"
    lo, hi = result.max_rate_per_s, result.upper_rate_per_s
    assert lo is not None and hi is not None
    assert lo <= 1800.0 < hi
    assert (hi - lo) / lo <= PRECISION
    assert result.verified
    final = [p for p in result.probes if p.phase == "verify"][-1]
    assert final.rate_per_s == lo and final.verdict == "pass"
    assert len(result.probes) < 30


def test_a_target_that_passes_every_rate_stops_at_the_ceiling(tmp_path):
    fake = FakeTarget(tmp_path, capacity=1e9, closed_loop_per_s=CAPACITY)
    result, _ = run_search(fake, max_rate_per_s=5000.0)
    assert result.status == "ceiling"
    assert result.max_rate_per_s == 5000.0
    assert result.upper_rate_per_s is None
    assert max(p.rate_per_s or 0 for p in result.probes) == 5000.0
    assert all(p.verdict == "pass" for p in open_loop(result))
    assert any("raise --max-rate" in note for note in result.notes)


def test_without_max_rate_the_ceiling_is_four_times_the_closed_loop_throughput(tmp_path):
    fake = FakeTarget(tmp_path, capacity=1e9, closed_loop_per_s=CAPACITY)
    result, _ = run_search(fake)
    assert result.status == "ceiling"
    assert result.max_rate_per_s == pytest.approx(4 * CAPACITY)


def test_a_target_that_acknowledges_nothing_fails(tmp_path):
    fake = FakeTarget(tmp_path, closed_loop_acked=False)
    result, _ = run_search(fake)
    assert result.status == "failed"
    assert result.max_rate_per_s is None
    assert result.saturation_per_s is None
    assert not open_loop(result)
    assert any("acknowledged nothing" in note for note in result.notes)
    assert "no sustainable rate found (failed)" in result.headline


def test_a_stop_request_before_the_search_gives_interrupted(tmp_path):
    fake = FakeTarget(tmp_path)
    result, _ = run_search(fake, stop_requested=lambda: True)
    assert result.status == "interrupted"
    assert result.probes == []
    assert fake.calls == []


def test_a_stop_request_mid_search_keeps_the_probes_so_far(tmp_path):
    fake = FakeTarget(tmp_path)
    result, _ = run_search(fake, stop_requested=lambda: len(fake.calls) >= 6)
    assert result.status == "interrupted"
    assert len(result.probes) == 6
    assert result.max_rate_per_s is not None and result.max_rate_per_s <= CAPACITY


def test_a_target_that_sustains_no_rate_down_to_the_minimum_gives_none(tmp_path):
    fake = FakeTarget(tmp_path, capacity=0.5, closed_loop_per_s=CAPACITY)
    result, _ = run_search(fake)
    assert result.status == "none"
    assert result.max_rate_per_s is None
    assert all(p.verdict == "fail" for p in open_loop(result))
    lowest = min(p.rate_per_s for p in open_loop(result))
    assert 1.0 <= lowest < 2.0  # halved from 2000/s until the next step would be under 1/s
    assert any("no rate down to 1/s" in note for note in result.notes)


def test_a_sweep_runs_one_point_per_fraction_of_the_max(tmp_path):
    fake = FakeTarget(tmp_path)
    reports: list = []
    search = Search(
        base_point(),
        3,
        Settings(verify_duration_s=0.0),
        fake.execute,
        lambda result, probe: reports.append(probe),
        lambda: False,
    )
    result = search.sweep(CAPACITY, [0.5, 1.0, 1.5], 10.0)
    assert result.probes == []
    assert [p.rate_per_s for p in result.sweep] == [1000.0, 2000.0, 3000.0]
    assert [p.verdict for p in result.sweep] == ["pass", "pass", "fail"]
    assert all(p.phase == "sweep" and p.duration_s == 10.0 for p in result.sweep)
    assert reports == result.sweep
    assert [slug for _, slug in fake.calls] == [
        "03-mem-00-sweep-1000",
        "03-mem-01-sweep-2000",
        "03-mem-02-sweep-3000",
    ]


def test_a_zero_verify_duration_skips_the_verification(tmp_path):
    result, _ = run_search(FakeTarget(tmp_path), verify_duration_s=0.0)
    assert result.status == "found"
    assert not any(p.phase == "verify" for p in result.probes)
    assert not result.verified
    lo = result.max_rate_per_s
    assert lo is not None and lo <= CAPACITY


class ClientBoundClosedLoop(FakeTarget):
    """A harness that saturates at 1000/s in the closed loop."""

    def execute(self, point: RunPoint, slug: str) -> tuple[dict[str, Any], Path]:
        summary, point_dir = super().execute(point, slug)
        if point.workload.closed_loop and summary["throughput"]["acked_per_s"] >= 1000.0:
            summary["client_bound"] = True
            summary["client_bound_reasons"] = ["cpu 99%"]
        return summary, point_dir


def test_a_client_bound_closed_loop_stops_the_ramp_and_says_so(tmp_path):
    result, _ = run_search(ClientBoundClosedLoop(tmp_path))
    ramp = [p for p in result.probes if p.phase == "ramp"]
    assert [p.concurrency for p in ramp] == [1, 2]
    assert ramp[-1].verdict == "client-bound"
    assert result.saturation_per_s == 1000.0
    assert result.saturation_client_bound
    assert any(
        "closed-loop saturation throughput (1,000/s) was client-bound" in n for n in result.notes
    )
    # The open-loop search still goes past the closed-loop figure to the target's capacity.
    lo = result.max_rate_per_s
    assert result.status == "found" and lo is not None and lo <= CAPACITY < 1.05 * lo


class InterruptedVerification(FakeTarget):
    """Ctrl-C lands during the full-length verification run."""

    def execute(self, point: RunPoint, slug: str) -> tuple[dict[str, Any], Path]:
        summary, point_dir = super().execute(point, slug)
        if "verify" in slug:
            summary["status"] = "interrupted"
        return summary, point_dir


def test_an_interrupted_probe_bounds_nothing_and_keeps_the_answer_so_far(tmp_path):
    fake = InterruptedVerification(tmp_path)
    result, _ = run_search(fake)
    assert result.status == "interrupted"
    assert result.max_rate_per_s is not None
    assert CAPACITY * (1 - PRECISION) <= result.max_rate_per_s <= CAPACITY
    assert not result.verified
    assert "run" not in result.limited_by
    assert result.upper_rate_per_s is not None and result.upper_rate_per_s > CAPACITY


def test_a_search_stopped_by_the_ceiling_is_still_verified(tmp_path):
    fake = FakeTarget(tmp_path, capacity=10 * CAPACITY)
    result, _ = run_search(fake, max_rate_per_s=3000.0)
    assert result.status == "ceiling"
    assert result.max_rate_per_s == pytest.approx(3000.0)
    assert result.verified
    assert result.probes[-1].phase == "verify"


class OneHiccupPerRate(FakeTarget):
    """The first open-loop probe at every rate catches a machine hiccup: its p99 breaks a
    50 ms SLO once; a second probe at the same rate sees the target as it is."""

    seen: set = None  # type: ignore[assignment]

    def execute(self, point: RunPoint, slug: str) -> tuple[dict[str, Any], Path]:
        summary, point_dir = super().execute(point, slug)
        self.seen = self.seen if self.seen is not None else set()
        rate = point.workload.rate
        if not point.workload.closed_loop and rate not in self.seen:
            self.seen.add(rate)
            summary["latency_us"]["e2e"]["p99"] = 80_000.0
        return summary, point_dir


def test_a_single_slo_hiccup_is_retried_and_does_not_move_the_answer(tmp_path):
    fake = OneHiccupPerRate(tmp_path)
    result, _ = run_search(fake, criteria=Criteria(slo_us={"e2e.p99": 50_000.0}))
    assert result.status == "found", result.notes
    assert CAPACITY * (1 - PRECISION) <= result.max_rate_per_s <= CAPACITY
    retried = [p for p in result.probes if p.phase == "retry"]
    assert retried and all(p.verdict in ("pass", "fail") for p in retried)
    assert "keeps up" in result.limited_by  # the capacity, not the hiccups, bounds it


def test_without_retries_a_single_hiccup_decides(tmp_path):
    fake = OneHiccupPerRate(tmp_path)
    result, _ = run_search(
        fake, criteria=Criteria(slo_us={"e2e.p99": 50_000.0}), retry_slo_failures=False
    )
    assert not [p for p in result.probes if p.phase == "retry"]
    assert result.max_rate_per_s is None or result.max_rate_per_s < CAPACITY * 0.9


@pytest.mark.parametrize(
    ("slo", "rate", "window_s"),
    [
        ({}, 50.0, 5.0),  # no SLO: the probe's own duration
        ({"e2e.p99": 50_000.0}, 5000.0, 5.0),  # 25,000 samples already
        ({"e2e.p99": 50_000.0}, 125.0, 8.0),  # 1,000 samples for a p99
        ({"e2e.p99": 50_000.0}, 10.0, 20.0),  # capped at 4x the probe
        ({"e2e.p999": 50_000.0}, 1000.0, 10.0),  # 10,000 samples for a p99.9
        ({"e2e.max": 50_000.0}, 10.0, 5.0),  # a max needs no stretch
    ],
)
def test_probes_at_low_rates_run_long_enough_for_the_slo_percentile(tmp_path, slo, rate, window_s):
    fake = FakeTarget(tmp_path)
    search = Search(
        base_point(),
        0,
        Settings(probe_duration_s=5.0, criteria=Criteria(slo_us=slo)),
        fake.execute,
        lambda result, probe: None,
        lambda: False,
    )
    probe = search.probe("bracket", rate)
    assert probe.duration_s == pytest.approx(window_s)
    assert fake.calls[-1][0].scenario.scenario.duration == pytest.approx(window_s)


def test_full_length_runs_failing_where_short_probes_passed_are_noted(tmp_path):
    # Short probes pass up to 2000/s; 10 s runs fall behind above 1000/s, so the search
    # verifies and loses rate after rate: a target that degrades over a longer run.
    fake = FakeTarget(tmp_path, long_runs_fail_above=1000.0)
    result, _ = run_search(fake)
    overturned = {
        p.rate_per_s for p in result.probes if p.phase == "verify" and p.verdict == "fail"
    }
    assert len(overturned) >= 2
    (note,) = [n for n in result.notes if "full-length runs failed" in n]
    assert f"at {len(overturned)} rates" in note
    # Whatever the budget allowed, a verified answer is one a full-length run sustained.
    assert result.max_rate_per_s is not None
    assert not result.verified or result.max_rate_per_s <= 1000.0


def test_a_budget_stopped_unverified_answer_says_so_in_its_headline(tmp_path):
    fake = FakeTarget(tmp_path)
    result, _ = run_search(fake, max_probes=5)
    assert result.status == "budget" and not result.verified
    assert result.headline.endswith("before a full-length run confirmed it")
