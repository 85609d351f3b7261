"""The HTML report: one self-contained file (CSS inline, plots as base64 PNG, no scripts, no
external URL), so it opens offline, from an e-mail or a CI artifact.

``write_report(run_dir)`` is the entry point: it loads the run, draws the plots once, and writes
``report.html``, ``report.md`` and the PNGs that the Markdown links to (``report-plots/``).
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd

from bench.errors import ReportError, ReportInterrupted
from bench.report import (
    backlog,
    capacity,
    faults,
    markdown,
    pipeline,
    redelivery,
    replay,
    resources,
    saga,
    store,
    subscriptions,
    topology,
    verdicts,
)
from bench.report.page import page
from bench.report.plots import Plot, report_plots
from bench.report.tables import (
    SUMMARY_PIPELINE_NOTE,
    Run,
    environment_frame,
    latency_frame,
    load,
    run_overview,
    summary_frame,
)

HTML_NAME = "report.html"
MD_NAME = "report.md"
PLOTS_DIR = "report-plots"

# More notes than this start folded.
NOTES_SHOWN = 8


def frame_table(frame: pd.DataFrame, table_id: str) -> str:
    """A pandas frame as an escaped HTML table."""
    if frame.empty:
        return "<p><em>(none)</em></p>"
    # Wide tables (a store matrix has many figures per point) scroll instead of spilling.
    table = frame.to_html(index=False, escape=True, border=0, table_id=table_id)
    return f'<div class="scroll">{table}</div>'


def key_value_table(items: Mapping[str, str], table_id: str) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items.items()
    )
    return f'<table id="{table_id}">{rows}</table>'


def image(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure id="{plot.name}"><img alt="{html.escape(plot.title)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>"
    )


def verdict_banner(run: Run) -> str:
    """Pass only when every point ran and passed; otherwise each point that did not, with its
    status and the verdict's reasons in words."""
    found = verdicts.banner(run.points, run.completion_note())
    body = f"<p><strong>{html.escape(found.headline)}</strong></p>"
    if found.lines:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in found.lines)
        body += f"<ul>{items}</ul>"
        if found.others_passed:
            body += f"<p>{html.escape(verdicts.OTHERS_PASSED)}</p>"
    return f'<div class="banner {found.result}" id="verdicts">{body}</div>'


def notes(run: Run) -> list[str]:
    """The notes beside the verdicts; a long list folds (a details element: no script)."""
    found = verdicts.notes(run)
    if not found:
        return []
    items = "".join(f"<li>{html.escape(w)}</li>" for w in found)
    folded = " open" if len(found) <= NOTES_SHOWN else ""
    return [
        f'<details class="banner notes" id="notes"{folded}><summary>Notes '
        f"({len(found)})</summary><ul>{items}</ul></details>"
    ]


def store_section(run: Run, plots: Iterable[Plot]) -> list[str]:
    """The event-store figures and the matrix plot."""
    parts = [
        "<h2>Event store</h2>",
        f"<p>{html.escape(store.CAPTION)}</p>",
        frame_table(store.store_frame(run.points), "store"),
    ]
    for plot in plots:
        if plot.name in store.SECTION_PLOTS:
            parts += [f"<h3>{html.escape(plot.title)}</h3>", image(plot)]
    violations = store.violations_frame(run.points)
    if not violations.empty:
        parts += ["<h3>Invariant violations</h3>", frame_table(violations, "store-violations")]
    parts += [
        "<h3>Aggregate load latency by stream length</h3>",
        f"<p>{html.escape(store.LOAD_CAPTION)}</p>",
        frame_table(store.load_latency_frame(run.points), "store-loads"),
    ]
    counters = store.server_counters_frame(run.points)
    if not counters.empty:
        parts += [
            "<h3>Server counters (whole database, over each point)</h3>",
            frame_table(counters, "store-counters"),
        ]
    return parts


def pipeline_section(run: Run, plots: Iterable[Plot]) -> list[str]:
    """The pipeline figures, its invariant violations, the waterfall and the backlog."""
    parts = [
        "<h2>Pipeline</h2>",
        f"<p>{html.escape(pipeline.CAPTION)}</p>",
        frame_table(pipeline.pipeline_frame(run.points), "pipeline"),
    ]
    violations = pipeline.violations_frame(run.points)
    if not violations.empty:
        parts += ["<h3>Invariant violations</h3>", frame_table(violations, "pipeline-violations")]
    for plot in plots:
        if plot.name in pipeline.SECTION_PLOTS:
            parts += [f"<h3>{html.escape(plot.title)}</h3>", image(plot)]
    return parts


def render_report(run: Run, plots: Iterable[Plot]) -> str:
    """The whole report as one HTML document."""
    plots = list(plots)
    parts = [f"<h1>{html.escape(run.scenario_name)}: {html.escape(run.run_id)}</h1>"]
    parts.append(key_value_table(run_overview(run), "overview"))
    parts.append(verdict_banner(run))
    judged = verdicts.verdict_frame(run.points)
    if not judged.empty:
        parts += [
            "<h2>What the verdicts judged</h2>",
            f"<p>{html.escape(verdicts.TABLE_CAPTION)}</p>",
            frame_table(judged, "verdict-table"),
        ]
    parts += notes(run)
    if run.capacity is not None:
        parts += [
            "<h2>Capacity: max sustainable rate</h2>",
            frame_table(capacity.results_frame(run), "capacity"),
            "<h2>Capacity probes</h2>",
            frame_table(capacity.probes_frame(run), "capacity-probes"),
            "<p>The summary and latency tables below show each search's probe at its max "
            "sustainable rate; every probe has its own directory in this run.</p>",
        ]
    if store.store_points(run.points):
        parts += store_section(run, plots)
    if pipeline.pipeline_points(run.points):
        parts += pipeline_section(run, plots)
    if redelivery.redelivery_points(run.points):
        parts += [
            "<h2>Redelivery and the idempotency guard</h2>",
            f"<p>{html.escape(redelivery.CAPTION)}</p>",
            frame_table(redelivery.redelivery_frame(run.points), "redelivery"),
        ]
    if replay.replay_points(run.points):
        parts += [
            "<h2>Replay: keeping old events readable</h2>",
            f"<p>{html.escape(replay.CAPTION)}</p>",
            frame_table(replay.replay_frame(run.points), "replay"),
        ]
    if replay.load_points(run.points):
        parts += [
            "<h2>Snapshots: load latency against stream length</h2>",
            f"<p>{html.escape(replay.SNAPSHOT_CAPTION)}</p>",
            frame_table(replay.snapshots_frame(run.points), "snapshots"),
        ]
        for plot in plots:
            if plot.name == replay.SNAPSHOT_CURVE:
                parts += [f"<p>{html.escape(plot.caption)}</p>", image(plot)]
    if saga.saga_points(run.points):
        parts += [
            "<h2>Sagas</h2>",
            f"<p>{html.escape(saga.CAPTION)}</p>",
            frame_table(saga.saga_frame(run.points), "sagas"),
        ]
        saga_faults = saga.saga_faults_frame(run.points)
        if not saga_faults.empty:
            parts += [
                "<h3>Faults on the saga timeline</h3>",
                f"<p>{html.escape(saga.FAULTS_CAPTION)}</p>",
                frame_table(saga_faults, "saga-faults"),
            ]
        for plot in plots:
            if plot.name in saga.SECTION_PLOTS:
                parts += [f"<p>{html.escape(plot.caption)}</p>", image(plot)]
    # A replay and sagas have no delivery audit: their figures are their own sections' only.
    loaded = [
        p for p in run.points if not replay.is_replay(p.summary) and not saga.saga_points([p])
    ]
    if loaded or not run.points:
        summary = verdicts.with_verdicts(summary_frame(loaded), loaded)
        parts += ["<h2>Summary</h2>"]
        if pipeline.pipeline_points(run.points):
            parts += [f"<p>{html.escape(SUMMARY_PIPELINE_NOTE)}</p>"]
        parts += [frame_table(summary, "summary")]
        parts += [
            "<h2>Latency (measurement window)</h2>",
            frame_table(latency_frame(loaded), "latency"),
        ]
    fan_out = subscriptions.subscriptions_frame(run.points)
    if not fan_out.empty:
        parts += [
            "<h2>Subscriptions</h2>",
            f"<p>{html.escape(subscriptions.CAPTION)}</p>",
            frame_table(fan_out, "subscriptions"),
        ]
    spread = topology.topics_frame(run.points)
    if not spread.empty:
        parts += [
            "<h2>Topics</h2>",
            f"<p>{html.escape(topology.CAPTION)}</p>",
            frame_table(spread, "topics"),
        ]
    costs = resources.resources_frame(run.points)
    if not costs.empty:
        parts += [
            "<h2>Target resources</h2>",
            f"<p>{html.escape(resources.CAPTION)}</p>",
            frame_table(costs, "resources"),
        ]
    backlogged = backlog.backlog_frame(run.points)
    if not backlogged.empty:
        parts += [
            "<h2>Backlog</h2>",
            f"<p>{html.escape(backlog.CAPTION)}</p>",
            frame_table(backlogged, "backlog"),
        ]
    if faults.has_faults(run.points):
        parts += [
            "<h2>Faults</h2>",
            f"<p>{html.escape(faults.CAPTION)}</p>",
            frame_table(faults.faults_frame(run.points), "faults"),
        ]
    for plot in plots:
        if plot.name not in (
            *store.SECTION_PLOTS,
            *pipeline.SECTION_PLOTS,
            replay.SNAPSHOT_CURVE,
            *saga.SECTION_PLOTS,
        ):
            parts += [f"<h2>{html.escape(plot.title)}</h2>", image(plot)]
    parts += ["<h2>Environment</h2>", frame_table(environment_frame(run), "environment")]
    return page(f"eventbench report: {run.scenario_name} {run.run_id}", "\n".join(parts))


def write_report(
    run_dir: Path, output_dir: Path | None = None, stop: Callable[[], bool] | None = None
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (into the run directory unless told otherwise);
    returns their paths.

    All or nothing: the files are written into a hidden staging directory and moved into
    place at the end, so a full disk (``ReportError``, naming the file) or ``stop()`` turning
    true (``ReportInterrupted``) leaves any earlier report as it was and no half-written one."""
    run = load(Path(run_dir))
    target = Path(output_dir) if output_dir is not None else run.path
    html_path = target / HTML_NAME
    md_path = target / MD_NAME
    staging: Path | None = None
    try:
        try:
            target.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".report-", dir=target))
        except OSError as exc:
            raise _not_written(exc, target) from None
        _check_stop(stop)
        curve = capacity.curve_plot(run) if run.capacity is not None else None
        matrix = store.matrix_plot(run.points)
        plots = [p for p in (curve, matrix) if p is not None]
        plots += pipeline.section_plots(run.points) + report_plots(run)
        _check_stop(stop)
        (staging / PLOTS_DIR).mkdir()
        for plot in plots:
            name = f"{plot.name}.png"
            _stage(staging / PLOTS_DIR / name, plot.png, target / PLOTS_DIR / name)
        _stage(staging / HTML_NAME, render_report(run, plots).encode(), html_path)
        _stage(staging / MD_NAME, markdown.render_report(run, plots, PLOTS_DIR).encode(), md_path)
        _check_stop(stop)
        _commit(staging, target)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return html_path, md_path


def _check_stop(stop: Callable[[], bool] | None) -> None:
    if stop is not None and stop():
        raise ReportInterrupted("report not written: interrupted")


def _not_written(exc: OSError, path: Path) -> ReportError:
    return ReportError(
        f"report not written: {path}: {exc.strerror or exc}",
        hint="the results stand: free some space, then bench report RUN_DIR (or -o elsewhere)",
    )


def _stage(path: Path, data: bytes, final: Path) -> None:
    """One file of the report, written and flushed to disk; a failure names its final path."""
    try:
        with path.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _not_written(exc, final) from None


def _commit(staging: Path, target: Path) -> None:
    """Move the staged report into place: renames, which need no space. The plots go first,
    so report.html and report.md never link PNGs that are not there."""
    plots = target / PLOTS_DIR
    try:
        if plots.exists():
            plots.rename(staging / f"{PLOTS_DIR}.old")  # removed with the staging directory
        (staging / PLOTS_DIR).rename(plots)
        os.replace(staging / MD_NAME, target / MD_NAME)
        os.replace(staging / HTML_NAME, target / HTML_NAME)
    except OSError as exc:
        raise _not_written(exc, target) from None
