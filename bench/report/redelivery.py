"""The redelivery part of a report (issue 18's duplicate-processing failure): consumers killed
before they committed what they processed get it again, and what that does to a read model.

One row per stream point that killed or restarted its consumers, or applied what they received
(``workload.apply``): what the killed consumers owed (processed, not committed), how much of it
came again (redelivered) and the broker's own duplicates apart; what the read model did (naive
consumers apply a redelivery twice, guarded ones skip it); and the guard's cost: the apply
latency (receipt handled to read model updated, guard included), the apply-bound ceiling
(1 / mean apply time: what one consumer process could apply if it did nothing else) and the
received rate. Where a target has both a naive and a guarded point, ``guard cost`` is the
guarded point's mean apply time minus the naive one's.

Every figure comes from ``summary["audit"]``, ``summary["apply"]`` and
``summary["latency_us"]["apply"]``; the terminal's columns show the same counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_count, format_latency_us, format_rate

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Owed are the messages the killed consumers had processed and not committed or "
    "acknowledged; redelivered, those of them received again after the restart (part of the "
    "audit's duplicated); broker duplicates, the duplicated deliveries that were not owed. "
    "A naive read model applies every delivery, so a redelivery is applied twice; a guarded "
    "one checks a processed-events set of event ids first and skips it. Apply p50/p99/mean "
    "time every delivery's pass through the read model (a skip included); the ceiling is "
    "1 / mean apply time, what one consumer process could apply if it did nothing else; "
    "guard cost is the mean apply time a guarded point adds over the same target's naive "
    "point."
)


def redelivery_points(points: Iterable[Point]) -> list[Point]:
    """Stream points that faulted their consumers or applied what they received."""
    return [
        p
        for p in points
        if p.summary.get("kind") == "stream"
        and (
            p.summary.get("apply") or (p.summary.get("audit") or {}).get("redelivered") is not None
        )
    ]


def _apply_stat(summary: dict[str, Any], stat: str) -> float | None:
    value = ((summary.get("latency_us") or {}).get("apply") or {}).get(stat)
    return float(value) if isinstance(value, int | float) else None


def _count(value: Any) -> str:
    return format_count(int(value)) if isinstance(value, int | float) else "-"


def redelivery_frame(points: Iterable[Point]) -> pd.DataFrame:
    import pandas as pd

    from bench.report.verdicts import verdict_word

    chosen = redelivery_points(points)
    naive_mean: dict[str, float] = {}
    for p in chosen:
        if (p.summary.get("apply") or {}).get("mode") == "naive":
            mean = _apply_stat(p.summary, "mean")
            if mean is not None:
                naive_mean.setdefault(p.target, mean)
    rows = []
    for p in chosen:
        s = p.summary
        audit = s.get("audit") or {}
        apply = s.get("apply") or {}
        mean = _apply_stat(s, "mean")
        cost = "-"
        if apply.get("mode") == "guarded" and mean is not None and p.target in naive_mean:
            cost = f"{mean - naive_mean[p.target]:+.2f}us"
        rows.append(
            {
                "point": p.label,
                "read model": str(apply.get("mode") or "none"),
                "verdict": verdict_word(s),
                "owed": _count(audit.get("redelivery_owed")),
                "redelivered": _count(audit.get("redelivered")),
                "broker duplicates": _count(audit.get("broker_duplicates")),
                "applied": _count(apply.get("applied")),
                "applied twice": _count(apply.get("duplicates_applied")),
                "skipped by the guard": _count(apply.get("duplicates_skipped")),
                "apply p50": format_latency_us(_apply_stat(s, "p50")),
                "apply p99": format_latency_us(_apply_stat(s, "p99")),
                "apply mean": format_latency_us(mean),
                "ceiling": format_rate(1e6 / mean) if mean else "-",
                "guard cost": cost,
                "recv/s": format_rate(
                    float((s.get("throughput") or {}).get("received_per_s") or 0)
                ),
            }
        )
    return pd.DataFrame(rows)
