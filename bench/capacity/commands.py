"""The capacity commands of the ``bench`` CLI: find-max, sweep and plan.

A capacity run is an ordinary results directory: every probe is a point (summary, ``.hlog``,
timeseries), the manifest lists them, and ``capacity.json`` holds each search's answer and
its probes. So ``bench report`` draws the latency-versus-throughput curves and ``bench
compare`` compares the max sustainable rates.
"""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bench.console import (
    AllowLargeMatrixOption,
    MaxPointsOption,
    NoReportOption,
    OmbDriverOption,
    PayloadDirOption,
    QuietOption,
    ResultsDirOption,
    SetOption,
    TargetOption,
    console,
    err_console,
    use_omb_sources,
)
from bench.errors import ResultsError, ScenarioError
from bench.units import format_bytes, format_latency_us, parse_duration_s

if TYPE_CHECKING:  # the heavy modules load when a command runs, not for `bench --help`
    from bench.capacity.checks import Criteria
    from bench.capacity.search import Probe, SearchResult, Settings
    from bench.scenario import RunPoint, Scenario


CAPACITY_SCHEMA_VERSION = 1
_SLO_RE = re.compile(r"^\s*([a-z0-9_]+)\.([a-z0-9]+)\s*(<=|<)\s*(\S+)\s*$")


# --------------------------------------------------------------------------- option parsing


def parse_slo(texts: list[str]) -> dict[str, float]:
    """``["e2e.p99<50ms"]`` -> {"e2e.p99": 50000.0} (µs)."""
    from bench.scenario import LATENCY_KINDS, PIPELINE_STAGES, SLO_STATS

    out = {}
    for text in texts:
        match = _SLO_RE.match(text)
        if not match:
            raise ScenarioError(
                "bench", "--slo", f"{text!r} is not an SLO", hint='write it as "e2e.p99<50ms"'
            )
        kind, stat, _, value = match.groups()
        if kind not in (*LATENCY_KINDS, *PIPELINE_STAGES) or stat not in SLO_STATS:
            raise ScenarioError(
                "bench",
                "--slo",
                f"{kind}.{stat}: use KIND.STAT with KIND in {', '.join(LATENCY_KINDS)} (a "
                f"pipeline's stages too: {', '.join(PIPELINE_STAGES)}) and STAT in "
                f"{', '.join(SLO_STATS)}",
            )
        try:
            out[f"{kind}.{stat}"] = parse_duration_s(value) * 1e6
        except ValueError as exc:
            raise ScenarioError("bench", "--slo", str(exc)) from None
    return out


def parse_fraction(text: str, option: str, upper: float = 1.0, allow_zero: bool = False) -> float:
    """``5%`` or ``0.05`` -> 0.05 (above 0, below ``upper``; 0 too with ``allow_zero``)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ScenarioError("bench", option, f"{text!r} is not a percentage: write 5%") from None
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < upper) or math.isnan(value):
        raise ScenarioError(
            "bench", option, f"{text!r} must be between 0% and {upper:.0%}", hint="write 5%"
        )
    return value


def _duration(text: str | None, option: str, allow_zero: bool = False) -> float | None:
    if text is None:
        return None
    try:
        value = parse_duration_s(text)
    except ValueError as exc:
        raise ScenarioError("bench", option, str(exc)) from None
    if value <= 0 and not (allow_zero and value == 0):
        raise ScenarioError("bench", option, "must be longer than 0s")
    return value


# --------------------------------------------------------------------------- the run directory


class CapacityRun:
    """A results directory being filled by probes (a ``RunSession``, bench/session.py), plus
    ``capacity.json``; both are written after every probe, so an interrupted search leaves
    every finished probe and the answer so far. The session owns the Ctrl-C handling: the
    first stops the probe, the second writes the files and leaves."""

    def __init__(
        self,
        results_dir: Path,
        path: Path,
        scenario: Scenario,
        kind: str,
        settings: dict[str, Any],
        overrides: list[str],
        quiet: bool,
        expected_probes: int,
    ) -> None:
        from bench.interrupts import Interrupts
        from bench.session import RunSession

        self.kind = kind
        self.quiet = quiet
        self.interrupts = Interrupts()
        self.interrupts.install()
        self.settings = settings
        self.results: list[SearchResult] = []
        self.session = RunSession(
            results_dir,
            f"{scenario.scenario.name}-{kind}",
            path,
            scenario,
            overrides,
            self.interrupts,
            expected_points=expected_probes,
            fields={"kind": kind, "capacity": settings},
            out=console,
            err=err_console,
        )
        self.run_id, self.dir = self.session.run_id, self.session.dir
        self.manifest = self.session.manifest
        self.write_capacity()
        self.interrupts.on_second = [lambda: self.write("interrupted"), self.session.close]
        self.launcher_for: Any = None

    def stop_requested(self) -> bool:
        return self.interrupts.requested

    def write_capacity(self) -> None:
        from bench.store import CAPACITY, atomic_write_json

        atomic_write_json(
            self.dir / CAPACITY,
            {
                "schema_version": CAPACITY_SCHEMA_VERSION,
                "kind": self.kind,
                "settings": self.settings,
                "searches": [r.as_dict() for r in self.results],
            },
        )

    def write(self, status: str | None = None) -> None:
        self.session.write(status)
        self.write_capacity()

    def execute(self, point: RunPoint, slug: str) -> tuple[dict[str, Any], Path]:
        from bench.engine.runner import PointRunner

        entry = self.session.entry(point, slug)
        runner = PointRunner(
            point,
            self.run_id,
            self.dir / slug,
            self.stop_requested,
            launcher=self.launcher_for(point) if self.launcher_for is not None else None,
        )
        summary = runner.run()
        self.session.record(entry, summary)
        self.write_capacity()
        return summary, self.dir / slug

    def report(self, result: SearchResult, probe: Probe) -> None:
        from bench.capacity.search import probe_line

        self.write()
        if not self.quiet:
            console.print(probe_line(probe, store=result.kind == "store"), highlight=False)
        status = probe.status
        if status == "failed" and not self.quiet:
            err_console.print(f"[yellow]warning:[/] probe {probe.dir} failed (see its summary)")


def _bases(
    path: Path, overrides: list[str], targets: list[str] | None, max_points: int | None
) -> tuple[Scenario, list[RunPoint]]:
    from bench.scenario import expand, load_scenario

    scenario = load_scenario(path, overrides, max_points=max_points, targets=targets)
    if scenario.workload.kind == "replay":
        raise ScenarioError(
            str(path),
            "workload.kind",
            "a replay reads a seeded history back, with no rate to search: run it with bench run",
        )
    if "workload.rate" in scenario.matrix:
        raise ScenarioError(
            str(path),
            "matrix.workload.rate",
            "a capacity search sets the rate itself: remove workload.rate from [matrix]",
        )
    from bench.session import select_targets

    points = expand(scenario, str(path), max_points=max_points)
    return scenario, select_targets(points, scenario, targets, path)


def _criteria(scenario: Scenario, slo: list[str] | None, error_threshold: str) -> Criteria:
    from bench.capacity.checks import Criteria
    from bench.scenario import slo_thresholds

    slo_us = parse_slo(slo) if slo else slo_thresholds(scenario)
    return Criteria(slo_us=slo_us, error_threshold=parse_fraction(error_threshold, "--errors"))


def _check_slo_kinds(criteria: Criteria, points: list[RunPoint], path: Path) -> None:
    from bench.scenario import PIPELINE_STAGES

    for key in criteria.slo_us:
        kind = key.split(".")[0]
        for point in points:
            if kind in PIPELINE_STAGES and point.workload.kind != "pipeline":
                raise ScenarioError(
                    str(path),
                    "slo",
                    f"{key}: {kind} is a pipeline stage, and target {point.target} runs a "
                    f"{point.workload.kind} workload",
                    hint='use "e2e.p99<…" or "response.p99<…"',
                )
            if kind == "e2e" and point.workload.kind == "store":
                from bench.drivers.base import Projector, load_driver

                has_projector = issubclass(load_driver(point.driver), Projector)
                if not (point.workload.store.projector and has_projector):
                    why = (
                        "workload.store.projector is off"
                        if has_projector
                        else f"driver {point.driver!r} has no projector"
                    )
                    raise ScenarioError(
                        str(path),
                        "slo",
                        f"{key}: target {point.target}: an event store's e2e is its projection "
                        f"lag, and {why}",
                        hint='use "response.p99<…" (commands) or turn the projector on',
                    )
                continue
            if kind == "e2e" and point.workload.consumers == 0:
                raise ScenarioError(
                    str(path),
                    "slo",
                    f"{key}: target {point.target} has no consumers, so there is no "
                    "end-to-end latency to judge",
                    hint='use "response.p99<…" or add consumers',
                )


def _settings_dict(settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "precision": settings.precision,
        "probe_duration_s": settings.probe_duration_s,
        "warmup_s": settings.warmup_s,
        "verify_duration_s": settings.verify_duration_s,
        "max_probes": settings.max_probes,
        "min_rate_per_s": settings.min_rate_per_s,
        "max_rate_per_s": settings.max_rate_per_s,
        "slo_us": settings.criteria.slo_us,
        "error_threshold": settings.criteria.error_threshold,
        **extra,
    }


def _results_table(results: list[SearchResult], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for column in (
        "target",
        "server",
        "max sustainable",
        "precision",
        "limited by (first failing rate)",
        "verified",
        "closed-loop max",
        "probes",
        "status",
    ):
        table.add_column(column)
    for r in results:
        server = " ".join(str(v) for v in (r.server.get("product"), r.server.get("version")) if v)
        limited = ", ".join(r.limited_by) or "-"
        if r.upper_rate_per_s:
            limited += f" at {r.upper_rate_per_s:,.0f}/s"
        closed = "-" if r.saturation_per_s is None else f"{r.saturation_per_s:,.0f}/s"
        if r.saturation_client_bound:
            closed += " (client-bound)"
        table.add_row(
            r.label,
            server or "-",
            "-" if r.max_rate_per_s is None else f"{r.max_rate_per_s:,.0f}/s",
            "-" if r.precision is None else f"{r.precision:.1%}",
            limited,
            "yes" if r.verified else "no",
            closed,
            str(len(r.probes) + len(r.sweep)),
            r.status,
        )
    return table


def _search_all(run: CapacityRun, searches: Any) -> None:
    """Run the searches; a full disk stops them with one line, keeping what finished."""
    try:
        searches()
    except OSError as exc:
        problem = run.session.disk_full(exc)
        with contextlib.suppress(OSError):
            run.write_capacity()
        console.print(_results_table(run.results, f"{run.kind} ({run.run_id})"))
        run.session.print_disk_full(problem)
        console.print(f"results: {run.dir}")
        raise typer.Exit(1) from None


def _finish(run: CapacityRun, no_report: bool, title: str) -> None:
    from bench.session import INTERRUPTED, NOT_WRITTEN

    interrupts = run.interrupts
    status = "interrupted" if interrupts.requested else "ok"
    if any(r.status == "failed" for r in run.results) and status == "ok":
        status = "failed"
    problem = run.session.finish(status)
    with contextlib.suppress(OSError):
        run.write_capacity()
    console.print(_results_table(run.results, title))
    for result in run.results:
        console.print(result.headline)
        for note in result.notes:
            console.print(f"  note: {note}")
    if problem is not None:
        run.session.print_disk_full(problem)
        raise typer.Exit(1)
    outcome = None
    if not no_report and run.manifest["points"]:
        outcome = run.session.report(status == "interrupted")
    run.session.close()
    console.print(f"results: {run.dir}")
    if interrupts.requested or outcome == INTERRUPTED:
        raise typer.Exit(interrupts.exit_code)
    if outcome == NOT_WRITTEN:
        raise typer.Exit(1)
    raise typer.Exit(1 if status == "failed" else 0)


# --------------------------------------------------------------------------- commands

ScenarioArg = Annotated[Path, typer.Argument(help="A scenario file (TOML).")]
SloOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slo",
        help='An SLO such as "e2e.p99<50ms" (repeatable; replaces the scenario\'s slo table).',
    ),
]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="Stop when the bracket is this narrow.")
]
ProbeDurationOpt = Annotated[
    str, typer.Option("--probe-duration", help="Measurement window of each probe.")
]
ErrorsOpt = Annotated[
    str, typer.Option("--errors", help="Highest sustainable error (and loss) rate.")
]


def find_max(
    scenario: ScenarioArg,
    target: TargetOption = None,
    slo: SloOpt = None,
    precision: PrecisionOpt = "5%",
    probe_duration: ProbeDurationOpt = "5s",
    warmup: Annotated[
        str | None, typer.Option("--warmup", help="Warm-up of each probe (default: scenario's).")
    ] = None,
    verify_duration: Annotated[
        str | None,
        typer.Option(
            "--verify-duration",
            help="Confirm the answer with a run this long (default: the scenario's duration; "
            "0s: no confirmation).",
        ),
    ] = None,
    errors: ErrorsOpt = "0.1%",
    max_rate: Annotated[
        str | None, typer.Option("--max-rate", help="Never probe above this rate (e.g. 50k/s).")
    ] = None,
    max_probes: Annotated[
        int, typer.Option("--max-probes", min=3, max=200, help="Probe budget per search.")
    ] = 30,
    set_: SetOption = None,
    results_dir: ResultsDirOption = Path("results"),
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
    locust_workers: Annotated[
        int,
        typer.Option(
            "--locust-workers",
            min=0,
            help="Run every probe on a Locust cluster of N local workers, as bench locust does "
            "(0: the engine's own worker processes).",
        ),
    ] = 0,
    max_points: MaxPointsOption = None,
    allow_large_matrix: AllowLargeMatrixOption = False,
    omb_driver: OmbDriverOption = None,
    payload_dir: PayloadDirOption = None,
) -> None:
    """Find the highest rate each target sustains: SLOs hold, it keeps up with the schedule,
    the consumer backlog stays bounded, errors stay under the threshold, and the harness is
    not the limit. Writes every probe, capacity.json and the latency-vs-throughput curve.
    Takes an OMB workload file (.yaml) too, as bench run does."""
    from bench.capacity.search import Search
    from bench.scenario import matrix_limit

    use_omb_sources(omb_driver, payload_dir)

    path = Path(scenario)
    if locust_workers:
        set_ = [*(set_ or []), f"workload.workers={locust_workers}"]
    limit = matrix_limit(max_points, allow_large_matrix)
    loaded, bases = _bases(path, set_ or [], target, limit)
    settings = _search_settings(
        loaded,
        slo,
        precision,
        probe_duration,
        warmup,
        verify_duration,
        errors,
        max_rate,
        max_probes,
    )
    _check_slo_kinds(settings.criteria, bases, path)
    run = CapacityRun(
        results_dir,
        path,
        loaded,
        "find-max",
        _settings_dict(settings, {}),
        set_ or [],
        quiet,
        expected_probes=len(bases) * (max_probes + 1),
    )
    console.print(
        f"[bold]{loaded.scenario.name}[/]: find-max on {len(bases)} point(s) -> {run.dir}"
    )
    with contextlib.ExitStack() as stack:
        if locust_workers:
            from bench.locust.cluster import LocustCluster

            logs = Path(tempfile.mkdtemp(prefix="eventbench-locust-"))
            cluster = stack.enter_context(LocustCluster(locust_workers, log_dir=logs))
            console.print(f"locust: {len(cluster.workers)} workers; logs in {logs}")
            run.launcher_for = cluster.launcher

        def searches() -> None:
            for ordinal, base in enumerate(bases):
                if run.stop_requested():
                    break
                criteria = _criteria_text(settings)
                console.print(f"[bold cyan]▶ {base.label}[/]: searching ({criteria})")
                search = Search(
                    base, ordinal, settings, run.execute, run.report, run.stop_requested
                )
                run.results.append(search.result)
                search.find_max()
                console.print(f"  [bold]{search.result.headline}[/]")

        _search_all(run, searches)
    _finish(run, no_report, f"{loaded.scenario.name} find-max ({run.run_id})")


def sweep(
    scenario: ScenarioArg,
    fractions: Annotated[
        str,
        typer.Option("--fractions", help="Fractions of the max sustainable rate to run at."),
    ] = "0.1,0.5,0.8,0.9,1.0,1.05",
    max_rate: Annotated[
        str | None,
        typer.Option("--max", help="The max rate to take fractions of (else --from, else search)."),
    ] = None,
    from_run: Annotated[
        Path | None,
        typer.Option("--from", help="A find-max results directory holding each target's max."),
    ] = None,
    target: TargetOption = None,
    slo: SloOpt = None,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Window of each sweep point (default: scenario's)."),
    ] = None,
    precision: PrecisionOpt = "5%",
    probe_duration: ProbeDurationOpt = "5s",
    errors: ErrorsOpt = "0.1%",
    set_: SetOption = None,
    results_dir: ResultsDirOption = Path("results"),
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
    max_points: MaxPointsOption = None,
    allow_large_matrix: AllowLargeMatrixOption = False,
) -> None:
    """Latency versus throughput: open-loop points at fractions of each target's max
    sustainable rate (RabbitMQ PerfTest style). Without --max or --from, runs find-max first."""
    from bench.capacity.search import Search
    from bench.scenario import matrix_limit

    path = Path(scenario)
    loaded, bases = _bases(path, set_ or [], target, matrix_limit(max_points, allow_large_matrix))
    try:
        parts = [float(x) for x in fractions.split(",") if x.strip()]
    except ValueError:
        raise ScenarioError(
            "bench sweep", "--fractions", f"{fractions!r}: write numbers, e.g. 0.1,0.5,1.0"
        ) from None
    if not parts or any(f <= 0 or f > 10 for f in parts):
        raise ScenarioError("bench sweep", "--fractions", "give fractions above 0 and up to 10")
    known: dict[str, float] = {}
    if max_rate is not None and from_run is not None:
        raise ScenarioError("bench sweep", "--max", "give --max or --from, not both")
    if max_rate is not None:
        from bench.capacity.plan import parse_rate

        fixed = parse_rate(max_rate, "--max")
        known = {_base_key(b): fixed for b in bases}
    elif from_run is not None:
        known = _maxima_from(from_run)
        missing = [b.label for b in bases if _base_key(b) not in known]
        if missing:
            raise ResultsError(
                f"{from_run}: capacity.json: no max sustainable rate for {', '.join(missing)}",
                hint="run bench find-max on the same scenario and targets first",
            )
    settings = _search_settings(
        loaded, slo, precision, probe_duration, None, "0s", errors, None, 30
    )
    _check_slo_kinds(settings.criteria, bases, path)
    window = _duration(duration, "--duration") or loaded.scenario.duration
    run = CapacityRun(
        results_dir,
        path,
        loaded,
        "sweep",
        _settings_dict(settings, {"fractions": parts, "sweep_duration_s": window}),
        set_ or [],
        quiet,
        expected_probes=len(bases) * (30 + len(parts)),
    )
    console.print(f"[bold]{loaded.scenario.name}[/]: sweep on {len(bases)} point(s) -> {run.dir}")

    def searches() -> None:
        for ordinal, base in enumerate(bases):
            if run.stop_requested():
                break
            search = Search(base, ordinal, settings, run.execute, run.report, run.stop_requested)
            run.results.append(search.result)
            top = known.get(_base_key(base))
            if top is None:
                console.print(f"[bold cyan]▶ {base.label}[/]: no max given, searching it first")
                search.find_max()
                top = search.result.max_rate_per_s
                if top is None:
                    err_console.print(f"[yellow]warning:[/] {base.label}: no max found, no sweep")
                    continue
            else:
                search.result.max_rate_per_s = top
                search.result.status = "given"
            console.print(f"[bold cyan]▶ {base.label}[/]: sweep at {fractions} x {top:,.0f}/s")
            search.sweep(top, parts, window)

    _search_all(run, searches)
    _finish(run, no_report, f"{loaded.scenario.name} sweep ({run.run_id})")


def plan(
    run_dir: Annotated[Path, typer.Argument(help="A find-max (or sweep) results directory.")],
    load: Annotated[str, typer.Option("--load", help="The load to size for, e.g. 15000/s.")],
    headroom: Annotated[
        str, typer.Option("--headroom", help="Spare capacity on top of the load.")
    ] = "30%",
    format_: Annotated[
        str | None, typer.Option("--format", "-f", help="Write md or json instead of a table.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="The file for --format (default stdout).")
    ] = None,
) -> None:
    """Size partitions (queues, subjects) and consumers for a load, from measured max
    sustainable rates; states its assumptions and flags extrapolations."""
    import json

    from bench.capacity import plan as planner
    from bench.store import atomic_write_text, load_capacity

    load_per_s = planner.parse_rate(load)
    spare = parse_fraction(headroom, "--headroom", upper=10.0, allow_zero=True)
    capacity = load_capacity(run_dir)
    if capacity is None:
        raise ResultsError(
            f"{run_dir}: no capacity.json: not a find-max or sweep run",
            hint="run bench find-max SCENARIO first, then plan its results directory",
        )
    result = planner.plan(capacity.get("searches") or [], load_per_s, spare)
    if not result.rows and not result.stores:
        raise ResultsError(
            f"{run_dir}: capacity.json: no search found a sustainable rate to size from"
        )
    if format_ is not None:
        if format_ not in ("md", "json"):
            raise ScenarioError("bench plan", "--format", f"{format_!r}: use md or json")
        text = (
            planner.to_markdown(result)
            if format_ == "md"
            else json.dumps(result.as_dict(), indent=2) + "\n"
        )
        if output is None:
            typer.echo(text, nl=False)
        else:
            try:
                atomic_write_text(output, text)
            except OSError as exc:
                raise ResultsError(f"{output}: cannot write ({exc.strerror})") from None
            console.print(f"plan: {output}")
        return
    if output is not None:
        raise ScenarioError("bench plan", "--output", "needs --format md or json")
    table = Table(
        title=f"sizing for {load_per_s:,.0f}/s + {spare:.0%} headroom = "
        f"{result.required_per_s:,.0f}/s",
        header_style="bold",
    )
    for column in (
        "target",
        "measured",
        "per partition",
        "per consumer",
        "partitions needed",
        "consumers needed",
        "cores",
        "memory",
        "scale",
        "flags",
    ):
        table.add_column(column)
    for row in result.rows:
        table.add_row(
            row.label,
            f"{row.measured_rate_per_s:,.0f}/s on {row.measured_partitions} {row.unit}, "
            f"{row.measured_consumers} consumers",
            f"{row.per_partition_per_s:,.0f}/s",
            "-" if row.per_consumer_per_s is None else f"{row.per_consumer_per_s:,.0f}/s",
            f"{row.partitions} {row.unit}",
            "-" if row.consumers is None else str(row.consumers),
            planner.cores_text(row.cores),
            "-" if row.memory_bytes is None else format_bytes(row.memory_bytes),
            f"{row.scale:.1f}x",
            "\n".join(row.flags) or "-",
        )
    if result.rows:
        console.print(table)
    for row in result.rows:
        if row.scaling:
            console.print(f"{row.target}: {row.scaling}")
        if row.cost_basis:
            console.print(f"{row.target}: cores and memory from {row.cost_basis}")
    for store in result.stores:
        console.print(store)
    for skipped in result.skipped:
        console.print(f"skipped: {skipped}")
    console.print("assumptions:")
    for assumption in result.assumptions:
        console.print(f"  - {assumption}")


# --------------------------------------------------------------------------- helpers


def _search_settings(
    scenario: Scenario,
    slo: list[str] | None,
    precision: str,
    probe_duration: str,
    warmup: str | None,
    verify_duration: str | None,
    errors: str,
    max_rate: str | None,
    max_probes: int,
) -> Settings:
    from bench.capacity.plan import parse_rate
    from bench.capacity.search import Settings

    return Settings(
        precision=parse_fraction(precision, "--precision"),
        probe_duration_s=_duration(probe_duration, "--probe-duration") or 5.0,
        warmup_s=_duration(warmup, "--warmup", allow_zero=True),
        verify_duration_s=_duration(verify_duration, "--verify-duration", allow_zero=True),
        max_probes=max_probes,
        max_rate_per_s=parse_rate(max_rate, "--max-rate") if max_rate else None,
        criteria=_criteria(scenario, slo, errors),
    )


def _criteria_text(settings: Settings) -> str:
    slos = ", ".join(f"{k} <= {format_latency_us(v)}" for k, v in settings.criteria.slo_us.items())
    return (
        f"{slos or 'no SLO'}; errors <= {settings.criteria.error_threshold:.2%}; "
        f"precision {settings.precision:.0%}; probes of {settings.probe_duration_s:g}s"
    )


def _base_key(point: RunPoint) -> str:
    from bench.capacity.search import search_key

    return search_key(point)


def _maxima_from(run_dir: Path) -> dict[str, float]:
    from bench.store import load_capacity

    capacity = load_capacity(run_dir)
    if capacity is None:
        raise ResultsError(
            f"{run_dir}: no capacity.json", hint="give a bench find-max results directory"
        )
    return {
        str(s.get("key")): float(s["max_rate_per_s"])
        for s in capacity.get("searches") or []
        if s.get("max_rate_per_s")
    }
