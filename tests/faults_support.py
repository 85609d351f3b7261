"""Checks that a faults run's figures agree with its error counts, wherever a person reads them.

One source: the summary's fault rows. The run counts its errors once (``errors.total``, by kind,
and per interval in ``timeseries.csv``); the fault rows must attribute every one of them to a
fault or to "no fault" (before the first fault), and the Faults table of report.md and of the
terminal must show those same rows.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bench.report import faults as faults_report
from bench.report.tables import point_label


def _md_faults_errors(report_md: str) -> list[tuple[str, int]]:
    """(fault, errors) of each row of report.md's Faults table."""
    section = report_md.split("## Faults\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    fault, errors = header.index("fault"), header.index("errors")
    return [(row[fault], int(row[errors])) for row in rows if row[errors] != "-"]


def assert_fault_errors_agree(point_dir: Path, summary: dict[str, Any]) -> None:
    """Every error the run counted is in exactly one fault row (or before the first fault),
    and the timeline, report.md (when written) and the terminal's table show the same."""
    total = summary["errors"]["total"]
    rows = summary["faults"]
    assert rows, summary
    attributed = rows[0]["errors_before"] + sum(r["errors"] for r in rows)
    assert attributed == total, (total, [(r["errors_before"], r["errors"]) for r in rows])
    if rows[0]["errors_counted"] == "all":
        # Each row's kinds add up to its errors, and no row holds more of a kind than the run.
        for row in rows:
            assert sum(row["errors_by_kind"].values()) == row["errors"], row
        for kind in {k for row in rows for k in row["errors_by_kind"]}:
            held = sum(row["errors_by_kind"].get(kind, 0) for row in rows)
            assert held <= summary["errors"]["by_kind"].get(kind, 0), kind
    with (point_dir / "timeseries.csv").open() as f:
        assert sum(int(r["errors"]) for r in csv.DictReader(f)) == total
    # A fault that saw errors has its first error, and the first error is inside its span.
    for row in rows:
        if row["errors"]:
            assert row["time_to_first_error_s"] is not None, row
            first_s = row["errors_from_s"] + row["time_to_first_error_s"]
            assert row["errors_to_s"] is None or first_s < row["errors_to_s"], row
        else:
            assert row["time_to_first_error_s"] is None, row
    # The terminal's table (the same rows as the report's).
    table = faults_report.fault_rows([summary])
    assert sum(int(r["errors"]) for r in table if r["errors"] != "-") == total, table
    report = point_dir.parent / "report.md"
    if report.exists():
        label = point_label(summary)
        md_rows = _md_faults_errors(report.read_text())
        assert [(r["fault"], int(r["errors"])) for r in table if r["errors"] != "-"] == md_rows
        assert sum(n for _, n in md_rows) == total, md_rows
        assert f"{label}: the faults table counts" not in report.read_text()
