"""The saga part of a report (``workload.kind = "saga"``, issue 19): how long a saga takes,
how it ends, and whether anything was left half-done.

One row per saga point: mode and the failure knobs (the point's label); sagas/s and messages
per saga (the amplification on the broker); the final states of the sagas intended in the
measurement window (completed, compensated, failed and dead-lettered) and the stuck ones over
the run; saga latency p50/p99 (intended start -> final state) overall and per final state; the
compensation latency; retries and timeouts; and the invariants. The terminal's saga table
shows the same rows (``bench.report.terminal.saga_table``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_count, format_latency_us, format_rate

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Saga latency runs from a saga's intended start (its open-loop schedule) to its final "
    "state; compensation latency from COMPENSATING to the final state. The final states count "
    "the sagas intended in the measurement window; stuck counts every saga of the run not "
    "final within stuck_after of the load's end. Failed sagas are those whose compensation "
    "failed: each goes to the dead-letter topic, and dead letters received must equal them. "
    "Messages per saga counts every message published (orchestration: commands, replies and "
    "dead letters; choreography: events, outcomes and dead letters): the saga's amplification "
    "on the broker. Retries and timeouts are of step commands whose reply did not come within "
    "saga.timeout (orchestration only). Latencies cover the sagas intended in the measurement "
    "window; messages, retries and timeouts count the whole run, its warm-up included."
)


def saga_points(points: Iterable[Point]) -> list[Point]:
    return [p for p in points if p.summary.get("kind") == "saga" and p.summary.get("saga")]


def _lat(summary: dict[str, Any], kind: str, stat: str) -> str:
    return format_latency_us(((summary.get("latency_us") or {}).get(kind) or {}).get(stat))


def saga_row(summary: dict[str, Any], label: str) -> dict[str, str]:
    """One saga point's figures, formatted (the report's and the terminal's row)."""
    from bench.report.verdicts import verdict_word

    saga = summary.get("saga") or {}
    measured = saga.get("measured") or {}
    final = measured.get("final") or {}
    invariants = saga.get("invariants") or {}
    violations = invariants.get("violations") or []
    return {
        "point": label,
        "mode": str(saga.get("mode") or "-"),
        "verdict": verdict_word(summary),
        "sagas/s": format_rate(float(saga.get("sagas_per_s") or 0.0)),
        "msgs/saga": f"{float(saga.get('messages_per_saga') or 0.0):.2f}",
        "completed": format_count(int(final.get("COMPLETED") or 0)),
        "compensated": format_count(int(final.get("COMPENSATED") or 0)),
        "failed (DLQ)": format_count(int(final.get("FAILED") or 0)),
        "stuck": format_count(int(saga.get("stuck") or 0)),
        "saga p50": _lat(summary, "saga", "p50"),
        "saga p99": _lat(summary, "saga", "p99"),
        "completed p99": _lat(summary, "saga_completed", "p99"),
        "compensated p99": _lat(summary, "saga_compensated", "p99"),
        "compensation p99": _lat(summary, "compensation", "p99"),
        "retries": format_count(sum(int(v) for v in (saga.get("retries") or {}).values())),
        "timeouts": format_count(sum(int(v) for v in (saga.get("timeouts") or {}).values())),
        "invariants": (
            "held"
            if invariants.get("ok")
            else violations[0]
            if violations
            else "not judged: interrupted"
            if invariants.get("ok") is None
            else "stuck"
        ),
    }


def saga_frame(points: Iterable[Point]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([saga_row(p.summary, p.label) for p in saga_points(points)])


# --------------------------------------------------------------------------- faults

FAULTS_CAPTION = (
    "Each scheduled fault on the saga timeline. Sagas caught: those in flight at any moment "
    "from the fault's start until its target answered again (or intended in that time); their "
    "final states, the stuck among them, and their p99 next to the p99 of the measured sagas "
    "no fault caught. Timeouts and retries are the step commands' in the fault's span (to the "
    "next fault, or the end). No final for: the longest stretch from the fault's start in "
    "which no saga reached a final state through the broker; recovery: from the fault's start "
    "until sagas reached their final states through the broker (a reply or an outcome event, "
    "not a timer dead-lettering a saga whose compensation timed out) at 90% of the start rate "
    "again, within the load ('not recovered' fails the point). Errors: every error counted in "
    "the fault's span (those before the first fault on a 'no fault' row)."
)
FAULT_COLUMNS = (
    "point",
    "fault",
    "status",
    "sagas caught",
    "completed",
    "compensated",
    "failed (DLQ)",
    "stuck",
    "caught p99",
    "outside p99",
    "timeouts",
    "retries",
    "no final for",
    "recovery",
    "errors",
    "detail",
)


def saga_fault_rows(summary: dict[str, Any], label: str, source: str) -> list[dict[str, str]]:
    """One saga point's faults, formatted (the report's and the terminal's rows), with a "no
    fault" row first when errors came before the first fault."""
    from bench.report.faults import DONE, NOT_RECOVERED, faults_of

    raws = summary.get("faults") or []
    parsed = faults_of(summary, source)
    outside = _lat(summary, "saga_outside_faults", "p99")
    rows = []
    before = parsed[0].errors_before if parsed else None
    if before:
        rows.append(
            {name: "-" for name in FAULT_COLUMNS}
            | {"point": label, "fault": "no fault", "errors": format_count(before)}
        )
    for fault, raw in zip(parsed, raws, strict=True):
        sagas = raw.get("sagas") or {}
        final = sagas.get("final") or {}

        def count(value: Any) -> str:
            return "-" if value is None else format_count(int(value))

        def duration(value: Any) -> str:
            return "-" if value is None else format_latency_us(float(value) * 1e6)

        recovery = duration(fault.recovery_s)
        if fault.recovery_s is None and fault.status == DONE:
            recovery = NOT_RECOVERED
        caught_p99 = (sagas.get("latency_us") or {}).get("p99")
        rows.append(
            {
                "point": label,
                "fault": fault.describe(),
                "status": fault.status,
                "sagas caught": count(sagas.get("caught")),
                "completed": count(final.get("COMPLETED") if sagas else None),
                "compensated": count(final.get("COMPENSATED") if sagas else None),
                "failed (DLQ)": count(final.get("FAILED") if sagas else None),
                "stuck": count(sagas.get("stuck")),
                "caught p99": format_latency_us(caught_p99),
                "outside p99": outside,
                "timeouts": count(sagas.get("timeouts")),
                "retries": count(sagas.get("retries")),
                "no final for": duration(raw.get("final_outage_s")),
                "recovery": recovery,
                "errors": count(fault.errors),
                "detail": fault.detail or "-",
            }
        )
    return rows


def saga_faults_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The saga faults table of a report; empty when no saga point had a fault."""
    import pandas as pd

    from bench.store import SUMMARY

    rows = [
        row
        for p in saga_points(points)
        for row in saga_fault_rows(p.summary, p.label, str(p.dir / SUMMARY))
    ]
    return pd.DataFrame(rows, columns=list(FAULT_COLUMNS))


# --------------------------------------------------------------------------- plots

LATENCY_PLOT = "saga-latency-vs-failure"
STATES_PLOT = "saga-final-states"
SECTION_PLOTS = (LATENCY_PLOT, STATES_PLOT)
STATE_COLOURS = {
    "COMPLETED": "tab:green",
    "COMPENSATED": "tab:orange",
    "FAILED": "tab:red",
    "stuck": "tab:gray",
}


def failure_rate(summary: dict[str, Any]) -> float:
    """The point's step failure probability: the sum of ``saga.failure`` over the steps."""
    failure = (summary.get("workload") or {}).get("failure") or {}
    return float(sum(float(v) for v in failure.values()))


FAILURE_PARAM = "workload.saga.failure"


def _curve_name(point: Point) -> str:
    """A latency curve's name: the target and every swept parameter other than the failure
    knobs and the mode (points differing in anything else are never joined by a line)."""
    others = " ".join(
        f"{key.split('.')[-1]}={value}"
        for key, value in sorted(point.params.items())
        if not key.startswith(FAILURE_PARAM) and key != "workload.saga.mode"
    )
    return f"{point.target} {others}".strip()


def latency_vs_failure_plot(points: Iterable[Point]) -> Any:
    """Saga latency p50 (dashed) and p99 (solid) against the failure rate: a panel per saga
    mode, one curve per target (and per any other swept parameter), when the run swept the
    rate (two rates or more on a curve). The swept rates sit evenly spaced (0%, 1%, 10%)."""
    from matplotlib.figure import Figure

    from bench.report.plots import Plot, figure_png, p50_p99_lines

    panels: dict[str, dict[str, list[tuple[float, dict[str, Any]]]]] = {}
    for p in saga_points(points):
        stats = (p.summary.get("latency_us") or {}).get("saga") or {}
        if stats.get("count"):
            mode = str((p.summary.get("saga") or {}).get("mode") or "?")
            curves = panels.setdefault(mode, {})
            curves.setdefault(_curve_name(p), []).append((failure_rate(p.summary), stats))
    swept = {
        mode: curves
        for mode, curves in panels.items()
        if any(len({rate for rate, _ in rows}) >= 2 for rows in curves.values())
    }
    if not swept:
        return None
    rates = sorted(
        {rate for curves in swept.values() for rows in curves.values() for rate, _ in rows}
    )
    position = {rate: i for i, rate in enumerate(rates)}
    fig = Figure(figsize=(9 if len(swept) == 1 else 12, 6.4), layout="constrained")
    axes = fig.subplots(1, len(swept), sharey=True, squeeze=False)[0]
    for ax, (mode, curves) in zip(axes, sorted(swept.items()), strict=True):
        for name, rows in sorted(curves.items()):
            rows.sort(key=lambda row: row[0])
            p50_p99_lines(ax, name, [position[rate] for rate, _ in rows], [s for _, s in rows])
        ax.set_xticks(range(len(rates)), [f"{100 * rate:g}%" for rate in rates])
        ax.set_xlabel("step failure probability")
        ax.set_title(mode)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        # Below the panel: over it, the legend hid the curves it names.
        ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    axes[0].set_ylabel("saga latency (ms, log)")
    fig.suptitle("Saga latency (intended start -> final state) against the failure rate")
    return Plot(
        LATENCY_PLOT,
        "Saga latency against the failure rate",
        "p99 (solid) and p50 (dashed) saga latency of the sagas intended in the measurement "
        "window, a panel per saga mode and a curve per broker, at each swept failure "
        "probability (evenly spaced, not to scale).",
        figure_png(fig),
        {
            p.label: int(((p.summary.get("latency_us") or {}).get("saga") or {}).get("count") or 0)
            for p in saga_points(points)
        },
    )


def final_states_plot(points: Iterable[Point]) -> Any:
    """How the window's sagas ended, per point, as a stacked bar of shares."""
    from matplotlib.figure import Figure

    from bench.report.plots import Plot, figure_png

    chosen = saga_points(points)
    if not chosen:
        return None
    fig = Figure(figsize=(9, 0.5 + 0.45 * len(chosen)))
    ax = fig.add_subplot()
    labels = [p.label for p in chosen]
    left = [0.0] * len(chosen)
    for state, colour in STATE_COLOURS.items():
        shares = []
        for p in chosen:
            saga = p.summary.get("saga") or {}
            measured = saga.get("measured") or {}
            total = int(measured.get("sagas") or 0)
            count = (
                total - sum(int(v) for v in (measured.get("final") or {}).values())
                if state == "stuck"
                else int((measured.get("final") or {}).get(state) or 0)
            )
            shares.append(100.0 * count / total if total else 0.0)
        ax.barh(labels, shares, left=left, color=colour, label=state.lower())
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the sagas intended in the measurement window (%)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return Plot(
        STATES_PLOT,
        "How the sagas ended",
        "Completed, compensated, failed (dead-lettered) and not final (stuck) sagas, as shares "
        "of those intended in the measurement window, per point.",
        figure_png(fig),
        {
            p.label: int(((p.summary.get("saga") or {}).get("measured") or {}).get("sagas") or 0)
            for p in chosen
        },
    )
