"""The bench command as a user runs it: real processes, real files, exit codes."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.cli_support import ROOT, bench, only_run

QUICK = ["--set", "scenario.duration=2s", "--set", "scenario.warmup=500ms"]


@pytest.mark.slow
def test_run_quickstart_prints_a_summary_and_writes_results(tmp_path):
    result = bench("run", "scenarios/quickstart.toml", *QUICK, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "resp p99" in result.stdout and "memory" in result.stdout
    assert "measure" in result.stdout  # the live progress lines
    run_dir = only_run(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["schema_version"] == 1
    assert manifest["environment"]["python"] and manifest["environment"]["cpu_count"]
    assert manifest["scenario"]["scenario"]["name"] == "quickstart"
    point_dir = run_dir / manifest["points"][0]["dir"]
    summary = json.loads((point_dir / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["status"] == "ok"
    assert set(summary["throughput"]) >= {"sent_per_s", "acked_per_s", "received_per_s"}
    for kind in ("response", "service", "schedule_lag", "e2e"):
        assert set(summary["latency_us"][kind]) >= {"count", "p50", "p90", "p99", "p999", "max"}
        assert summary["latency_us"][kind]["count"] > 1000
    assert set(summary["audit"]) >= {"sent", "acked", "received", "lost", "duplicated", "reordered"}
    assert summary["audit"]["lost"] == 0
    assert "client_bound" in summary and "errors" in summary
    for name in (
        "response.hlog",
        "service.hlog",
        "schedule_lag.hlog",
        "e2e.hlog",
        "timeseries.csv",
    ):
        assert (point_dir / name).stat().st_size > 100

    shown = bench("show", str(run_dir))
    assert shown.returncode == 0
    assert "resp p99" in shown.stdout and "memory" in shown.stdout


def test_validate_accepts_the_shipped_scenarios():
    result = bench("validate", *[str(p) for p in sorted((ROOT / "scenarios").rglob("*.toml"))])
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "[scenario]\nname='x'\n[workload]\nrate=-1\n[targets.m]\ndriver='memory'\n",
            "workload.rate",
        ),
        (
            "[scenario]\nname='x'\nduration='10'\n[targets.m]\ndriver='memory'\n",
            "scenario.duration",
        ),
        ("[scenario\n", "invalid TOML"),
        ("[scenario]\nname='x'\n[targets.m]\ndriver='nope'\n", "targets.m.driver"),
    ],
)
def test_a_bad_scenario_gives_one_line_and_exit_code_2(tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    for command in ("validate", "run"):
        result = (
            bench(command, str(path), "-o", str(tmp_path / "r"))
            if command == "run"
            else bench(command, str(path))
        )
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        first = result.stderr.strip().splitlines()[0]
        assert str(path) in first and needle in first


def test_a_bad_override_is_reported_like_a_bad_file(tmp_path):
    result = bench(
        "run", "scenarios/quickstart.toml", "--set", "workload.rate=fast", "-o", str(tmp_path)
    )
    assert result.returncode == 2
    assert "workload.rate" in result.stderr and "Traceback" not in result.stderr


def test_show_on_a_missing_directory_is_a_clear_error(tmp_path):
    result = bench("show", str(tmp_path / "nope"))
    assert result.returncode == 2 and "not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_drivers_lists_the_builtin_drivers():
    result = bench("drivers")
    assert result.returncode == 0
    for name in ("memory", "kafka", "rabbitmq", "nats"):
        assert name in result.stdout
    assert "service_time" in result.stdout


def test_help_is_useful():
    result = bench("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "show", "drivers"):
        assert command in result.stdout
    assert "intended" in bench("run", "--help").stdout


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_leaves_valid_results_marked_interrupted(tmp_path, sig, code):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "scenarios/quickstart.toml",
            "--set",
            "scenario.duration=60s",
            "--set",
            "scenario.warmup=1s",
            "-o",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    run_dir = None
    while time.monotonic() < deadline:
        runs = [p for p in tmp_path.iterdir() if p.is_dir()] if tmp_path.exists() else []
        if runs and list(runs[0].glob("*/timeseries.csv")):
            csv_file = next(runs[0].glob("*/timeseries.csv"))
            if len(csv_file.read_text().splitlines()) >= 4:
                run_dir = runs[0]
                break
        time.sleep(0.2)
    assert run_dir is not None, "the run did not start"
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    point_dir = run_dir / manifest["points"][0]["dir"]
    summary = json.loads((point_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["audit"]["sent"] > 0 and summary["audit"]["lost"] == 0
    rows = (point_dir / "timeseries.csv").read_text().splitlines()
    assert len(rows) >= 4
    # The rates cover the window actually measured, not the 60 s planned: a memory target at
    # 2000/s keeps up, so a rate that is a fraction of that would be a false figure.
    measured_s = summary["workload"]["duration_s"]
    assert 0 < measured_s < 60
    assert 1600 <= summary["throughput"]["acked_per_s"] <= 2400, summary["throughput"]


def test_an_unknown_option_is_a_usage_error():
    result = bench("run", "--bogus")
    assert result.returncode == 2 and "No such option" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_running_only_some_targets_writes_a_consistent_manifest(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(
        "[scenario]\nname='two'\nduration='1s'\nwarmup='0s'\n"
        "[workload]\nrate=200\n"
        "[targets.first]\ndriver='memory'\n[targets.second]\ndriver='memory'\n"
        "[matrix]\n'workload.rate' = [100, 200]\n"
    )
    result = bench("run", str(path), "--target", "second", "-o", str(tmp_path / "r"), "-q")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((only_run(tmp_path / "r") / "manifest.json").read_text())
    assert [p["index"] for p in manifest["points"]] == [2, 3]
    assert all(p["status"] == "ok" and p["server"]["product"] for p in manifest["points"])


@pytest.mark.slow
def test_repeat_writes_a_group_that_check_reads_as_one(tmp_path):
    quick = ["--set", "scenario.duration=1s", "--set", "scenario.warmup=0s", "--no-report", "-q"]
    result = bench("run", "scenarios/quickstart.toml", "--repeat", "2", *quick, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    group = only_run(tmp_path)
    assert group.name.endswith("-x2")
    runs = sorted(p for p in group.iterdir() if (p / "manifest.json").exists())
    assert len(runs) == 2
    manifest = json.loads((runs[1] / "manifest.json").read_text())
    assert manifest["repetition"] == {"index": 2, "of": 2}
    checked = bench("check", str(group), "--baseline", str(group))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 baseline vs 2 candidate runs" in checked.stdout


@pytest.mark.slow
def test_a_worker_that_dies_fails_the_run_instead_of_hanging(tmp_path):
    import psutil

    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "scenarios/quickstart.toml",
         "--set", "scenario.duration=60s", "--set", "scenario.warmup=1s",
         "--no-report", "-o", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    run_dir = None
    while time.monotonic() < deadline and run_dir is None:
        runs = [p for p in tmp_path.iterdir() if p.is_dir()] if tmp_path.exists() else []
        csvs = list(runs[0].glob("*/timeseries.csv")) if runs else []
        if csvs and len(csvs[0].read_text().splitlines()) >= 3:
            run_dir = runs[0]
        time.sleep(0.2)
    assert run_dir is not None, "the run did not start"
    workers = [
        child
        for child in psutil.Process(process.pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]
    assert workers, "no worker process found"
    started = time.monotonic()
    workers[0].kill()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 30  # reported promptly, not after the 60 s run
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors and "worker 0 died" in errors[0], stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    point_dir = run_dir / manifest["points"][0]["dir"]
    summary = json.loads((point_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    # Every interval recorded before the death is still there.
    assert len((point_dir / "timeseries.csv").read_text().splitlines()) >= 3
