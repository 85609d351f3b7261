"""The results directory through a run's life (issue 14): a disk that fills up while a point or
the report is written, and a coordinator killed mid-run. Real ``bench`` processes, real files:
the full disk is a small tmpfs of the test's own (root only; skipped otherwise), filled with a
file until writes fail with ENOSPC.

The outcomes, as README.md ("When a run is cut short") describes them:
- a full disk during a point: one line naming the path, exit 1; the manifest says "failed"
  and why, and the points that finished keep their summaries (show and report read them);
- a full disk during the report: the run's results stand (manifest "ok"), the report is not
  written (nothing half written), one line, exit 1;
- a coordinator killed with SIGKILL leaves the manifest "running": show and report say the run
  was cut off, never ok, and show the points it completed.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli_support import ROOT, bench

pytestmark = pytest.mark.slow

# Two points of 3 s (partitions 1 and 4): the first finishes, the second is cut short.
TWO_POINTS = [
    "--set", "scenario.duration=3s", "--set", "scenario.warmup=500ms",
    "--set", "matrix.workload.partitions=[1,4]", "-q",
]  # fmt: skip
ONE_POINT = ["--set", "scenario.duration=2s", "--set", "scenario.warmup=500ms", "-q"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 KiB tmpfs: room for a short run's results, not for its report."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free block of ``disk``; returns the filler, to delete afterwards."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def start(*args: str, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=new_session,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail("the run never reached the moment under test")


def run_dir_in(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def second_point_started(root: Path) -> bool:
    return bool(list(root.glob("*/000-*/summary.json")) and list(root.glob("*/001-*/*.hlog")))


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_full_disk_during_a_point_is_one_line_and_keeps_the_finished_points(small_disk, tmp_path):
    process = start("run", "scenarios/quickstart.toml", *TWO_POINTS, "-o", str(small_disk))
    wait_for(lambda: second_point_started(small_disk))
    filler = fill(small_disk)
    _, stderr = process.communicate(timeout=60)
    filler.unlink()

    # Was: exit 70, "internal error: OSError: [Errno 28] No space left on device".
    assert process.returncode == 1, stderr
    lines = error_lines(stderr)
    run_dir = run_dir_in(small_disk)
    assert lines[0].startswith(f"error: results not written: {run_dir}/001-"), lines
    assert lines[0].endswith("No space left on device"), lines
    assert len(lines) == 2 and lines[1].startswith("  hint:"), lines

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"  # was left "running"
    assert "No space left on device" in manifest["error"]
    assert [p["status"] for p in manifest["points"]] == ["ok", "failed"]
    assert not (run_dir / ".space-reserve").exists()

    shown = bench("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "failed)" in shown.stdout and "partitions=1" in shown.stdout
    assert "1 of 2 points completed" in shown.stderr

    report = bench("report", str(run_dir), "-o", str(tmp_path / "out"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "partitions=1" in page and "Not the whole run" in page
    assert 'class="banner pass"' not in page


def test_a_full_disk_during_the_report_keeps_the_run_ok_and_exits_1(small_disk, tmp_path):
    # 300 KiB hold one short point's results, not the report's plots.
    result = bench("run", "scenarios/quickstart.toml", *ONE_POINT, "-o", str(small_disk))

    # Was: exit 70, "internal error: OSError: [Errno 28] No space left on device".
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    run_dir = run_dir_in(small_disk)
    assert lines[0].startswith(f"error: report not written: {run_dir}/"), lines
    assert lines[0].endswith("No space left on device"), lines
    assert len(lines) == 2 and lines[1].startswith("  hint:"), lines

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok"  # the run's results stand
    assert manifest["report"]["status"] == "not written"
    assert "No space left on device" in manifest["report"]["error"]
    # Nothing of the report is left half written.
    leftovers = sorted(p.name for p in run_dir.iterdir())
    assert leftovers == ["000-memory", "manifest.json"], leftovers

    shown = bench("show", str(run_dir))
    assert shown.returncode == 0 and "memory" in shown.stdout, shown.stderr

    # bench report on the same full disk: one line, exit 1; elsewhere: written.
    again = bench("report", str(run_dir))
    assert again.returncode == 1, again.stderr
    assert error_lines(again.stderr)[0].startswith(f"error: report not written: {run_dir}/")
    assert sorted(p.name for p in run_dir.iterdir()) == leftovers
    elsewhere = bench("report", str(run_dir), "-o", str(tmp_path / "out"))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_coordinator_killed_mid_run_is_cut_off_in_show_and_report(tmp_path):
    results = tmp_path / "results"
    process = start(
        "run", "scenarios/quickstart.toml", *TWO_POINTS, "--no-report", "-o", str(results),
        new_session=True,
    )  # fmt: skip
    wait_for(lambda: results.exists() and second_point_started(results))
    # The coordinator and its workers at once: this test leaves no process behind.
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    run_dir = run_dir_in(results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"  # what a killed coordinator leaves

    # Was: the title said "running" and no note; the report said "running" and "Pass".
    shown = bench("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    title = next(line for line in shown.stdout.splitlines() if manifest["run_id"] in line)
    assert "cut off)" in title and "running" not in title and "ok" not in title
    assert "partitions=1" in shown.stdout  # what it completed
    assert "the run is cut off" in shown.stderr
    assert f"coordinator (pid {process.pid}) is gone" in shown.stderr
    assert "1 of 2 points completed" in shown.stderr
    assert manifest["coordinator"]["pid"] == process.pid

    report = bench("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert "the run is cut off" in report.stdout
    page = (run_dir / "report.html").read_text()
    assert "<th>status</th><td>cut off (" in page
    # Never a pass (inconclusive at best; FAIL if the point it completed failed its verdict).
    assert 'class="banner pass"' not in page and "Not the whole run: the run is cut off" in page
    assert "partitions=1" in page and "1 of 2 points completed" in page
    markdown = (run_dir / "report.md").read_text()
    assert "cut off" in markdown and "Pass." not in markdown

    # The gate still refuses a baseline that did not complete (exit 2).
    gate = bench("check", str(run_dir), "--baseline", str(run_dir))
    assert gate.returncode == 2, gate.stdout + gate.stderr


def test_a_disk_too_full_for_the_first_manifest_is_one_line_exit_2(small_disk):
    filler = fill(small_disk)
    result = bench("run", "scenarios/quickstart.toml", *ONE_POINT, "-o", str(small_disk))
    filler.unlink()
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert lines[0].startswith(f"error: results not written: {small_disk}/"), lines
    assert lines[0].endswith("/manifest.json: No space left on device"), lines
    assert [p.name for p in small_disk.iterdir()] == []  # no empty run directory left


# find-max shares bench run's session (bench/session.py) since issue 15: the same outcomes.
FIND_MAX = [
    "find-max", "scenarios/quickstart.toml", "--probe-duration", "1s", "--warmup", "200ms",
    "--verify-duration", "0s", "--max-probes", "6", "-q",
]  # fmt: skip


def test_a_full_disk_during_find_max_is_one_line_not_an_internal_error(small_disk):
    process = start(*FIND_MAX, "--no-report", "-o", str(small_disk))
    wait_for(lambda: bool(list(small_disk.glob("*/00-memory-01-*/*.hlog"))))
    filler = fill(small_disk)
    _, stderr = process.communicate(timeout=120)
    filler.unlink()

    # Was: exit 70, "internal error: OSError: [Errno 28] No space left on device".
    assert process.returncode == 1, stderr
    lines = error_lines(stderr)
    run_dir = run_dir_in(small_disk)
    assert lines[0].startswith(f"error: results not written: {run_dir}"), lines
    assert lines[0].endswith("No space left on device"), lines
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]
    assert manifest["points"][0]["status"] == "ok"  # the first probe stands


def test_a_killed_find_max_reads_cut_off_not_unfinished(tmp_path):
    results = tmp_path / "results"
    process = start(*FIND_MAX, "--no-report", "-o", str(results), new_session=True)
    wait_for(lambda: results.exists() and bool(list(results.glob("*/00-memory-00-*/summary.json"))))
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    run_dir = run_dir_in(results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # Was: no coordinator in a capacity manifest, so a killed search read "unfinished".
    assert manifest["coordinator"]["pid"] == process.pid
    shown = bench("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "the run is cut off" in shown.stderr
