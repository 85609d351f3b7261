"""HdrHistogram interval logs (``.hlog``), in the standard text format (version 1.3).

Each line is ``start_s,length_s,max_ms,compressed_histogram`` relative to the log's start
time, so the standard HdrHistogram tools (HistogramLogProcessor, hdrh's HistogramLogReader,
HdrHistogram plotters) read our files. Values inside the histograms are nanoseconds; the
``Interval_Max`` column is in milliseconds, as those tools expect by default.
Lines are appended and flushed as intervals arrive, so an interrupted run keeps every interval
recorded up to that moment; a torn last line is skipped by ``read_intervals``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hdrh.histogram import HdrHistogram

from bench.errors import ResultsError
from bench.metrics.recorder import decode

FORMAT_VERSION = "1.3"
NS_PER_MS = 1_000_000


class HlogWriter:
    """Appends interval histograms of one latency kind to one ``.hlog`` file."""

    def __init__(self, path: Path, start_epoch_s: float, kind: str) -> None:
        self.path = path
        self._file: TextIO = path.open("w", encoding="utf-8")
        started = dt.datetime.fromtimestamp(start_epoch_s, tz=dt.UTC).isoformat()
        self._file.write(f"#[eventbench latency kind: {kind}; values in nanoseconds]\n")
        self._file.write(f"#[Histogram log format version {FORMAT_VERSION}]\n")
        self._file.write(f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), {started}]\n")
        self._file.write(
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
        )
        self._file.flush()

    def write(self, start_s: float, length_s: float, blob: str, max_ns: int) -> None:
        self._file.write(f"{start_s:.3f},{length_s:.3f},{max_ns / NS_PER_MS:.3f},{blob}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Interval:
    start_s: float
    length_s: float
    histogram: HdrHistogram


def read_intervals(path: Path) -> Iterator[Interval]:
    """The intervals of an .hlog file; a torn (truncated) final line is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from exc
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#") or line.startswith('"'):
            continue
        parts = line.split(",")
        try:
            if len(parts) != 4:
                raise ValueError("expected 4 fields")
            hist = decode(parts[3])
            yield Interval(float(parts[0]), float(parts[1]), hist)
        except Exception as exc:  # a torn line is any decoding error on the last line
            if number == len(lines):
                return
            raise ResultsError(f"{path}:{number}: not a valid interval line ({exc})") from exc
