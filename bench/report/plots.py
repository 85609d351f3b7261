"""Report plots (matplotlib, Agg canvas, no pyplot state): PNG bytes ready to embed.

- the latency percentile spectrum, the classic HdrHistogram plot: x is 1/(1-p) on a log scale
  (labelled 0%, 90%, 99%, 99.9%, …), y the latency, every target overlaid. It draws the
  measurement window's histogram, the ``Tag=window`` line of the ``.hlog`` (``window_population``):
  the very histogram summary.json's ``latency_us``, and so every table, was computed from. A run
  from before that line existed falls back to merging the intervals inside the window, and its
  plot says so (the intervals are cut by arrival time, the window by intended time, so their
  counts differ);
- throughput and p99 over time, from ``timeseries.csv``, with each point's injected faults
  marked (``faults.mark_faults``);
- latency versus throughput, when the run swept ``workload.rate``;
- for a pipeline (``workload.kind = "pipeline"``), the ``visible`` spectrum first: a
  pipeline's ``e2e`` is the same histogram, so its points are left out of the e2e spectrum.
  The pipeline's own plots (the stage waterfall, the backlog) are ``bench.report.pipeline``'s.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, so importing this
module selects no backend and touches no global pyplot state.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.errors import ResultsError
from bench.metrics.hlog import read_intervals, read_window
from bench.metrics.recorder import merge_into, new_histogram
from bench.report.faults import mark_faults, point_faults
from bench.report.pipeline import VISIBLE, is_pipeline
from bench.report.tables import Point, Run
from bench.units import format_count

SPECTRUM_KINDS = ("e2e", "response", "service", "schedule_lag")
# Drawn only when it differs from "response", i.e. when some sends failed.
SUCCESS_ONLY_KIND = "response_ok"
_DPI = 100


@dataclass(frozen=True)
class Plot:
    """One embedded figure of a report."""

    name: str  # file stem: "spectrum-e2e"
    title: str
    caption: str
    png: bytes
    # The population each curve shows, by point label: what a test holds against the tables.
    counts: dict[str, int] = field(default_factory=dict)


def figure_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


# --------------------------------------------------------------------------- spectrum


@dataclass(frozen=True)
class Population:
    """The samples a point's figures of one latency kind describe."""

    histogram: HdrHistogram
    # True: the window histogram the summary (and every table) was computed from. False: an
    # older run's, rebuilt from the intervals, which can count a different set of samples.
    exact: bool


def window_population(point: Point, kind: str) -> Population | None:
    """The point's ``kind`` samples over the measurement window.

    The ``Tag=window`` line of the .hlog when there is one (even an empty one: that is the
    answer). Otherwise, for a run from before it, the intervals whose midpoint lies in
    [warmup, warmup + duration] merged: workers flush a little after the nominal boundaries, so
    the midpoint is the robust test, but the intervals hold samples by arrival time, so this
    misses samples intended in the window and acknowledged after it. Returns None when the point
    has no such file or no sample in the window.
    """
    path = point.dir / f"{kind}.hlog"
    if not path.exists():
        return None
    window = read_window(path)
    if window is not None:
        hist = window.histogram
        return Population(hist, exact=True) if hist.total_count else None
    start, end = point.warmup_s, point.warmup_s + point.duration_s
    merged = new_histogram()
    for interval in read_intervals(path):
        middle = interval.start_s + interval.length_s / 2
        if start <= middle <= end:
            merge_into(merged, interval.histogram)
    return Population(merged, exact=False) if merged.total_count else None


def measured_histogram(point: Point, kind: str) -> HdrHistogram | None:
    """The histogram of ``window_population``."""
    population = window_population(point, kind)
    return None if population is None else population.histogram


def spectrum(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(percentile fractions, values in ns) as a step curve from p0 to p100.

    Each non-empty bucket covers the percentiles (C[i-1]/N, C[i]/N] at its highest equivalent
    value, which is HdrHistogram's getValueAtPercentile for every percentile in that range.
    """
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.float64)
    nonzero = np.nonzero(counts)[0]
    total = counts.sum()
    if total == 0:
        return np.array([]), np.array([])
    cumulative = np.cumsum(counts[nonzero]) / total
    before = np.concatenate(([0.0], cumulative[:-1]))
    values = np.array(
        [hist.get_highest_equivalent_value(hist.get_value_from_index(int(i))) for i in nonzero],
        dtype=np.float64,
    )
    fractions = np.column_stack((before, cumulative)).ravel()
    return fractions, np.repeat(values, 2)


def _x_limit(max_count: int) -> float:
    """The right end of the x axis: at least p99.999, and one decade past 1/N."""
    return float(10 ** max(5, math.ceil(math.log10(max(max_count, 1))) + 1))


def _percentile_axis(ax: Axes, x_max: float) -> None:
    ax.set_xscale("log")
    ax.set_xlim(1, x_max)
    ticks = [10.0**k for k in range(round(math.log10(x_max)) + 1)]
    labels = []
    for k, _ in enumerate(ticks):
        labels.append("0%" if k == 0 else f"{100 - 100 / 10**k:.{max(0, k - 2)}f}%")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(labels)
    ax.set_xlabel("percentile (x = 1/(1-p), log scale)")
    ax.grid(True, which="major", alpha=0.3)


def spectrum_plot(points: Iterable[Point], kind: str, slo_us: float | None = None) -> Plot | None:
    """The percentile spectrum of ``kind`` for every point, overlaid. A pipeline point's e2e
    is drawn as its ``visible`` spectrum, not twice."""
    curves = []
    for point in points:
        if kind == "e2e" and is_pipeline(point.summary):
            continue
        population = window_population(point, kind)
        if population is not None:
            curves.append((point.label, population))
    if not curves:
        return None
    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot()
    x_max = _x_limit(max(int(p.histogram.total_count) for _, p in curves))
    q_cap = 1 - 1 / x_max
    rebuilt = [label for label, p in curves if not p.exact]
    for label, population in curves:
        hist = population.histogram
        fractions, values_ns = spectrum(hist)
        x = 1 / (1 - np.minimum(fractions, q_cap))
        note = "" if population.exact else ", from intervals"
        legend = f"{label} (n={format_count(hist.total_count)}{note})"
        ax.plot(x, values_ns / 1e6, label=legend, linewidth=1.6)
    if slo_us is not None:
        ax.axhline(slo_us / 1e3, color="red", linestyle=":", linewidth=1, label="SLO")
    _percentile_axis(ax, x_max)
    ax.set_ylabel(f"{kind} latency (ms)")
    ax.set_ylim(bottom=0)
    source = "measurement window" if not rebuilt else "measurement window, older run: intervals"
    ax.set_title(f"{kind} latency by percentile ({source})")
    ax.legend(fontsize=8, loc="upper left")
    caption = (
        f"The {kind} latency at every percentile of the events intended in the measurement "
        "window (warm-up and drain excluded): the histogram the tables are computed from."
    )
    if kind == VISIBLE:
        caption += (
            " visible runs from a command's intended start to the read model reflecting its "
            "event: the pipeline's eventual-consistency window (its e2e). Events that never "
            "reached the read model have no visible latency and are not in the curve: the "
            "pipeline table counts them (never applied)."
        )
    if rebuilt:
        caption += (
            f" {', '.join(rebuilt)}: a run from before the window histogram was kept, so the "
            "curve merges the intervals inside the window, by arrival time; its count and tail "
            "can differ from the tables'."
        )
    return Plot(
        f"spectrum-{kind}",
        f"{kind} latency spectrum",
        caption,
        figure_png(fig),
        {label: int(p.histogram.total_count) for label, p in curves},
    )


def _has_failed_sends(points: Iterable[Point]) -> bool:
    """Whether the success-only response latency differs from the response latency."""
    for p in points:
        latency = p.summary.get("latency_us") or {}
        ok = (latency.get(SUCCESS_ONLY_KIND) or {}).get("count")
        if ok is not None and ok != (latency.get("response") or {}).get("count"):
            return True
    return False


# --------------------------------------------------------------------------- over time


def _csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame | None:
    """A point's per-interval CSV with the columns a plot needs; None when absent or empty."""
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read as CSV ({exc})") from None
    for column in columns:
        if column not in frame.columns:
            raise ResultsError(f"{path}: {column}: missing column")
    return frame if len(frame) else None


def _timeseries(point: Point) -> pd.DataFrame | None:
    return _csv(point.dir / "timeseries.csv", ("t_s", "acked_per_s"))


def _resources(point: Point) -> pd.DataFrame | None:
    """The target's per-interval readings (engine/resources.py), where it was read."""
    return _csv(point.dir / "resources.csv", ("t_s", "cpu_pct", "mem_bytes"))


def timeseries_plot(points: Iterable[Point]) -> Plot | None:
    """Throughput and p99 latency per interval, one line per point, warm-up shaded, and each
    point's faults marked in its colour on both panels; under them the target's CPU and memory
    where it was read."""
    series = [(p, f) for p in points if (f := _timeseries(p)) is not None]
    if not series:
        return None
    readings = {id(p): r for p, _ in series if (r := _resources(p)) is not None}
    fig = Figure(figsize=(9, 8.8 if readings else 6.4))
    if readings:
        ax_rate, ax_lat, ax_cpu = fig.subplots(3, 1, sharex=True)
        ax_mem = ax_cpu.twinx()
    else:
        ax_rate, ax_lat = fig.subplots(2, 1, sharex=True)
    faulted = 0
    for point, frame in series:
        (line,) = ax_rate.plot(frame["t_s"], frame["acked_per_s"], label=point.label, linewidth=1.4)
        if id(point) in readings:
            used = readings[id(point)]
            ax_cpu.plot(used["t_s"], used["cpu_pct"], color=line.get_color(), linewidth=1.4)
            ax_mem.plot(
                used["t_s"],
                used["mem_bytes"] / 2**20,
                color=line.get_color(),
                linewidth=1,
                linestyle="--",
            )
        if "e2e_p99_us" in frame.columns and frame["e2e_p99_us"].notna().any():
            ax_lat.plot(
                frame["t_s"], frame["e2e_p99_us"] / 1e3, color=line.get_color(), linewidth=1.4
            )
        if "response_p99_us" in frame.columns and frame["response_p99_us"].notna().any():
            ax_lat.plot(
                frame["t_s"],
                frame["response_p99_us"] / 1e3,
                color=line.get_color(),
                linewidth=1,
                linestyle="--",
            )
        faults = point_faults(point)
        if faults:
            # Labels of several points' faults at the same time would overprint: stagger them.
            text_y = 0.97 - 0.07 * (faulted % 8)
            mark_faults(ax_rate, faults, color=line.get_color(), text_y=text_y)
            mark_faults(ax_lat, faults, color=line.get_color(), label=False)
            faulted += 1
    warmup = series[0][0].warmup_s
    end = warmup + series[0][0].duration_s
    panels = [ax_rate, ax_lat]
    if readings:
        panels.append(ax_cpu)
        ax_cpu.set_ylabel("target CPU\n(% of one core, solid)")
        ax_cpu.set_ylim(bottom=0)
        ax_mem.set_ylabel("target memory (MiB, dashed)")
        ax_mem.set_ylim(bottom=0)
        ax_lat.set_xlabel("")
    for ax in panels:
        if warmup > 0:
            ax.axvspan(0, warmup, color="grey", alpha=0.12, linewidth=0)
        ax.axvline(end, color="grey", linestyle=":", linewidth=1)
        ax.grid(True, alpha=0.3)
    ax_rate.set_ylabel("acknowledged events/s")
    ax_rate.set_ylim(bottom=0)
    legend = "grey: warm-up; dotted: end" + ("; coloured: faults" if faulted else "")
    ax_rate.set_title(f"throughput and p99 latency per interval ({legend})")
    ax_rate.legend(fontsize=8, loc="lower right")
    ax_lat.set_ylabel("p99 latency (ms)\nsolid e2e, dashed response")
    (ax_cpu if readings else ax_lat).set_xlabel("time since start (s)")
    ax_lat.set_ylim(bottom=0)
    caption = (
        "Per-interval acknowledged rate and p99 latency (solid: end-to-end, dashed: response) "
        "from timeseries.csv."
    )
    if readings:
        caption += (
            " Below: the target's CPU (% of one core) and memory per interval, from each "
            "point's resources.csv (a target on this host only)."
        )
    if any(is_pipeline(p.summary) for p, _ in series):
        caption += (
            " For a pipeline, an acknowledged event is a committed one and e2e is visible "
            "(command intended -> read model); the backlog plot shows its outbox and projection."
        )
    if faulted:
        caption += (
            " Shaded in each point's colour: a fault, from its start until the target answered "
            "again; a thin line: a disconnect; dashed: a fault that failed."
        )
    return Plot("timeseries", "Throughput and p99 over time", caption, figure_png(fig))


# --------------------------------------------------------------------------- sweeps

RATE_PARAM = "workload.rate"


def _plain(value: float, _: object = None) -> str:
    return f"{value:g}"


def _plain_2_5(value: float, _: object = None) -> str:
    """Minor ticks labelled at 2x and 5x only, so a log axis over decades stays readable."""
    text = f"{value:g}"
    return text if text.lstrip("0.")[:1] in ("2", "5") else ""


def latency_vs_rate_axes(
    ax: Axes, kind: str, log_rate: bool = False, unit: str = "acknowledged events/s"
) -> None:
    """Achieved rate across (log when targets differ by orders of magnitude), latency in ms up
    on a log scale, with plain tick labels."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(_plain_2_5))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    if log_rate:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain))
        ax.xaxis.set_minor_formatter(FuncFormatter(_plain_2_5))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"achieved rate ({unit}" + (", log)" if log_rate else ")"))
    ax.set_ylabel(f"{kind} latency (ms, log)")


def p50_p99_lines(ax: Axes, label: str, xs: list[float], stats: list[dict[str, Any]]) -> None:
    """One group's p99 (solid, dots) and p50 (dashed, same colour) in ms, from latency stats
    in µs: the curves of the replay and saga plots."""
    (line,) = ax.plot(xs, [s["p99"] / 1e3 for s in stats], marker="o", label=f"{label} p99")
    ax.plot(
        xs,
        [s["p50"] / 1e3 for s in stats],
        marker=".",
        linestyle="--",
        color=line.get_color(),
        label=f"{label} p50",
    )


def latency_vs_throughput_plot(points: list[Point], slo_us: float | None = None) -> Plot | None:
    """p50 and p99 e2e latency against the achieved rate, one curve per target, when the run
    swept ``workload.rate``. Client-bound points are drawn hollow: the harness was the limit."""
    swept = [p for p in points if RATE_PARAM in p.params]
    if len({p.params[RATE_PARAM] for p in swept}) < 2:
        return None
    groups: dict[str, list[Point]] = {}
    for p in swept:
        others = " ".join(
            f"{k.split('.')[-1]}={v}" for k, v in sorted(p.params.items()) if k != RATE_PARAM
        )
        groups.setdefault(f"{p.target} {others}".strip(), []).append(p)
    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot()
    kind = "e2e"
    for name, group in groups.items():
        group.sort(key=lambda p: float((p.summary.get("throughput") or {}).get("acked_per_s", 0)))
        rates = [float((p.summary.get("throughput") or {}).get("acked_per_s", 0)) for p in group]
        lat = [(p.summary.get("latency_us") or {}).get(kind) or {} for p in group]
        if not any(stats.get("count") for stats in lat):
            kind = "response"
            lat = [(p.summary.get("latency_us") or {}).get(kind) or {} for p in group]
        p99 = [np.nan if s.get("p99") is None else s["p99"] / 1e3 for s in lat]
        p50 = [np.nan if s.get("p50") is None else s["p50"] / 1e3 for s in lat]
        (line,) = ax.plot(rates, p99, marker="o", label=f"{name} p99")
        ax.plot(rates, p50, marker=".", linestyle="--", color=line.get_color(), label=f"{name} p50")
        for rate, value, p in zip(rates, p99, group, strict=True):
            if p.summary.get("client_bound"):
                ax.plot([rate], [value], marker="o", markersize=11, fillstyle="none", color="red")
    if slo_us is not None:
        ax.axhline(slo_us / 1e3, color="red", linestyle=":", linewidth=1, label="SLO")
    latency_vs_rate_axes(ax, kind)
    ax.set_title(f"{kind} latency versus throughput (red ring: client-bound point)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return Plot(
        "latency-vs-throughput",
        "Latency versus throughput",
        f"p50 (dashed) and p99 (solid) {kind} latency at each swept rate.",
        figure_png(fig),
    )


# --------------------------------------------------------------------------- all of them


def _slo_us(run: Run, key: str) -> float | None:
    for p in run.points:
        verdict = (p.summary.get("slo") or {}).get(key)
        if isinstance(verdict, dict) and isinstance(verdict.get("threshold_us"), int | float):
            return float(verdict["threshold_us"])
    return None


def report_plots(run: Run) -> list[Plot]:
    """Every plot the run's data supports, in report order."""
    plots: list[Plot | None] = []
    kinds = list(SPECTRUM_KINDS)
    if _has_failed_sends(run.points):
        kinds.insert(kinds.index("response") + 1, SUCCESS_ONLY_KIND)
    if any(is_pipeline(p.summary) for p in run.points):
        kinds.insert(0, VISIBLE)
    for kind in kinds:
        # A pipeline's SLO is written on e2e, which is its visible latency.
        slo_key = "e2e.p99" if kind == VISIBLE else f"{kind}.p99"
        plots.append(spectrum_plot(run.points, kind, _slo_us(run, slo_key)))
    plots.append(timeseries_plot(run.points))
    plots.append(latency_vs_throughput_plot(run.points, _slo_us(run, "e2e.p99")))
    from bench.report.replay import snapshot_curve_plot
    from bench.report.saga import final_states_plot, latency_vs_failure_plot

    plots.append(snapshot_curve_plot(run.points))
    plots.append(latency_vs_failure_plot(run.points))
    plots.append(final_states_plot(run.points))
    return [p for p in plots if p is not None]


def write_pngs(plots: Iterable[Plot], directory: Path) -> dict[str, Path]:
    """Write each plot as ``directory/<name>.png``; name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for plot in plots:
        path = directory / f"{plot.name}.png"
        atomic_write_bytes(path, plot.png)
        paths[plot.name] = path
    return paths


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Like ``store.atomic_write_text``, for binary files (temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
