"""The fault-injection part of a report: what each scheduled fault did to the load.

A point's ``summary.json`` lists its faults under ``"faults"`` (empty or absent when the scenario
scheduled none). Times ending in ``at_s`` count from the load's start, the t=0 of
``timeseries.csv`` (warm-up included); the other durations count from the fault's own start.
Any measured value may be null: a fault that was never reached measured nothing, and one whose
target never answered again has no recovery time.

This module parses those entries into ``Fault`` records, builds the Faults table (report, terminal),
names what a reader must not miss (a fault that failed, was not reached, or never recovered), and
marks the faults on a time axis.

The table's errors are the summary's fault rows, nothing recomputed: each fault holds the errors
the run counted from its start until the next fault's, and a "no fault" row holds those before
the first fault, so the column adds up to the run's ``errors.total`` (a warning says when an
older summary's rows do not).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import ResultsError
from bench.metrics.audit import SEGMENT_FIELDS
from bench.report.tables import Point, point_label
from bench.store import SUMMARY
from bench.units import format_duration, format_latency_us

# pandas is the report extra: it is imported where a frame is built, so the terminal
# tables (bench run, bench show) work on a core install.
if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

ACTIONS = ("kill", "restart", "pause", "disconnect")
DONE = "done"
NOT_REACHED = "not reached"
FAILED = "failed"
NOT_RECOVERED = "not recovered"
FAULT_COLUMNS = (
    "point",
    "fault",
    "status",
    "first error",
    "producer outage",
    "consumer outage",
    "recovery",
    "errors",
    "lost",
    "duplicated",
    "reordered",
    "unacked lost",
    "unacked received",
    "detail",
)
NO_FAULT = "no fault"
CAPTION = (
    "Each scheduled fault: first error, outages and recovery count from the fault's start; "
    "errors are every error the run counted from the fault's start until the next fault's "
    "(the last: to the run's end), with those before the first fault on a 'no fault' row; "
    "the event counts cover the fault's audit window."
)


@dataclass(frozen=True)
class FaultAudit:
    """The exact audit of the events sent in a window around one fault."""

    from_s: float | None = None
    to_s: float | None = None
    sent: int | None = None
    acked: int | None = None
    failed: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    reordered: int | None = None
    unacked_lost: int | None = None
    unacked_received: int | None = None


@dataclass(frozen=True)
class Fault:
    """One fault of one point, as the runner recorded it (seconds; None: not measured)."""

    index: int
    action: str
    status: str
    at_s: float | None = None
    down_for_s: float | None = None
    service: str | None = None
    endpoint: str | None = None
    detail: str = ""
    started_at_s: float | None = None
    down_at_s: float | None = None
    restored_at_s: float | None = None
    answering_at_s: float | None = None
    time_to_first_error_s: float | None = None
    producer_outage_s: float | None = None
    consumer_outage_s: float | None = None
    consumers_resumed: bool | None = None
    recovery_s: float | None = None
    errors: int | None = None
    audit: FaultAudit | None = None
    # Which errors ``errors`` holds ("all", or "failed sends" in older results; None: older
    # still), what kind the first one was, and the errors before this fault that belong to
    # no fault (only the first fault has any).
    errors_counted: str | None = None
    first_error_kind: str | None = None
    errors_by_kind: dict[str, int] | None = None
    errors_before: int | None = None

    def describe(self) -> str:
        """What was scheduled, as a scenario would say it: ``kill 5s at 20s``."""
        parts = [self.action]
        if self.down_for_s:
            parts.append(_seconds(self.down_for_s))
        if self.at_s is not None:
            parts.append(f"at {_seconds(self.at_s)}")
        return " ".join(parts)

    def span(self) -> tuple[float, float | None] | None:
        """(start, end) on the load's time axis; end None when there is no interval to shade
        (a disconnect, a failed action, no end known). None when the fault never ran."""
        if self.status == NOT_REACHED:
            return None
        start = self.started_at_s if self.started_at_s is not None else self.at_s
        if start is None:
            return None
        if self.action == "disconnect" or self.status == FAILED:
            return start, None
        end = self.answering_at_s
        if end is None:
            end = self.restored_at_s
        if end is None and self.down_for_s:
            end = start + self.down_for_s
        return start, end if end is not None and end > start else None


def _seconds(value: float) -> str:
    """``20s``, ``2.5s``, ``500ms``: a scenario's spelling, without ``2500ms`` for 2.5 s."""
    text = format_duration(value)
    return f"{value:g}s" if value >= 1 and text.endswith("ms") else text


# --------------------------------------------------------------------------- parsing


def _number(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{where}.{key}: expected a number or null, got {value!r}")
    return float(value)


def _count(raw: dict[str, Any], key: str, where: str) -> int | None:
    value = _number(raw, key, where)
    if value is None:
        return None
    if not value.is_integer():
        raise ResultsError(f"{where}.{key}: expected a count, got {raw[key]!r}")
    return int(value)


def _text(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ResultsError(f"{where}.{key}: expected a string or null, got {value!r}")


def _audit(raw: Any, where: str) -> FaultAudit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ResultsError(f"{where}: expected an object or null, got {raw!r}")
    return FaultAudit(
        from_s=_number(raw, "from_s", where),
        to_s=_number(raw, "to_s", where),
        **{key: _count(raw, key, where) for key in SEGMENT_FIELDS},
    )


def _kinds(raw: dict[str, Any], key: str, where: str) -> dict[str, int] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ResultsError(f"{where}.{key}: expected an object or null, got {value!r}")
    return {str(kind): _count(value, kind, f"{where}.{key}") or 0 for kind in value}


def faults_of(summary: dict[str, Any], source: str = SUMMARY) -> list[Fault]:
    """The faults of one point's summary, in their order; [] when it has none.

    ``source`` names the file in errors: a malformed entry is a ``ResultsError`` naming the field
    (``.../summary.json: faults[1].recovery_s: expected a number or null, got 'x'``).
    """
    raw = summary.get("faults")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ResultsError(f"{source}: faults: expected a list, got {type(raw).__name__}")
    faults = []
    for position, entry in enumerate(raw):
        where = f"{source}: faults[{position}]"
        if not isinstance(entry, dict):
            raise ResultsError(f"{where}: expected an object, got {entry!r}")
        index = _count(entry, "index", where)
        faults.append(
            Fault(
                index=position if index is None else index,
                action=_text(entry, "action", where) or "?",
                status=_text(entry, "status", where) or "?",
                at_s=_number(entry, "at_s", where),
                down_for_s=_number(entry, "down_for_s", where),
                service=_text(entry, "service", where),
                endpoint=_text(entry, "endpoint", where),
                detail=_text(entry, "detail", where) or "",
                started_at_s=_number(entry, "started_at_s", where),
                down_at_s=_number(entry, "down_at_s", where),
                restored_at_s=_number(entry, "restored_at_s", where),
                answering_at_s=_number(entry, "answering_at_s", where),
                time_to_first_error_s=_number(entry, "time_to_first_error_s", where),
                producer_outage_s=_number(entry, "producer_outage_s", where),
                consumer_outage_s=_number(entry, "consumer_outage_s", where),
                consumers_resumed=(
                    entry.get("consumers_resumed")
                    if isinstance(entry.get("consumers_resumed"), bool)
                    else None
                ),
                recovery_s=_number(entry, "recovery_s", where),
                errors=_count(entry, "errors", where),
                audit=_audit(entry.get("audit"), f"{where}.audit"),
                errors_counted=_text(entry, "errors_counted", where),
                first_error_kind=_text(entry, "first_error_kind", where),
                errors_by_kind=_kinds(entry, "errors_by_kind", where),
                errors_before=_count(entry, "errors_before", where),
            )
        )
    return faults


def point_faults(point: Point) -> list[Fault]:
    """The faults of a loaded point (errors name its ``summary.json``)."""
    return faults_of(point.summary, str(point.dir / SUMMARY))


def _own_table(summary: dict[str, Any]) -> bool:
    """A saga point's faults have a table of their own (``bench.report.saga``): what each did
    to the sagas, not to producers and consumers."""
    return summary.get("kind") == "saga"


def has_faults(points: Iterable[Point]) -> bool:
    """Whether the Faults table has rows (a saga point's faults are in the saga section)."""
    return any(point_faults(p) for p in points if not _own_table(p.summary))


# --------------------------------------------------------------------------- tables


def _duration(value_s: float | None) -> str:
    return format_latency_us(None if value_s is None else value_s * 1e6)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def fault_row(label: str, fault: Fault) -> dict[str, str]:
    """One row of the Faults table (formatted; ``-`` where nothing was measured)."""
    audit = fault.audit or FaultAudit()
    recovery = _duration(fault.recovery_s)
    if fault.recovery_s is None and fault.status == DONE:
        recovery = NOT_RECOVERED
    first_error = _duration(fault.time_to_first_error_s)
    if fault.time_to_first_error_s is not None and fault.first_error_kind:
        first_error = f"{first_error} ({fault.first_error_kind})"
    return dict(
        zip(
            FAULT_COLUMNS,
            (
                label,
                fault.describe(),
                fault.status,
                first_error,
                _duration(fault.producer_outage_s),
                _duration(fault.consumer_outage_s),
                recovery,
                _n(fault.errors),
                _n(audit.lost),
                _n(audit.duplicated),
                _n(audit.reordered),
                _n(audit.unacked_lost),
                _n(audit.unacked_received),
                fault.detail or "-",
            ),
            strict=True,
        )
    )


def no_fault_row(label: str, faults: list[Fault]) -> dict[str, str] | None:
    """The row of the errors before the first fault (None when there were none): with it, the
    errors column adds up to the run's errors."""
    before = faults[0].errors_before if faults else None
    if not before:
        return None
    spans = [span for span in (f.span() for f in faults) if span is not None]
    when = f" (before {_seconds(spans[0][0])})" if spans else ""
    row = dict.fromkeys(FAULT_COLUMNS, "-")
    row.update({"point": label, "fault": f"{NO_FAULT}{when}", "errors": str(before)})
    return row


def point_rows(label: str, faults: list[Fault]) -> list[dict[str, str]]:
    """A point's rows of the Faults table: "no fault" (when it counted errors before the
    first fault), then each fault."""
    before = no_fault_row(label, faults)
    return ([before] if before else []) + [fault_row(label, fault) for fault in faults]


def faults_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per fault of every point, in point order (formatted strings); empty when the
    run injected none."""
    import pandas as pd

    rows = [
        row
        for p in points
        if not _own_table(p.summary)
        for row in point_rows(p.label, point_faults(p))
    ]
    return pd.DataFrame(rows, columns=list(FAULT_COLUMNS))


def fault_rows(summaries: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The Faults table's rows straight from summaries (the terminal has no ``Point``s)."""
    return [
        row
        for s in summaries
        if not _own_table(s)
        for row in point_rows(point_label(s), faults_of(s, f"{s.get('dir', '?')}/{SUMMARY}"))
    ]


def errors_disagreement(summary: dict[str, Any], faults: list[Fault]) -> str | None:
    """How the Faults table's errors differ from the run's ``errors.total``; None when they
    agree (or there is nothing to compare)."""
    if not faults:
        return None
    total = (summary.get("errors") or {}).get("total")
    if not isinstance(total, int):
        return None
    counted = (faults[0].errors_before or 0) + sum(f.errors or 0 for f in faults)
    if counted == total:
        return None
    older = (
        " (these results counted failed sends only)" if faults[0].errors_counted != "all" else ""
    )
    return f"the faults table counts {counted} errors, the run {total}{older}"


def warnings(points: Iterable[Point]) -> list[str]:
    """Faults a reader must not miss: one that failed or was never reached (the point did not
    test what the scenario meant), and one the target never recovered from."""
    found = []
    for p in points:
        disagreement = errors_disagreement(p.summary, point_faults(p))
        if disagreement:
            found.append(f"{p.label}: {disagreement}")
        for fault in point_faults(p):
            name = f"{p.label}: fault {fault.describe()}"
            detail = f" ({fault.detail})" if fault.detail else ""
            if fault.status == FAILED:
                found.append(f"{name} failed{detail}")
            elif fault.status == NOT_REACHED:
                found.append(f"{name} was not reached{detail}")
            elif fault.status == DONE and fault.recovery_s is None:
                found.append(f"{name}: not recovered")
            if fault.status == DONE and fault.consumers_resumed is False:
                found.append(f"{name}: consumers received nothing after it")
    return found


# --------------------------------------------------------------------------- plots


def mark_faults(
    ax: Axes,
    faults: Iterable[Fault],
    *,
    color: str = "tab:red",
    label: bool = True,
    text_y: float = 0.97,
) -> list[Artist]:
    """Mark faults on a time axis (x: seconds since the load's start) and return what was drawn.

    A fault that took the target down is a shaded span from its start until the target
    answered again (else until it was restored, else for its scheduled ``down_for``). A
    disconnect, or a fault without a known end, is a thin line at its start; a failed one a
    dashed line. Faults never reached are not drawn. With ``label``, the action is written at
    the top of the span (``text_y`` in axes fraction, to stagger several points' labels).
    """
    drawn: list[Artist] = []
    for fault in faults:
        span = fault.span()
        if span is None:
            continue
        start, end = span
        if end is None:
            drawn.append(
                ax.axvline(
                    start,
                    color=color,
                    linewidth=1,
                    linestyle="--" if fault.status == FAILED else "-",
                    alpha=0.8,
                )
            )
        else:
            drawn.append(ax.axvspan(start, end, color=color, alpha=0.15, linewidth=0))
        if label:
            text = fault.action if fault.status != FAILED else f"{fault.action} failed"
            drawn.append(
                ax.text(
                    start,
                    text_y,
                    f" {text}",
                    transform=ax.get_xaxis_transform(),
                    color=color,
                    fontsize=7,
                    ha="left",
                    va="top",
                )
            )
    return drawn
