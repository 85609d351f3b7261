"""The report commands of the ``bench`` CLI: report, compare, check, history.

Plain functions with typer annotations; ``bench/cli.py`` registers them with
``app.command()(...)``. They parse, call the report modules, and print. Bad input is a
``ResultsError`` (results) or a ``ScenarioError`` (options), rendered as one line by the CLI
with exit code 2; ``check`` exits 1 on a regression, a broken SLO, a failed verdict, a
figure that is not a number or a gate that compared nothing, and 2 on a baseline that did not
complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bench.errors import ResultsError, ScenarioError
from bench.report import report_extra
from bench.store import atomic_write_text

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=200)


def report(
    run_dir: Annotated[Path, typer.Argument(help="A results/<run-id> directory.")],
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write the report here instead of RUN_DIR."),
    ] = None,
) -> None:
    """Write report.html (one self-contained file, opens offline) and report.md for a run (and,
    for a bench choose run, its decision page again)."""
    with report_extra("bench report"):
        from bench.report.html import write_report
    from bench.report.tables import load

    html_path, md_path = write_report(run_dir, output_dir)
    console.print(f"report: {html_path}\n        {md_path}")
    if output_dir is None and (Path(run_dir) / "choose.json").is_file():
        # A bench choose run: its decision page links to this report, from the run directory.
        from bench.report.choose import write_choose_page

        _, _, choose_html, choose_md = write_choose_page(Path(run_dir))
        console.print(f"decision page: {choose_html}\n               {choose_md}")
    note = load(run_dir).completion_note()
    if note:  # a run cut off or stopped: the report holds what it completed
        console.print(f"[yellow]note:[/] {escape(f'{run_dir}: {note}')}", soft_wrap=True)


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot write ({exc.strerror})") from None


def compare(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            help="BASELINE CANDIDATE [MORE...]: run directories; 'a,b,c' or a directory of runs "
            "is a group of repetitions.",
            show_default=False,
        ),
    ] = None,
    baseline_runs: Annotated[
        str | None,
        typer.Option("--baseline-runs", help="Baseline repetitions: dir,dir,dir."),
    ] = None,
    candidate_runs: Annotated[
        str | None,
        typer.Option("--candidate-runs", help="Candidate repetitions: dir,dir,dir."),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Only these metrics (e2e.p99, throughput, …)."),
    ] = None,
    format_: Annotated[
        str | None, typer.Option("--format", "-f", help="Write a file: md, csv or html.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="The file for --format (default stdout).")
    ] = None,
) -> None:
    """Put runs side by side: Metric / Baseline / Candidate / Diff / Diff% for every point,
    green when better and red when worse for that metric; with repetitions, Mann-Whitney U
    says what is within noise."""
    with report_extra("bench compare"):
        from bench.report import compare as cmp
    from bench.report.tables import COMPARE_METRICS

    specs = list(runs or [])
    if baseline_runs:
        specs.insert(0, baseline_runs)
    if candidate_runs:
        specs.insert(1, candidate_runs)
    if len(specs) < 2:
        raise ScenarioError(
            "bench compare",
            "RUNS",
            "give a BASELINE and at least one CANDIDATE (or --baseline-runs/--candidate-runs)",
        )
    metrics = list(COMPARE_METRICS)
    if metric:
        try:
            from bench.report.tables import metric as lookup

            metrics = [lookup(m).key for m in metric]
        except KeyError as exc:
            raise ScenarioError("bench compare", "--metric", str(exc.args[0])) from None
    baseline = cmp.Group.from_specs([specs[0]])
    comparisons = [
        cmp.compare(baseline, cmp.Group.from_specs([spec]), metrics) for spec in specs[1:]
    ]
    if format_ is None:
        if output is not None:
            raise ScenarioError("bench compare", "--output", "needs --format md, csv or html")
        for comparison in comparisons:
            console.print(cmp.to_rich(comparison))
        return
    if format_ not in cmp.FORMATS:
        raise ScenarioError("bench compare", "--format", f"{format_!r}: use md, csv or html")
    text = cmp.FORMATS[format_](comparisons)
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write(output, text)
        console.print(f"comparison: {output}")


def check(
    candidate: Annotated[
        str,
        typer.Argument(help="The candidate run; 'a,b,c' or a directory of runs for repetitions."),
    ],
    baseline: Annotated[
        str,
        typer.Option("--baseline", "-b", help="The baseline run (or repetitions, as CANDIDATE)."),
    ],
    max_regression: Annotated[
        str, typer.Option("--max-regression", help="How much worse any gated metric may get.")
    ] = "10%",
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            "-t",
            help="A per-metric threshold, METRIC=PCT (e2e.p99=20%); gates that metric too.",
        ),
    ] = None,
    min_latency_diff: Annotated[
        str,
        typer.Option("--min-latency-diff", help="Latency changes smaller than this never count."),
    ] = "50us",
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML (a testcase per check).")
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="Write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)."),
    ] = None,
) -> None:
    """The regression gate: exit 0 when nothing regressed beyond its threshold (and, with
    repetitions, significantly), every SLO holds and every point's verdict passes; exit 1 and
    say what, where and why otherwise.

    Never a pass on garbage. Exit 1 (a failure with its reason) when no gated metric could be
    compared (zero comparable checks), when a metric is NaN or infinite on either side, or when
    the candidate run did not complete. Exit 2 (a usage error naming the manifest and its
    status) when the baseline did not complete: its manifest is not "ok", or some of its points
    have no summary. Exit 2 also for damaged results files, named with their field."""
    with report_extra("bench check"):
        from bench.report import gate
        from bench.report.compare import Group

    try:
        max_pct = gate.parse_percent(max_regression)
    except ValueError as exc:
        raise ScenarioError("bench check", "--max-regression", str(exc)) from None
    thresholds: dict[str, float] = {}
    for item in threshold or []:
        try:
            key, pct = gate.parse_threshold(item)
        except ValueError as exc:
            raise ScenarioError("bench check", "--threshold", str(exc)) from None
        thresholds[key] = pct
    try:
        min_diff_us = gate.parse_latency_us(min_latency_diff)
    except ValueError as exc:
        raise ScenarioError("bench check", "--min-latency-diff", str(exc)) from None
    result = gate.check(
        Group.from_specs([candidate]),
        Group.from_specs([baseline]),
        max_regression_pct=max_pct,
        thresholds=thresholds,
        min_latency_diff_us=min_diff_us,
    )
    style = "green" if result.passed else "red"
    text = gate.to_text(result)
    first, _, rest = text.partition("\n")
    console.print(f"[bold {style}]{first}[/]")
    if rest:
        console.print(rest, markup=False)
    if junit is not None:
        _write(junit, gate.to_junit(result))
    if summary is not None:
        # Appending is what $GITHUB_STEP_SUMMARY expects; a new file is simply created.
        try:
            with summary.open("a", encoding="utf-8") as handle:
                handle.write(gate.to_markdown(result))
        except OSError as exc:
            raise ResultsError(f"{summary}: cannot write ({exc.strerror})") from None
    raise typer.Exit(result.exit_code)


def history(
    results_dir: Annotated[Path, typer.Argument(help="A directory of runs (results/).")],
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="e2e.p99, response.p50, throughput, …")
    ] = "e2e.p99",
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="Default: the latest run's.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Where to write the plot.")] = None,
) -> None:
    """The trend of a metric over the runs of one scenario, with change points: the runs
    where it stepped to a new level (found with a noise-scaled penalty, not a fixed threshold
    between neighbours)."""
    from rich.table import Table

    with report_extra("bench history"):
        from bench.report import history as hist

    try:
        built = hist.build(results_dir, metric, scenario)
    except KeyError as exc:
        raise ScenarioError("bench history", "--metric", str(exc.args[0])) from None
    frame = hist.trend_table(built)
    table = Table(
        title=f"{built.scenario}: {built.metric.key} over {len(built.runs)} runs",
        header_style="bold",
    )
    for column in frame.columns:
        table.add_column(
            str(column),
            justify="left" if column in ("run", "started", "git", "change point") else "right",
        )
    for row in frame.itertuples(index=False):
        cells = [str(v) for v in row]
        if cells[-1]:
            color = "red" if "regression" in cells[-1] else "green"
            cells[-1] = f"[{color}]{cells[-1]}[/]"
        table.add_row(*cells)
    console.print(table)
    for note in built.notes:
        console.print(f"note: {note}")
    if built.changes:
        for change in built.changes:
            color = "red" if change.regression else "green"
            console.print(f"[{color}]{change.describe(built.metric)}[/]")
    else:
        console.print(built.conclusion)
    path = hist.plot(built, plot if plot is not None else Path(results_dir) / "history.png")
    console.print(f"plot: {path}")
