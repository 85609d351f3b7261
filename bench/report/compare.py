"""Side-by-side comparison of runs (``bench compare``), Rally-style.

Each row is Metric / Baseline / Candidate / Diff / Diff% for one point (target + matrix
parameters) and one metric, and the verdict reads the metric's direction: throughput down is
worse, latency down is better.

Runs can be groups of repetitions (``bench run --repeat N``, or ``a,b,c``). Then the figures
shown are the medians of the runs, and a two-sided Mann-Whitney U test on the per-run values
decides whether a difference is real: with p >= ``alpha`` it is "within noise" (asv's scheme).
Groups that are too small for the test ever to reach ``alpha`` are said to be so.
pyperf's rule flags a side whose runs spread by 10% or more of their mean as noisy.

A change smaller than the metric's minimum (``MIN_CHANGE_PCT``, and for latency
``MIN_LATENCY_DIFF_US``), or one that rounds to zero where it is shown, is "same", whatever its
sign: a single run cannot tell it from the noise, and a significant one is too small to matter
(asv's minimum factor beside its significance test). A value that is not a number (NaN, inf)
is "n/a": it is never better or worse.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.table import Table
from scipy.stats import mannwhitneyu

from bench.errors import ResultsError
from bench.report.tables import COMPARE_METRICS, Metric, Run, expand_group, load, metric
from bench.units import format_latency_us, format_percent

ALPHA = 0.05
NOISY_CV = 0.10
# The smallest change that counts, in percent of the baseline, by unit: what repeating the same
# run moves a figure by (a rate at a fixed offered load: about a percent; a latency percentile:
# a few). Counts (errors, lost, reordered) are exact: any change counts.
# The target's costs (engine/resources.py) are read from a busy host's process accounting.
MIN_CHANGE_PCT = {"/s": 2.0, "us": 5.0, "count": 0.0, "cpu-s": 5.0, "bytes": 5.0, "ratio": 5.0}
# A latency change under this is the platform's wake-up jitter (40-150 us measured), however
# large in percent; the same floor as bench check's --min-latency-diff default.
MIN_LATENCY_DIFF_US = 50.0

BETTER = "better"
WORSE = "worse"
SAME = "same"
NOISE = "within noise"
MISSING = "missing"
NOT_A_NUMBER = "n/a"


@dataclass
class Group:
    """One side of a comparison: one run, or the repetitions of one."""

    name: str
    runs: list[Run]

    @classmethod
    def from_specs(cls, specs: Sequence[str | Path]) -> Group:
        paths = [path for spec in specs for path in expand_group(spec)]
        if not paths:
            raise ResultsError("no results directory given")
        runs = [load(path) for path in paths]
        name = runs[0].run_id if len(runs) == 1 else f"{runs[0].run_id} (+{len(runs) - 1} runs)"
        return cls(name, runs)

    def point_keys(self) -> list[str]:
        keys: list[str] = []
        for run in self.runs:
            keys += [p.key for p in run.points if p.key not in keys]
        return keys

    def values(self, key: str, m: Metric) -> list[float]:
        """The metric's value in every run that has the point (runs without it are skipped)."""
        out = []
        for run in self.runs:
            point = run.point(key)
            if point is not None and (value := m.value(point.summary)) is not None:
                out.append(value)
        return out


@dataclass
class Row:
    point: str
    metric: Metric
    baseline: list[float]
    candidate: list[float]
    base_value: float | None = None
    cand_value: float | None = None
    diff: float | None = None
    diff_pct: float | None = None
    p_value: float | None = None
    verdict: str = MISSING
    notes: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return self.verdict == WORSE


@dataclass
class Comparison:
    baseline: Group
    candidate: Group
    rows: list[Row]
    notes: list[str]

    @property
    def grouped(self) -> bool:
        return len(self.baseline.runs) > 1 and len(self.candidate.runs) > 1


def significance(baseline: Sequence[float], candidate: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value; None without at least two values on each side."""
    if len(baseline) < 2 or len(candidate) < 2:
        return None
    if len(set(baseline) | set(candidate)) == 1:
        return 1.0
    return float(mannwhitneyu(baseline, candidate, alternative="two-sided").pvalue)


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value Mann-Whitney can give for n1 vs n2 values."""
    return 2 / math.comb(n1 + n2, n1)


def percent_change(base: float, cand: float) -> float:
    if base == 0:
        return 0.0 if cand == 0 else math.copysign(math.inf, cand)
    return (cand - base) / abs(base) * 100


def _cv(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / abs(mean) if mean else None


def _shows_zero(text: str) -> bool:
    """Whether a formatted figure reads as zero ("0/s", "0.0us", "0", "0%")."""
    return re.fullmatch(r"[+-]?0(\.0*)?[^0-9]*", text) is not None


def format_diff(m: Metric, diff: float | None) -> str:
    """The signed difference in the metric's unit; one that rounds to zero has no sign."""
    if diff is None or not math.isfinite(diff):
        return m.format(diff)
    magnitude = m.format(abs(diff))
    if diff == 0 or _shows_zero(magnitude):
        return magnitude
    return ("+" if diff > 0 else "-") + magnitude


def below_minimum(m: Metric, diff: float, diff_pct: float) -> bool:
    """Whether a change is too small to be better or worse: under the metric's minimum, or
    shown as zero."""
    if _shows_zero(format_diff(m, diff)) or _shows_zero(format_percent(diff_pct / 100)):
        return True
    if m.unit == "us" and abs(diff) < MIN_LATENCY_DIFF_US:
        return True
    return abs(diff_pct) < MIN_CHANGE_PCT.get(m.unit, 0.0)


def compare_row(point: str, m: Metric, baseline: list[float], candidate: list[float]) -> Row:
    row = Row(point, m, baseline, candidate)
    row.base_value = statistics.median(baseline) if baseline else None
    row.cand_value = statistics.median(candidate) if candidate else None
    if row.base_value is None or row.cand_value is None:
        return row
    broken = [
        side
        for side, values in (("baseline", baseline), ("candidate", candidate))
        if not all(math.isfinite(v) for v in values)
    ]
    if broken:
        # A NaN or an infinity is a broken measurement, not a figure to rank.
        row.verdict = NOT_A_NUMBER
        row.notes.append(f"not a number in the {' and the '.join(broken)}")
        return row
    row.diff = row.cand_value - row.base_value
    row.diff_pct = percent_change(row.base_value, row.cand_value)
    row.p_value = significance(baseline, candidate)
    for side, values in (("baseline", baseline), ("candidate", candidate)):
        cv = _cv(values)
        if cv is not None and cv >= NOISY_CV:
            row.notes.append(f"noisy {side} (runs spread {format_percent(cv)} of the mean)")
    if row.diff == 0 or below_minimum(m, row.diff, row.diff_pct):
        row.verdict = SAME
    elif row.p_value is not None and row.p_value >= ALPHA:
        row.verdict = NOISE
    else:
        row.verdict = WORSE if m.is_worse(row.base_value, row.cand_value) else BETTER
    return row


def compare(
    baseline: Group, candidate: Group, metrics: Iterable[str] = COMPARE_METRICS
) -> Comparison:
    """Every point of either side x every metric."""
    chosen = [metric(key) for key in metrics]
    keys = baseline.point_keys()
    keys += [k for k in candidate.point_keys() if k not in keys]
    rows = []
    for key in keys:
        for m in chosen:
            base_values = baseline.values(key, m)
            cand_values = candidate.values(key, m)
            if not base_values and not cand_values:
                continue
            rows.append(compare_row(key, m, base_values, cand_values))
    notes = []
    n1, n2 = len(baseline.runs), len(candidate.runs)
    if n1 == 1 or n2 == 1:
        notes.append(
            "single runs: no significance test is possible, so every difference beyond the "
            "smallest that counts is shown as better or worse (repeat runs, e.g. bench run "
            "--repeat 5, to separate noise)"
        )
    elif min_p_value(n1, n2) >= ALPHA:
        notes.append(
            f"{n1} vs {n2} runs: Mann-Whitney U cannot reach p < {ALPHA} with so few, so every "
            "difference reads as within noise (use at least 4 runs a side)"
        )
    else:
        notes.append(
            f"{n1} vs {n2} runs: medians shown; Mann-Whitney U, within noise if p >= {ALPHA}"
        )
    notes.append(
        f"same: a change under {MIN_CHANGE_PCT['/s']:g}% for rates, under "
        f"{MIN_CHANGE_PCT['us']:g}% or {format_latency_us(MIN_LATENCY_DIFF_US)} for latencies, "
        f"under {MIN_CHANGE_PCT['cpu-s']:g}% for the target's costs, or one that rounds to zero"
    )
    only_base = set(baseline.point_keys()) - set(candidate.point_keys())
    only_cand = set(candidate.point_keys()) - set(baseline.point_keys())
    if only_base:
        notes.append(f"only in the baseline: {', '.join(sorted(only_base))}")
    if only_cand:
        notes.append(f"only in the candidate: {', '.join(sorted(only_cand))}")
    return Comparison(baseline, candidate, rows, notes)


# --------------------------------------------------------------------------- rendering


def _pct(value: float | None) -> str:
    if value is not None and math.isinf(value):
        return "+inf%" if value > 0 else "-inf%"  # from zero: any change is infinitely many %
    return format_percent(None if value is None else value / 100, signed=True)


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cells(row: Row) -> list[str]:
    return [
        row.point,
        row.metric.key,
        row.metric.format(row.base_value),
        row.metric.format(row.cand_value),
        format_diff(row.metric, row.diff),
        _pct(row.diff_pct),
        _p(row.p_value),
        row.verdict + ("; " + "; ".join(row.notes) if row.notes else ""),
    ]


HEADERS = ["point", "metric", "baseline", "candidate", "diff", "diff%", "p", "verdict"]
_RICH_STYLE = {
    BETTER: "green",
    WORSE: "bold red",
    NOISE: "dim",
    SAME: "",
    MISSING: "yellow",
    NOT_A_NUMBER: "yellow",
}


def _title(c: Comparison) -> str:
    return f"baseline {c.baseline.name}  vs  candidate {c.candidate.name}"


def to_rich(c: Comparison) -> Table:
    table = Table(title=_title(c), header_style="bold", caption="\n".join(c.notes))
    for header in HEADERS:
        table.add_column(
            header,
            justify="right"
            if header in ("baseline", "candidate", "diff", "diff%", "p")
            else "left",
        )
    for row in c.rows:
        style = _RICH_STYLE.get(row.verdict, "")
        cells = _cells(row)
        if style:
            cells[4:6] = [f"[{style}]{cell}[/]" for cell in cells[4:6]]
            cells[7] = f"[{style}]{cells[7]}[/]"
        table.add_row(*cells)
    return table


def to_frame(c: Comparison) -> pd.DataFrame:
    return pd.DataFrame([_cells(row) for row in c.rows], columns=HEADERS)


def to_markdown(comparisons: Sequence[Comparison]) -> str:
    from bench.report.markdown import table

    marks = {BETTER: "🟢 better", WORSE: "🔴 worse", NOISE: "⚪ within noise"}
    out = []
    for c in comparisons:
        frame = to_frame(c)
        frame["verdict"] = [
            marks.get(row.verdict, row.verdict) + ("; " + "; ".join(row.notes) if row.notes else "")
            for row in c.rows
        ]
        out += [f"## {_title(c)}\n", *(f"- {n}" for n in c.notes), "", table(frame)]
    return "\n".join(out)


def to_csv(comparisons: Sequence[Comparison]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "baseline",
            "candidate",
            "point",
            "metric",
            "higher_is_better",
            "baseline_value",
            "candidate_value",
            "diff",
            "diff_pct",
            "p_value",
            "verdict",
            "baseline_runs",
            "candidate_runs",
        ]
    )
    for c in comparisons:
        for row in c.rows:
            writer.writerow(
                [
                    c.baseline.name,
                    c.candidate.name,
                    row.point,
                    row.metric.key,
                    row.metric.higher_is_better,
                    "" if row.base_value is None else row.base_value,
                    "" if row.cand_value is None else row.cand_value,
                    "" if row.diff is None else row.diff,
                    "" if row.diff_pct is None else row.diff_pct,
                    "" if row.p_value is None else row.p_value,
                    row.verdict,
                    " ".join(f"{v:g}" for v in row.baseline),
                    " ".join(f"{v:g}" for v in row.candidate),
                ]
            )
    return buffer.getvalue()


def to_html(comparisons: Sequence[Comparison]) -> str:
    from bench.report.html import page

    css_class = {BETTER: "better", WORSE: "worse", NOISE: "noise"}
    parts = ["<h1>eventbench comparison</h1>"]
    for c in comparisons:
        parts.append(f"<h2>{html.escape(_title(c))}</h2>")
        parts += [f"<p>{html.escape(note)}</p>" for note in c.notes]
        head = "".join(f"<th>{h}</th>" for h in HEADERS)
        body = []
        for row in c.rows:
            cells = _cells(row)
            cls = css_class.get(row.verdict, "")
            tds = []
            for index, cell in enumerate(cells):
                classes = []
                if 2 <= index <= 6:
                    classes.append("num")
                if index in (4, 5, 7) and cls:
                    classes.append(cls)
                attr = f' class="{" ".join(classes)}"' if classes else ""
                tds.append(f"<td{attr}>{html.escape(cell)}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        parts.append(f'<table class="compare"><tr>{head}</tr>{"".join(body)}</table>')
    return page("eventbench comparison", "\n".join(parts))


FORMATS = {"md": to_markdown, "csv": to_csv, "html": to_html}
