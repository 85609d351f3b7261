"""The Markdown report (``report.md``) and Markdown tables for compare and check.

GitHub renders this file and CI job summaries show it, so it uses plain pipe tables and
relative image links (the PNGs sit next to it, in ``report-plots/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from bench.report import faults
from bench.report.plots import Plot
from bench.report.tables import (
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


def warnings(run: Run) -> list[str]:
    """What a reader must not miss: failed points, broken SLOs, lost or duplicated events,
    client-bound points, the problems the run recorded, and faults that failed, were not
    reached or never recovered."""
    found = []
    for p in run.points:
        s = p.summary
        if s.get("status") not in ("ok", None):
            found.append(f"{p.label}: status {s.get('status')}")
        for key, verdict in (s.get("slo") or {}).items():
            if verdict.get("pass") is None:
                found.append(f"{p.label}: SLO {key} has no measurements")
            elif not verdict.get("pass"):
                found.append(
                    f"{p.label}: SLO {key} broken ({verdict.get('value_us')} us > "
                    f"{verdict.get('threshold_us')} us)"
                )
        audit = s.get("audit") or {}
        for name in ("lost", "duplicated", "reordered"):
            if audit.get(name):
                found.append(f"{p.label}: {audit[name]} events {name}")
        if s.get("client_bound"):
            reasons = "; ".join(s.get("client_bound_reasons") or [])
            found.append(f"{p.label}: client-bound (the harness was the limit: {reasons})")
        found += [f"{p.label}: {problem}" for problem in s.get("problems") or []]
    found += faults.warnings(run.points)
    if run.capacity is not None:
        from bench.report.capacity import warnings as capacity_warnings

        found += capacity_warnings(run)
    return found


def render_report(run: Run, plots: Iterable[Plot], image_dir: str) -> str:
    """The whole report as Markdown; images are linked as ``image_dir/<name>.png``."""
    overview = run_overview(run)
    out = [f"# {run.scenario_name}: {run.run_id}\n", key_values(overview)]
    found = warnings(run)
    out.append("## Verdicts\n")
    if found:
        out.append("\n".join(f"- **{w}**" for w in found) + "\n")
    else:
        out.append(
            "Every point ran, every SLO holds, no event was lost, duplicated or reordered.\n"
        )
    if run.capacity is not None:
        from bench.report import capacity

        out += ["## Capacity: max sustainable rate\n", table(capacity.results_frame(run))]
        out += ["## Capacity probes\n", table(capacity.probes_frame(run))]
    out += ["## Summary\n", table(summary_frame(run.points))]
    out += ["## Latency (measurement window)\n", table(latency_frame(run.points))]
    if faults.has_faults(run.points):
        out += ["## Faults\n", f"{faults.CAPTION}\n", table(faults.faults_frame(run.points))]
    for plot in plots:
        out.append(
            f"## {plot.title}\n\n{plot.caption}\n\n![{plot.title}]({image_dir}/{plot.name}.png)\n"
        )
    out += ["## Environment\n", table(environment_frame(run))]
    return "\n".join(out)
