"""How the report words a pipeline point's invariants and mode: never a pass on a check that
was not made or that failed, wherever the words appear (pipeline table, summary table, verdict
table, terminal)."""

from __future__ import annotations

import copy
from typing import Any

from bench.report import pipeline
from bench.report.tables import invariants_text as summary_invariants_text
from bench.report.tables import metric
from bench.report.verdicts import _store_cells

HELD: dict[str, Any] = {
    "kind": "pipeline",
    "status": "ok",
    "store": {"commands": 100, "abandoned": 0, "invariants": {"ok": True, "violations": []}},
    "pipeline": {
        "relay": "outbox",
        "idempotency": "processed_events",
        "applied_per_s": 95.0,
        "invariants": {
            "checked": True,
            "ok": True,
            "violations": [],
            "never_applied": 0,
            "applied_twice": 0,
            "aggregates_checked": 20,
            "aggregates_differing": 0,
        },
    },
}


def _with(**invariants: Any) -> dict[str, Any]:
    summary = copy.deepcopy(HELD)
    summary["pipeline"]["invariants"].update(invariants)
    return summary


def test_held_invariants_read_hold_in_every_table() -> None:
    assert pipeline.invariants_text(HELD) == "hold"
    assert summary_invariants_text(HELD) == "hold"
    assert _store_cells(HELD)[1] == "hold"


def test_a_violation_is_counted_and_quoted_never_hold() -> None:
    summary = _with(ok=False, violations=["3 committed events never reached the read model"])
    assert pipeline.invariants_text(summary) == "1 violated"
    assert summary_invariants_text(summary) == (
        "VIOLATED: pipeline: 3 committed events never reached the read model"
    )
    assert _store_cells(summary)[1] == "1 violated"


def test_the_store_side_violations_of_a_pipeline_count_too() -> None:
    summary = copy.deepcopy(HELD)
    summary["store"]["invariants"] = {"ok": False, "violations": ["order-7: forked"]}
    assert pipeline.violations(summary) == ["store: order-7: forked"]
    assert pipeline.invariants_text(summary) == "1 violated"


def test_invariants_not_checked_are_not_a_pass() -> None:
    # An interrupted point: the check never ran.
    summary = _with(checked=False, ok=False)
    assert pipeline.invariants_text(summary) == "not checked"
    assert summary_invariants_text(summary) == "not checked"


def test_a_failed_check_without_its_words_still_reads_violated() -> None:
    assert pipeline.invariants_text(_with(ok=False)) == "violated"


def test_the_mode_names_the_relay_and_the_guard() -> None:
    assert pipeline.mode_text({"relay": "outbox", "idempotency": "processed_events"}) == (
        "outbox + guard"
    )
    assert pipeline.mode_text({"relay": "dual_write", "idempotency": "none"}) == (
        "dual write + no guard"
    )


def test_the_pipeline_metrics_read_the_summary() -> None:
    summary = _with(never_applied=4)
    summary["latency_us"] = {"visible": {"p99": 1500.0}}
    assert metric("never_applied").value(summary) == 4
    assert metric("pipeline.applied_per_s").value(summary) == 95.0
    assert metric("visible.p99").value(summary) == 1500.0
    # A stream point has none of them: compare and check skip what neither side has.
    assert metric("pipeline.never_applied").value({"kind": "stream"}) is None


def test_counts_of_a_check_not_made_read_dash_never_a_clean_zero() -> None:
    from rich.console import Console

    from bench.report.terminal import pipeline_table
    from bench.report.verdicts import _pipeline_cells

    # An interrupted point: the check never ran, and its counts were never counted.
    interrupted = _with(checked=False, ok=False)
    assert _pipeline_cells(interrupted)["never applied"] == "-"
    assert _pipeline_cells(interrupted)["applied twice"] == "-"
    assert _pipeline_cells(HELD)["never applied"] == "0"
    console = Console(width=400, record=True)
    console.print(pipeline_table([{**interrupted, "target": "memory"}]))
    lines = console.export_text().splitlines()
    row = next(line for line in lines if "memory" in line)
    cells = [cell.strip() for cell in row.split("│")]
    header = next(line for line in lines if "never applied" in line)
    column = [cell.strip() for cell in header.split("┃")].index("never applied")
    assert cells[column] == "-"
    checked = Console(width=400, record=True)
    checked.print(pipeline_table([{**_with(never_applied=3), "target": "memory"}]))
    row = next(line for line in checked.export_text().splitlines() if "memory" in line)
    assert [cell.strip() for cell in row.split("│")][column] == "3"
