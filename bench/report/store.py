"""The event-store part of a report: what an event-sourcing engineer chooses an append
strategy by.

- the store table: goodput, conflict rate, retries per command, abandoned commands, rejections,
  append errors, response latency, projection lag (a store point's e2e latency is the time
  from the commit to the projector applying it), invariants;
- load latency by stream length (what snapshots shorten), and the server's counters;
- the matrix plot: goodput and conflict rate against writers, one panel per key space
  (``workload.aggregates``), one line per strategy. Few aggregates and many writers is
  contention; the strategies part ways there.

Every figure comes from ``summary["store"]`` and ``summary["latency_us"]``, formatted with
``bench.units`` as in the other tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.report.tables import Point
from bench.report.verdicts import result_of, verdict_word
from bench.units import format_count, format_latency_us, format_percent, format_rate
from bench.verdict import FAIL, PASS

# pandas is the report extra: it is imported where a frame is built, so the terminal
# tables (bench run, bench show) work on a core install.
if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from bench.report.plots import Plot

CAPTION = (
    "Goodput counts commits in the measurement window; the conflict rate is conflicts per "
    "append attempt; a command is retried after a conflict (up to max_retries) and abandoned "
    "when its retries run out. Rejected commands are ones the order's rules refused (not "
    "errors). Projection lag is the time from an event's commit to the projector applying it "
    "(the point's e2e latency)."
)
# Matrix parameters that the matrix plot has axes for; any other varying parameter splits a
# strategy's line.
MATRIX_AXES = (
    "workload.aggregates",
    "workload.concurrency",
    "workload.max_in_flight",
    "workload.producers",
)
# Plots drawn inside the store section rather than with the other plots.
SECTION_PLOTS = ("store-matrix",)
WRITERS = "writers"
AGGREGATES = "aggregates"


def store_points(points: Iterable[Point]) -> list[Point]:
    """The points of an event-store workload that measured store figures."""
    return [p for p in points if p.summary.get("kind") == "store" and p.summary.get("store")]


def writers(summary: dict[str, Any]) -> int | None:
    """Commands in flight at once: producers x max_in_flight open loop, the concurrency (split
    over producers) closed loop, as the runner starts them."""
    w = summary.get("workload") or {}
    producers = int(w.get("producers") or 1)
    if summary.get("closed_loop"):
        concurrency = w.get("concurrency")
        if not isinstance(concurrency, int):
            return None
        return max(1, concurrency // producers) * producers
    in_flight = w.get("max_in_flight")
    return producers * int(in_flight) if isinstance(in_flight, int) else None


def aggregates(summary: dict[str, Any]) -> int | None:
    value = (summary.get("workload") or {}).get("aggregates")
    return int(value) if isinstance(value, int | float) else None


def strategy_of(summary: dict[str, Any]) -> str | None:
    """The append strategy (the PostgreSQL driver's ``strategy`` option); None for a store
    without strategies (the memory store)."""
    info = summary.get("target_info") or {}
    named = info.get("strategy") or (info.get("settings") or {}).get("strategy")
    return str(named) if named else None


def strategy(point: Point) -> str:
    """The strategy, or the target's name for a store without strategies."""
    return strategy_of(point.summary) or point.target


def _lat(summary: dict[str, Any], kind: str, stat: str) -> str:
    return format_latency_us(((summary.get("latency_us") or {}).get(kind) or {}).get(stat))


def invariants_text(store: dict[str, Any]) -> str:
    """hold, or how many violations (the violations table quotes them)."""
    invariants = store.get("invariants") or {}
    violations = invariants.get("violations") or []
    if invariants.get("ok", True) and not violations:
        return "hold"
    return f"{format_count(len(violations))} violated" if violations else "violated"


def violations_frame(points: Iterable[Point]) -> pd.DataFrame:
    """Every invariant violation the store check found, one row each (the summary keeps the
    first 20 of a point)."""
    import pandas as pd

    rows = [
        {"point": p.label, "violation": str(violation)}
        for p in store_points(points)
        for violation in (p.summary["store"].get("invariants") or {}).get("violations") or []
    ]
    return pd.DataFrame(rows)


def _other_params(point: Point) -> list[str]:
    """The point's matrix parameters other than writers and key space, as ``name=value``."""
    return [
        f"{k.split('.')[-1]}={v}" for k, v in sorted(point.params.items()) if k not in MATRIX_AXES
    ]


def store_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per store point: the figures of its commands, appends and projection."""
    import pandas as pd

    rows = []
    chosen = store_points(points)
    # The strategy column only when a target's name does not already say it.
    named = any(strategy(p) != p.target for p in chosen)
    for p in chosen:
        s = p.summary
        store = s["store"]
        n_writers = writers(s)
        n_aggregates = aggregates(s)
        rows.append(
            {
                # Writers and aggregates have their own columns; the rest of the point's name.
                "target": " ".join([p.target, *_other_params(p)]),
                **({"strategy": strategy(p)} if named else {}),
                WRITERS: "-" if n_writers is None else format_count(n_writers),
                AGGREGATES: "-" if n_aggregates is None else format_count(n_aggregates),
                "verdict": verdict_word(s),
                "goodput": format_rate(float(store.get("goodput_per_s") or 0.0)),
                "attempts": format_rate(float(store.get("attempts_per_s") or 0.0)),
                "conflict rate": format_percent(float(store.get("conflict_rate") or 0.0)),
                "retries/cmd": f"{float(store.get('retries_per_command') or 0.0):.2f}",
                "abandoned": format_count(store.get("abandoned") or 0),
                "rejected": format_count(store.get("rejections") or 0),
                "append errors": format_count(store.get("errors") or 0),
                "resp p99": _lat(s, "response", "p99"),
                "projected": format_count(store.get("projected") or 0),
                "proj lag p50": _lat(s, "e2e", "p50"),
                "proj lag p99": _lat(s, "e2e", "p99"),
                "invariants": invariants_text(store),
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty and (frame["projected"] == "0").all():
        # No projector ran (the memory store has none): no projection figures to show.
        frame = frame.drop(columns=["projected", "proj lag p50", "proj lag p99"])
    return frame


LOAD_CAPTION = (
    "Loading an aggregate (reading its events, from its snapshot when there is one, and folding "
    "them) by the length of its stream: p50 / p99 (number of loads). Long streams without "
    "snapshots load slowly."
)


def load_latency_frame(points: Iterable[Point]) -> pd.DataFrame:
    """Aggregate load latency by stream length: one row per point, one column per length."""
    import pandas as pd

    rows = []
    lengths: dict[str, int] = {}
    for p in store_points(points):
        row = {"point": p.label}
        for bucket in p.summary["store"].get("load_latency_by_stream_length") or []:
            length = str(bucket.get("stream_length", "?"))
            lengths.setdefault(length, _low_end(length))
            row[length] = (
                f"{format_latency_us(bucket.get('p50_us'))} / "
                f"{format_latency_us(bucket.get('p99_us'))} "
                f"({format_count(bucket.get('loads') or 0)})"
            )
        if len(row) > 1:
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    order = sorted(lengths, key=lambda length: lengths[length])
    return pd.DataFrame(rows, columns=["point", *order]).fillna("-")


def _low_end(length: str) -> int:
    head = length.split("-")[0].rstrip("+")
    return int(head) if head.isdigit() else 1 << 62


def server_counters_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The server's own counters over each point (PostgreSQL: pg_stat_database, whole
    database), when the store reports them."""
    import pandas as pd

    rows = []
    for p in store_points(points):
        counters = p.summary["store"].get("server_counters")
        if not isinstance(counters, dict) or not counters:
            continue
        rows.append(
            {"point": p.label, **{k: format_count(v) for k, v in counters.items()}},
        )
    return pd.DataFrame(rows).fillna("-")


# --------------------------------------------------------------------------- matrix plot


@dataclass(frozen=True)
class _Cell:
    series: str
    writers: int
    aggregates: int
    goodput_per_s: float
    conflict_rate: float
    result: str


def _cells(points: list[Point]) -> tuple[list[_Cell], int]:
    """The plottable points, and how many were left out because they measured nothing."""
    cells = []
    left_out = 0
    for p in points:
        s = p.summary
        n_writers, n_aggregates = writers(s), aggregates(s)
        if n_writers is None or n_aggregates is None:
            continue
        if not s["store"].get("commands"):
            # No command ran (a worker died at the start): zeros are no measurement. A point
            # that ran but failed (forked streams) stays, ringed by its verdict.
            left_out += 1
            continue
        others = " ".join(
            f"{k.split('.')[-1]}={v}" for k, v in sorted(p.params.items()) if k not in MATRIX_AXES
        )
        name = strategy(p)
        series = name if name == p.target else f"{p.target} ({name})"
        cells.append(
            _Cell(
                f"{series} {others}".strip(),
                n_writers,
                n_aggregates,
                float(s["store"].get("goodput_per_s") or 0.0),
                float(s["store"].get("conflict_rate") or 0.0),
                result_of(s) if s.get("status") == "ok" or result_of(s) == FAIL else "inconclusive",
            )
        )
    return cells, left_out


def _values_axis(ax: Axes, values: list[int]) -> None:
    """A log axis when the values span a decade or more, ticked at the values themselves."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if max(values) >= 8 * min(values) and min(values) > 0:
        ax.set_xscale("log")
        pad = 1.5
        ax.set_xlim(min(values) / pad, max(values) * pad)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def matrix_plot(points: Iterable[Point]) -> Plot | None:
    """Goodput and conflict rate against writers (one panel per key space) or, when only the
    key space varies, against aggregates; one line per strategy. None when neither varies."""
    # Drawing needs matplotlib; the tables above (and the terminal) do not.
    from matplotlib.figure import Figure

    from bench.report.plots import Plot, figure_png

    cells, left_out = _cells(store_points(points))
    all_writers = sorted({c.writers for c in cells})
    all_aggregates = sorted({c.aggregates for c in cells})
    panels: list[int | None] = [None]
    if len(all_writers) >= 2:
        by_writers, panels = True, list(all_aggregates)
    elif len(all_aggregates) >= 2:
        by_writers = False
    else:
        return None

    def x_of(c: _Cell) -> int:
        return c.writers if by_writers else c.aggregates

    series = list(dict.fromkeys(c.series for c in cells))
    colours = {name: f"C{i % 10}" for i, name in enumerate(series)}
    fig = Figure(figsize=(min(4.2 * len(panels), 14) + 1.5, 6.6))
    axes = fig.subplots(2, len(panels), sharey="row", squeeze=False)
    rings = {FAIL: False, "other": False}
    for column, key_space in enumerate(panels):
        ax_good, ax_conf = axes[0, column], axes[1, column]
        for name in series:
            line = sorted(
                (
                    c
                    for c in cells
                    if c.series == name and (key_space is None or c.aggregates == key_space)
                ),
                key=x_of,
            )
            xs = [x_of(c) for c in line]
            for ax, ys in (
                (ax_good, [c.goodput_per_s for c in line]),
                (ax_conf, [100 * c.conflict_rate for c in line]),
            ):
                ax.plot(xs, ys, color=colours[name], linewidth=1.5, marker="o", markersize=4)
                for x, y, c in zip(xs, ys, line, strict=True):
                    if c.result == PASS:
                        continue
                    kind = FAIL if c.result == FAIL else "other"
                    rings[kind] = True
                    ax.plot([x], [y], linestyle="", **_RING[kind])
        for ax in (ax_good, ax_conf):
            _values_axis(ax, all_writers if by_writers else all_aggregates)
            ax.grid(True, alpha=0.3)
        if key_space is not None:
            ax_good.set_title(f"{key_space:,} aggregates", fontsize=10)
        ax_conf.set_xlabel(
            "writers (commands in flight)" if by_writers else "aggregates (key space)"
        )
    # Shared rows: the limits must hold every panel's data, not the first panel's.
    top_goodput = max((c.goodput_per_s for c in cells), default=0.0)
    top_conflict = max((100 * c.conflict_rate for c in cells), default=0.0)
    axes[0, 0].set_ylim(0, max(top_goodput, 1.0) * 1.08)
    axes[1, 0].set_ylim(0, min(100.0, max(top_conflict, 1.0) * 1.08))
    axes[0, 0].set_ylabel("goodput (commits/s)")
    axes[1, 0].set_ylabel("conflict rate (% of appends)")
    handles = [
        axes[0, 0].plot([], [], color=colours[name], marker="o", label=name)[0] for name in series
    ]
    for kind, label in ((FAIL, "verdict FAIL"), ("other", "verdict inconclusive")):
        if rings[kind]:
            handles.append(axes[0, 0].plot([], [], linestyle="", label=label, **_RING[kind])[0])
    fig.suptitle(
        "Goodput and conflict rate against "
        + ("writers, one panel per key space" if by_writers else "the key space")
        + ", one line per strategy"
    )
    fig.tight_layout(rect=(0, 0.04 * math.ceil(len(handles) / 4) + 0.02, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    caption = (
        "Each point of the matrix: goodput (commits per second in the measurement window) and "
        "conflict rate (conflicts per append attempt) "
        + (
            "against the writers (commands in flight at once), one panel per key space "
            "(workload.aggregates); few aggregates and many writers is high contention."
            if by_writers
            else "against the key space (workload.aggregates)."
        )
        + " A red ring marks a point whose verdict failed, an orange one a point whose verdict "
        "was inconclusive; the verdict table says why."
    )
    if left_out:
        caption += (
            f" {format_count(left_out)} point(s) ran no command (they did not start) and are "
            "left out."
        )
    return Plot(
        "store-matrix",
        "Event store: goodput and conflicts across the matrix",
        caption,
        figure_png(fig),
    )


_RING: dict[str, dict[str, Any]] = {
    FAIL: {"marker": "o", "markersize": 11, "fillstyle": "none", "color": "red"},
    "other": {"marker": "o", "markersize": 11, "fillstyle": "none", "color": "orange"},
}
