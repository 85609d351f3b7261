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
    "Messages per saga counts every command, reply and dead letter published: the saga's "
    "amplification on the broker. Retries and timeouts are of step commands whose reply did "
    "not come within saga.timeout."
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
        "invariants": "held"
        if invariants.get("ok")
        else (violations[0] if violations else "stuck"),
    }


def saga_frame(points: Iterable[Point]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([saga_row(p.summary, p.label) for p in saga_points(points)])
