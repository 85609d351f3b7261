"""report.html and report.md: self-contained, every table and plot, the window respected."""

from __future__ import annotations

import re

from bench.report.html import write_report
from bench.report.plots import measured_histogram, spectrum
from bench.report.tables import load
from tests.fabricate import WARMUP_OUTLIER_NS


def test_the_spectrum_uses_only_the_measurement_window(golden):
    point = load(golden.base).points[1]
    hist = measured_histogram(point, "e2e")
    assert hist is not None
    # Three measured intervals of 1000 samples; the warm-up's planted 10 s outlier is out.
    assert hist.total_count == 3000
    assert hist.get_max_value() < WARMUP_OUTLIER_NS / 100
    fractions, values = spectrum(hist)
    assert fractions[0] == 0.0 and abs(fractions[-1] - 1.0) < 1e-12
    assert (values[1:] >= values[:-1]).all()
    summary_p99_ns = point.summary["latency_us"]["e2e"]["p99"] * 1e3
    # The curve at p99 is the summary's p99 (same histogram, same definition).
    at_p99 = values[1::2][(fractions[1::2] >= 0.99).argmax()]
    assert at_p99 == summary_p99_ns


def test_the_html_report_is_one_offline_file_with_tables_and_plots(golden, tmp_path):
    html_path, md_path = write_report(golden.sweep, tmp_path)
    page = html_path.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert "e2e latency spectrum" in images and "response latency spectrum" in images
    assert "Throughput and p99 over time" in images
    assert "Latency versus throughput" in images
    summary_table = page.split('id="summary"')[1].split("</table>")[0]
    assert summary_table.count("<tr") == 1 + 6  # header and six points
    for needle in ("memory rate=8000", "client-bound", "Fake kafka 1.2.3", "Test CPU", "e2e.p99"):
        assert needle in page, needle

    md = md_path.read_text()
    assert "| memory | memory rate=500 |" in md
    assert "![e2e latency spectrum](report-plots/spectrum-e2e.png)" in md
    assert (tmp_path / "report-plots" / "spectrum-e2e.png").stat().st_size > 1000


def test_a_single_rate_run_has_no_sweep_plot_and_states_its_verdicts(golden, tmp_path):
    html_path, md_path = write_report(golden.lost, tmp_path)
    page = html_path.read_text()
    assert "Latency versus throughput" not in page
    assert "kafka: ok · FAIL: lost 4 acknowledged" in md_path.read_text()
    assert 'class="banner fail"' in page


def test_the_report_goes_into_the_run_directory_by_default(golden, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(golden.base, run)
    html_path, md_path = write_report(run)
    assert html_path == run / "report.html" and md_path == run / "report.md"
    assert "Every point ran, every SLO holds" in md_path.read_text()
