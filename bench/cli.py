"""The ``bench`` command (typer). Thin: it parses, calls the modules, and prints.

Errors that users can cause are ``BenchError``s, rendered as one line plus a hint with the
error's exit code (2 for bad input); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import __version__
from bench.console import (  # the consoles, and the options run and locust share with find-max
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
from bench.errors import BenchError, ScenarioError, clip

app = typer.Typer(
    name="bench",
    help=(
        "eventbench: honest benchmarks for event-driven systems.\n\n"
        "Push event workloads through Kafka, RabbitMQ, NATS JetStream, a PostgreSQL event "
        "store or the embedded memory target; record latency (HdrHistogram, from the intended "
        "send time), throughput and an exact delivery audit.\n\n"
        "Start with:  bench run scenarios/quickstart.toml"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


MESSAGE_MAX_CHARS = 2000  # an error line; longer ones keep their start and end


def _one_line(text: str) -> str:
    """A message as one line, safe from rich markup (client libraries put newlines and
    brackets such as "[Errno 111]" in theirs), with any credentials it quotes removed."""
    from rich.markup import escape

    from bench.redaction import redact_text

    return escape(redact_text(clip(" ".join(str(text).split()), MESSAGE_MAX_CHARS)))


_debug = False

DEFAULT_SCENARIO = Path("scenarios/quickstart.toml")


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    global _debug
    _debug = _debug or debug  # main() already took a --debug given after the subcommand
    if version:
        console.print(f"eventbench {__version__}")
        raise typer.Exit(0)


BROKERS_SCENARIO = Path("scenarios/brokers.toml")
# The targets of the shipped scenarios/brokers.toml, by the bench up service each runs on: what
# `bench run` with no arguments runs when those services answer (a fact about that file).
_BROKER_TARGETS = {"kafka": "kafka", "rabbitmq": "rabbitmq", "nats": "nats"}


def _default_plan() -> tuple[Path, list[str] | None]:
    """The main job: the broker comparison on whichever local brokers answer (after `bench
    up`) and have their driver installed, else the memory-only quickstart. The scenarios are
    ./scenarios/ when there (`bench init`), else the ones shipped with eventbench."""
    from rich.markup import escape

    from bench import infra
    from bench.examples import scenario_path

    answering = [name for name in _BROKER_TARGETS if infra.status(name).running]
    running = [name for name in answering if _driver_installed(_BROKER_TARGETS[name])]
    if len(running) < len(answering):
        missing = [name for name in answering if name not in running]
        console.print(
            f"{', '.join(missing)} answer, but without the driver installed: "
            + escape(f"pip install 'eventbench[{','.join(missing)}]'"),
            soft_wrap=True,
        )
    if not running:
        if answering:
            console.print("no broker to run: memory quickstart")
        else:
            console.print("no local broker answers (start them with `bench up`): memory quickstart")
        return scenario_path(DEFAULT_SCENARIO), None
    console.print(f"brokers answering: {', '.join(running)}: running the broker comparison")
    return scenario_path(BROKERS_SCENARIO), ["memory", *(_BROKER_TARGETS[n] for n in running)]


def _driver_installed(name: str) -> bool:
    from bench.drivers.base import load_driver
    from bench.errors import DriverNotFound

    try:
        load_driver(name)
    except DriverNotFound:
        return False
    return True


# --------------------------------------------------------------------------- run


class FailOn(StrEnum):
    status = "status"
    verdict = "verdict"


FailOnOption = Annotated[
    FailOn,
    typer.Option(
        "--fail-on",
        help="status: exit 1 when a point failed to run; verdict: also when a point's verdict "
        "is not pass (lost, duplicated or reordered messages, a broken SLO or invariant, "
        "an error rate over [verdict] max_error_rate, or too few samples to judge).",
    ),
]


@app.command()
def run(
    scenarios: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Scenario files (TOML). Default: scenarios/brokers.toml on the local brokers "
            "that answer, or scenarios/quickstart.toml (memory target) when none does."
        ),
    ] = None,
    set_: SetOption = None,
    results_dir: ResultsDirOption = Path("results"),
    target: TargetOption = None,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
    fail_on: FailOnOption = FailOn.status,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            max=100,
            help="Run each scenario N times into one group directory; compare and check "
            "then judge groups with a significance test instead of a bare threshold.",
        ),
    ] = 1,
    max_points: MaxPointsOption = None,
    allow_large_matrix: AllowLargeMatrixOption = False,
    omb_driver: OmbDriverOption = None,
    payload_dir: PayloadDirOption = None,
) -> None:
    """Run scenarios and write results/<run-id>/ (manifest, summaries, .hlog, timeseries).

    Latency is measured from each event's intended send time (open loop), so a stalled target
    shows up in the numbers instead of slowing the load down. Exit code: 0 when every point
    ran (with --fail-on verdict: and every verdict is pass), 1 otherwise, 2 for bad input,
    130/143 when interrupted.

    An OMB workload file (.yaml) runs as it is, against --omb-driver files and --target
    drivers by name; one with producerRate 0 is a find-max (OMB's search for the fastest
    rate).
    """
    use_omb_sources(omb_driver, payload_dir)
    if scenarios and _omb_find_max(scenarios):
        capacity_commands.find_max(
            scenarios[0],
            target=target,
            set_=set_,
            results_dir=results_dir,
            quiet=quiet,
            no_report=no_report,
            max_points=max_points,
            allow_large_matrix=allow_large_matrix,
        )
        return
    _run(
        scenarios,
        set_,
        results_dir,
        target,
        quiet,
        no_report,
        repeat,
        fail_on=fail_on,
        max_points=max_points,
        allow_large_matrix=allow_large_matrix,
    )


def _omb_find_max(scenarios: list[Path]) -> bool:
    """Whether ``bench run`` was given one OMB workload asking for the fastest rate
    (producerRate 0): that is bench find-max's work. Several files, one of them such: bad
    input (a search and runs do not share a run directory)."""
    from bench.omb.workload import is_omb_workload, wants_find_max

    searching = [p for p in scenarios if is_omb_workload(p) and wants_find_max(p)]
    if searching and len(scenarios) > 1:
        raise ScenarioError(
            str(searching[0]),
            "producerRate",
            "0 asks for the fastest rate (bench find-max), which runs alone: give this "
            "workload by itself",
        )
    return bool(searching)


def _run(
    scenarios: list[Path] | None,
    set_: list[str] | None,
    results_dir: Path,
    target: list[str] | None,
    quiet: bool,
    no_report: bool,
    repeat: int,
    launcher_for: Any = None,
    fail_on: FailOn = FailOn.status,
    max_points: int | None = None,
    allow_large_matrix: bool = False,
) -> None:
    """``bench run``'s work; ``launcher_for(point)`` replaces local worker processes."""
    from bench.engine.runner import IntervalView, PointRunner
    from bench.interrupts import Interrupts
    from bench.scenario import expand, load_scenario, matrix_limit
    from bench.session import INTERRUPTED, NOT_WRITTEN, RunSession, select_targets
    from bench.store import create_run_dir

    if not scenarios:
        default_path, default_targets = _default_plan()
        scenarios = [default_path]
        target = target or default_targets
    limit = matrix_limit(max_points, allow_large_matrix)
    loaded = [
        (path, load_scenario(path, set_ or [], max_points=limit, targets=target))
        for path in scenarios
    ]
    plans = [
        (path, scenario, select_targets(expand(scenario, str(path), max_points=limit), scenario,
                                        target, path))
        for path, scenario in loaded
    ]  # fmt: skip

    interrupts = Interrupts()
    interrupts.install()
    any_failed = False
    verdicts_failed: list[str] = []
    runs = [
        (path, scenario, points, repetition)
        for path, scenario, points in plans
        for repetition in range(1, repeat + 1)
    ]
    groups: dict[str, Path] = {}
    # Exit 130/143 only when an interrupt cut something short; then that run's manifest says
    # "interrupted" too (an interrupt after the last file was final changes nothing).
    cut_short = False
    # A full disk (results or report not written): exit 1 after the one-line error.
    not_written = False
    for number, (path, scenario, points, repetition) in enumerate(runs):
        if interrupts.requested:
            cut_short = True
            break
        name = scenario.scenario.name
        root = results_dir
        if repeat > 1:
            # Repetitions of one scenario live in one group directory, which compare and
            # check read as a group (medians, Mann-Whitney U).
            if name not in groups:
                groups[name] = create_run_dir(results_dir, f"{name}-x{repeat}")[1]
            root = groups[name]
        session = RunSession(
            root,
            name,
            path,
            scenario,
            set_ or [],
            interrupts,
            points=points,
            fields={"repetition": {"index": repetition, "of": repeat}},
            out=console,
            err=err_console,
        )
        run_id, run_dir = session.run_id, session.dir
        console.print(f"[bold]{scenario.scenario.name}[/]: {len(points)} point(s) -> {run_dir}")
        summaries = []
        try:
            for point in points:
                if interrupts.requested:
                    break
                console.print(f"[bold cyan]▶ {point.label}[/]  ({_describe_load(point)})")
                for warning in point.warnings:
                    err_console.print(
                        f"[yellow]warning:[/] {_one_line(f'{point.label}: {warning}')}",
                        soft_wrap=True,
                    )

                def show(view: IntervalView) -> None:
                    if quiet:
                        return
                    console.print(
                        f"  {view.t_s:6.1f}s {view.phase:<7} sent {view.sent_per_s:9.0f}/s  "
                        f"acked {view.acked_per_s:9.0f}/s  recv {view.received_per_s:9.0f}/s  "
                        f"p99 resp {_fmt(view.response_p99_us):>8}  "
                        f"e2e {_fmt(view.e2e_p99_us):>8}  "
                        f"errors {view.errors}  client cpu {view.cpu_pct:3.0f}%",
                        highlight=False,
                    )

                runner = PointRunner(
                    point,
                    run_id,
                    run_dir / point.slug,
                    stop_requested=lambda: interrupts.requested,
                    on_interval=show,
                    launcher=launcher_for(point) if launcher_for is not None else None,
                )
                entry = session.entry(point)
                summary = runner.run()
                summaries.append(summary)
                session.record(entry, summary)
                if summary.get("verdict", {}).get("result") != "pass":
                    verdicts_failed.append(point.label)
                if summary["status"] == "failed":
                    any_failed = True
                    for problem in summary["problems"]:
                        err_console.print(
                            f"[red]error:[/] {_one_line(f'{point.label}: {problem}')}",
                            soft_wrap=True,
                        )
                elif summary["problems"]:
                    for problem in summary["problems"]:
                        err_console.print(
                            f"[yellow]warning:[/] {_one_line(f'{point.label}: {problem}')}",
                            soft_wrap=True,
                        )
                unread = _metrics_unread(point, summary)
                if unread is not None:
                    err_console.print(
                        f"[yellow]warning:[/] {_one_line(f'{point.label}: {unread}')}",
                        soft_wrap=True,
                    )
        except OSError as exc:
            # A full disk: stop here, with what finished kept.
            problem = session.disk_full(exc)
            _print_summaries(summaries, f"{scenario.scenario.name} ({run_id})")
            session.print_disk_full(problem)
            console.print(f"results: {run_dir}")
            not_written = True
            break
        status = "interrupted" if interrupts.requested else ("failed" if any_failed else "ok")
        problem = session.finish(status)
        if problem is not None:
            _print_summaries(summaries, f"{scenario.scenario.name} ({run_id})")
            err_console.print(f"[red]error:[/] {_one_line(problem)}", soft_wrap=True)
            not_written = True
            break
        if status == "interrupted":
            cut_short = True
        _print_summaries(summaries, f"{scenario.scenario.name} ({run_id})")
        if summaries and not no_report:
            outcome = session.report(status == "interrupted")
            cut_short = cut_short or outcome == INTERRUPTED
            not_written = not_written or outcome == NOT_WRITTEN
        session.close()
        console.print(f"results: {run_dir}")
        if cut_short or not_written:
            break
        if interrupts.requested and number + 1 < len(runs):
            cut_short = True  # the runs after this one never started
            break
    for name, group in groups.items():
        console.print(f"group: {group} ({repeat} runs of {name}); compare or check it as one")
    if cut_short:
        raise typer.Exit(interrupts.exit_code)
    if not_written:
        raise typer.Exit(1)
    if fail_on == FailOn.verdict and verdicts_failed and not any_failed:
        err_console.print(
            f"[red]verdict:[/] {len(verdicts_failed)} point(s) did not pass: "
            + ", ".join(verdicts_failed[:5])
            + " (--fail-on verdict)",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    raise typer.Exit(1 if any_failed else 0)


@app.command()
def locust(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files (TOML).")],
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=0, help="Local Locust workers to start.")
    ] = 2,
    remote_workers: Annotated[
        int,
        typer.Option(
            "--remote-workers",
            min=0,
            help="Also wait for this many workers started elsewhere with "
            "`bench locust-worker --master-host THIS_HOST --master-port PORT`.",
        ),
    ] = 0,
    master_bind_host: Annotated[
        str,
        typer.Option(
            "--master-bind-host", help="Where the Locust master listens (0.0.0.0 for remote)."
        ),
    ] = "127.0.0.1",
    master_port: Annotated[
        int | None, typer.Option("--master-port", help="The master's port (default: a free one).")
    ] = None,
    set_: SetOption = None,
    results_dir: ResultsDirOption = Path("results"),
    target: TargetOption = None,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
    fail_on: FailOnOption = FailOn.status,
    max_points: MaxPointsOption = None,
    allow_large_matrix: AllowLargeMatrixOption = False,
) -> None:
    """Run scenarios on a Locust cluster: a master and N workers, each worker one engine.

    The same scenario and the same results as `bench run`, with `workload.workers` set to the
    number of Locust workers: each runs its share of the producers (their open-loop schedules)
    and consumers, and ships its histograms and audit ledgers back through Locust. Use it when
    one machine cannot generate the load; see docs/locust.md for workers on other machines.
    """
    import tempfile

    from bench.locust.cluster import LocustCluster
    from bench.scenario import load_scenario, matrix_limit

    total = workers + remote_workers
    if total < 1:
        raise typer.BadParameter("at least one worker: --workers 2", param_hint="--workers")
    overrides = [*(set_ or []), f"workload.workers={total}"]
    for path in scenarios:  # bad input fails before any process starts
        if load_scenario(path, set_ or [], targets=target).workload.kind == "replay":
            raise ScenarioError(
                str(path),
                "workload.kind",
                "a replay is one reader in the coordinator, with no load to spread over "
                "Locust workers: run it with bench run",
            )
        load_scenario(
            path,
            overrides,
            max_points=matrix_limit(max_points, allow_large_matrix),
            targets=target,
        )
    log_dir = Path(tempfile.mkdtemp(prefix="eventbench-locust-"))
    with LocustCluster(workers, remote_workers, master_bind_host, master_port, log_dir) as cluster:
        console.print(
            f"locust: master on {master_bind_host}:{cluster.bind_port}, "
            f"{len(cluster.workers)} workers; logs in {log_dir}"
        )
        _run(
            scenarios,
            overrides,
            results_dir,
            target,
            quiet,
            no_report,
            1,
            cluster.launcher,
            fail_on=fail_on,
            max_points=max_points,
            allow_large_matrix=allow_large_matrix,
        )


@app.command("locust-worker")
def locust_worker(
    master_host: Annotated[str, typer.Option("--master-host", help="The master's host.")],
    master_port: Annotated[int, typer.Option("--master-port", help="The master's port.")] = 5557,
    wall_clock: Annotated[
        bool,
        typer.Option(
            "--wall-clock",
            help="Translate the start time through the wall clock even if this host's name is "
            "the master's (a container or VM with its own monotonic clock).",
        ),
    ] = False,
) -> None:
    """Run one Locust worker for `bench locust` (on this or another machine); Ctrl-C stops it."""
    argv = [sys.executable, "-m", "bench.locust.worker", "--master-host", master_host]
    argv += ["--master-port", str(master_port)] + (["--wall-clock"] if wall_clock else [])
    os.execv(sys.executable, argv)


def _print_summaries(summaries: list[dict[str, Any]], title: str) -> None:
    from rich.markup import escape

    from bench.report.terminal import (
        backlog_table,
        faults_table,
        pipeline_table,
        replay_table,
        saga_faults_table,
        saga_table,
        store_table,
        subscriptions_table,
        summary_table,
        topics_table,
    )
    from bench.report.verdicts import loss_lines

    streams = [s for s in summaries if s.get("kind", "stream") == "stream"]
    stores = [s for s in summaries if s.get("kind") == "store"]
    pipelines = [s for s in summaries if s.get("kind") == "pipeline"]
    replays = [s for s in summaries if s.get("kind") == "replay"]
    sagas = [s for s in summaries if s.get("kind") == "saga"]
    # A replay's read-back and its aggregate loads have different figures: a table each.
    loads = [s for s in replays if (s.get("replay") or {}).get("load")]
    replays = [s for s in replays if s not in loads]
    if streams:
        console.print(summary_table(streams, title=title))
        fanned = [s for s in streams if (s.get("audit") or {}).get("subscriptions")]
        if fanned:
            console.print(subscriptions_table(fanned, title=f"{title}: subscriptions"))
        spread = [s for s in streams if int((s.get("topology") or {}).get("topics") or 1) > 1]
        if spread:
            console.print(topics_table(spread, title=f"{title}: topics"))
        backlogged = [s for s in streams if s.get("backlog")]
        if backlogged:
            console.print(backlog_table(backlogged, title=f"{title}: backlog"))
    if stores:
        console.print(store_table(stores, title=title))
    if pipelines:
        console.print(pipeline_table(pipelines, title=title))
    if replays:
        console.print(replay_table(replays, title=title))
    if loads:
        console.print(replay_table(loads, title=f"{title}: aggregate loads"))
    if sagas:
        console.print(saga_table(sagas, title=title))
    faulted = [s for s in summaries if s.get("faults") and s not in sagas]
    if faulted:
        console.print(faults_table(faulted, title=f"{title}: faults"))
    faulted_sagas = [s for s in sagas if s.get("faults")]
    if faulted_sagas:
        console.print(saga_faults_table(faulted_sagas, title=f"{title}: faults on the sagas"))
    for line in loss_lines(summaries):
        console.print(f"[red]loss:[/] {escape(line)}", soft_wrap=True, highlight=False)


def _fmt(value_us: float | None) -> str:
    from bench.units import format_latency_us

    return format_latency_us(value_us)


def _metrics_unread(point: Any, summary: dict[str, Any]) -> str | None:
    """One line when a target's named metrics endpoint gave nothing: the run goes on without
    its costs, and the user asked for them."""
    url = getattr(point.driver_config, "metrics_url", None)
    resources = summary.get("resources")
    if url is None:
        return None
    if resources is None:
        why = summary.get("resources_why") or "not read"
        return f"targets.{point.target}.metrics_url: the target's costs were not read: {why}"
    missing = resources.get("metrics_missing") or []
    if missing:
        return f"targets.{point.target}.metrics: not reported by the source: {', '.join(missing)}"
    return None


def _spread(w: Any) -> str:
    """ " over 4 topics x 3 subscriptions": how a stream point's clients spread (else "")."""
    parts = []
    if w.topics > 1:
        parts.append(f"{w.topics} topics")
    if w.subscriptions > 1:
        parts.append(f"{w.subscriptions} subscriptions")
    return f" over {' x '.join(parts)}" if parts else ""


def _describe_load(point: Any) -> str:
    from bench.units import format_duration

    w = point.workload
    meta = point.scenario.scenario
    load = f"max, concurrency {w.concurrency}" if w.closed_loop else f"{w.rate:g}/s {w.schedule}"
    key = {"none": ", no partition key", "event_id": ", keyed by event id"}.get(w.partition_key, "")
    if w.kind == "saga":
        g = w.saga
        return (
            f"{load} sagas, {g.mode} of {len(g.steps)} steps, timeout "
            f"{format_duration(g.timeout)} x{g.retries + 1}, warmup "
            f"{format_duration(meta.warmup)}, measure {format_duration(meta.duration)}"
        )
    if w.kind == "replay":
        r = w.replay
        if r.measure == "load":
            return (
                f"seed {r.streams:,} streams x {r.events_per_stream:,} events, {r.loads:,} "
                f"loads, snapshots {r.snapshots}" + (", then archived" if r.archive else "")
            )
        return (
            f"seed {r.streams:,} streams x {r.events_per_stream:,} events "
            f"({r.old_fraction:.0%} of each stream old), read back: {r.reader}"
        )
    if w.kind == "pipeline":
        # What shapes a pipeline's figures: its relays and appliers, not producers/consumers.
        p = w.pipeline
        relay = "dual write" if p.relay == "dual_write" else "outbox"
        guard = "no guard" if p.idempotency == "none" else "guard"
        crash = f", relay crash at {format_duration(p.crash_at)}" if p.crash_at is not None else ""
        return (
            f"{load} commands, {w.producers} writer group(s) → {relay}, {p.relays} relay(s) → "
            f"{w.consumers} consumer(s) → {p.appliers} applier(s), {guard}{crash}{key} on "
            f"{w.workers} worker(s), warmup {format_duration(meta.warmup)}, measure "
            f"{format_duration(meta.duration)}"
        )
    return (
        f"{load}, {w.producers}p/{w.consumers}c{_spread(w)} on {w.workers} worker(s){key}, "
        f"warmup {format_duration(meta.warmup)}, measure {format_duration(meta.duration)}"
    )


# --------------------------------------------------------------------------- validate / show


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files to check.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a field, as for run.")
    ] = None,
    max_points: MaxPointsOption = None,
    allow_large_matrix: AllowLargeMatrixOption = False,
) -> None:
    """Check scenario files (every field, every driver option, every matrix point) without
    running them, and count the points each would run."""
    from bench.scenario import expand, load_scenario, matrix_limit

    limit = matrix_limit(max_points, allow_large_matrix)
    for path in scenarios:
        scenario = load_scenario(path, set_ or [], max_points=limit)
        points = expand(scenario, str(path), max_points=limit)
        console.print(
            f"[green]ok[/] {path}: {len(scenario.targets)} target(s), {len(points)} point(s)"
        )
        # One plain write: rich's markup and wrapping per line cost more than the checks.
        console.out(
            "\n".join(f"  {point.index:3d}  {point.label}" for point in points), highlight=False
        )
        for point in points:
            for warning in point.warnings:
                err_console.print(
                    f"[yellow]warning:[/] {_one_line(f'{path}: {point.label}: {warning}')}",
                    soft_wrap=True,
                )


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="A results/<run-id> directory.")],
) -> None:
    """Print the summary table of a finished (or interrupted) run again.

    A run whose manifest still says "running" while its coordinator is gone (killed, crashed)
    is shown as "cut off", with the points it completed."""
    from bench.report.tables import load

    run = load(run_dir)
    state = run.state
    _print_summaries(
        [p.summary for p in run.probes or run.points],
        f"{run.scenario_name} ({run.run_id}, {state.status})",
    )
    note = run.completion_note()
    if note:
        err_console.print(f"[yellow]note:[/] {_one_line(f'{run_dir}: {note}')}", soft_wrap=True)
    elif state.note:
        err_console.print(f"note: {_one_line(f'{run_dir}: {state.note}')}", soft_wrap=True)


@app.command()
def drivers() -> None:
    """List the registered drivers, their kind and options (third-party ones included)."""
    from rich.markup import escape
    from rich.table import Table

    from bench.drivers.base import available_drivers

    table = Table(header_style="bold")
    table.add_column("driver")
    table.add_column("kind")
    table.add_column("status")
    table.add_column("options")
    for info in available_drivers():
        if info.cls is None:
            table.add_row(info.name, "?", f"[red]{escape(info.problem or '')}[/]", "")
            continue
        fields = [n for n in info.cls.config_model.model_fields if n != "driver"]
        table.add_row(info.name, info.cls.kind, "[green]ok[/]", ", ".join(fields))
    console.print(table)


@app.command()
def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to copy the example scenarios (created if need be).")
    ] = Path("scenarios"),
) -> None:
    """Copy the example scenarios that ship with eventbench into FOLDER, for editing.

    Refuses (and copies nothing) when one of them is there already. `bench run` without
    arguments uses ./scenarios/ when it is there, else the shipped copies."""
    from bench.examples import copy_examples

    copied = copy_examples(folder)
    console.print(
        f"copied {len(copied)} example scenarios to {folder}/: "
        f"bench run {folder / 'quickstart.toml'}",
        markup=False,
    )


# --------------------------------------------------------------------------- reports

from bench.report import commands as report_commands  # noqa: E402 (heavy imports stay inside)

app.command()(report_commands.report)
app.command()(report_commands.compare)
app.command()(report_commands.check)
app.command()(report_commands.history)

from bench.capacity import commands as capacity_commands  # noqa: E402

app.command("find-max")(capacity_commands.find_max)


@app.command("import-omb")
def import_omb(
    workload: Annotated[Path, typer.Argument(help="An OMB workload file (YAML).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The scenario file to write (TOML).")
    ],
    target: TargetOption = None,
    omb_driver: OmbDriverOption = None,
    payload_dir: PayloadDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT.")] = False,
) -> None:
    """Write the eventbench scenario an OMB workload file is, to read and edit; every OMB
    field maps to one scenario field, or is an error naming it. What the import decided is
    printed, and written at the top of the file."""
    import tomli_w

    from bench.omb.workload import OmbSources, load_omb
    from bench.scenario import print_omb_notes, scenario_from_dict
    from bench.store import atomic_write_text

    imported = load_omb(
        workload, list(target or []), OmbSources(tuple(omb_driver or ()), tuple(payload_dir or ()))
    )
    # Validated before it is written: the file holds a scenario that runs.
    scenario_from_dict(imported.raw, str(workload))
    if output.exists() and not force:
        raise ScenarioError(str(output), None, "exists", hint="give --force to overwrite it")
    header = [f"# Imported from the OMB workload {workload.name} by bench import-omb."]
    header += [f"# {note}" for note in imported.notes]
    if imported.find_max:
        header.append(f"# Run it: bench find-max {output}")
    text = "\n".join(header) + "\n\n" + tomli_w.dumps(imported.raw)
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise ScenarioError(str(output), None, f"cannot write ({exc.strerror})") from None
    print_omb_notes(str(workload), imported.notes)
    console.print(f"scenario: {output}")


@app.command("export-omb")
def export_omb(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (results/<run-id>).")],
) -> None:
    """Write each stream point of a run as OMB's result JSON (TestResult), in the run
    directory with "-omb" in its name, for OMB's chart script and anything that reads OMB
    results. Units are OMB's (ms; publish delay in µs); the file says which latency
    definition each series carries (eventbench's end-to-end runs from the intended send)."""
    from bench.omb.export import export_run

    for path in export_run(run_dir):
        console.print(str(path))


app.command()(capacity_commands.sweep)
app.command()(capacity_commands.plan)

from bench.capacity import choose as choose_command  # noqa: E402

app.command()(choose_command.choose)


# --------------------------------------------------------------------------- local services

_SERVICE_HELP = "kafka (Tansu), rabbitmq, nats, postgres, or all"


def _service_names(service: str) -> list[str]:
    from bench import infra

    if service == "all":
        return list(infra.SERVICES)
    if service not in infra.SERVICES:
        raise ScenarioError(
            "bench", "SERVICE", f"unknown service {service!r}", hint=f"one of: {_SERVICE_HELP}"
        )
    return [service]


def _print_statuses(statuses: list[Any]) -> None:
    from rich.table import Table

    for st in statuses:
        if st.resumed:
            console.print(st.resumed, markup=False, highlight=False)
    table = Table(header_style="bold")
    for column in ("service", "state", "endpoint", "product", "version", "detail"):
        table.add_column(column)
    for st in statuses:
        state = "[green]running[/]" if st.running else "[red]stopped[/]"
        if st.running and st.managed:
            state += " (bench)"
        table.add_row(st.name, state, st.endpoint, st.product, st.version or "-", st.detail)
    console.print(table)


@app.command()
def up(
    service: Annotated[str, typer.Argument(help=_SERVICE_HELP)] = "all",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service.")] = 60.0,
) -> None:
    """Start local brokers on 127.0.0.1 without Docker (reuses any that already run)."""
    from bench import infra

    _print_statuses([infra.up(name, timeout_s=timeout) for name in _service_names(service)])


@app.command()
def down(service: Annotated[str, typer.Argument(help=_SERVICE_HELP)] = "all") -> None:
    """Stop the brokers that `bench up` started and remove their state (never others)."""
    from bench import infra

    _print_statuses([infra.down(name) for name in _service_names(service)])


@app.command()
def status(service: Annotated[str, typer.Argument(help=_SERVICE_HELP)] = "all") -> None:
    """Show which local brokers answer, what they are, and who started them."""
    from bench import infra

    _print_statuses([infra.status(name) for name in _service_names(service)])


# --------------------------------------------------------------------------- entry point


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there: before the subcommand (the
    callback's option) or after it (``bench run --debug ...``), up to a ``--``."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [arg for arg in argv[:end] if arg != "--debug"]
    return kept + argv[end:], len(kept) < end


def main() -> None:
    global _debug
    args, _debug = _take_debug(sys.argv[1:])
    try:
        # Without standalone mode click *returns* a command's exit code instead of exiting.
        code = app(args=args, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except BenchError as exc:
        if _debug:
            raise
        err_console.print(f"[red]error:[/] {_one_line(exc.message)}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"  hint: {_one_line(exc.hint)}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # usage errors (typer's vendored click) and anything unexpected
        # Duck-typed: typer vendors click privately, so its exception classes are not API.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if _debug:
            raise
        err_console.print(
            f"[red]internal error:[/] {_one_line(f'{type(exc).__name__}: {exc}')}", soft_wrap=True
        )
        err_console.print("  hint: rerun with --debug for the traceback, and report it")
        sys.exit(70)


if __name__ == "__main__":
    main()
