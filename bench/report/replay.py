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
    """Replay points that read the history back (``replay.measure = "replay"``)."""
    return [
        p
        for p in points
        if is_replay(p.summary) and not (p.summary.get("replay") or {}).get("load")
    ]


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
            format_percent(float(replay["old_share"]))
            if isinstance(replay.get("old_share"), int | float)
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


# --------------------------------------------------------------------------- snapshots

SNAPSHOT_CURVE = "snapshot-curve"
SNAPSHOT_CAPTION = (
    "Load is one aggregate read and folded, as a command handler loads it, timed over "
    "`loads` loads round the seeded streams: from the whole stream (no snapshot), or from its "
    "snapshot and the events after it (folded per load), after 50 untimed loads. Every N: the "
    "snapshot a store taking one every N events holds, the streams spread evenly over the "
    "interval (0 to N-1 events after it; none below version N); stale N: one interval older. "
    "The check folds a sample of aggregates, spread over the streams, "
    "through the snapshot and by a full replay, against the history's own fold. Archive moves "
    "every event a snapshot covers to an archive table and loads again; the sizes are the "
    "events tables on disk (PostgreSQL: after VACUUM FULL, indexes included; memory: the "
    "bytes the events hold), and its check folds the archive plus the live table."
)


def load_points(points: Iterable[Point]) -> list[Point]:
    """Replay points that measured aggregate loads (``replay.measure = "load"``)."""
    return [
        p for p in points if is_replay(p.summary) and (p.summary.get("replay") or {}).get("load")
    ]


def _check_text(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    sampled, wrong = int(check.get("sampled") or 0), int(check.get("mismatched") or 0)
    return f"{format_count(sampled - wrong)}/{format_count(sampled)} equal"


def _bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


def snapshot_row(summary: dict[str, Any], label: str) -> dict[str, str]:
    """One load point's figures, formatted (the report's and the terminal's row)."""
    from bench.report.verdicts import verdict_word

    load = (summary.get("replay") or {}).get("load") or {}
    stats = (summary.get("latency_us") or {}).get("load") or {}
    archive = load.get("archive") or {}
    archived = archive.get("load_latency_us") or {}
    return {
        "point": label,
        "snapshots": str(load.get("policy") or "-"),
        "events/stream": _count(load.get("stream_length")),
        "verdict": verdict_word(summary),
        "loads": _count(load.get("loads")),
        "folded/load": f"{float(load.get('events_folded_per_load') or 0):,.1f}",
        "load p50": format_latency_us(stats.get("p50")),
        "load p99": format_latency_us(stats.get("p99")),
        "load max": format_latency_us(stats.get("max")),
        "check": _check_text(load.get("check")),
        "archived": _count(archive.get("moved")) if archive else "-",
        "live size": (
            f"{_bytes(archive.get('live_bytes_before'))} -> "
            f"{_bytes(archive.get('live_bytes_after'))}"
            if archive
            else "-"
        ),
        "archive size": _bytes(archive.get("archive_bytes")) if archive else "-",
        "archived p50": format_latency_us(archived.get("p50")) if archive else "-",
        "archived p99": format_latency_us(archived.get("p99")) if archive else "-",
        "archive check": _check_text(archive.get("check")) if archive else "-",
    }


def snapshots_frame(points: Iterable[Point]) -> pd.DataFrame:
    import pandas as pd

    def order(p: Point) -> tuple[str, int, int, int]:
        # By target, then none, every 50, every 100, stale 100, then by stream length.
        load = (p.summary.get("replay") or {}).get("load") or {}
        return (
            p.target,
            int(load.get("intervals_behind") or 0),
            int(load.get("interval") or 0),
            int(load.get("stream_length") or 0),
        )

    chosen = sorted(load_points(points), key=order)
    return pd.DataFrame([snapshot_row(p.summary, p.label) for p in chosen])


def snapshot_curve_plot(points: Iterable[Point]) -> Any:
    """Load latency against stream length, one line per target and snapshot policy (p99
    solid, p50 dashed), when the run measured loads at two lengths or more: the curve that
    says when a stream needs snapshots."""
    from matplotlib.figure import Figure

    from bench.report.plots import Plot, _plain, _plain_2_5, figure_png, p50_p99_lines

    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for p in load_points(points):
        load = p.summary["replay"]["load"]
        stats = (p.summary.get("latency_us") or {}).get("load") or {}
        if not stats.get("count"):
            continue
        name = f"{p.target} {load.get('policy')}"
        groups.setdefault(name, []).append((int(load.get("stream_length") or 0), stats))
    if not any(len({n for n, _ in rows}) >= 2 for rows in groups.values()):
        return None
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot()
    for name, rows in sorted(groups.items()):
        rows.sort(key=lambda row: row[0])
        p50_p99_lines(ax, name, [float(n) for n, _ in rows], [s for _, s in rows])
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # after the scales, which reset the formatters
        axis.set_major_formatter(FuncFormatter(_plain))
        axis.set_minor_formatter(FuncFormatter(_plain_2_5))
    ax.tick_params(which="minor", labelsize=7)
    ax.set_xlabel("events per stream (log)")
    ax.set_ylabel("load latency (ms, log)")
    ax.set_title("Aggregate load latency against stream length, per snapshot policy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return Plot(
        SNAPSHOT_CURVE,
        "Load latency against stream length",
        "p99 (solid) and p50 (dashed) of one aggregate's load (read and fold), per snapshot "
        "policy: where the no-snapshot line leaves the others is the stream length at which "
        "snapshots pay.",
        figure_png(fig),
        {
            p.label: int(((p.summary.get("latency_us") or {}).get("load") or {}).get("count") or 0)
            for p in load_points(points)
        },
    )
