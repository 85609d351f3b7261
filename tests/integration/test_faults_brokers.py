"""The fault timeline against real brokers that ``bench up`` starts privately for the test.

Faults act only on services eventbench started, so each test starts its own broker on a free
loopback port under a temporary state directory (the machine's shared brokers are never
touched), runs ``bench run`` with a kill and a disconnect under load, and checks the figures
against what the broker really did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import infra
from bench.engine.runner import PointRunner
from bench.errors import InfraError
from bench.report.faults import FAULT_COLUMNS
from bench.scenario import expand, scenario_from_dict
from tests.cli_support import run_bench
from tests.faults_support import assert_fault_errors_agree
from tests.integration.server_support import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def private(tmp_path, monkeypatch):
    """Start a private broker: yields (service name -> its address), stops it afterwards."""
    state = tmp_path / "state"
    monkeypatch.setattr(infra, "DEFAULT_STATE_DIR", state)
    started: list[str] = []

    def start(name: str) -> str:
        port = free_port()
        if name == "kafka":
            monkeypatch.setenv("BENCH_KAFKA_PORT", str(port))
        else:
            monkeypatch.setenv("BENCH_NATS_URL", f"nats://127.0.0.1:{port}")
        status = infra.up(name)
        assert status.managed, status
        started.append(name)
        return infra.connection_url(name)

    yield start
    for name in started:
        infra.down(name)


SCENARIO = """
[scenario]
name = "faults-it"
duration = "7s"
warmup = "1s"
interval = "500ms"
drain_timeout = "20s"

[workload]
rate = 400
schedule = "constant"
producers = 2
consumers = 2
partitions = 2
send_timeout = "10s"

[targets.t]
{target}

[[faults]]
at = "2s"
action = "kill"
down_for = "1500ms"

[[faults]]
at = "6s"
action = "disconnect"
"""


def run_faults(tmp_path: Path, target: str) -> dict:
    (tmp_path / "s.toml").write_text(SCENARIO.format(target=target))
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "--no-report"])
    summary = json.loads(next((tmp_path / "r").glob("*/*/summary.json")).read_text())
    assert code in (0, 1), code
    return summary


def test_nats_kill_and_disconnect_under_load(tmp_path, private):
    url = private("nats")
    summary = run_faults(
        tmp_path, f'driver = "nats"\nservers = ["{url}"]\nreconnect_wait = "250ms"'
    )
    assert summary["status"] == "ok", summary["problems"]
    kill, disconnect = summary["faults"]
    assert kill["status"] == "done" and disconnect["status"] == "done", summary["faults"]
    # The broker really went away for down_for and came back as a new process.
    assert "SIGKILL pid" in kill["detail"] and "started pid" in kill["detail"]
    assert kill["answering_at_s"] - kill["started_at_s"] >= 1.5
    # Producers and consumers saw it, and both came back.
    assert 1.0 <= kill["producer_outage_s"] <= 15, kill
    assert kill["consumer_outage_s"] >= 1.0 and kill["consumers_resumed"] is True, kill
    assert kill["recovery_s"] is not None, kill
    # JetStream file storage keeps every acknowledged message through SIGKILL (the page cache
    # survives a process kill): nothing acknowledged is lost, across the fault or the run.
    assert kill["audit"]["lost"] == 0 and summary["audit"]["lost"] == 0, summary["audit"]
    assert kill["audit"]["sent"] > 0
    assert "dropped" in disconnect["detail"], disconnect
    assert summary["errors"]["by_kind"].get("reconnect", 0) >= 2, summary["errors"]
    # The broker is left running, as bench up started it.
    assert infra.status("nats").running


def test_tansu_restart_loses_its_memory_storage_and_the_audit_counts_it(tmp_path, private):
    address = private("kafka")
    summary = run_faults(
        tmp_path,
        f'driver = "kafka"\nbootstrap_servers = "{address}"\nfetch_max_wait_ms = 10',
    )
    kill = summary["faults"][0]
    assert kill["status"] == "done", kill
    assert kill["answering_at_s"] - kill["started_at_s"] >= 1.5
    assert kill["producer_outage_s"] >= 1.0, kill
    # Tansu's memory:// storage forgets every record on restart: acknowledged events that no
    # consumer had read yet are gone, and the audit must say so.
    assert kill["audit"]["lost"] > 0, kill["audit"]
    assert summary["audit"]["lost"] >= kill["audit"]["lost"]
    assert infra.status("kafka").running


def test_a_broker_bench_up_did_not_start_is_never_touched(tmp_path, monkeypatch, nats_url):
    # The shared NATS answers, but was not started by this state directory's bench up.
    monkeypatch.setattr(infra, "DEFAULT_STATE_DIR", tmp_path / "state")
    monkeypatch.setenv("BENCH_NATS_URL", nats_url)
    with pytest.raises(InfraError) as refused:
        infra.ServiceFaults("nats")
    assert "was not started by bench up" in refused.value.message
    assert "bench up nats" in (refused.value.hint or "")
    assert infra.status("nats").running


def test_ctrl_c_during_a_pause_leaves_the_broker_running(tmp_path, private, monkeypatch):
    url = private("nats")
    (tmp_path / "s.toml").write_text(
        SCENARIO.format(target=f'driver = "nats"\nservers = ["{url}"]')
        .replace('action = "kill"\ndown_for = "1500ms"', 'action = "pause"\ndown_for = "5s"')
        .replace('[[faults]]\nat = "6s"\naction = "disconnect"\n', "")
    )
    env = {**os.environ, "BENCH_STATE_DIR": str(infra.DEFAULT_STATE_DIR)}
    out = tmp_path / "r"
    server = psutil.Process(int((infra.DEFAULT_STATE_DIR / "nats" / "server.pid").read_text()))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(tmp_path / "s.toml"), "-o", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The pause begins at 2 s of load, after the setup (seconds on a busy machine): wait
        # for it rather than guess when it came, then interrupt inside its 5 s.
        deadline = time.monotonic() + 30
        paused = False
        while not paused and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            paused = server.status() == psutil.STATUS_STOPPED
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert paused, "the broker was not paused when Ctrl-C came"
    assert process.returncode == 130, err
    assert infra.status("nats").running  # resumed, not left stopped
    summary = json.loads(next((tmp_path / "r").glob("*/*/summary.json")).read_text())
    assert summary["status"] == "interrupted"
    (fault,) = summary["faults"]
    assert fault["status"] == "done" and "SIGCONT" in fault["detail"], fault
    assert fault["restored_at_s"] - fault["started_at_s"] < 5.0, fault


def test_a_nats_kill_table_counts_every_error_the_run_counted(tmp_path, private, capsys):
    # Issue 13: on a private NATS killed under load, the client reports its errors itself
    # (nats_error, disconnect, reconnect) while no send fails; the kill row said 0 errors and
    # no first error while the run counted them.
    url = private("nats")
    (tmp_path / "s.toml").write_text(
        SCENARIO.format(target=f'driver = "nats"\nservers = ["{url}"]\nreconnect_wait = "250ms"')
        .replace('duration = "7s"', 'duration = "4s"')
        .replace('[[faults]]\nat = "6s"\naction = "disconnect"\n', "")
    )
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    summary_path = next((tmp_path / "r").glob("*/*/summary.json"))
    summary = json.loads(summary_path.read_text())
    (kill,) = summary["faults"]
    assert kill["status"] == "done", kill
    assert summary["errors"]["total"] > 0, summary["errors"]
    # The errors came during the outage: they are the kill's, with its first error.
    assert kill["errors_counted"] == "all", kill
    assert kill["errors"] > 0 and kill["errors_before"] == 0, kill
    assert 0 <= kill["time_to_first_error_s"] < kill["producer_outage_s"] + 1.0, kill
    assert_fault_errors_agree(summary_path.parent, summary)
    # The terminal printed the same count in the kill's row.
    kill_line = next(line for line in out.splitlines() if "kill 1.5s at 2s" in line)
    cells = [c.strip() for c in kill_line.split("│")[1:-1]]
    assert cells[FAULT_COLUMNS.index("errors")] == str(kill["errors"]), kill_line


PAUSED = """
[scenario]
name = "paused-it"
duration = "4s"
warmup = "500ms"
drain_timeout = "10s"

[workload]
rate = 200
schedule = "constant"
producers = 1
consumers = 1
partitions = 1
send_timeout = "1s"

[targets.t]
driver = "nats"
servers = ["{url}"]

[[faults]]
at = "1500ms"
action = "pause"
down_for = "2500ms"
"""


def test_sends_a_paused_broker_never_acknowledges_fail_at_send_timeout(tmp_path, private):
    """The engine's one watchdog (engine/deadlines.py) bounds every send by send_timeout: a
    publish the paused broker never answers fails as a timeout, at no less than 1 s."""
    (tmp_path / "s.toml").write_text(PAUSED.format(url=private("nats")))
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "--no-report"])
    assert code in (0, 1), code
    summary = json.loads(next((tmp_path / "r").glob("*/*/summary.json")).read_text())
    (pause,) = summary["faults"]
    assert pause["status"] == "done", pause
    timeouts = summary["errors"]["by_kind"].get("timeout", 0)
    # 2.5 s paused at 200/s, less the last second's sends that were acknowledged on resume.
    assert timeouts >= 100, summary["errors"]
    assert summary["audit"]["failed"] == timeouts
    # A failed send counts in response latency at no less than send_timeout.
    assert summary["latency_us"]["response"]["max"] >= 1_000_000
    # And nothing failed is shown as delivered-and-acknowledged success.
    assert summary["audit"]["acked"] + summary["audit"]["failed"] == summary["audit"]["sent"]


def test_a_paused_nats_holds_the_sagas_it_catches_and_every_one_ends(tmp_path, private):
    # Issue 19: faults on the saga timeline. A private NATS is paused for 1 s under 100
    # sagas/s: the commands and replies in flight wait, time out (600 ms) and are retried with
    # the same command id; the participants run each step once; every saga ends.
    url = private("nats")
    raw = {
        "scenario": {"name": "saga-pause", "duration": "2500ms", "warmup": "500ms"},
        "workload": {
            "kind": "saga",
            "rate": 100,
            "saga": {"timeout": "600ms", "retries": 2, "stuck_after": "10s"},
        },
        "targets": {"t": {"driver": "nats", "servers": [url]}},
        "faults": [{"at": "1s", "action": "pause", "down_for": "1s"}],
    }
    point = expand(scenario_from_dict(raw, "saga.toml"))[0]
    summary = PointRunner(point, "saga", tmp_path, stop_requested=lambda: False).run()
    assert summary["status"] == "ok", summary["problems"]
    saga = summary["saga"]
    (fault,) = summary["faults"]
    assert fault["status"] == "done" and "SIGCONT" in fault["detail"], fault
    caught = fault["sagas"]
    assert caught["caught"] >= 50 and caught["stuck"] == 0 and saga["stuck"] == 0, caught
    assert sum(caught["final"].values()) == caught["caught"]
    assert caught["latency_us"]["p99"] >= 500_000  # they waited the pause out
    assert saga["invariants"] == {"ok": True, "violations": []}
    assert fault["recovery_s"] is not None
    assert fault["errors"] + fault["errors_before"] == summary["errors"]["total"]
    assert infra.status("nats").running
