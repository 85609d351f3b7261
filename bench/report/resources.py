"""What the target spent, in a report (issue 21): CPU per million events, memory, disk.

summary.json keeps the window's figures under ``resources`` (engine/resources.py), and each
point's ``resources.csv`` the per-interval readings the timeline plot draws. A point whose
target was not read (in-process, or not on this host) says why in ``resources_why``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.units import format_bytes, format_count

if TYPE_CHECKING:
    import pandas as pd

    from bench.report.tables import Point

CAPTION = (
    "What the target spent over the measurement window. A target on this host is read from "
    "its processes (found by the port it listens on, with every process it forked); one with "
    "metrics_url, or a PostgreSQL elsewhere, from its own metrics endpoint (source remote: a "
    "figure the source does not report is '-'). CPU-seconds per million acknowledged events "
    "(an event store's: commands), CPU in % of one core, memory (pss: pages shared between "
    "its processes divided among them; rss: resident set), disk bytes written per event and "
    "per payload byte (mean payload x acknowledged), and open descriptors. The figures cover "
    "the whole server, so any other client of it counts too. A point whose target was not "
    "read says why; an in-process target (memory) is the harness's own work and is not listed."
)
COLUMNS = (
    "point",
    "processes",
    "cpu-s/Mev",
    "cpu % of a core",
    "memory mean",
    "memory peak",
    "disk written",
    "written/event",
    "written/payload byte",
    "fds peak",
)


def _size(value: Any) -> str:
    return "-" if value is None else format_bytes(value)


def _number(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"


def resource_rows(summary: dict[str, Any], label: str) -> list[dict[str, str]]:
    """One row for a point whose target was read (none otherwise)."""
    res = summary.get("resources")
    if not res:
        if (summary.get("target_info") or {}).get("in_process") or not summary.get("resources_why"):
            return []
        row = dict.fromkeys(COLUMNS, "-")
        row.update(point=label, processes=f"not read: {summary['resources_why']}")
        return [row]
    kind = res.get("mem_kind") or "rss"

    def memory(key: str) -> str:
        value = res.get(key)
        return "-" if value is None else f"{format_bytes(value)} ({kind})"

    return [
        {
            "point": label,
            "processes": ", ".join(res.get("processes") or []) or "-",
            "cpu-s/Mev": _number(res.get("cpu_s_per_mev")),
            "cpu % of a core": _number(res.get("cpu_pct")),
            "memory mean": memory("mem_mean_bytes"),
            "memory peak": memory("mem_peak_bytes"),
            "disk written": _size(res.get("disk_write_bytes")),
            "written/event": _size(res.get("disk_write_per_event")),
            "written/payload byte": _number(res.get("write_amplification"), 2),
            "fds peak": "-" if res.get("fds_peak") is None else format_count(res["fds_peak"]),
        }
    ]


def resources_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The report's table; empty when no point outside the harness had a target to read."""
    import pandas as pd

    rows = [row for p in points for row in resource_rows(p.summary, p.label)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
