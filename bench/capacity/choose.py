"""``bench choose``: one decision report from a suite run on every target of a scenario.

For each target, in the scenario's order, the suite runs (durations from ``[choose]``,
``bench.scenario.ChooseSuite``):

1. find-max under the SLO (``Search.find_max``, as ``bench find-max``);
2. a latency sweep at ``choose.fractions`` of that maximum (``Search.sweep``, as ``bench sweep``);
3. one point at the common load (``--load``, else the scenario's ``workload.rate``), the
   latency and resource cost the targets are compared on. It is not run when the search
   already showed the target fails at or below the load, or when its maximum is a lower bound
   below the load (the harness could not drive it there);
4. a broker kill (or restart) under load at ``choose.fault_fraction`` of the maximum, through
   the fault machinery of ``bench run`` (``[[faults]]``): only on an in-process target or a
   service ``bench up`` started (``bench.faults.inject.check_faultable``); otherwise the page
   says why not.

The run is one results directory: every point of the suite is a point of it, ``capacity.json``
holds the searches (so ``bench report`` draws the curves), ``choose.json`` holds what each
target's suite ran and the decision, and ``choose.html``/``choose.md`` are the decision page
(bench/report/choose.py), whose cells link to the points' summaries.

Exit codes: 0 when every part of the suite ran and the page was written, whatever the
answer (a target that misses the SLO or loses events is an answer, not an error); 1 when a
part failed to run (a search or a point failed) or the page could not be written: the page
is still written with what finished, and says what failed; 2 for bad input; 130 when
interrupted.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from bench.capacity.commands import (
    CapacityRun,
    ScenarioArg,
    SloOpt,
    _bases,
    _check_slo_kinds,
    _criteria_text,
    parse_slo,
)
from bench.console import (
    NoReportOption,
    QuietOption,
    ResultsDirOption,
    SetOption,
    TargetOption,
    console,
    err_console,
)
from bench.errors import BenchError, ScenarioError
from bench.units import format_duration, format_rate

if TYPE_CHECKING:
    from bench.capacity.search import Search, Settings
    from bench.scenario import Fault, RunPoint, Scenario

CHOOSE = "choose.json"
CHOOSE_SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- input


def _load_rate(scenario: Scenario, load: str | None) -> tuple[float, str]:
    from bench.capacity.plan import parse_rate

    if load is not None:
        return parse_rate(load, "--load"), "--load"
    rate = scenario.workload.rate
    if not isinstance(rate, int | float):
        raise ScenarioError(
            "bench choose",
            "--load",
            f"the scenario's workload.rate is {rate!r}, not a rate to compare the targets at",
            hint="give the common load, e.g. --load 20000/s",
        )
    return float(rate), "the scenario's workload.rate"


def _settings(scenario: Scenario, slo: list[str] | None) -> Settings:
    from bench.capacity.checks import Criteria
    from bench.capacity.search import Settings
    from bench.scenario import slo_thresholds

    slo_us = parse_slo(slo) if slo else slo_thresholds(scenario)
    if not slo_us:
        raise ScenarioError(
            "bench choose",
            "--slo",
            "no SLO: bench choose finds each target's max rate under an SLO",
            hint='give --slo "e2e.p99<50ms" or an [slo] table in the scenario',
        )
    suite = scenario.choose
    return Settings(
        precision=suite.precision,
        probe_duration_s=suite.probe_duration,
        warmup_s=suite.warmup,
        verify_duration_s=suite.verify_duration,
        max_probes=suite.max_probes,
        max_rate_per_s=suite.max_rate,
        criteria=Criteria(slo_us=slo_us, error_threshold=scenario.verdict.max_error_rate),
    )


def _fault(scenario: Scenario, source: str) -> tuple[Fault | None, float]:
    """The fault every target gets (None: ``choose.fault = "none"``) and its point's window.
    Refused before anything runs when it does not fit in the point's load."""
    from bench.scenario import Fault

    suite = scenario.choose
    window = suite.fault_duration or suite.point_duration or scenario.scenario.duration
    if suite.fault == "none":
        return None, window
    warmup = suite.warmup if suite.warmup is not None else scenario.scenario.warmup
    at = suite.fault_at if suite.fault_at is not None else warmup + window / 3
    load_s = warmup + window
    if at + suite.fault_down_for >= load_s:
        raise ScenarioError(
            source,
            "choose.fault_at",
            f"the {suite.fault} at {format_duration(at)}, down for "
            f"{format_duration(suite.fault_down_for)}, does not end inside the fault point's "
            f"load (warm-up + window = {format_duration(load_s)})",
            hint="set choose.fault_duration longer, or choose.fault_at earlier",
        )
    fault = Fault.model_validate(
        {"at": f"{at:.3f}s", "action": suite.fault, "down_for": f"{suite.fault_down_for:g}s"}
    )
    try:  # the scenario's own fault rules (one topic, one subscription, no backlog)
        type(scenario).model_validate(
            {**scenario.model_dump(mode="json"), "faults": [fault.model_dump(mode="json")]}
        )
    except ValidationError as exc:
        problem = exc.errors()[0].get("msg", str(exc))
        raise ScenarioError(source, "choose.fault", f"cannot fault this workload: {problem}",
                            hint='set choose.fault = "none"') from None  # fmt: skip
    return fault, window


def _why_not_faultable(point: RunPoint, fault: Fault | None) -> str | None:
    """None when the fault can be acted out on this target; else why not, in words."""
    from bench.drivers.base import load_driver, runs_in_process
    from bench.faults.inject import check_faultable

    if fault is None:
        return 'the scenario sets choose.fault = "none"'
    if runs_in_process(load_driver(point.driver)):
        return None
    try:
        check_faultable(point.driver)
    except BenchError as exc:
        return exc.message
    return None


# --------------------------------------------------------------------------- the suite


def _max_dir(search: Search) -> str | None:
    """The probe that passed at the max sustainable rate (the longest one: a verification)."""
    result = search.result
    passing = [
        p
        for p in result.probes
        if p.verdict == "pass"
        and p.rate_per_s is not None
        and p.rate_per_s == result.max_rate_per_s
    ]
    if not passing:
        return None
    return max(passing, key=lambda p: (p.duration_s, p.index)).dir


def _upper_dir(search: Search) -> str | None:
    """The last probe that failed at the search's upper bound (what the target did not do)."""
    result = search.result
    upper = result.upper_rate_per_s
    failing = [
        p
        for p in result.probes
        if p.verdict != "pass" and p.rate_per_s is not None and p.rate_per_s == upper
    ]
    return failing[-1].dir if failing else None


def _run_target(
    run: CapacityRun,
    search: Search,
    load_per_s: float,
    window: float,
    fault: Fault | None,
    fault_window: float,
    unfaultable: str | None,
) -> dict[str, Any]:
    from bench.capacity.decide import is_lower_bound
    from bench.capacity.search import slo_only

    suite = search.base.scenario.choose
    result = search.result
    label = search.base.label
    entry: dict[str, Any] = {
        "target": search.base.target,
        "label": label,
        "key": result.key,
        "driver": search.base.driver,
        "search": {},
        "sweep": [],
        "load": {"rate_per_s": load_per_s, "dir": None, "reason": None},
        "fault": {
            "action": suite.fault,
            "dir": None,
            "reason": unfaultable,
            "rate_per_s": None,
            "at_s": None if fault is None else float(fault.at),
            "down_for_s": None if fault is None else fault.down_for_s,
        },
        "points": [],
    }

    def searched() -> None:
        entry["search"] = {
            "status": result.status,
            "max_rate_per_s": result.max_rate_per_s,
            "upper_rate_per_s": result.upper_rate_per_s,
            "limited_by": list(result.limited_by),
            "notes": list(result.notes),
            "max_dir": _max_dir(search),
            "upper_dir": _upper_dir(search),
        }
        entry["points"] = [p.dir for p in [*result.probes, *result.sweep]]

    console.print(f"[bold cyan]▶ {escape(label)}[/]: find-max ({_criteria_text(search.settings)})")
    search.find_max()
    searched()
    console.print(f"  [bold]{escape(result.headline)}[/]")
    top = result.max_rate_per_s
    stopped = run.stop_requested()

    def at_the_load() -> None:
        console.print(f"[bold cyan]▶ {escape(label)}[/]: at the load, {format_rate(load_per_s)}")
        probe = search.probe("load", load_per_s, duration_s=window)
        if (
            probe.verdict == "fail"
            and search.settings.retry_slo_failures
            and slo_only(probe)
            and not run.stop_requested()
        ):
            # As in find-max: a short window's p99 rests on its few slowest samples, so the
            # load fails its SLO only when a second run confirms it. The second one decides.
            probe = search.probe("load", load_per_s, duration_s=window)
        entry["load"].update(
            {"dir": probe.dir, "verdict": probe.verdict, "failed_checks": probe.failed_checks}
        )
        searched()

    if top is None or stopped:
        reason = "interrupted" if stopped else f"no max sustainable rate ({result.status})"
        upper = result.upper_rate_per_s
        if not stopped and result.status != "failed" and (upper is None or upper > load_per_s):
            # No rate passed, but every failure was above the load (the probe budget ran out
            # on the way down): the load itself is still the question.
            at_the_load()
        else:
            entry["load"]["reason"] = reason
        entry["fault"]["reason"] = entry["fault"]["reason"] or reason
        return entry

    fractions = suite.fractions
    console.print(
        f"[bold cyan]▶ {escape(label)}[/]: sweep at "
        f"{', '.join(f'{f:.0%}' for f in fractions)} of {format_rate(top)}"
    )
    search.sweep(top, fractions, window)
    entry["sweep"] = [
        {"fraction": f, "rate_per_s": p.rate_per_s, "dir": p.dir}
        for f, p in zip(fractions, result.sweep, strict=False)
    ]
    searched()

    upper = result.upper_rate_per_s
    lower = is_lower_bound(result.status, upper)
    failed_at_or_below = upper is not None and upper <= load_per_s and not lower
    if run.stop_requested():
        entry["load"]["reason"] = "interrupted"
    elif top < load_per_s and lower:
        entry["load"]["reason"] = (
            f"its max, at least {format_rate(top)}, is a lower bound below the load "
            f"({result.status})"
        )
    elif top < load_per_s and failed_at_or_below:
        entry["load"]["reason"] = f"the search failed at {format_rate(upper)}, below the load"
    else:
        at_the_load()

    if fault is None or unfaultable is not None or run.stop_requested():
        if run.stop_requested() and entry["fault"]["reason"] is None:
            entry["fault"]["reason"] = "interrupted"
        return entry
    rate = top * suite.fault_fraction
    point, slug = search.fault_point(rate, fault_window, fault)
    console.print(
        f"[bold cyan]▶ {escape(label)}[/]: {fault.action} at {format_duration(float(fault.at))} "
        f"under {format_rate(rate)} ({suite.fault_fraction:.0%} of the max)"
    )
    summary, point_dir = run.execute(point, slug)
    run.write()
    entry["fault"].update({"dir": point_dir.name, "rate_per_s": rate})
    entry["points"].append(point_dir.name)
    if summary.get("status") != "ok":
        problems = "; ".join(summary.get("problems") or []) or str(summary.get("status"))
        err_console.print(f"[yellow]warning:[/] {label}: the fault point {summary.get('status')}: "
                          f"{escape(problems)}")  # fmt: skip
    return entry


def _status(run: CapacityRun, entries: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The run's status and what failed to run, in words."""
    from bench.capacity.decide import read_summary

    if run.stop_requested():
        return "interrupted", []
    failed = []
    for e in entries:
        if e["search"].get("status") == "failed":
            notes = "; ".join(e["search"].get("notes") or []) or "see its probes"
            failed.append(f"{e['label']}: the search failed ({notes})")
    for e in entries:
        for part in ("load", "fault"):
            point_dir = e[part].get("dir")
            summary = read_summary(run.dir, point_dir)
            if point_dir and (summary is None or summary.get("status") != "ok"):
                status = "no summary" if summary is None else summary.get("status")
                failed.append(f"{e['label']}: the {part} point {status} ({point_dir})")
    return ("failed" if failed else "ok"), failed


def choose(
    scenario: ScenarioArg,
    target: TargetOption = None,
    slo: SloOpt = None,
    load: Annotated[
        str | None,
        typer.Option(
            "--load",
            help="The common load the targets are compared at, e.g. 20000/s "
            "(default: the scenario's workload.rate).",
        ),
    ] = None,
    set_: SetOption = None,
    results_dir: ResultsDirOption = Path("results"),
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Which target for this workload? Runs, on every target, find-max under the SLO, a sweep
    at fractions of that max, a point at the common load and a broker kill under load, and
    writes one decision page (choose.html, choose.md) with a plain-language answer derived
    by written rules (README: "Choosing a broker"). Durations come from the scenario's
    \\[choose] table."""
    from bench.capacity.search import Search
    from bench.scenario import matrix_limit

    path = Path(scenario)
    # A [matrix] is refused below: the default limit only bounds what is expanded to say so.
    loaded, bases = _bases(path, set_ or [], target, matrix_limit(None, False))
    if loaded.matrix:
        raise ScenarioError(
            str(path),
            "matrix",
            "bench choose compares targets on one workload: remove [matrix]",
            hint="run bench find-max or bench sweep for a matrix",
        )
    if loaded.workload.kind != "stream":
        raise ScenarioError(
            str(path),
            "workload.kind",
            f"bench choose compares brokers on a stream workload, not {loaded.workload.kind!r}",
            hint="run bench find-max for an event store or a pipeline",
        )
    if loaded.faults:
        raise ScenarioError(
            str(path),
            "faults",
            "bench choose runs its own fault step ([choose] fault, fault_at, fault_down_for): "
            "remove [[faults]]",
        )
    settings = _settings(loaded, slo)
    _check_slo_kinds(settings.criteria, bases, path)
    load_per_s, load_source = _load_rate(loaded, load)
    fault, fault_window = _fault(loaded, str(path))
    window = loaded.choose.point_duration or loaded.scenario.duration
    unfaultable = {b.target: _why_not_faultable(b, fault) for b in bases}
    suite_settings = {
        "precision": settings.precision,
        "probe_duration_s": settings.probe_duration_s,
        "warmup_s": settings.warmup_s,
        "verify_duration_s": settings.verify_duration_s,
        "max_probes": settings.max_probes,
        "max_rate_per_s": settings.max_rate_per_s,
        "slo_us": settings.criteria.slo_us,
        "error_threshold": settings.criteria.error_threshold,
        "fractions": loaded.choose.fractions,
        "sweep_duration_s": window,
        "load_per_s": load_per_s,
    }
    run = CapacityRun(
        results_dir,
        path,
        loaded,
        "choose",
        suite_settings,
        set_ or [],
        quiet,
        expected_probes=len(bases) * (settings.max_probes + len(loaded.choose.fractions) + 3),
    )
    console.print(
        f"[bold]{loaded.scenario.name}[/]: choose among {', '.join(b.target for b in bases)} "
        f"at {format_rate(load_per_s)} ({load_source}) -> {run.dir}"
    )
    entries: list[dict[str, Any]] = []

    def write_choose(
        decision: dict[str, Any] | None = None, failures: list[str] | None = None
    ) -> None:
        from bench.store import atomic_write_json

        atomic_write_json(
            run.dir / CHOOSE,
            {
                "schema_version": CHOOSE_SCHEMA_VERSION,
                "load_per_s": load_per_s,
                "load_source": load_source,
                "slo_us": settings.criteria.slo_us,
                "suite": loaded.choose.model_dump(mode="json"),
                "targets": entries,
                "failures": failures or [],
                "decision": decision,
            },
        )

    def suites() -> None:
        for ordinal, base in enumerate(bases):
            if run.stop_requested():
                break
            search = Search(base, ordinal, settings, run.execute, run.report, run.stop_requested)
            run.results.append(search.result)
            entries.append(
                _run_target(
                    run,
                    search,
                    load_per_s,
                    window,
                    fault,
                    fault_window,
                    unfaultable[base.target],
                )
            )
            write_choose()

    from bench.capacity.commands import _search_all

    _search_all(run, suites)
    _finish(run, entries, write_choose, no_report)


def _finish(
    run: CapacityRun, entries: list[dict[str, Any]], write_choose: Any, no_report: bool
) -> None:
    from bench.report.choose import write_choose_page
    from bench.session import INTERRUPTED, NOT_WRITTEN

    status, failures = _status(run, entries)
    problem = run.session.finish(status)
    with contextlib.suppress(OSError):
        run.write_capacity()
    if problem is not None:
        run.session.print_disk_full(problem)
        raise typer.Exit(1)
    outcome = None
    if not no_report and run.manifest["points"]:
        # First: the decision page links to it.
        outcome = run.session.report(status == "interrupted")
    page_written = False
    try:
        write_choose(None, failures)
        cols, decision, html_path, md_path = write_choose_page(run.dir)
        write_choose(decision.as_dict(), failures)
        page_written = True
    except OSError as exc:
        err_console.print(f"[red]error:[/] the decision page was not written: {exc}")
    except BenchError as exc:
        err_console.print(f"[red]error:[/] the decision page was not written: {exc.message}")
    if page_written:
        console.print(_terminal_table(cols))
        console.print(f"[bold]answer:[/] {escape(decision.answer)}", soft_wrap=True)
        console.print(f"decision page: {html_path} and {md_path.name}")
    for failure in failures:
        err_console.print(f"[red]failed:[/] {escape(failure)}", soft_wrap=True)
    run.session.close()
    console.print(f"results: {run.dir}")
    if run.interrupts.requested or outcome == INTERRUPTED:
        raise typer.Exit(run.interrupts.exit_code)
    if outcome == NOT_WRITTEN or not page_written or status == "failed":
        raise typer.Exit(1)
    raise typer.Exit(0)


def _terminal_table(cols: list[Any]) -> Table:
    table = Table(title="bench choose", header_style="bold")
    table.add_column("")
    for col in cols:
        table.add_column(col.label)
    rows = [
        ("max sustainable", lambda c: c.max_rate.text),
        ("at the load", lambda c: c.load_phrase),
        ("p50 / p99", lambda c: f"{c.p50.text} / {c.p99.text}"),
        ("CPU per M events", lambda c: c.cpu_per_mev.text),
        ("lost under fault", lambda c: c.fault_lost.text),
        ("server", lambda c: c.server.text),
    ]
    for name, get in rows:
        table.add_row(name, *(escape(get(c)) for c in cols))
    return table
