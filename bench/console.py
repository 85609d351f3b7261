"""What every ``bench`` command that runs points shares on its command line: the consoles it
prints to, and the options run, locust, find-max and sweep have in common (one help text each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# Logs and CI: wide enough for the summary tables instead of rich's 80-column default.
NOT_A_TERMINAL_WIDTH = 200

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=NOT_A_TERMINAL_WIDTH)
err_console = Console(stderr=True, highlight=False)
if not err_console.is_terminal:
    err_console = Console(stderr=True, highlight=False, width=NOT_A_TERMINAL_WIDTH)


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field: --set workload.rate=5000 (repeatable)."),
]
ResultsDirOption = Annotated[
    Path, typer.Option("--results-dir", "-o", help="Where run directories are written.")
]
TargetOption = Annotated[
    list[str] | None, typer.Option("--target", "-t", help="Only these targets (repeatable).")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No live progress line, no line per probe.")
]
NoReportOption = Annotated[
    bool, typer.Option("--no-report", help="Do not write report.html and report.md.")
]
# A matrix is refused, with its point count, above the limit (bench.scenario.MAX_MATRIX_POINTS).
MaxPointsOption = Annotated[
    int | None,
    typer.Option(
        "--max-points", min=1, help="Refuse a matrix of more points than this (default 10,000)."
    ),
]
AllowLargeMatrixOption = Annotated[
    bool,
    typer.Option("--allow-large-matrix", help="Expand a matrix of any size (no --max-points)."),
]

OmbDriverOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--omb-driver",
        help="An OMB workload's target from an OMB driver file (kafka.yaml, repeatable; "
        "with --target NAME for eventbench's own drivers).",
    ),
]
PayloadDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--payload-dir",
        help="Where an OMB workload's payloadFile is (repeatable; default: next to the "
        "workload and in its OMB checkout).",
    ),
]


def use_omb_sources(drivers: list[Path] | None, payload_dirs: list[Path] | None) -> None:
    """Make the command line's OMB driver files and payload directories the ones every OMB
    workload this command loads uses (bench/omb/workload.py)."""
    from bench.omb.workload import SOURCES, OmbSources

    if drivers or payload_dirs:  # none given: keep what a calling command set
        SOURCES.set(OmbSources(tuple(drivers or ()), tuple(payload_dirs or ())))
