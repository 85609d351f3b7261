"""The Faults part of a report: the table in report.md / report.html / the terminal, the
verdicts, and the faults marked on the timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from rich.console import Console

from bench.errors import ResultsError
from bench.report import faults as faults_module
from bench.report import plots
from bench.report.faults import Fault, faults_frame, faults_of, mark_faults, point_faults
from bench.report.html import write_report
from bench.report.tables import load
from bench.report.terminal import faults_table
from tests.fabricate import make_run, points

KILL: dict[str, Any] = {
    "index": 0,
    "action": "kill",
    "at_s": 2.0,
    "down_for_s": 1.0,
    "service": "memory",
    "endpoint": "127.0.0.1:4223",
    "status": "done",
    "detail": "SIGKILL pid 1234; restarted as pid 1240",
    "started_at_s": 2.001,
    "down_at_s": 2.01,
    "restored_at_s": 3.02,
    "answering_at_s": None,
    "time_to_first_error_s": 0.012,
    "producer_outage_s": 1.83,
    "consumer_outage_s": None,
    "recovery_s": None,
    "errors": 123,
    "audit": {
        "from_s": 1.0,
        "to_s": 5.0,
        "sent": 4000,
        "acked": 3800,
        "failed": 200,
        "lost": 0,
        "duplicated": 12,
        "reordered": 0,
        "unacked_lost": 150,
        "unacked_received": None,
    },
}
PAUSE_NOT_REACHED: dict[str, Any] = {
    "index": 1,
    "action": "pause",
    "at_s": 30.0,
    "down_for_s": 5.0,
    "service": "memory",
    "endpoint": "127.0.0.1:4223",
    "status": "not reached",
    "detail": "the load ended at 5s",
    "started_at_s": None,
    "down_at_s": None,
    "restored_at_s": None,
    "answering_at_s": None,
    "time_to_first_error_s": None,
    "producer_outage_s": None,
    "consumer_outage_s": None,
    "recovery_s": None,
    "errors": None,
    "audit": None,
}


def _with_faults(run_dir: Path, by_target: dict[str, list[dict[str, Any]]]) -> Path:
    """Give each point of ``run_dir`` the faults listed for its target, as the runner would."""
    for path in run_dir.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary["faults"] = by_target.get(summary["target"], [])
        path.write_text(json.dumps(summary, indent=2))
    return run_dir


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    # kafka has the key with an empty list, as a point of a scenario without faults would.
    # memory counted the kill's 123 errors, as its fault rows say.
    return _with_faults(
        make_run(root, "faulted", points(memory={"errors": 123}), seed=11),
        {"memory": [KILL, PAUSE_NOT_REACHED]},
    )


def test_the_faults_table_shows_each_fault_with_nulls_as_dashes(faulted_run):
    frame = faults_frame(load(faulted_run).points)
    assert list(frame.columns) == list(faults_module.FAULT_COLUMNS)
    kill, pause = frame.to_dict("records")
    assert kill == {
        "point": "memory",
        "fault": "kill 1s at 2s",
        "status": "done",
        "first error": "12.00ms",
        "producer outage": "1.83s",
        "consumer outage": "-",
        "recovery": "not recovered",
        "errors": "123",
        "lost": "0",
        "duplicated": "12",
        "reordered": "0",
        "unacked lost": "150",
        "unacked received": "-",
        "detail": "SIGKILL pid 1234; restarted as pid 1240",
    }
    # Nothing measured, and "not recovered" only for a fault that happened.
    assert pause["fault"] == "pause 5s at 30s"
    assert pause["status"] == "not reached"
    assert pause["recovery"] == "-"
    assert {pause[c] for c in faults_module.FAULT_COLUMNS[3:13]} == {"-"}


def test_the_report_has_a_faults_section_with_the_values(faulted_run, tmp_path):
    html_path, md_path = write_report(faulted_run, tmp_path)
    md = md_path.read_text()
    section = md.split("## Faults\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| memory")]
    assert rows == [
        "| memory | kill 1s at 2s | done | 12.00ms | 1.83s | - | not recovered | 123 | 0 | 12 | 0 "
        "| 150 | - | SIGKILL pid 1234; restarted as pid 1240 |",
        "| memory | pause 5s at 30s | not reached | - | - | - | - | - | - | - | - | - | - "
        "| the load ended at 5s |",
    ]
    # kafka's empty list adds no row; the section comes before the plots.
    assert "| kafka" not in section
    assert md.index("## Faults") < md.index("## Throughput and p99 over time")
    assert "- **memory: fault kill 1s at 2s: not recovered**" in md
    assert "- **memory: fault pause 5s at 30s was not reached (the load ended at 5s)**" in md

    page = html_path.read_text()
    assert "<h2>Faults</h2>" in page
    table = page.split('id="faults"')[1].split("</table>")[0]
    assert table.count("<tr") == 1 + 2
    cells = [c.split("</td>")[0] for c in table.split("<td>")[1:]]
    assert cells[:14] == [
        "memory",
        "kill 1s at 2s",
        "done",
        "12.00ms",
        "1.83s",
        "-",
        "not recovered",
        "123",
        "0",
        "12",
        "0",
        "150",
        "-",
        "SIGKILL pid 1234; restarted as pid 1240",
    ]
    assert cells[14:17] == ["memory", "pause 5s at 30s", "not reached"]
    # The fault that never recovered is in the page's banner, whatever its verdict.
    assert re.search(
        r'class="banner (?:fail|notes)"[^>]*>.*?memory: fault kill 1s at 2s: not recovered',
        page,
        re.S,
    ), page
    assert "Throughput and p99 over time" in page


def test_the_timeline_marks_the_faults_on_both_panels(faulted_run, monkeypatch):
    calls = []

    def recording(ax, faults, **kwargs):
        drawn = faults_module.mark_faults(ax, faults, **kwargs)
        calls.append((ax, [f.action for f in faults], kwargs, drawn))
        return drawn

    monkeypatch.setattr(plots, "mark_faults", recording)
    plot = plots.timeseries_plot(load(faulted_run).points)
    assert plot is not None and plot.png.startswith(b"\x89PNG")
    assert "Shaded in each point's colour: a fault" in plot.caption
    # Only memory has faults: its rate panel (labelled) and its p99 panel (not).
    assert len(calls) == 2
    (ax_rate, actions, rate_kwargs, rate_drawn), (ax_lat, _, lat_kwargs, lat_drawn) = calls
    assert ax_rate is not ax_lat and ax_rate.figure is ax_lat.figure
    assert actions == ["kill", "pause"]
    assert rate_kwargs.get("label", True) is True and lat_kwargs["label"] is False
    # The kill is a span from its start to its restore (it never answered); the pause was
    # not reached, so it is not drawn.
    for drawn in (rate_drawn, lat_drawn):
        span = drawn[0]
        assert isinstance(span, Rectangle)
        assert span.get_x() == pytest.approx(2.001)
        assert span.get_x() + span.get_width() == pytest.approx(3.02)
    assert [t.get_text() for t in rate_drawn[1:]] == [" kill"]
    assert len(lat_drawn) == 1
    # In memory's colour.
    memory_line = ax_rate.get_lines()[0]
    assert to_rgb(rate_drawn[0].get_facecolor()) == to_rgb(memory_line.get_color())
    # The fault spans sit with the warm-up span on each panel.
    assert rate_drawn[0] in ax_rate.patches and lat_drawn[0] in ax_lat.patches
    assert len(ax_rate.patches) == 2 and len(ax_lat.patches) == 2


def _fault(**fields: Any) -> Fault:
    return Fault(**{"index": 0, "action": "kill", "status": "done", **fields})


def test_mark_faults_shades_until_answering_then_restored_then_down_for():
    ax = Figure().add_subplot()
    drawn = mark_faults(
        ax,
        [
            _fault(started_at_s=10.0, restored_at_s=14.0, answering_at_s=15.5, down_for_s=4.0),
            _fault(action="restart", started_at_s=20.0, restored_at_s=22.5, down_for_s=2.0),
            _fault(action="pause", started_at_s=30.0, down_for_s=3.0),
            _fault(action="disconnect", started_at_s=40.0, answering_at_s=40.4, down_for_s=1.0),
            _fault(started_at_s=None, at_s=50.0, status="failed", detail="no pid"),
            _fault(at_s=60.0, down_for_s=5.0, status="not reached"),
            _fault(started_at_s=70.0),  # no end known at all: a line, not a span
        ],
        color="tab:purple",
    )
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    assert spans == [(10.0, 15.5), (20.0, 22.5), (30.0, 33.0)]
    lines = [(line.get_xdata()[0], line.get_linestyle()) for line in ax.get_lines()]
    assert lines == [(40.0, "-"), (50.0, "--"), (70.0, "-")]
    assert [t.get_text() for t in ax.texts] == [
        " kill",
        " restart",
        " pause",
        " disconnect",
        " kill failed",
        " kill",
    ]
    assert [t.get_position()[0] for t in ax.texts] == [10.0, 20.0, 30.0, 40.0, 50.0, 70.0]
    assert len(drawn) == 3 + 3 + 6
    # Without labels only the spans and lines are drawn.
    bare = Figure().add_subplot()
    mark_faults(bare, [_fault(started_at_s=1.0, down_for_s=1.0)], label=False)
    assert len(bare.patches) == 1 and not bare.texts


def test_a_run_without_faults_has_no_faults_section(golden, tmp_path):
    html_path, md_path = write_report(golden.base, tmp_path / "absent")
    assert "Faults" not in md_path.read_text()
    assert 'id="faults"' not in html_path.read_text()
    assert "Every point ran, every SLO holds" in md_path.read_text()

    empty = _with_faults(make_run(tmp_path, "empty", points(), seed=12), {})
    html_path, md_path = write_report(empty, tmp_path / "empty-report")
    assert "Faults" not in md_path.read_text()
    assert "<h2>Faults</h2>" not in html_path.read_text()
    assert faults_frame(load(empty).points).empty


def test_the_terminal_faults_table_has_a_row_per_fault(faulted_run):
    summaries = [p.summary for p in load(faulted_run).points]
    console = Console(record=True, width=250, color_system=None)
    console.print(faults_table(summaries, title="golden: faults"))
    text = console.export_text()
    assert "golden: faults" in text
    lines = [line for line in text.splitlines() if "memory" in line]
    assert len(lines) == 2
    kill = [c.strip() for c in lines[0].split("│")[1:-1]]
    assert kill == [
        "memory",
        "kill 1s at 2s",
        "done",
        "12.00ms",
        "1.83s",
        "-",
        "not recovered",
        "123",
        "0",
        "12",
        "0",
        "150",
        "-",
        "SIGKILL pid 1234; restarted as pid 1240",
    ]
    assert "not reached" in lines[1] and "the load ended at 5s" in lines[1]


def test_terminal_details_are_not_read_as_markup():
    summary = {"target": "nats", "faults": [{**KILL, "status": "failed", "detail": "[Errno 3]"}]}
    console = Console(record=True, width=250, color_system=None)
    console.print(faults_table([summary]))
    assert "[Errno 3]" in console.export_text()


def test_a_malformed_fault_names_the_file_and_field(faulted_run):
    point = load(faulted_run).points[0]
    point.summary["faults"] = [dict(KILL), {**KILL, "recovery_s": "soon"}]
    with pytest.raises(ResultsError) as error:
        point_faults(point)
    assert error.value.message == (
        f"{point.dir / 'summary.json'}: faults[1].recovery_s: expected a number or null, got 'soon'"
    )
    with pytest.raises(ResultsError, match=r"faults: expected a list, got dict"):
        faults_of({"faults": {"index": 0}})
    assert faults_of({}) == [] and faults_of({"faults": None}) == []


# A kill on NATS as the runner now writes it: every error the run counted is in a row.
NATS_KILL: dict[str, Any] = {
    **KILL,
    "started_at_s": 3.0,
    "time_to_first_error_s": 0.0563,
    "errors": 26,
    "errors_by_kind": {"disconnect": 1, "nats_error": 22, "reconnect": 1, "timeout": 2},
    "first_error_kind": "nats_error",
    "errors_from_s": 3.0,
    "errors_to_s": None,
    "errors_before": 4,
    "errors_counted": "all",
}


def test_the_table_carries_the_errors_before_the_first_fault_and_the_first_errors_kind(
    tmp_path,
):
    run_dir = _with_faults(make_run(tmp_path, "agree", points(memory={"errors": 30})), {})
    for path in run_dir.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        if summary["target"] == "memory":
            summary["faults"] = [NATS_KILL]
            path.write_text(json.dumps(summary))
    run = load(run_dir)
    memory = next(p for p in run.points if p.summary["target"] == "memory")
    assert memory.summary["errors"]["total"] == 30
    before, kill = faults_frame(run.points).to_dict("records")
    assert before["fault"] == "no fault (before 3s)" and before["errors"] == "4"
    assert {
        before[c] for c in faults_module.FAULT_COLUMNS if c not in ("point", "fault", "errors")
    } == {"-"}
    assert kill["errors"] == "26" and kill["first error"] == "56.30ms (nats_error)"
    # The terminal's rows are the report's rows.
    assert faults_module.fault_rows([memory.summary]) == [before, kill]
    # 4 + 26 = the run's 30 errors: nothing to warn about.
    assert not any("faults table counts" in w for w in faults_module.warnings(run.points))
    _, md_path = write_report(run_dir, tmp_path / "report")
    md = md_path.read_text()
    assert "| memory | no fault (before 3s) | - |" in md
    assert "faults table counts" not in md


def test_a_faults_table_that_disagrees_with_the_run_is_a_warning(faulted_run):
    memory = next(p for p in load(faulted_run).points if p.summary["target"] == "memory")
    assert memory.summary["errors"]["total"] == 123
    assert not any("faults table counts" in w for w in faults_module.warnings([memory]))
    # Older results counted failed sends only: the run's 150 errors, 123 in the table.
    memory.summary["errors"] = {"total": 150, "by_kind": {"timeout": 123, "reconnect": 27}}
    assert (
        "memory: the faults table counts 123 errors, the run 150 "
        "(these results counted failed sends only)"
    ) in faults_module.warnings([memory])
    # No "no fault" row without errors_before.
    assert [r["fault"] for r in faults_module.fault_rows([memory.summary])] == [
        "kill 1s at 2s",
        "pause 5s at 30s",
    ]
    counted_all = {**memory.summary, "faults": [{**KILL, "errors_counted": "all"}]}
    assert faults_module.errors_disagreement(counted_all, faults_of(counted_all)) == (
        "the faults table counts 123 errors, the run 150"
    )
