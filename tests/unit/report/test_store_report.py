"""The event-store part of a report: its tables, its matrix plot, and what each leaves out."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import store
from bench.report.html import write_report
from bench.report.tables import load
from tests.fabricate import PointSpec, make_run

STRATEGIES = ("insert_only", "serializable")
MATRIX = [(s, a, c) for s in STRATEGIES for a in (10, 1000) for c in (1, 8, 32)]


def _store_run(
    tmp_path: Path,
    failed: tuple[str, int, int] | None = None,
    forked: tuple[str, int, int] | None = None,
) -> Path:
    """A PostgreSQL-like store matrix: strategies x aggregates x concurrency (closed loop)."""
    specs = [
        PointSpec(
            s,
            params={"workload.aggregates": a, "workload.concurrency": c},
            status="failed" if (s, a, c) in (failed, forked) else "ok",
        )
        for s, a, c in MATRIX
    ]
    run = make_run(tmp_path, "store", specs, seed=9)
    for path, (s, a, c) in zip(sorted(run.glob("*/summary.json")), MATRIX, strict=True):
        summary = json.loads(path.read_text())
        conflicts = 0.0 if c == 1 else min(0.9, c / a * (2 if s == "serializable" else 1))
        summary.update(
            kind="store",
            closed_loop=True,
            target_info={"product": "PostgreSQL", "strategy": s},
        )
        summary["workload"].update(aggregates=a, concurrency=c, producers=1)
        summary["store"] = {
            "commands": 0 if failed == (s, a, c) else 1000,
            "goodput_per_s": 1000.0 * (1 - conflicts),
            "attempts_per_s": 1000.0,
            "conflict_rate": conflicts,
            "retries_per_command": conflicts,
            "abandoned": 0,
            "rejections": 3,
            "errors": 0,
            "projected": 2000,
            "load_latency_by_stream_length": [
                {"stream_length": "11-100", "loads": 9, "p50_us": 400.0, "p99_us": 900.0},
                {"stream_length": "0", "loads": 10, "p50_us": 6.0, "p99_us": 12.0},
            ],
            "server_counters": {"xact_commit": 1234, "deadlocks": 0},
            "invariants": {"ok": True, "violations": []},
        }
        if forked == (s, a, c):
            summary["store"]["invariants"] = {"ok": False, "violations": ["order-7: forked"]}
        path.write_text(json.dumps(summary))
    return run


def test_writers_are_the_commands_in_flight_as_the_runner_starts_them():
    closed = {"closed_loop": True, "workload": {"concurrency": 10, "producers": 4}}
    assert store.writers(closed) == 8  # 10 // 4 slots on each of 4 producers
    open_loop = {"closed_loop": False, "workload": {"max_in_flight": 16, "producers": 2}}
    assert store.writers(open_loop) == 32
    assert store.writers({"workload": {}}) is None


def test_the_store_tables_carry_the_store_figures(tmp_path):
    run = load(_store_run(tmp_path))
    frame = store.store_frame(run.points)
    assert len(frame) == len(MATRIX)
    # The target's name is the strategy here: no second column saying it again.
    assert "strategy" not in frame.columns
    row = frame.iloc[2]  # insert_only, 10 aggregates, 32 writers
    assert (row["target"], row["writers"], row["aggregates"]) == ("insert_only", "32", "10")
    assert row["conflict rate"] == "90.0%" and row["goodput"] == "100/s"
    assert row["invariants"] == "hold" and row["projected"] == "2,000"
    loads = store.load_latency_frame(run.points)
    # Stream lengths in their numeric order, whatever order the summary lists them in.
    assert list(loads.columns) == ["point", "0", "11-100"]
    assert loads.iloc[0]["11-100"] == "400us / 900us (9)"
    counters = store.server_counters_frame(run.points)
    assert counters.iloc[0]["xact_commit"] == "1,234"


def test_the_matrix_plot_leaves_out_a_point_that_ran_nothing_and_keeps_a_forked_one(tmp_path):
    run = load(
        _store_run(tmp_path, failed=("serializable", 1000, 32), forked=("insert_only", 10, 8))
    )
    plot = store.matrix_plot(run.points)
    assert plot is not None and plot.png.startswith(b"\x89PNG")
    assert "1 point(s) ran no command (they did not start) and are left out" in plot.caption
    cells, left_out = store._cells(store.store_points(run.points))
    assert left_out == 1 and len(cells) == len(MATRIX) - 1
    assert {c.series for c in cells} == set(STRATEGIES)
    # Forked streams: the point ran (its figures are drawn) and its verdict failed.
    (forked,) = [c for c in cells if (c.series, c.aggregates, c.writers) == ("insert_only", 10, 8)]
    assert forked.result == "fail"


def test_no_matrix_plot_when_neither_writers_nor_key_space_vary(tmp_path):
    run = make_run(tmp_path, "one", [PointSpec("memory")], seed=1)
    path = next(run.glob("*/summary.json"))
    summary = json.loads(path.read_text())
    summary.update(kind="store", store={"commands": 10, "invariants": {"ok": True}})
    summary["workload"].update(aggregates=10, max_in_flight=4, producers=1)
    path.write_text(json.dumps(summary))
    assert store.matrix_plot(load(run).points) is None


def test_the_report_has_the_store_section_with_the_matrix_plot(tmp_path):
    html_path, md_path = write_report(_store_run(tmp_path), tmp_path / "out")
    page = html_path.read_text()
    for table_id in ("store", "store-loads", "store-counters"):
        assert f'id="{table_id}"' in page, table_id
    assert 'alt="Event store: goodput and conflicts across the matrix"' in page
    # Inside the store section, before the generic summary.
    assert page.index('id="store-matrix"') < page.index("<h2>Summary</h2>")
    md = md_path.read_text()
    assert "## Event store" in md
    assert "![Event store: goodput and conflicts across the matrix]" in md
    assert (tmp_path / "out" / "report-plots" / "store-matrix.png").exists()
