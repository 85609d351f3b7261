"""What a local broker spends (issue 21): the NATS server's CPU, memory and disk per interval
and over the window, read by its port while a bounded load runs (1,000/s for 2 s)."""

import csv
from pathlib import Path

import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.integration


def test_a_local_broker_s_cpu_memory_and_disk_are_read_per_interval_and_per_event(
    tmp_path: Path,
) -> None:
    raw = {
        "scenario": {"name": "resources", "duration": "2s", "warmup": "1s", "seed": 5},
        "workload": {"rate": 1000, "payload_bytes": 1024, "partitions": 2, "consumers": 1},
        "targets": {"nats": {"driver": "nats", "servers": ["nats://127.0.0.1:4222"]}},
    }
    point = expand(scenario_from_dict(raw, "resources.toml"))[0]
    summary = PointRunner(point, "resources", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    res = summary["resources"]
    assert res is not None, summary["resources_why"]
    assert res["source"] == "local" and res["processes"] == ["nats-server"]
    acked = round(summary["throughput"]["acked_per_s"] * 2)
    assert res["events_in_window"] == acked
    # A file-backed stream spends CPU and writes to disk for every event.
    assert res["cpu_s"] > 0
    assert res["cpu_s_per_mev"] == pytest.approx(res["cpu_s"] * 1e6 / acked, rel=0.01)
    assert res["disk_write_bytes"] > 0 and res["write_amplification"] > 0
    assert res["mem_peak_bytes"] >= res["mem_mean_bytes"] > 0
    assert res["fds_peak"] > 0
    # The host-bound figure uses the same reading of the target's CPU.
    assert summary["host"]["target_pct"] == res["cpu_pct"]
    with (tmp_path / "resources.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows][:3] == ["warmup", "measure", "measure"]
    assert all(int(r["processes"]) == 1 and float(r["cpu_pct"]) >= 0 for r in rows)
    print(res)


def test_a_named_metrics_endpoint_is_read_instead_and_says_what_it_cannot_tell(
    tmp_path: Path, private_nats: tuple[int, int]
) -> None:
    port, monitor = private_nats
    raw = {
        "scenario": {"name": "remote", "duration": "2s", "warmup": "1s", "seed": 5},
        "workload": {"rate": 500, "payload_bytes": 256, "partitions": 2, "consumers": 1},
        "targets": {
            "nats": {
                "driver": "nats",
                "servers": [f"nats://127.0.0.1:{port}"],
                "metrics_url": f"http://127.0.0.1:{monitor}",
            }
        },
    }
    point = expand(scenario_from_dict(raw, "remote.toml"))[0]
    summary = PointRunner(point, "remote", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    res = summary["resources"]
    assert res is not None, summary["resources_why"]
    assert res["source"] == "remote"
    assert res["processes"] == [f"nats monitoring http://127.0.0.1:{monitor}"]
    # NATS reports its memory and a CPU gauge (integrated over the intervals), and its
    # consumers' pending count; not its disk, which is then not measured (never a zero).
    assert res["mem_peak_bytes"] > 0 and res["mem_kind"] == "rss"
    assert res["cpu_s"] is not None and res["cpu_s"] >= 0
    assert res["cpu_s_per_mev"] is not None
    assert res["disk_write_bytes"] is None and res["write_amplification"] is None
    assert res["broker_lag"] is not None and res["broker_lag"] >= 0
    assert res["events_in_window"] == round(summary["throughput"]["acked_per_s"] * 2)


def test_a_metrics_endpoint_that_cannot_be_read_is_one_warning_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    from tests.cli_support import bench, only_run
    from tests.integration.server_support import free_port

    closed = free_port()
    path = tmp_path / "dead-metrics.toml"
    path.write_text(
        f"""
[scenario]
name = "dead-metrics"
duration = "1s"
warmup = "0s"

[workload]
rate = 200
partitions = 2

[targets.nats]
driver = "nats"
servers = ["nats://127.0.0.1:4222"]
metrics_url = "http://u:Sekr1t-metrics@127.0.0.1:{closed}"
"""
    )
    done = bench("run", str(path), "-o", str(tmp_path / "r"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "metrics_url" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: nats: targets.nats.metrics_url: the target's costs")
    assert f"127.0.0.1:{closed}/varz" in warnings[0] and "Sekr1t" not in done.stderr
    assert "Traceback" not in done.stderr
    run_dir = only_run(tmp_path / "r")
    report = (run_dir / "report.md").read_text()
    assert "## Target resources" in report and "not read: nats /varz: cannot read" in report
    assert "Sekr1t" not in report
