"""The .hlog files: the untagged interval timeline, and the measurement window's tagged line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.errors import ResultsError
from bench.metrics.hlog import WINDOW_TAG, HlogWriter, read_intervals, read_window
from bench.metrics.recorder import encode, new_histogram, record_values


def _hist(values_ns: list[int]) -> HdrHistogram:
    hist = new_histogram()
    record_values(hist, np.asarray(values_ns, dtype=np.int64))
    return hist


def _write_log(path: Path, window: HdrHistogram | None) -> None:
    writer = HlogWriter(path, 1_790_000_000.0, "e2e")
    for k in range(3):
        hist = _hist([1_000_000 * (k + 1)] * 10)
        writer.write(k * 1.0, 1.0, encode(hist), hist.get_max_value())
    if window is not None:
        writer.write_window(1.0, 2.0, encode(window), window.get_max_value())
    writer.close()


def test_the_window_line_is_tagged_and_never_part_of_the_timeline(tmp_path):
    # The window holds samples the intervals put elsewhere (intended in the window, acked
    # after it): 25 samples, a 95 ms max that no interval of the window range holds.
    window = _hist([2_000_000] * 24 + [95_000_000])
    _write_log(tmp_path / "e2e.hlog", window)
    last = (tmp_path / "e2e.hlog").read_text().splitlines()[-1]
    assert last.startswith("Tag=window,1.000,2.000,95.")
    timeline = list(read_intervals(tmp_path / "e2e.hlog"))
    assert [i.histogram.total_count for i in timeline] == [10, 10, 10]
    assert all(i.tag is None for i in timeline)
    found = read_window(tmp_path / "e2e.hlog")
    assert found is not None and found.tag == WINDOW_TAG
    assert (found.start_s, found.length_s) == (1.0, 2.0)
    assert found.histogram.total_count == 25
    assert found.histogram.get_max_value() == window.get_max_value()


def test_an_external_reader_sees_the_window_by_its_tag(tmp_path):
    window = _hist([3_000_000] * 7)
    _write_log(tmp_path / "e2e.hlog", window)
    reader = HistogramLogReader(str(tmp_path / "e2e.hlog"), HdrHistogram(1, 3_600_000_000_000, 3))
    seen = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        seen.append((hist.get_tag(), hist.get_total_count()))
    assert seen == [(None, 10), (None, 10), (None, 10), ("window", 7)]


def test_an_older_log_has_no_window_and_an_empty_window_is_still_a_window(tmp_path):
    _write_log(tmp_path / "old.hlog", None)
    assert read_window(tmp_path / "old.hlog") is None
    _write_log(tmp_path / "empty.hlog", new_histogram())
    empty = read_window(tmp_path / "empty.hlog")
    assert empty is not None and empty.histogram.total_count == 0


def test_a_torn_window_line_reads_as_no_window(tmp_path):
    _write_log(tmp_path / "e2e.hlog", _hist([1_000_000] * 5))
    text = (tmp_path / "e2e.hlog").read_text()
    (tmp_path / "e2e.hlog").write_text(text[: len(text) - 12])
    assert read_window(tmp_path / "e2e.hlog") is None
    assert len(list(read_intervals(tmp_path / "e2e.hlog"))) == 3


def test_a_broken_line_before_the_end_is_an_error_with_its_line_number(tmp_path):
    _write_log(tmp_path / "e2e.hlog", _hist([1_000_000]))
    lines = (tmp_path / "e2e.hlog").read_text().splitlines()
    lines[4] = "Tag=window,0.000,1.000,not-a-histogram"
    (tmp_path / "e2e.hlog").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"e2e.hlog:5: not a valid interval line"):
        list(read_intervals(tmp_path / "e2e.hlog"))


@pytest.mark.parametrize("tag", ["", "a,b", "two words"])
def test_a_tag_the_format_cannot_hold_is_refused(tmp_path, tag):
    writer = HlogWriter(tmp_path / "x.hlog", 1_790_000_000.0, "e2e")
    with pytest.raises(ValueError, match="hlog tag"):
        writer.write(0.0, 1.0, encode(new_histogram()), 0, tag=tag)
    writer.close()
