"""The HTML report in a real browser: headless Chromium (Debian's package) loads report.html
from disk, offline, and the tables and every embedded image render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.report.html import write_report
from tests.unit.report.fabricate import PointSpec, make_run

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian: apt-get install -y chromium)",
    ),
]

# Runs in the page after load and writes what rendered into the DOM, for --dump-dom.
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const probe = {
    summaryRows: document.querySelectorAll("#summary tbody tr").length,
    latencyRows: document.querySelectorAll("#latency tbody tr").length,
    environmentRows: document.querySelectorAll("#environment tbody tr").length,
    images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt),
    widths: images.map(i => i.naturalWidth),
    summaryTableWidth: document.querySelector("#summary").getBoundingClientRect().width,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>
"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    sweep = [
        PointSpec(
            t, params={"workload.rate": r}, rate_per_s=float(r), e2e_median_us=m * (1 + r / 4000)
        )
        for t, m in (("memory", 500.0), ("kafka", 5000.0))
        for r in (500, 2000, 4000)
    ]
    run = make_run(root, "sweep", sweep, seed=1)
    html_path, _ = write_report(run)
    return html_path


def test_the_report_renders_its_tables_and_images_in_chromium(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    result = _chromium(
        tmp_path,
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probed.as_uri(),
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout)
    assert match, f"no probe in the DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["summaryRows"] == 6
    assert probe["latencyRows"] == 6 * 4
    assert probe["environmentRows"] >= 5
    # 4 spectra, the timeseries and the latency-versus-throughput sweep: all decoded.
    assert probe["images"] == 6
    assert len(probe["loaded"]) == 6, probe
    assert min(probe["widths"]) > 300
    assert probe["summaryTableWidth"] > 300


def test_a_screenshot_of_the_report_is_not_blank(report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    result = _chromium(
        tmp_path,
        "--hide-scrollbars",
        "--window-size=1280,2400",
        "--virtual-time-budget=5000",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert shot.exists(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    # Text, table borders and coloured plot lines: far from one flat colour.
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
    assert pixels.std() > 0.05
