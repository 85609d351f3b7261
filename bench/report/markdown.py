"""The Markdown report (``report.md``) and Markdown tables for compare and check.

GitHub renders this file and CI job summaries show it, so it uses plain pipe tables and
relative image links (the PNGs sit next to it, in ``report-plots/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from bench.report import (
    backlog,
    faults,
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
from bench.report.plots import Plot
from bench.report.tables import (
    SUMMARY_PIPELINE_NOTE,
    Run,
    environment_frame,
    latency_frame,
    run_overview,
    summary_frame,
)


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' own ``to_markdown`` needs the tabulate package)."""
    if frame.empty:
        return "_(none)_\n"
    columns = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def key_values(items: Mapping[str, str]) -> str:
    return table(pd.DataFrame({"": list(items), " ": list(items.values())}))


def verdict_banner(run: Run) -> str:
    """Pass only when every point ran and passed; otherwise each point that did not, with its
    status and the verdict's reasons in words."""
    found = verdicts.banner(run.points, run.completion_note())
    out = f"**{found.headline}**\n"
    if found.lines:
        out += "\n" + "\n".join(f"- {cell(line)}" for line in found.lines) + "\n"
        if found.others_passed:
            out += f"\n{verdicts.OTHERS_PASSED}\n"
    return out


def store_section(run: Run, plots: list[Plot], image_dir: str) -> list[str]:
    """The event-store figures and the matrix plot."""
    out = ["## Event store\n", f"{store.CAPTION}\n", table(store.store_frame(run.points))]
    for plot in plots:
        if plot.name in store.SECTION_PLOTS:
            out.append(
                f"### {plot.title}\n\n{plot.caption}\n\n"
                f"![{plot.title}]({image_dir}/{plot.name}.png)\n"
            )
    violations = store.violations_frame(run.points)
    if not violations.empty:
        out += ["### Invariant violations\n", table(violations)]
    out += [
        "### Aggregate load latency by stream length\n",
        f"{store.LOAD_CAPTION}\n",
        table(store.load_latency_frame(run.points)),
    ]
    counters = store.server_counters_frame(run.points)
    if not counters.empty:
        out += ["### Server counters (whole database, over each point)\n", table(counters)]
    return out


def pipeline_section(run: Run, plots: list[Plot], image_dir: str) -> list[str]:
    """The pipeline figures, its invariant violations, the waterfall and the backlog."""
    out = ["## Pipeline\n", f"{pipeline.CAPTION}\n", table(pipeline.pipeline_frame(run.points))]
    violations = pipeline.violations_frame(run.points)
    if not violations.empty:
        out += ["### Invariant violations\n", table(violations)]
    for plot in plots:
        if plot.name in pipeline.SECTION_PLOTS:
            out.append(
                f"### {plot.title}\n\n{plot.caption}\n\n"
                f"![{plot.title}]({image_dir}/{plot.name}.png)\n"
            )
    return out


def render_report(run: Run, plots: Iterable[Plot], image_dir: str) -> str:
    """The whole report as Markdown; images are linked as ``image_dir/<name>.png``."""
    plots = list(plots)
    overview = run_overview(run)
    out = [f"# {run.scenario_name}: {run.run_id}\n", key_values(overview)]
    out += ["## Verdicts\n", verdict_banner(run)]
    judged = verdicts.verdict_frame(run.points)
    if not judged.empty:
        out += ["### What the verdicts judged\n", f"{verdicts.TABLE_CAPTION}\n", table(judged)]
    found = verdicts.notes(run)
    if found:
        out += ["### Notes\n", "\n".join(f"- **{cell(w)}**" for w in found) + "\n"]
    if run.capacity is not None:
        from bench.report import capacity

        out += ["## Capacity: max sustainable rate\n", table(capacity.results_frame(run))]
        out += ["## Capacity probes\n", table(capacity.probes_frame(run))]
    if store.store_points(run.points):
        out += store_section(run, plots, image_dir)
    if pipeline.pipeline_points(run.points):
        out += pipeline_section(run, plots, image_dir)
    if redelivery.redelivery_points(run.points):
        out += [
            "## Redelivery and the idempotency guard\n",
            f"{redelivery.CAPTION}\n",
            table(redelivery.redelivery_frame(run.points)),
        ]
    if replay.replay_points(run.points):
        out += [
            "## Replay: keeping old events readable\n",
            f"{replay.CAPTION}\n",
            table(replay.replay_frame(run.points)),
        ]
    if replay.load_points(run.points):
        out += [
            "## Snapshots: load latency against stream length\n",
            f"{replay.SNAPSHOT_CAPTION}\n",
            table(replay.snapshots_frame(run.points)),
        ]
        for plot in plots:
            if plot.name == replay.SNAPSHOT_CURVE:
                out.append(f"{plot.caption}\n\n![{plot.title}]({image_dir}/{plot.name}.png)\n")
    if saga.saga_points(run.points):
        out += ["## Sagas\n", f"{saga.CAPTION}\n", table(saga.saga_frame(run.points))]
        saga_faults = saga.saga_faults_frame(run.points)
        if not saga_faults.empty:
            out += ["### Faults on the saga timeline\n", f"{saga.FAULTS_CAPTION}\n"]
            out.append(table(saga_faults))
        for plot in plots:
            if plot.name in saga.SECTION_PLOTS:
                out.append(f"{plot.caption}\n\n![{plot.title}]({image_dir}/{plot.name}.png)\n")
    # A replay and sagas have no delivery audit: their figures are their own sections' only.
    loaded = [
        p for p in run.points if not replay.is_replay(p.summary) and not saga.saga_points([p])
    ]
    if loaded or not run.points:
        summary = verdicts.with_verdicts(summary_frame(loaded), loaded)
        out += ["## Summary\n"]
        if pipeline.pipeline_points(run.points):
            out += [f"{SUMMARY_PIPELINE_NOTE}\n"]
        out += [table(summary)]
        out += ["## Latency (measurement window)\n", table(latency_frame(loaded))]
    fan_out = subscriptions.subscriptions_frame(run.points)
    if not fan_out.empty:
        out += ["## Subscriptions\n", f"{subscriptions.CAPTION}\n", table(fan_out)]
    spread = topology.topics_frame(run.points)
    if not spread.empty:
        out += ["## Topics\n", f"{topology.CAPTION}\n", table(spread)]
    costs = resources.resources_frame(run.points)
    if not costs.empty:
        out += ["## Target resources\n", f"{resources.CAPTION}\n", table(costs)]
    backlogged = backlog.backlog_frame(run.points)
    if not backlogged.empty:
        out += ["## Backlog\n", f"{backlog.CAPTION}\n", table(backlogged)]
    if faults.has_faults(run.points):
        out += ["## Faults\n", f"{faults.CAPTION}\n", table(faults.faults_frame(run.points))]
    for plot in plots:
        if plot.name in (
            *store.SECTION_PLOTS,
            *pipeline.SECTION_PLOTS,
            replay.SNAPSHOT_CURVE,
            *saga.SECTION_PLOTS,
        ):
            continue
        out.append(
            f"## {plot.title}\n\n{plot.caption}\n\n![{plot.title}]({image_dir}/{plot.name}.png)\n"
        )
    out += ["## Environment\n", table(environment_frame(run))]
    return "\n".join(out)
