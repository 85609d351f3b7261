"""The many-topics part of a report (``workload.topics`` > 1, issue 20): how the point's
clients spread over its topics, and how long the coordinator took to create and remove them.
summary.json keeps the figures under ``topology``; the audit covers every topic at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_count, format_duration

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Points with several topics: producers and consumers are totals spread evenly over the "
    "topics (per topic: producers, and consumers in each subscription). Created and removed: "
    "the time the coordinator took to create every topic before the load and remove them "
    "after it (not timed for an in-process target, whose topics live in each worker)."
)
COLUMNS = (
    "point",
    "topics",
    "partitions/topic",
    "producers/topic",
    "consumers/topic",
    "subscriptions",
    "created in",
    "removed in",
)


def _seconds(value: Any) -> str:
    return "-" if value is None else format_duration(float(value))


def topic_rows(summary: dict[str, Any], label: str) -> list[dict[str, str]]:
    """One row for a point with several topics (none for a point with one)."""
    topology = summary.get("topology") or {}
    workload = summary.get("workload") or {}
    topics = int(topology.get("topics") or 1)
    if topics <= 1:
        return []
    return [
        {
            "point": label,
            "topics": format_count(topics),
            "partitions/topic": format_count(int(topology.get("partitions") or 0)),
            "producers/topic": format_count(int(workload.get("producers") or 0) // topics),
            "consumers/topic": format_count(int(workload.get("consumers") or 0) // topics),
            "subscriptions": format_count(int(topology.get("subscriptions") or 1)),
            "created in": _seconds(topology.get("create_s")),
            "removed in": _seconds(topology.get("remove_s")),
        }
    ]


def topics_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The report's table; empty when no point had several topics."""
    import pandas as pd

    rows = [row for p in points for row in topic_rows(p.summary, p.label)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
