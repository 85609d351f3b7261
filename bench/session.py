"""One run session: a results directory a command fills, and the lifecycle every command that
runs points shares (``bench run``, ``bench locust``, ``bench find-max``, ``bench sweep``).

The session writes the manifest (schema version, scenario as resolved, overrides with secrets
masked, environment, the coordinator that writes it, one entry per point), keeps room on the
disk for the last manifest write, marks the run interrupted on a second Ctrl-C, turns a full
disk into one line naming the path, and writes the report with its outcome recorded in the
manifest (``report.status``). The commands keep only what is theirs: which points to run
and what to print about them.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.errors import BenchError, ReportError, ReportInterrupted, ResultsError, ScenarioError
from bench.interrupts import Interrupts
from bench.redaction import redact_override, redact_text
from bench.scenario import RunPoint, Scenario
from bench.store import (
    MANIFEST,
    SCHEMA_VERSION,
    SpaceReserve,
    atomic_write_json,
    coordinator,
    create_run_dir,
    environment,
    reserve_size,
    write_problem,
)

# What became of a run's report (manifest ``report.status``, and ``RunSession.report``'s answer).
WRITTEN, NOT_WRITTEN, INTERRUPTED, SKIPPED = "written", "not written", "interrupted", "skipped"


def select_targets(
    points: list[RunPoint], scenario: Scenario, targets: list[str] | None, path: Path
) -> list[RunPoint]:
    """The points of the targets named with ``--target`` (all of them when none is named)."""
    if not targets:
        return points
    unknown = set(targets) - set(scenario.targets)
    if unknown:
        raise ScenarioError(str(path), "--target", f"no target named {sorted(unknown)[0]!r}")
    return [p for p in points if p.target in targets]


def point_entry(
    point: RunPoint, slug: str | None = None, status: str = "pending"
) -> dict[str, Any]:
    """A point's entry in the manifest."""
    return {
        "index": point.index,
        "target": point.target,
        "label": point.label,
        "dir": slug or point.slug,
        "status": status,
    }


def _line(text: str) -> str:
    return escape(redact_text(" ".join(str(text).split())))


class RunSession:
    """A results directory being filled, and its manifest.

    ``fields`` go into the manifest beside the common ones (``kind`` and ``capacity`` for a
    capacity search, ``repetition`` for ``bench run --repeat``). Raises ResultsError, leaving
    no empty directory behind, when not even the first manifest can be written.
    """

    def __init__(
        self,
        results_root: Path,
        dir_name: str,
        scenario_file: Path,
        scenario: Scenario,
        overrides: list[str],
        interrupts: Interrupts,
        *,
        points: list[RunPoint] | None = None,
        expected_points: int | None = None,
        fields: dict[str, Any] | None = None,
        out: Console | None = None,
        err: Console | None = None,
    ) -> None:
        self.interrupts = interrupts
        self.out = out or Console(highlight=False)
        self.err = err or Console(stderr=True, highlight=False)
        self.run_id, self.dir = create_run_dir(results_root, dir_name)
        self.manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            **(fields or {}),
            "run_id": self.run_id,
            "scenario_file": str(scenario_file),
            "scenario": scenario.model_dump(mode="json"),
            "overrides": [redact_override(o) for o in overrides],
            "environment": environment(),
            "started_at": time.time(),
            "ended_at": None,
            "status": "running",
            # Who writes this manifest: bench show and report tell a run still going from one
            # whose coordinator was killed (the manifest then stays "running").
            "coordinator": coordinator(),
            "points": [point_entry(p) for p in points or []],
        }
        try:
            self.write()
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.dir.rmdir()  # nothing was written: leave no empty run behind
            raise ResultsError(
                f"results not written: {write_problem(exc, self.dir / MANIFEST)}",
                hint="free some space or choose another --results-dir",
            ) from None
        room = expected_points if expected_points is not None else len(points or [])
        self.reserve = SpaceReserve(self.dir, reserve_size(room))
        interrupts.on_second = [lambda: self.write("interrupted"), self.reserve.release]
        self.current: dict[str, Any] | None = None  # the entry of the point running

    # ------------------------------------------------------------------ the manifest
    def write(self, status: str | None = None) -> None:
        """Write the manifest (atomically); with ``status``, the run ended with it."""
        if status:
            self.manifest["status"] = status
            self.manifest["ended_at"] = time.time()
        atomic_write_json(self.dir / MANIFEST, self.manifest)

    def entry(self, point: RunPoint, slug: str | None = None) -> dict[str, Any]:
        """The manifest entry of a point about to run (added when it was not listed)."""
        found = next((e for e in self.manifest["points"] if e["index"] == point.index), None)
        if found is None or (slug is not None and found["dir"] != slug):
            found = point_entry(point, slug, "running")
            self.manifest["points"].append(found)
            self.write()
        self.current = found
        return found

    def record(self, entry: dict[str, Any], summary: dict[str, Any]) -> None:
        """A point finished with this summary (written): its status and server."""
        self.current = None  # its summary is written: it finished, whatever comes next
        entry["status"] = summary["status"]
        info = summary.get("target_info") or {}
        entry["server"] = {"product": info.get("product"), "version": info.get("version")}
        self.write()

    def disk_full(self, exc: OSError) -> str:
        """A write failed for lack of room: the manifest (written with the reserved room) says
        the run failed and why; the points that finished keep their summaries. The problem,
        as one line naming the path."""
        self.reserve.release()
        where = self.dir / self.current["dir"] if self.current is not None else self.dir
        problem = f"results not written: {write_problem(exc, where)}"
        self.manifest["error"] = problem
        if self.current is not None:
            self.current["status"] = "failed"
        with contextlib.suppress(OSError):
            self.write("failed")
        return problem

    def finish(self, status: str) -> str | None:
        """The run's last manifest write; the problem when even the reserved room was not
        enough (None: written)."""
        try:
            self.write(status)
        except OSError as exc:
            self.reserve.release()  # the room kept for this very write
            try:
                self.write(status)
            except OSError:
                return f"results not written: {write_problem(exc, self.dir / MANIFEST)}"
        return None

    def close(self) -> None:
        self.reserve.release()

    def print_disk_full(self, problem: str) -> None:
        self.err.print(f"[red]error:[/] {_line(problem)}", soft_wrap=True)
        self.err.print(
            f"  hint: free some space; what finished stands: bench show {self.dir}",
            soft_wrap=True,
        )

    # ------------------------------------------------------------------ the report
    def report(self, interrupted: bool) -> str:
        """Write the run's report and record what became of it under ``report.status``.

        Returns WRITTEN; NOT_WRITTEN on a full disk (one error line: the run's results stand);
        INTERRUPTED when Ctrl-C came while it was written (none of it is kept, and the manifest
        says the run was interrupted, as the exit code does); SKIPPED when the report could
        not be made (damaged results, a missing extra: a warning).
        """
        from bench.report import REPORT_INSTALL, ReportExtraMissing, report_extra

        try:
            with report_extra("the report"):
                from bench.report.html import write_report
        except ReportExtraMissing as exc:  # the core install: the run's results stand
            self.err.print(
                f"[yellow]warning:[/] no report: it needs {exc.module}: {escape(REPORT_INSTALL)}",
                soft_wrap=True,
            )
            self.manifest["report"] = {"status": SKIPPED, "error": f"{exc.module} not installed"}
            self._write_keeping_room(None)
            return SKIPPED
        # An interrupted run still gets its report; only a second Ctrl-C stops that (at once).
        stop = None if interrupted else (lambda: self.interrupts.requested)
        status = None
        try:
            html_path, _ = write_report(self.dir, stop=stop)
            self.out.print(f"report: {html_path}")
            self.manifest["report"] = {"status": WRITTEN}
            outcome = WRITTEN
        except ReportInterrupted:
            self.err.print("interrupted: report not written; the run is marked interrupted")
            self.manifest["report"] = {"status": INTERRUPTED}
            status = outcome = INTERRUPTED
        except ReportError as exc:
            self.err.print(f"[red]error:[/] {_line(exc.message)}", soft_wrap=True)
            self.err.print(
                f"  hint: the run's results stand: free some space, then bench report {self.dir}",
                soft_wrap=True,
            )
            self.manifest["report"] = {"status": NOT_WRITTEN, "error": exc.message}
            outcome = NOT_WRITTEN
        except BenchError as exc:  # the results stand without a report
            self.err.print(f"[yellow]warning:[/] no report: {_line(exc.message)}")
            self.manifest["report"] = {"status": NOT_WRITTEN, "error": exc.message}
            outcome = SKIPPED
        self._write_keeping_room(status)
        return outcome

    def _write_keeping_room(self, status: str | None) -> None:
        try:
            self.write(status)
        except OSError:
            self.reserve.release()
            with contextlib.suppress(OSError):
                self.write(status)
