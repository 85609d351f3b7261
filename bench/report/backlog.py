"""The backlog part of a report (``workload.backlog``, issue 20): how long the producers took
to build the backlog, what was owed when the consumers were resumed, how long they took to
start and to drain it, how fast they read meanwhile, and the catch-up e2e latency.

Every figure comes from ``summary["backlog"]`` (bench/engine/backlog.py) and
``summary["latency_us"]["catchup"]``; the terminal, HTML and Markdown show these same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import (
    format_bytes,
    format_count,
    format_latency_us,
    format_rate,
    format_seconds,
)

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Consumers held back while the producers built the backlog, then resumed while the "
    "producers kept sending. Built in: from the load's start until the backlog was "
    "acknowledged. Owed at resume: acknowledged, not yet received (every subscription), when "
    "the consumers were resumed. Consumers started: the slowest worker's, from its resume to "
    "its consumers' start. Drain: from the resume until what was owed fell to the drained "
    "threshold; read/s counts deliveries in it (to the 50 ms of the live counts). Catch-up "
    "e2e: messages intended before the resume."
)
COLUMNS = (
    "point",
    "backlog",
    "built in",
    "owed at resume",
    "consumers started",
    "drain",
    "drain read/s",
    "catch-up e2e p50",
    "catch-up e2e p99",
)


def has_backlog(summary: dict[str, Any]) -> bool:
    return bool(summary.get("backlog"))


def backlog_row(summary: dict[str, Any], label: str) -> dict[str, str]:
    """A backlog point's row (``has_backlog``)."""
    b = summary.get("backlog") or {}
    catchup = (summary.get("latency_us") or {}).get("catchup") or {}
    built_s = b.get("built_s")
    started_ms = b.get("consumers_started_ms")
    owed = b.get("owed_at_resume")
    return {
        "point": label,
        "backlog": (
            f"{format_bytes(b.get('backlog_bytes'))} "
            f"({format_count(int(b.get('backlog_messages') or 0))} messages)"
        ),
        "built in": format_seconds(built_s) if b.get("built") else "not built",
        "owed at resume": format_count(int(owed)) if owed is not None else "-",
        "consumers started": format_seconds(started_ms / 1e3) if started_ms is not None else "-",
        "drain": format_seconds(b.get("drain_s")) if b.get("drained") else "not drained",
        "drain read/s": format_rate(b.get("drain_read_per_s")),
        "catch-up e2e p50": format_latency_us(catchup.get("p50")),
        "catch-up e2e p99": format_latency_us(catchup.get("p99")),
    }


def backlog_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The report's table; empty when no point had a backlog."""
    import pandas as pd

    rows = [backlog_row(p.summary, p.label) for p in points if has_backlog(p.summary)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
