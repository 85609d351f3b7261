"""The fault timeline on the memory target, through the real ``bench run``.

The memory target acts each fault out exactly (``MemoryDriver.inject_fault``), so the figures
have known answers: a kill refuses a second of sends, a pause fails nothing, a disconnect loses
only acknowledgements.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report.faults import FAULT_COLUMNS
from tests.cli_support import run_bench
from tests.faults_support import assert_fault_errors_agree

pytestmark = pytest.mark.slow

SCENARIO = """
[scenario]
name = "faults"
duration = "6.5s"
warmup = "1s"
interval = "500ms"
drain_timeout = "10s"

[workload]
rate = 1000
schedule = "constant"
producers = 2
consumers = 2
partitions = 4
max_in_flight = 64

[targets.mem]
driver = "memory"
service_time = "20ms"       # about 20 publishes in flight at any moment

[[faults]]
at = "2s"
action = "kill"
down_for = "1s"

[[faults]]
at = "3.5s"
action = "pause"
down_for = "1s"

[[faults]]
at = "5s"
action = "restart"
down_for = "500ms"

[[faults]]
at = "6.5s"
action = "disconnect"
"""


def test_each_fault_has_its_figures_and_its_audit(tmp_path: Path, capsys):
    (tmp_path / "s.toml").write_text(SCENARIO)
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_dir = next((tmp_path / "r").iterdir())
    summary = json.loads(next(run_dir.glob("*/summary.json")).read_text())
    assert summary["status"] == "ok", summary["problems"]
    kill, pause, restart, disconnect = summary["faults"]
    for fault in summary["faults"]:
        assert fault["status"] == "done", fault
        assert fault["consumers_resumed"] is True, fault
        assert fault["audit"]["lost"] == 0 and fault["audit"]["duplicated"] == 0, fault
        assert fault["audit"]["reordered"] == 0, fault
        assert fault["recovery_s"] is not None and fault["recovery_s"] < 2.0, fault

    # kill: 1 s of refused sends (1000/s) plus the ~20 in flight, all lost, none delivered.
    assert 900 <= kill["errors"] <= 1150, kill
    assert kill["audit"]["unacked_lost"] == kill["audit"]["failed"]
    # Errors count by when they happened, the audit by intended time: a send intended just
    # after the kill's scheduled end, refused before the target was back, is a kill error in
    # the next (pause) segment's audit. Nothing else fails there.
    assert pause["audit"]["failed"] <= 20, pause
    assert kill["audit"]["failed"] + pause["audit"]["failed"] == kill["errors"], (kill, pause)
    assert kill["audit"]["unacked_received"] == 0
    assert kill["time_to_first_error_s"] < 0.1
    assert 0.9 <= kill["producer_outage_s"] <= 1.3 and 0.9 <= kill["consumer_outage_s"] <= 1.3

    # pause: everything waits a second, nothing fails.
    assert pause["errors"] == 0 and pause["time_to_first_error_s"] is None
    assert 0.9 <= pause["producer_outage_s"] <= 1.3

    # restart: the in-flight sends complete first, then 0.5 s of refusals. Errors count by
    # when they happened, the audit by intended time (its segment ends 0.5 s after the fault's
    # scheduled end), so the last few refusals may fall in the next segment.
    assert 400 <= restart["errors"] <= 650, restart
    assert 0.9 * restart["errors"] <= restart["audit"]["unacked_lost"] <= restart["errors"]
    assert restart["audit"]["unacked_received"] == 0

    # disconnect: the in-flight sends fail, yet the broker had stored them.
    assert disconnect["errors"] >= 1
    assert disconnect["audit"]["unacked_received"] == disconnect["errors"]
    # Every unacknowledged loss of the run is a refusal or a kill, and the segments add up.
    assert (
        sum(f["audit"]["unacked_lost"] for f in summary["faults"])
        == (summary["audit"]["unacked_lost"])
    )

    audit = summary["audit"]
    assert audit["lost"] == 0 and audit["duplicated"] == 0 and audit["reordered"] == 0
    assert audit["failed"] == sum(f["errors"] for f in summary["faults"])
    assert sum(f["audit"]["sent"] for f in summary["faults"]) <= audit["sent"]

    report = (run_dir / "report.md").read_text()
    assert "Faults" in report and "kill 1s at 2s" in report
    assert "kill 1s at 2s" in out  # the terminal's faults table
    assert (run_dir / "report-plots" / "timeseries.png").stat().st_size > 10_000


def test_faults_on_a_broker_bench_up_did_not_start_fail_with_one_line(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(
        SCENARIO.replace(
            'driver = "memory"', 'driver = "nats"\nservers = ["nats://127.0.0.1:1"]'
        ).replace('service_time = "20ms"       # about 20 publishes in flight at any moment', "")
    )
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "--no-report"])
    _, err = capsys.readouterr()
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


def test_the_faults_table_counts_every_error_the_run_counted(tmp_path: Path, capsys):
    # Issue 13: the faults table must agree with the run's errors (one source: the summary's
    # fault rows). Two kills: each holds the refusals from its start to the next one's.
    (tmp_path / "s.toml").write_text(
        SCENARIO.replace('duration = "6.5s"', 'duration = "4s"').split("[[faults]]")[0]
        + '[[faults]]\nat = "2s"\naction = "kill"\ndown_for = "500ms"\n\n'
        + '[[faults]]\nat = "3.5s"\naction = "kill"\ndown_for = "300ms"\n'
    )
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    summary_path = next((tmp_path / "r").glob("*/*/summary.json"))
    summary = json.loads(summary_path.read_text())
    first, second = summary["faults"]
    # About 500 and 300 refused sends at 1000/s (plus the ~20 in flight at each kill).
    assert 400 <= first["errors"] <= 650 and 220 <= second["errors"] <= 400, summary["faults"]
    assert first["errors_before"] == 0 and first["time_to_first_error_s"] < 0.1, first
    assert second["time_to_first_error_s"] < 0.1, second
    assert first["errors_to_s"] == second["errors_from_s"], (first, second)
    assert summary["audit"]["failed"] == summary["errors"]["total"]
    assert_fault_errors_agree(summary_path.parent, summary)
    # The terminal printed each kill's count.
    for fault in summary["faults"]:
        line = next(line for line in out.splitlines() if f"at {fault['at_s']:g}s" in line)
        cells = [c.strip() for c in line.split("│")[1:-1]]
        assert cells[FAULT_COLUMNS.index("errors")] == str(fault["errors"]), line
