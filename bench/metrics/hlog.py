"""HdrHistogram interval logs (``.hlog``), in the standard text format (version 1.3).

Each line is ``start_s,length_s,max_ms,compressed_histogram`` relative to the log's start
time, so the standard HdrHistogram tools (HistogramLogProcessor, hdrh's HistogramLogReader,
HdrHistogram plotters) read our files. Values inside the histograms are nanoseconds; the
``Interval_Max`` column is in milliseconds, as those tools expect by default.
Lines are appended and flushed as intervals arrive, so an interrupted run keeps every interval
recorded up to that moment; a torn last line is skipped by ``read_intervals``.

The intervals are cut by when a sample arrived; the measurement window counts the samples
*intended* inside it, even those acknowledged after it ended. So the window's own histogram, the
one summary.json's ``latency_us`` is computed from, cannot be rebuilt from the intervals. It is
written once, at the end, as a tagged line (the format's ``Tag=window,start,length,max,blob``),
which HdrHistogram's readers hand back with its tag and its HistogramLogProcessor leaves out of
untagged processing, as ``read_intervals`` does: a timeline never counts the window twice.
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
WINDOW_TAG = "window"
_TAG_PREFIX = "Tag="


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

    def write(
        self, start_s: float, length_s: float, blob: str, max_ns: int, tag: str | None = None
    ) -> None:
        """One histogram line; ``tag`` (no comma, space or newline) marks a histogram that is
        not part of the untagged interval timeline."""
        prefix = ""
        if tag is not None:
            if not tag or any(c in tag for c in ", \n\r"):
                raise ValueError(f"hlog tag {tag!r}: must be non-empty, without commas or spaces")
            prefix = f"{_TAG_PREFIX}{tag},"
        self._file.write(f"{prefix}{start_s:.3f},{length_s:.3f},{max_ns / NS_PER_MS:.3f},{blob}\n")
        self._file.flush()

    def write_window(self, start_s: float, length_s: float, blob: str, max_ns: int) -> None:
        """The measurement window's histogram (samples intended in the window), as the line
        ``Tag=window,start_s,length_s,max_ms,blob``; write it once, after the last interval,
        even when it is empty (an empty window is a fact; a missing line means an older run)."""
        self.write(start_s, length_s, blob, max_ns, tag=WINDOW_TAG)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Interval:
    start_s: float
    length_s: float
    histogram: HdrHistogram
    tag: str | None = None


def read_all(path: Path) -> Iterator[Interval]:
    """Every histogram line of an .hlog file, tagged or not; a torn (truncated) final line is
    skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from exc
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#") or line.startswith('"'):
            continue
        tag = None
        if line.startswith(_TAG_PREFIX):
            tag, _, line = line[len(_TAG_PREFIX) :].partition(",")
        parts = line.split(",")
        try:
            if len(parts) != 4:
                raise ValueError("expected 4 fields")
            hist = decode(parts[3])
            yield Interval(float(parts[0]), float(parts[1]), hist, tag or None)
        except Exception as exc:  # a torn line is any decoding error on the last line
            if number == len(lines):
                return
            raise ResultsError(f"{path}:{number}: not a valid interval line ({exc})") from exc


def read_intervals(path: Path) -> Iterator[Interval]:
    """The timeline of an .hlog file: its untagged intervals (the window line is left out, so
    nothing is counted twice); a torn final line is skipped."""
    return (interval for interval in read_all(path) if interval.tag is None)


def read_window(path: Path) -> Interval | None:
    """The measurement window's histogram (``Tag=window``), or None when the file has none:
    a run from before the window was written, or one whose last line was torn."""
    window = None
    for interval in read_all(path):
        if interval.tag == WINDOW_TAG:
            window = interval
    return window
