"""The fan-out part of a report (``workload.subscriptions`` > 1, issue 20): each
subscription's own delivery audit, so a loss in one consumer group is never hidden by the
others. summary.json keeps them under ``audit.subscriptions``; the point's audit is their sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_count

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Each subscription (consumer group) of a fan-out point, audited on its own against every "
    "acknowledged message: received (distinct), lost (acknowledged, never received by this "
    "subscription), duplicated and reordered. The point's audit is their sum."
)
COLUMNS = ("point", "subscription", "received", "lost", "duplicated", "reordered")


def subscription_rows(summary: dict[str, Any], label: str) -> list[dict[str, str]]:
    """One row per subscription of a point (none for a point with one)."""
    subs = (summary.get("audit") or {}).get("subscriptions") or []
    return [
        {
            "point": label,
            "subscription": str(index),
            "received": format_count(int(sub.get("received") or 0)),
            "lost": format_count(int(sub.get("lost") or 0)),
            "duplicated": format_count(int(sub.get("duplicated") or 0)),
            "reordered": format_count(int(sub.get("reordered") or 0)),
        }
        for index, sub in enumerate(subs)
    ]


def subscriptions_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The report's table; empty when no point fanned out."""
    import pandas as pd

    rows = [row for p in points for row in subscription_rows(p.summary, p.label)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
