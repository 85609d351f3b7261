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
    "What the target's processes on this host spent over the measurement window (found by "
    "the port the target listens on, with every process it forked): CPU-seconds per million "
    "acknowledged events, CPU in % of one core, memory (proportional set size: pages shared "
    "between its processes divided among them; rss where the kernel does not give it), disk "
    "bytes written per event and per payload byte (mean payload x acknowledged events), and "
    "open descriptors. The figures cover the whole server, so any other client of it counts "
    "too. An in-process or remote target is not read."
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


def _number(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"


def resource_rows(summary: dict[str, Any], label: str) -> list[dict[str, str]]:
    """One row for a point whose target was read (none otherwise)."""
    res = summary.get("resources")
    if not res:
        return []
    kind = res.get("mem_kind") or "rss"
    return [
        {
            "point": label,
            "processes": ", ".join(res.get("processes") or []) or "-",
            "cpu-s/Mev": _number(res.get("cpu_s_per_mev")),
            "cpu % of a core": _number(res.get("cpu_pct")),
            "memory mean": f"{format_bytes(res.get('mem_mean_bytes'))} ({kind})",
            "memory peak": f"{format_bytes(res.get('mem_peak_bytes'))} ({kind})",
            "disk written": format_bytes(res.get("disk_write_bytes")),
            "written/event": format_bytes(res.get("disk_write_per_event")),
            "written/payload byte": _number(res.get("write_amplification"), 2),
            "fds peak": "-" if res.get("fds_peak") is None else format_count(res["fds_peak"]),
        }
    ]


def resources_frame(points: Iterable[Point]) -> pd.DataFrame:
    """The report's table; empty when no point's target was read."""
    import pandas as pd

    rows = [row for p in points for row in resource_rows(p.summary, p.label)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
