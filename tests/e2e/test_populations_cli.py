"""One population per figure, for every kind of point a user can run (issue 13).

Each case runs the real ``bench`` command briefly on the memory target, loads the results as
``bench report`` does, and holds every latency spectrum against the latency table of the same
point: the curve must be the measurement window's histogram (the ``.hlog``'s ``Tag=window``
line, not intervals rebuilt by arrival time), and its count must be the table's count, kind by
kind. Kinds: a stream point, an event-store point, every probe of a capacity search, a point
with a fault, and a point run on Locust workers.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from bench.report.plots import SPECTRUM_KINDS, report_plots, spectrum_plot, window_population
from bench.report.tables import Point, latency_frame, load
from tests.cli_support import run_bench

pytestmark = pytest.mark.slow

STREAM = """
[scenario]
name = "pop-{name}"
duration = "2s"
warmup = "500ms"
interval = "500ms"
drain_timeout = "10s"

[workload]
rate = 1000
schedule = "poisson"
producers = 2
consumers = 2
partitions = 4

[targets.mem]
driver = "memory"
service_time = "2ms"
jitter = "1ms"
"""

STORE = """
[scenario]
name = "pop-store"
duration = "2s"
warmup = "500ms"
interval = "500ms"
drain_timeout = "10s"

[workload]
kind = "store"
rate = 500
max_in_flight = 4
aggregates = 20
keys = "uniform"
producers = 1

[workload.store]
events_per_append = [1, 3]
max_retries = 3
projector = true

[targets.mem]
driver = "memory"
"""

FAULT = """
[[faults]]
at = "1s"
action = "kill"
down_for = "500ms"
"""

CAPACITY = "capacity_per_s = 1500\n"


def _curves(plots_of_run: list, kind: str) -> dict[str, int]:
    for plot in plots_of_run:
        if plot.name == f"spectrum-{kind}":
            return plot.counts
    return {}


def _table_counts(points: list[Point]) -> dict[tuple[str, str], int]:
    frame = latency_frame(points)
    return {
        (row["point"], row["kind"]): int(row["count"].replace(",", ""))
        for _, row in frame.iterrows()
    }


def assert_plots_match_tables(points: list[Point], plots_of_run: list | None = None) -> None:
    """Every spectrum curve of these points is the window histogram, counting what the table
    counts; every kind the table shows has its curve."""
    assert points
    table = _table_counts(points)
    kinds = {kind for _, kind in table}
    assert kinds & set(SPECTRUM_KINDS), table
    for kind in kinds:
        for point in points:
            population = window_population(point, kind)
            if (point.label, kind) not in table:
                assert population is None, (point.label, kind)
                continue
            assert population is not None, (point.label, kind)
            assert population.exact, f"{point.dir}/{kind}.hlog: no window histogram"
        drawn = plots_of_run is not None and any(
            plot.name == f"spectrum-{kind}" for plot in plots_of_run
        )
        if kind in SPECTRUM_KINDS or drawn:
            curves = (
                _curves(plots_of_run, kind)
                if plots_of_run is not None
                else (spectrum_plot(points, kind) or _EMPTY).counts
            )
            expected = {label: n for (label, k), n in table.items() if k == kind}
            assert curves == expected, kind


class _Empty:
    counts: dict[str, int] = {}


_EMPTY = _Empty()


def _run(tmp_path: Path, command: str, text: str, *args: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    results = tmp_path / "results"
    run_bench([command, str(path), "-o", str(results), "-q", "--no-report", *args])
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _ran(points: list[Point]) -> None:
    for point in points:
        assert point.summary.get("status") == "ok", (point.dir, point.summary.get("problems"))


def test_a_stream_point_plots_what_its_table_counts(tmp_path):
    run = load(_run(tmp_path, "run", STREAM.format(name="stream")))
    _ran(run.points)
    assert_plots_match_tables(run.points, report_plots(run))


def test_an_event_store_point_plots_what_its_table_counts(tmp_path):
    run = load(_run(tmp_path, "run", STORE))
    _ran(run.points)
    assert_plots_match_tables(run.points, report_plots(run))


def test_a_point_with_a_fault_plots_what_its_table_counts(tmp_path):
    run = load(_run(tmp_path, "run", STREAM.format(name="fault") + FAULT))
    _ran(run.points)
    plots_of_run = report_plots(run)
    # The kill failed sends: response (failures included) and response_ok differ, both drawn.
    assert {"spectrum-response", "spectrum-response_ok"} <= {p.name for p in plots_of_run}
    assert_plots_match_tables(run.points, plots_of_run)


def test_every_capacity_probe_plots_what_its_table_counts(tmp_path):
    text = STREAM.format(name="capacity") + CAPACITY
    run_dir = _run(
        tmp_path,
        "find-max",
        text,
        "--max-probes",
        "3",
        "--probe-duration",
        "1s",
        "--warmup",
        "300ms",
        "--verify-duration",
        "0s",
    )
    run = load(run_dir)
    assert run.capacity is not None and run.probes
    _ran(run.probes)
    for probe in run.probes:
        assert_plots_match_tables([probe])
    if run.points:  # the search's answer, as report, compare and history see it
        assert_plots_match_tables(run.points, report_plots(run))


@pytest.mark.skipif(find_spec("locust") is None, reason="locust is not installed")
@pytest.mark.timeout(240)
def test_a_point_on_locust_workers_plots_what_its_table_counts(tmp_path):
    run = load(_run(tmp_path, "locust", STREAM.format(name="locust"), "--workers", "2"))
    _ran(run.points)
    assert_plots_match_tables(run.points, report_plots(run))
