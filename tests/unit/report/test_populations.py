"""One population per figure: a point's plots show the histogram its tables were computed from.

The point below is shaped like the event-store run of issue 13: the first interval runs past the
end of the warm-up, and samples intended in the window are acknowledged in the drain. Rebuilt
from the intervals, the spectrum missed both, so the plot said n=2,000 and topped out at 5 ms
while the table said 3,361 and 95 ms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.metrics.hlog import HlogWriter
from bench.metrics.recorder import encode, merge_into, new_histogram, record_values, stats_us
from bench.report.plots import spectrum, spectrum_plot, window_population
from bench.report.tables import Point, latency_frame

WARMUP_S, DURATION_S = 1.0, 2.0


def _hist(values_ns: np.ndarray):
    hist = new_histogram()
    record_values(hist, values_ns.astype(np.int64))
    return hist


def _point(tmp_path: Path, with_window: bool) -> Point:
    """One e2e.hlog: a late first interval (0 s to 1.8 s, its midpoint in the warm-up, holding
    1,161 samples intended in the window), two measured intervals, and a drain interval with
    the window's slow tail."""
    rng = np.random.default_rng(3)
    warm = _hist(rng.integers(1_000_000, 2_000_000, 500))
    first_measured = _hist(rng.integers(1_000_000, 5_000_000, 1161))
    first = new_histogram()
    merge_into(first, warm)
    merge_into(first, first_measured)
    middle = _hist(rng.integers(1_000_000, 5_000_000, 1000))
    last = _hist(rng.integers(1_000_000, 5_000_000, 1000))
    drain = _hist(np.full(200, 95_000_000))  # intended in the window, acknowledged after it
    intervals = [(0.0, 1.8, first), (1.8, 0.7, middle), (2.5, 0.5, last), (3.0, 0.5, drain)]
    window = new_histogram()
    for hist in (first_measured, middle, last, drain):
        merge_into(window, hist)
    writer = HlogWriter(tmp_path / "e2e.hlog", 1_790_000_000.0, "e2e")
    for start_s, length_s, hist in intervals:
        writer.write(start_s, length_s, encode(hist), hist.get_max_value())
    if with_window:
        writer.write_window(WARMUP_S, DURATION_S, encode(window), window.get_max_value())
    writer.close()
    summary = {
        "target": "mem",
        "params": {},
        "workload": {"warmup_s": WARMUP_S, "duration_s": DURATION_S},
        "latency_us": {"e2e": stats_us(window).as_dict()},
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return Point("mem", "mem", "mem", {}, summary, tmp_path)


def _table_count(point: Point, kind: str) -> int:
    frame = latency_frame([point])
    return int(frame[frame["kind"] == kind]["count"].iloc[0].replace(",", ""))


def test_the_spectrum_shows_the_window_histogram_the_table_was_computed_from(tmp_path):
    point = _point(tmp_path, with_window=True)
    plot = spectrum_plot([point], "e2e")
    assert plot is not None
    assert plot.counts == {"mem": 3361} == {"mem": _table_count(point, "e2e")}
    population = window_population(point, "e2e")
    assert population is not None and population.exact
    stats = point.summary["latency_us"]["e2e"]
    fractions, values_ns = spectrum(population.histogram)
    # The curve's top is the table's max, and at p99 it is the table's p99.
    assert values_ns[-1] / 1e3 == stats["max"]
    at_p99 = values_ns[1::2][(fractions[1::2] >= 0.99).argmax()]
    assert at_p99 / 1e3 == pytest.approx(stats["p99"])
    assert "from intervals" not in plot.caption


def test_an_older_run_without_the_window_falls_back_to_intervals_and_says_so(tmp_path):
    point = _point(tmp_path, with_window=False)
    population = window_population(point, "e2e")
    assert population is not None and not population.exact
    # The defect the window line fixes: by midpoint, the first and the drain interval are out.
    assert population.histogram.total_count == 2000 != _table_count(point, "e2e")
    plot = spectrum_plot([point], "e2e")
    assert plot is not None and plot.counts == {"mem": 2000}
    assert "mem: a run from before the window histogram was kept" in plot.caption
    assert "can differ from the tables" in plot.caption


def test_an_empty_window_draws_no_curve_even_when_intervals_have_samples(tmp_path):
    writer = HlogWriter(tmp_path / "e2e.hlog", 1_790_000_000.0, "e2e")
    hist = _hist(np.full(10, 1_000_000))
    writer.write(1.0, 1.0, encode(hist), hist.get_max_value())
    writer.write_window(WARMUP_S, DURATION_S, encode(new_histogram()), 0)
    writer.close()
    summary = {"target": "mem", "workload": {"warmup_s": WARMUP_S, "duration_s": DURATION_S}}
    point = Point("mem", "mem", "mem", {}, summary, tmp_path)
    assert window_population(point, "e2e") is None
    assert spectrum_plot([point], "e2e") is None
