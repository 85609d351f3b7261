"""The replay part of a report (``workload.kind = "replay"``, issue 18's schema evolution):
what keeping old events readable costs, per reader.

One row per replay point: the reader; what was seeded (events, and the share written by an
older schema); the seed rate; what the reader read (events/s over the replay, the load latency
of one stream, p50/p99) and what upcasting cost per upcast event; for a migration
(``upcast_and_rewrite``) the events rewritten, its rate (events scanned per second) and the
streams whose fold changed (must be 0); and for the strict reader, the event it stopped at and
the events left unread. The terminal's replay table shows the same rows
(``bench.report.terminal.replay_table``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_count, format_latency_us, format_percent, format_rate

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "Old events are those written by an older release of the schema (OrderPlaced v1 or v2, "
    "OrderItemAdded v1), as a share of every event seeded. Replay is every stream loaded and "
    "folded into the current (v3) order view, in stream order; load is one stream's read, "
    "upcast and fold. Upcast is the upcasters' own time per upcast event. A migration "
    "(upcast_and_rewrite) upcasts every stream once and stores its old events back as the "
    "current version, then the strict reader replays the migrated store: meaning changed "
    "counts streams whose fold after the rewrite differs from the fold before. The strict "
    "reader stops at the first old event, as a projection that meets an event it cannot "
    "read does."
)


def replay_points(points: Iterable[Point]) -> list[Point]:
    return [p for p in points if is_replay(p.summary)]


def is_replay(summary: dict[str, Any]) -> bool:
    return summary.get("kind") == "replay"


def _count(value: Any) -> str:
    return format_count(int(value)) if isinstance(value, int | float) else "-"


def stopped_text(read: dict[str, Any]) -> str:
    first = read.get("first_unreadable")
    if not first:
        return "-"
    return (
        f"{first['event_type']} v{first['schema_version']} at event "
        f"{format_count(int(first['position']))} ({first['aggregate_id']} v{first['version']})"
    )


def replay_row(summary: dict[str, Any], label: str) -> dict[str, str]:
    """One point's replay figures, formatted (the report's and the terminal's row)."""
    from bench.report.verdicts import verdict_word

    replay = summary.get("replay") or {}
    read = replay.get("replay") or {}
    migration = replay.get("migration") or {}
    load = (summary.get("latency_us") or {}).get("load") or {}
    upcast_ns = read.get("upcast_ns_per_event") or migration.get("upcast_ns_per_event")
    return {
        "point": label,
        "reader": str(replay.get("reader") or "-"),
        "verdict": verdict_word(summary),
        "events": _count(replay.get("events")),
        "old": (
            format_percent(float(replay["old_fraction"]))
            if isinstance(replay.get("old_fraction"), int | float)
            else "-"
        ),
        "seed/s": format_rate(float(replay.get("seed_events_per_s") or 0.0)),
        "replay/s": format_rate(float(read.get("events_per_s") or 0.0)) if read else "-",
        "load p50": format_latency_us(load.get("p50")),
        "load p99": format_latency_us(load.get("p99")),
        "upcast/event": format_latency_us(upcast_ns / 1e3) if upcast_ns else "-",
        "rewritten": _count(migration.get("rewritten")) if migration else "-",
        "migration/s": (
            format_rate(float(migration.get("events_per_s") or 0.0)) if migration else "-"
        ),
        "meaning changed": _count(replay.get("meaning_changed")),
        "stopped at": stopped_text(read),
        "unread": _count(read.get("unread")),
    }


def replay_frame(points: Iterable[Point]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([replay_row(p.summary, p.label) for p in replay_points(points)])
