"""The capacity part of a report: each search's answer, its probes, and the latency-versus-
throughput curves ("hockey sticks") with the SLO and each target's max sustainable rate drawn.

It reads ``capacity.json`` (as loaded into ``Run.capacity``) and the probes' summaries; one
chart holds a curve per searched point, so several targets searched in one run (or a sweep)
read as the broker-choice picture.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report.plots import Plot, figure_png, latency_vs_rate_axes
from bench.report.tables import Run
from bench.units import (
    format_count,
    format_duration,
    format_latency_us,
    format_percent,
    format_rate,
)


def searches(run: Run) -> list[dict[str, Any]]:
    data = run.capacity or {}
    return [s for s in data.get("searches") or [] if isinstance(s, dict)]


def _rate(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else format_rate(float(value))


def results_frame(run: Run) -> pd.DataFrame:
    rows = []
    for s in searches(run):
        server = s.get("server") or {}
        limited = ", ".join(s.get("limited_by") or []) or "-"
        if s.get("upper_rate_per_s"):
            limited += f" (at {_rate(s['upper_rate_per_s'])})"
        closed = _rate(s.get("saturation_per_s"))
        if s.get("saturation_client_bound"):
            closed += " (client-bound)"
        precision = s.get("precision")
        rows.append(
            {
                "point": s.get("label"),
                "server": " ".join(
                    str(v) for v in (server.get("product"), server.get("version")) if v
                )
                or "-",
                "max sustainable": _rate(s.get("max_rate_per_s")),
                "precision": format_percent(precision),
                "limited by": limited,
                "verified": "yes" if s.get("verified") else "no",
                "closed-loop max": closed,
                "probes": format_count(len(s.get("probes") or []) + len(s.get("sweep") or [])),
                "status": s.get("status"),
                "notes": " ".join(s.get("notes") or []) or "-",
            }
        )
    return pd.DataFrame(rows)


def probes_frame(run: Run) -> pd.DataFrame:
    rows = []
    for s in searches(run):
        for probe in [*(s.get("probes") or []), *(s.get("sweep") or [])]:
            rate = probe.get("rate_per_s")
            kind = _kind(run, probe)
            lat = (probe.get("latency_us") or {}).get(kind) or {}
            failed = [
                f"{c['name']}: {c['value']}"
                for c in probe.get("checks") or []
                if not c.get("passed")
            ]
            rows.append(
                {
                    "point": s.get("label"),
                    "#": probe.get("index"),
                    "phase": probe.get("phase"),
                    "offered": f"closed loop c{probe.get('concurrency')}"
                    if rate is None
                    else _rate(rate),
                    "achieved": _rate(probe.get("achieved_per_s")),
                    f"{kind} p50": format_latency_us(lat.get("p50")),
                    f"{kind} p99": format_latency_us(lat.get("p99")),
                    "window": format_duration(float(probe.get("duration_s") or 0)),
                    "failed checks": "; ".join(failed) or "-",
                    "verdict": probe.get("verdict"),
                }
            )
    return pd.DataFrame(rows)


def _slo(run: Run) -> tuple[str | None, float | None]:
    slo = ((run.capacity or {}).get("settings") or {}).get("slo_us") or {}
    for key, threshold in slo.items():
        return str(key), float(threshold)
    return None, None


def _kind(run: Run, probe: dict[str, Any] | None = None) -> str:
    """The latency the curves show: the SLO's kind, else e2e when measured, else response."""
    key, _ = _slo(run)
    if key is not None:
        return key.split(".")[0]
    for s in searches(run):
        for p in [*(s.get("probes") or []), *(s.get("sweep") or [])]:
            if ((p.get("latency_us") or {}).get("e2e") or {}).get("p99") is not None:
                return "e2e"
    return "response"


def curve_plot(run: Run) -> Plot | None:
    """Latency (p99 solid, p50 dashed; log) against the achieved rate, one curve per search.

    Open-loop probes only (closed-loop ramp steps have no intended send time to measure
    from). The line joins the probe that decided each offered rate (the last one run there);
    every probe has a marker: filled passed every check, crosses failed one, red rings were
    client-bound.
    A dotted vertical line marks each max sustainable rate; the red line is the SLO.
    """
    found = searches(run)
    kind = _kind(run)
    slo_key, slo_us = _slo(run)
    stat = slo_key.split(".")[1] if slo_key else "p99"
    fig = Figure(figsize=(10, 5.5))
    ax = fig.add_subplot()
    drawn = 0
    all_rates: list[float] = []
    for s in found:
        probes = [
            p
            for p in [*(s.get("probes") or []), *(s.get("sweep") or [])]
            if p.get("rate_per_s") is not None
        ]
        if not probes:
            continue
        # The line runs through one probe per offered rate: the last, which decided it (a
        # retry, a full-length verification); every probe still gets its marker.
        deciding: dict[float, dict[str, Any]] = {}
        for p in sorted(probes, key=lambda p: int(p.get("index") or 0)):
            deciding[round(float(p.get("rate_per_s") or 0), 1)] = p
        line_probes = [deciding[rate] for rate in sorted(deciding)]
        x = [float(p.get("achieved_per_s") or 0) for p in probes]
        all_rates += x

        def values(which: str, probes: list[dict[str, Any]] = probes) -> list[float]:
            out = []
            for p in probes:
                v = ((p.get("latency_us") or {}).get(kind) or {}).get(which)
                out.append(np.nan if v is None else float(v) / 1e3)
            return out

        which = stat if stat in ("p50", "p99", "p999", "max") else "p99"
        top = values(which)
        line_x = [float(p.get("achieved_per_s") or 0) for p in line_probes]
        (line,) = ax.plot(
            line_x, values(which, line_probes), linewidth=1.5, label=f"{s.get('label')} {stat}"
        )
        color = line.get_color()
        if stat != "p50":
            ax.plot(
                line_x, values("p50", line_probes), linestyle="--", linewidth=1, color=color,
                alpha=0.7,
            )  # fmt: skip
        for xi, yi, p in zip(x, top, probes, strict=True):
            if math.isnan(yi):
                continue
            verdict = p.get("verdict")
            if verdict == "pass":
                ax.plot([xi], [yi], marker="o", color=color, markersize=6)
            else:
                ax.plot([xi], [yi], marker="x", color=color, markersize=7)
            if verdict == "client-bound":
                ax.plot([xi], [yi], marker="o", markersize=12, fillstyle="none", color="red")
        best = s.get("max_rate_per_s")
        if isinstance(best, int | float):
            ax.axvline(float(best), color=color, linestyle=":", linewidth=1.2)
            ax.annotate(
                f"max {format_rate(float(best))}",
                xy=(float(best), 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                color=color,
            )
        drawn += 1
    if not drawn:
        return None
    if slo_us is not None:
        ax.axhline(slo_us / 1e3, color="red", linewidth=1, label=f"SLO {slo_key}")
    rates = [x for x in all_rates if x > 0]
    spread = max(rates) / min(rates) if rates else 1.0
    kinds = {s.get("kind") or "stream" for s in found}
    unit = {
        frozenset({"stream"}): "acknowledged events/s",
        frozenset({"store"}): "commands run/s",
    }.get(frozenset(kinds), "events acknowledged or commands run/s")
    latency_vs_rate_axes(ax, kind, log_rate=spread > 20, unit=unit)
    ax.set_title(
        f"{kind} {stat} versus throughput (dashed p50; o pass, x fail, red ring client-bound; "
        "dotted: max sustainable)",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return Plot(
        "capacity-curve",
        "Latency versus throughput (capacity search)",
        f"Every open-loop probe: {kind} {stat} (solid) and p50 (dashed) at the achieved rate. "
        "Past the max sustainable rate the achieved rate stops growing while latency climbs: "
        "the hockey stick.",
        figure_png(fig),
    )


def warnings(run: Run) -> list[str]:
    """What a reader of a capacity run must not miss: searches without a clean answer."""
    out = []
    for s in searches(run):
        status = s.get("status")
        if status in ("found", "given"):
            continue
        label = s.get("label")
        if s.get("max_rate_per_s") is None:
            out.append(f"{label}: no sustainable rate found ({status})")
        else:
            out.append(
                f"{label}: {status}: max sustainable {_rate(s['max_rate_per_s'])} is a bound"
            )
        out += [f"{label}: {note}" for note in s.get("notes") or []]
    return out
