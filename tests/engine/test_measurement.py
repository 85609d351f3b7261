"""The measurement is proven on the memory target, whose behaviour is injected exactly."""

from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.slow


def run_point(tmp_path: Path, workload=None, target=None, scenario=None) -> dict:
    raw = {
        "scenario": {"name": "m", "duration": "3s", "warmup": "1s", "seed": 7, **(scenario or {})},
        "workload": {"rate": 1000, "producers": 1, "consumers": 1, **(workload or {})},
        "targets": {"mem": {"driver": "memory", **(target or {})}},
    }
    point = expand(scenario_from_dict(raw, "test.toml"))[0]
    return PointRunner(point, "test", tmp_path / "point", stop_requested=lambda: False).run()


def test_an_injected_2ms_service_time_shows_in_service_and_response_p50(tmp_path):
    summary = run_point(tmp_path, target={"service_time": "2ms"})
    assert summary["status"] == "ok"
    # The platform's floor: how late this machine's event loop wakes (40 µs on one VM, 150 µs
    # on the next). The harness measures and reports it; a sample can carry it on each hop
    # (the send's wake-up and the acknowledgement's), and no more than that beyond 5%.
    floor_us = summary["harness"]["loop_lag_us"]["p50"]
    for kind, hops in (("service", 1), ("response", 2)):
        p50 = summary["latency_us"][kind]["p50"]
        assert 2000 * 0.99 <= p50 <= 2000 * 1.05 + hops * floor_us, (kind, p50, floor_us)
    assert summary["latency_us"]["service"]["count"] == pytest.approx(3000, abs=5)


def test_a_stall_shows_in_response_latency_while_service_time_stays_small(tmp_path):
    # 1000 events/s, 4 in flight at most, and the broker acknowledges nothing for 500 ms.
    summary = run_point(
        tmp_path,
        workload={"max_in_flight": 4},
        target={"stall_at": "2s", "stall_for": "500ms"},
        scenario={"duration": "4s"},
    )
    latency = summary["latency_us"]
    # The ~500 events intended during the stall waited for it: coordinated omission handled.
    assert latency["response"]["p99"] >= 200_000
    assert latency["response"]["max"] == pytest.approx(500_000, rel=0.1)
    assert latency["schedule_lag"]["p99"] >= 100_000
    # Only the 4 sends in flight during the stall saw a slow service.
    assert latency["service"]["p99"] < 5_000
    assert latency["service"]["max"] >= 400_000
    assert summary["audit"]["lost"] == 0


def test_injected_drops_and_duplicates_are_counted_exactly(tmp_path):
    summary = run_point(
        tmp_path,
        workload={"rate": 2000},
        target={"drop_rate": 0.02, "duplicate_rate": 0.01, "seed": 11},
        scenario={"duration": "2s", "warmup": "0s"},
    )
    injected = summary["target_info"]["injected"]
    audit = summary["audit"]
    assert injected["dropped"] > 0 and injected["duplicated"] > 0
    assert audit["lost"] == injected["dropped"]
    assert audit["duplicated"] == injected["duplicated"]
    assert audit["received"] == audit["acked"] - injected["dropped"]
    assert audit["reordered"] == 0 and audit["unacked_lost"] == 0


def test_two_workers_merge_histograms_and_the_audit(tmp_path):
    summary = run_point(
        tmp_path,
        workload={"rate": 2000, "workers": 2, "producers": 2, "consumers": 2},
        scenario={"duration": "2s", "warmup": "1s"},
    )
    assert summary["harness"]["workers"] == 2
    audit = summary["audit"]
    assert audit["sent"] == pytest.approx(6000, abs=10)
    assert audit["lost"] == 0 and audit["duplicated"] == 0 and audit["reordered"] == 0
    # Measured samples: the events intended inside the 2 s window, from both workers.
    for kind in ("response", "service", "schedule_lag", "e2e"):
        assert summary["latency_us"][kind]["count"] == pytest.approx(4000, abs=10), kind
    assert summary["throughput"]["acked_per_s"] == pytest.approx(2000, rel=0.05)
    # The interval logs hold every sample (warm-up included) and standard readers read them.
    point_dir = tmp_path / "point"
    reader = HistogramLogReader(
        str(point_dir / "response.hlog"), HdrHistogram(1, 3_600_000_000_000, 3)
    )
    total = 0
    while (hist := reader.get_next_interval_histogram()) is not None:
        if hist.get_tag() is None:  # the Tag=window line is the window, not an interval
            total += hist.get_total_count()
    assert total == audit["acked"]
    rows = (point_dir / "timeseries.csv").read_text().splitlines()
    assert rows[0].startswith("interval,t_s,phase")
    assert {"warmup", "measure"} <= {row.split(",")[2] for row in rows[1:]}


def test_closed_loop_max_mode_is_labelled_as_such(tmp_path):
    summary = run_point(
        tmp_path,
        workload={"rate": "max", "concurrency": 8},
        scenario={"duration": "1s", "warmup": "500ms"},
    )
    assert summary["closed_loop"] is True
    assert summary["mode"].startswith("closed-loop")
    assert summary["throughput"]["acked_per_s"] > 1000
    assert summary["audit"]["lost"] == 0


def test_a_rate_the_harness_cannot_generate_is_flagged_client_bound(tmp_path):
    summary = run_point(
        tmp_path,
        workload={"rate": 2_000_000, "max_in_flight": 256},
        scenario={"duration": "2s", "warmup": "500ms", "drain_timeout": "1s"},
    )
    assert summary["client_bound"] is True
    assert summary["throughput"]["skipped"] > 0
    assert any("never sent" in problem for problem in summary["problems"])
    assert any("core" in reason or "lag" in reason for reason in summary["client_bound_reasons"])
    assert summary["throughput"]["sent_per_s"] < 2_000_000 * 0.95


def test_a_comfortable_rate_is_not_client_bound(tmp_path):
    summary = run_point(tmp_path, workload={"rate": 500}, scenario={"duration": "2s"})
    assert summary["client_bound"] is False
