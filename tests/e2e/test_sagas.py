"""Sagas on the memory target (issue 19), with answers known from the knobs: the final states,
the compensations each saga ran, the dead letters, the retries after a lost reply, and the
invariants that fail the point when a compensation leaves a step done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.engine import saga as saga_mod
from bench.engine.runner import PointRunner
from bench.errors import ScenarioError
from bench.scenario import expand, scenario_from_dict


def _run(tmp_path: Path, saga: dict[str, Any], rate: int = 400, seconds: str = "2s") -> dict:
    raw = {
        "scenario": {"name": "saga", "duration": seconds, "warmup": "500ms", "seed": 3},
        "workload": {"kind": "saga", "rate": rate, "saga": {"timeout": "200ms", **saga}},
        "targets": {"memory": {"driver": "memory"}},
    }
    point = expand(scenario_from_dict(raw, "saga.toml"))[0]
    return PointRunner(point, "saga", tmp_path, stop_requested=lambda: False).run()


def test_a_tenth_failing_at_step_3_of_4_compensates_a_tenth_with_2_compensations_each(
    tmp_path: Path,
) -> None:
    summary = _run(tmp_path, {"failure": {"ProcessPayment": 0.1}}, seconds="1s")
    saga = summary["saga"]
    measured = saga["measured"]
    assert measured["sagas"] == 400 and saga["stuck"] == 0
    compensated = measured["final"].get("COMPENSATED", 0)
    assert 0.05 * 400 < compensated < 0.15 * 400
    assert measured["final"]["COMPLETED"] + compensated == 400
    # Each ran exactly two compensations: ReserveInventory's, then CreateOrder's.
    assert saga["compensations_per_compensated_saga"] == {"2": compensated}
    assert saga["failed_steps"] == {"ProcessPayment": saga["final"]["COMPENSATED"]}
    assert saga["invariants"] == {"ok": True, "violations": []}
    # 4 commands and 4 replies per completed saga; 3 + 3, then 2 + 2 compensating, per
    # compensated one: the broker's amplification, exactly.
    final = saga["final"]
    assert saga["messages"] == 8 * final["COMPLETED"] + 10 * final["COMPENSATED"]
    latency = summary["latency_us"]
    assert latency["saga"]["count"] == 400
    assert latency["saga_compensated"]["count"] == compensated
    assert summary["verdict"]["result"] == "pass", summary["verdict"]
    assert summary["throughput"]["sagas_per_s"] == 400.0


def test_choreography_ends_the_same_sagas_with_fewer_messages(tmp_path: Path) -> None:
    summary = _run(
        tmp_path, {"mode": "choreography", "failure": {"ProcessPayment": 0.1}}, seconds="1s"
    )
    saga = summary["saga"]
    measured = saga["measured"]
    compensated = measured["final"].get("COMPENSATED", 0)
    assert measured["sagas"] == 400 and saga["stuck"] == 0
    assert 0.05 * 400 < compensated < 0.15 * 400
    assert saga["compensations_per_compensated_saga"] == {"2": compensated}
    # No commands and replies: the start, one event per step done (the last one the saga's
    # outcome); a compensated saga: start, 2 forward, 2 back, its outcome.
    final = saga["final"]
    assert saga["messages"] == 5 * final["COMPLETED"] + 6 * final["COMPENSATED"]
    assert saga["invariants"]["ok"] and summary["verdict"]["result"] == "pass"


def test_a_lost_event_leaves_a_choreographed_saga_stuck_and_named(tmp_path: Path) -> None:
    summary = _run(
        tmp_path,
        {"mode": "choreography", "no_reply": {"ShipOrder": 0.05}, "stuck_after": "300ms"},
        seconds="1s",
    )
    saga = summary["saga"]
    # Nobody owns a timeout in a choreography: each lost event is a stuck saga.
    assert saga["stuck"] > 0 and saga["stuck_samples"][0]["last_step"] == "ShipOrder"
    assert saga["final"]["COMPLETED"] + saga["stuck"] == saga["started"]
    assert summary["verdict"]["result"] == "fail"
    assert any("sagas stuck" in r for r in summary["verdict"]["reasons"])


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_every_failed_compensation_is_dead_lettered(tmp_path: Path, mode: str) -> None:
    summary = _run(
        tmp_path,
        {
            "mode": mode,
            "failure": {"ShipOrder": 0.2},
            "compensation_failure": {"ProcessPayment": 1.0},
        },
        seconds="1s",
    )
    saga = summary["saga"]
    assert saga["final"]["COMPENSATED"] == 0
    assert saga["final"]["FAILED"] == saga["failed_steps"]["ShipOrder"] > 0
    assert saga["dead_lettered"] == saga["dead_letters_received"] == saga["final"]["FAILED"]
    assert saga["invariants"]["ok"], saga["invariants"]
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_a_lost_reply_is_retried_and_the_step_runs_once(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"no_reply": {"ReserveInventory": 0.2}, "retries": 1}, seconds="1s")
    saga = summary["saga"]
    timeouts = saga["timeouts"]["ReserveInventory"]
    assert timeouts > 0 and saga["retries"] == {"ReserveInventory": timeouts}
    # The retried command got the first one's outcome: nothing ran twice, all completed.
    assert saga["final"] == {"COMPLETED": saga["started"], "COMPENSATED": 0, "FAILED": 0}
    handled = {p["step"]: p for p in saga["participants"]}
    assert handled["ReserveInventory"]["duplicates"] == timeouts
    # A saga that waited for its timeout took at least that long.
    assert summary["latency_us"]["saga"]["max"] >= 200_000


def test_a_compensation_that_leaves_its_step_done_fails_the_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = saga_mod.Participant.decide

    def forgetful(self: saga_mod.Participant, saga_id: str, action: str) -> tuple[str, bool]:
        outcome = original(self, saga_id, action)
        if action == saga_mod.UNDO and self.name == "CreateOrder":
            self.done.add(saga_id)  # says compensated, undoes nothing
        return outcome

    monkeypatch.setattr(saga_mod.Participant, "decide", forgetful)
    summary = _run(tmp_path, {"failure": {"ProcessPayment": 0.3}}, seconds="1s")
    assert summary["verdict"]["result"] == "fail"
    assert any("left a step done" in r for r in summary["verdict"]["reasons"])


@pytest.mark.parametrize(
    ("saga", "extra", "words"),
    [
        ({"failure": {"Refund": 0.1}}, {}, "not a step"),
        ({"failure": {"ShipOrder": 1.5}}, {}, "a probability from 0 to 1"),
        ({}, {"workers": 2}, "one process"),
        ({}, {"rate": "max"}, "open-loop"),
        ({"mode": "choreography", "store": "memory"}, {}, "no central saga state"),
        ({"store": "nowhere"}, {}, "not a target of this file"),
    ],
)
def test_saga_options_that_cannot_run_are_one_line(
    saga: dict[str, Any], extra: dict[str, Any], words: str
) -> None:
    raw = {
        "scenario": {"name": "saga"},
        "workload": {"kind": "saga", "saga": saga, **extra},
        "targets": {"memory": {"driver": "memory"}},
    }
    with pytest.raises(ScenarioError, match=words) as caught:
        expand(scenario_from_dict(raw, "saga.toml"))
    assert "\n" not in str(caught.value)
    raw["workload"] = {"kind": "saga"}
    raw["targets"] = {"pg": {"driver": "postgres"}}
    with pytest.raises(ScenarioError, match=r"workload\.kind"):
        expand(scenario_from_dict(raw, "saga.toml"))


def test_a_saga_run_prints_its_table_and_reports_its_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_support import run_bench_captured

    scenario = tmp_path / "saga.toml"
    raw = (Path(__file__).resolve().parents[2] / "scenarios" / "saga.toml").read_text()
    raw = raw.replace('duration = "5s"', 'duration = "1s"').replace(
        'warmup = "1s"', 'warmup = "200ms"'
    )
    raw = raw.replace('["orchestration", "choreography"]', '["orchestration"]')
    raw = raw.replace("[0.0, 0.01, 0.1]", "[0.0, 0.1]")
    scenario.write_text(raw)
    results = tmp_path / "results"
    code, out, err = run_bench_captured(
        ["run", str(scenario), "-t", "memory", "-o", str(results)], capsys
    )
    assert code == 0, err
    assert "sagas/s" in out and "msgs/saga" in out and "acked/s" not in out
    run_dir = next(results.iterdir())
    report = (run_dir / "report.md").read_text()
    assert "## Sagas" in report and "## Summary" not in report
    for name in ("saga-latency-vs-failure", "saga-final-states"):
        assert f"report-plots/{name}.png" in report
        assert (run_dir / "report-plots" / f"{name}.png").stat().st_size > 1000


def _run_with_state(tmp_path: Path, saga: dict[str, Any]) -> dict:
    raw = {
        "scenario": {"name": "saga", "duration": "1s", "warmup": "200ms", "seed": 3},
        "workload": {"kind": "saga", "rate": 200, "saga": {"store": "state", **saga}},
        "targets": {"memory": {"driver": "memory"}, "state": {"driver": "memory"}},
    }
    points = expand(scenario_from_dict(raw, "saga.toml"))
    assert [p.target for p in points] == ["memory"] and points[0].store_target == "state"
    return PointRunner(points[0], "saga", tmp_path, stop_requested=lambda: False).run()


def test_the_persisted_state_is_written_before_each_command_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = _run_with_state(tmp_path / "ok", {"failure": {"ProcessPayment": 0.1}})
    saga = summary["saga"]
    final = saga["final"]
    # One write before each command, and one for the final state: 4 + 1 per completed saga,
    # 3 + 2 + 1 per compensated one.
    assert saga["state"]["writes"] == 5 * final["COMPLETED"] + 6 * final["COMPENSATED"]
    assert saga["invariants"]["ok"] and summary["verdict"]["result"] == "pass"
    # A store that loses the final writes: the check finds the sagas it has wrong.
    from bench.drivers.memory import MemoryDriver

    original = MemoryDriver.save_saga_state

    async def lossy(self: MemoryDriver, saga_id: str, status: str, step: int, version: int) -> None:
        if status != "COMPLETED":
            await original(self, saga_id, status, step, version)

    monkeypatch.setattr(MemoryDriver, "save_saga_state", lossy)
    broken = _run_with_state(tmp_path / "lossy", {})
    assert broken["verdict"]["result"] == "fail"
    assert any("persisted state differs" in r for r in broken["verdict"]["reasons"])
