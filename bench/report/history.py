"""History of a scenario across runs (``bench history``): a trend table, a plot, change points.

A change point is a run where a metric stepped to a new level and stayed there. It is found
with PELT (pruned exact optimal partitioning) on an L1 cost, which is robust to the odd outlier
run: the series is split wherever a new segment lowers the summed absolute deviation from the
segments' medians by more than a penalty. The penalty scales with the series' own noise, so a
noisy metric needs a bigger step than a quiet one, and with log(n) (a BIC-like penalty), so a
long history does not sprout spurious steps:

- noise: the MAD of the differences between consecutive runs (immune to the steps themselves,
  which are few), with a floor of ``MIN_NOISE_FRACTION`` of the median so that a perfectly
  stable series does not turn every last-digit change into a step;
- a segment has at least ``MIN_SEGMENT`` runs, so one outlier run is never a step.

A regression that persists is therefore one change point, at the run where it began; whether
the step is a regression or an improvement follows the metric's direction.

A series shorter than ``MIN_RUNS`` (two segments) is not searched at all, and ``History.conclusion``
says so instead of claiming it stayed within its noise: one sentence about the whole history.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.errors import ResultsError
from bench.report.compare import significance
from bench.report.plots import atomic_write_bytes
from bench.report.tables import Metric, Run, find_runs, metric
from bench.units import format_percent

PENALTY_BETA = 3.0
MIN_SEGMENT = 2
MIN_RUNS = 2 * MIN_SEGMENT  # the shortest series in which a step can be found
MIN_NOISE_FRACTION = 0.01
_MAD_TO_SIGMA = 1.4826
EXCLUDED_STATUSES = ("running", "interrupted")


# --------------------------------------------------------------------------- detection


def noise_scale(values: np.ndarray) -> float:
    """A robust noise estimate: the MAD of first differences, as a standard deviation."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1.0
    floor = max(MIN_NOISE_FRACTION * float(np.median(np.abs(finite))), 1e-12)
    if finite.size < 3:
        return floor
    diffs = np.diff(finite)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    # Differences of two independent noisy values have sqrt(2) times the noise of one.
    return max(_MAD_TO_SIGMA * mad / math.sqrt(2), floor)


def change_points(
    values: Sequence[float] | np.ndarray,
    beta: float = PENALTY_BETA,
    min_segment: int = MIN_SEGMENT,
) -> list[int]:
    """Indices where a new level begins (PELT, L1 cost on noise-scaled values)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2 * min_segment:
        return []
    z = x / noise_scale(x)
    penalty = beta * math.log(n)

    def cost(start: int, end: int) -> float:
        segment = z[start:end]
        return float(np.abs(segment - np.median(segment)).sum())

    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    last = np.zeros(n + 1, dtype=np.int64)
    admissible: list[int] = []
    for end in range(min_segment, n + 1):
        newly = end - min_segment
        if newly == 0 or np.isfinite(best[newly]):
            admissible.append(newly)
        totals = [best[s] + cost(s, end) + penalty for s in admissible]
        pick = int(np.argmin(totals))
        best[end], last[end] = totals[pick], admissible[pick]
        # PELT pruning: a start that is already worse by the penalty can never win later.
        admissible = [
            s for s, total in zip(admissible, totals, strict=True) if total - penalty <= best[end]
        ]
    points = []
    end = n
    while end > 0:
        start = int(last[end])
        if start > 0:
            points.append(start)
        end = start
    return sorted(points)


# --------------------------------------------------------------------------- history


@dataclass
class Change:
    point: str
    index: int
    run_id: str
    before: float
    after: float
    change_pct: float
    regression: bool
    p_value: float | None

    def describe(self, m: Metric) -> str:
        kind = "regression" if self.regression else "improvement"
        p = f", Mann-Whitney p={self.p_value:.3f}" if self.p_value is not None else ""
        return (
            f"{kind} at {self.run_id}: {self.point} {m.key} {m.format(self.before)} -> "
            f"{m.format(self.after)} ({_pct(self.change_pct)}, medians of the segments{p})"
        )


def _pct(change_pct: float) -> str:
    if math.isinf(change_pct):
        return "from zero"
    return format_percent(change_pct / 100, signed=True)


@dataclass
class History:
    scenario: str
    metric: Metric
    runs: list[Run]
    series: pd.DataFrame  # index: run_id, columns: point keys
    changes: list[Change]
    notes: list[str]

    @property
    def too_short(self) -> list[str]:
        """Points with too few runs for a step to be found: they were not searched."""
        return [key for key in self.series.columns if self.series[key].count() < MIN_RUNS]

    @property
    def conclusion(self) -> str:
        """The one thing to say about the whole history, after its change points (if any)."""
        n = len(self.runs)
        if n < MIN_RUNS:
            return (
                f"{_runs(n)}: too few to look for a change point (at least {MIN_RUNS} are needed)"
            )
        changes = len(self.changes)
        short = self.too_short
        searched = len(self.series.columns) - len(short)
        if changes:
            text = f"{changes} change point{'s' if changes != 1 else ''}"
        elif not short:
            return "no change point: the series stayed within its noise"
        elif searched:
            text = "no change point in the series long enough to search"
        else:
            text = "no series has enough runs to look for a change point"
        if short:
            text += f"; not searched, fewer than {MIN_RUNS} runs: " + ", ".join(short)
        return text


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def select_runs(results_dir: Path, scenario: str | None) -> tuple[str, list[Run], list[str]]:
    runs = find_runs(results_dir)
    notes = []
    if not runs:
        raise ResultsError(f"{results_dir}: no run found (no */manifest.json)")
    names = sorted({r.scenario_name for r in runs})
    if scenario is None:
        scenario = max(runs, key=lambda r: r.started_at).scenario_name
        if len(names) > 1:
            others = ", ".join(n for n in names if n != scenario)
            notes.append(
                f"scenario {scenario} (the latest run's); also here: {others} (--scenario)"
            )
    chosen = [r for r in runs if r.scenario_name == scenario]
    if not chosen:
        raise ResultsError(
            f"{results_dir}: no run of scenario {scenario!r}", hint=f"found: {', '.join(names)}"
        )
    excluded = [r for r in chosen if r.manifest.get("status") in EXCLUDED_STATUSES]
    if excluded:
        notes.append(
            f"left out {len(excluded)} run(s) still running or interrupted: "
            + ", ".join(r.run_id for r in excluded)
        )
    chosen = [r for r in chosen if r not in excluded]
    chosen.sort(key=lambda r: (r.started_at, r.run_id))
    return scenario, chosen, notes


def build(
    results_dir: Path,
    metric_key: str = "e2e.p99",
    scenario: str | None = None,
    beta: float = PENALTY_BETA,
) -> History:
    m = metric(metric_key)
    name, runs, notes = select_runs(Path(results_dir), scenario)
    keys: list[str] = []
    for run in runs:
        keys += [p.key for p in run.points if p.key not in keys]
    data = {
        key: [
            (m.value(point.summary) if (point := run.point(key)) is not None else None)
            for run in runs
        ]
        for key in keys
    }
    series = pd.DataFrame(data, index=[r.run_id for r in runs], dtype="float64")
    changes = []
    for key in keys:
        column = series[key]
        present = column.dropna()
        positions = [series.index.get_loc(i) for i in present.index]
        values = present.to_numpy()
        cps = change_points(values, beta=beta)
        bounds = [0, *cps, len(values)]
        for j, cp in enumerate(cps):
            before = values[bounds[j] : cp]
            after = values[cp : bounds[j + 2]]
            b, a = float(np.median(before)), float(np.median(after))
            pct = (a - b) / abs(b) * 100 if b else math.inf
            changes.append(
                Change(
                    point=key,
                    index=int(positions[cp]),
                    run_id=str(present.index[cp]),
                    before=b,
                    after=a,
                    change_pct=pct,
                    regression=m.is_worse(b, a),
                    p_value=significance(list(before), list(after)),
                )
            )
    changes.sort(key=lambda c: (c.index, c.point))
    return History(name, m, runs, series, changes, notes)


# --------------------------------------------------------------------------- output


def trend_table(history: History) -> pd.DataFrame:
    """One row per run: when, which revision, the metric per point, and the steps found."""
    m = history.metric
    rows = []
    for index, run in enumerate(history.runs):
        git = run.environment.get("git") or {}
        row: dict[str, str] = {
            "run": run.run_id,
            "started": dt.datetime.fromtimestamp(run.started_at, tz=dt.UTC).strftime(
                "%Y-%m-%d %H:%M"
            ),
            "git": (git.get("revision") or "-")[:10] + ("*" if git.get("dirty") else ""),
        }
        for key in history.series.columns:
            value = history.series.iloc[index][key]
            row[key] = m.format(None if pd.isna(value) else float(value))
        marks = [
            f"{'▲ regression' if c.regression else '▼ improvement'} {c.point} {_pct(c.change_pct)}"
            for c in history.changes
            if c.index == index
        ]
        row["change point"] = "; ".join(marks)
        rows.append(row)
    return pd.DataFrame(rows)


def plot(history: History, path: Path) -> Path:
    """The series per point, each segment's median dashed, change points marked."""
    m = history.metric
    fig = Figure(figsize=(10, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(history.runs))
    scale, unit = (1e3, "ms") if m.unit == "us" else (1.0, m.unit)
    for key in history.series.columns:
        values = history.series[key].to_numpy() / scale
        (line,) = ax.plot(x, values, marker="o", label=key, linewidth=1.4)
        cps = [c.index for c in history.changes if c.point == key]
        bounds = [0, *cps, len(x)]
        for start, end in itertools.pairwise(bounds):
            segment = values[start:end]
            if np.isfinite(segment).any():
                level = float(np.nanmedian(segment))
                ax.hlines(level, start - 0.3, end - 0.7, colors=line.get_color(), linestyles="--")
    for change in history.changes:
        ax.axvline(
            change.index - 0.5,
            color="red" if change.regression else "green",
            linewidth=1.2,
            alpha=0.7,
        )
        ax.annotate(
            _pct(change.change_pct),
            (change.index - 0.5, ax.get_ylim()[1]),
            color="red" if change.regression else "green",
            fontsize=8,
            ha="left",
            va="top",
        )
    labels = [
        dt.datetime.fromtimestamp(r.started_at, tz=dt.UTC).strftime("%m-%d %H:%M")
        for r in history.runs
    ]
    step = max(1, len(labels) // 20)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"{m.key} ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"{history.scenario}: {m.key} by run (dashed: segment medians; lines: change points, "
        "red regression, green improvement)",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    buffer_path = Path(path)
    buffer_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(buffer_path, buffer.getvalue())
    return buffer_path
