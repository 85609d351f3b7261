"""The HTML report in a real browser: headless Chromium (Debian's package) loads report.html
from disk, offline, and the tables and every embedded image render.

Then the report of each point kind, from real ``bench run`` / ``bench sweep`` runs on the memory
target (a stream with a lossy and a slow target, an event store across writers, a killed
target, capacity sweep points): every number of the verdict banner, as Chromium renders it, is
printed in a table of the same report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bench.engine.workers import KINDS
from bench.report.html import write_report
from tests.cli_support import bench, run_bench
from tests.fabricate import PointSpec, make_run
from tests.report_numbers import missing_numbers, numbers

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
    assert probe["latencyRows"] == 6 * len(KINDS)  # every latency kind the engine records
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


# --------------------------------------------------------------------------- each point kind

STREAM = """
[scenario]
name = "browser-stream"
duration = "2s"
warmup = "500ms"

[workload]
rate = 1000
schedule = "constant"
producers = 1
consumers = 1
partitions = 2

[slo]
"e2e.p99" = "50ms"

[targets.memory]
driver = "memory"

[targets.lossy]
driver = "memory"
drop_rate = 0.02

[targets.slow]
driver = "memory"
service_time = "60ms"
"""

STORE = """
[scenario]
name = "browser-store"
duration = "2s"
warmup = "500ms"

[workload]
kind = "store"
rate = "max"                 # closed loop: each writer appends as fast as the store lets it
concurrency = 1
aggregates = 5
payload_bytes = 128

[workload.store]
max_retries = 1              # contention abandons commands: a verdict with figures to find

[matrix]
"workload.concurrency" = [1, 16]

[targets.memory]
driver = "memory"
service_time = "2ms"
"""

FAULTS = """
[scenario]
name = "browser-faults"
duration = "3s"
warmup = "500ms"
interval = "500ms"

[workload]
rate = 500
schedule = "constant"
producers = 1
consumers = 1
partitions = 2

[targets.mem]
driver = "memory"

[[faults]]
at = "1s"
action = "kill"
down_for = "1s"
"""

CAPACITY = """
[scenario]
name = "browser-capacity"
duration = "1s"
warmup = "500ms"

[workload]
rate = 500
schedule = "constant"
producers = 1
consumers = 1
partitions = 2

[slo]
"e2e.p99" = "50ms"

[targets.memory]
driver = "memory"
capacity_per_s = 1000
"""

# What rendered: the banner's text and every table's, and the images.
KIND_PROBE = """
<script>
window.addEventListener("load", () => {
  const banner = document.getElementById("verdicts");
  const tables = Array.from(document.querySelectorAll("table"));
  const images = Array.from(document.images);
  const probe = {
    bannerClass: banner.className,
    banner: banner.innerText,
    tables: tables.map(t => t.innerText).join("\\n"),
    tableIds: tables.map(t => t.id),
    images: images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>
"""


def _run(tmp_path: Path, name: str, text: str, *command: str, apart: bool = False) -> Path:
    """``bench *command`` on a scenario: in this process, or ``apart`` in a child process
    (so that it runs beside an in-process one)."""
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(text)
    results = tmp_path / name
    argv = [*command, str(scenario), "-o", str(results), "-q"]
    if apart:
        done = bench(*argv, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr
        code = done.returncode
    else:
        code = run_bench(argv)
    # A failed verdict may end the command non-zero; the report is written either way.
    assert code in (0, 1), code
    (run_dir,) = [d for d in results.iterdir() if (d / "manifest.json").exists()]
    assert (run_dir / "report.html").exists()
    return run_dir


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    # Two runs at a time, for the 2 cores: the stream run (a child process) beside the light
    # faults run (500/s) and capacity sweep, then the store run alone (its closed loop takes
    # every core it gets, and would crowd the stream's healthy target out of its 50 ms p99).
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(_run, root, "stream", STREAM, "run", apart=True)
        faults = _run(root, "faults", FAULTS, "run")
        capacity = _run(
            root, "capacity", CAPACITY, "sweep", "--max", "1000/s", "--fractions", "0.5,1.2"
        )
        runs = {"stream": stream.result(), "faults": faults, "capacity": capacity}
    runs["store"] = _run(root, "store", STORE, "run")
    return runs


def _probe(tmp_path: Path, run_dir: Path) -> dict:
    probed = tmp_path / "probed.html"
    page = (run_dir / "report.html").read_text()
    probed.write_text(page.replace("</body>", KIND_PROBE + "</body>"))
    result = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no probe in the DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(match.group(1)))


def _check_banner(probe: dict) -> None:
    assert numbers(probe["banner"]), probe["banner"]
    assert missing_numbers(probe["banner"], probe["tables"]) == [], probe["banner"]


def test_a_stream_report_names_each_failing_target_with_figures_from_its_tables(kinds, tmp_path):
    probe = _probe(tmp_path, kinds["stream"])
    banner = probe["banner"]
    assert probe["bannerClass"] == "banner fail"
    assert "lossy: ok · FAIL: lost " in banner
    assert re.search(r"slow: ok · FAIL: .*SLO e2e\.p99 \S+ > 50\.00ms", banner), banner
    assert "memory:" not in banner  # the healthy target passed and is not listed
    _check_banner(probe)
    assert {"verdict-table", "summary", "latency"} <= set(probe["tableIds"])


def test_a_store_report_has_its_store_section_and_matrix_plot(kinds, tmp_path):
    probe = _probe(tmp_path, kinds["store"])
    assert {"store", "store-loads", "verdict-table"} <= set(probe["tableIds"])
    assert "Event store: goodput and conflicts across the matrix" in probe["images"]
    # 16 writers on 5 aggregates with one retry abandon commands; one writer never conflicts.
    assert re.search(
        r"concurrency=16: ok · FAIL: abandoned [\d,]+ of [\d,]+ commands", probe["banner"]
    )
    assert "concurrency=1:" not in probe["banner"]
    _check_banner(probe)
    summary = json.loads(next(kinds["store"].glob("*16/summary.json")).read_text())
    store = summary["store"]
    assert store["abandoned"] > 0 and store["conflict_rate"] > 0
    assert f"{store['abandoned']:,} of {store['commands']:,} commands" in probe["tables"]


def test_a_faults_report_fails_the_killed_point_on_its_error_rate(kinds, tmp_path):
    probe = _probe(tmp_path, kinds["faults"])
    assert "faults" in probe["tableIds"]
    assert re.search(r"mem: ok · FAIL: .*error rate [\d.]+% > 0\.1%", probe["banner"])
    _check_banner(probe)


def test_a_capacity_report_judges_its_sweep_points(kinds, tmp_path):
    probe = _probe(tmp_path, kinds["capacity"])
    assert "capacity" in probe["tableIds"]
    # 1.2 x 1000/s on a target that serves 1000/s falls behind: not a pass.
    assert probe["bannerClass"] in ("banner fail", "banner inconclusive")
    _check_banner(probe)
