"""Broker faults on the saga timeline (issue 19), on the memory target, whose faults act out
exactly: a pause holds the sagas it catches, and the retries bring them home; an outage longer
than the retry budget compensates them, or dead-letters them when the compensation cannot get
through either; SLOs judge the saga's latency; every error lands in a fault's row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.engine.runner import PointRunner
from bench.errors import ScenarioError
from bench.scenario import expand, scenario_from_dict


def _raw(saga: dict[str, Any], faults: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "scenario": {"name": "saga-faults", "duration": "2s", "warmup": "500ms", "seed": 5},
        "workload": {
            "kind": "saga",
            "rate": 200,
            "saga": {"timeout": "400ms", "retries": 1, "stuck_after": "4s", **saga},
        },
        "targets": {"memory": {"driver": "memory"}},
        "faults": faults,
        **extra,
    }


def _run(tmp_path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    point = expand(scenario_from_dict(raw, "saga.toml"))[0]
    return PointRunner(point, "saga", tmp_path, stop_requested=lambda: False).run()


def test_a_pause_holds_the_sagas_it_catches_and_one_retry_each_brings_them_home(
    tmp_path: Path,
) -> None:
    # Paused 600 ms: each command in flight times out once (400 ms), is retried, and the
    # retry's 400 ms outlast the pause; nothing fails, so every caught saga completes.
    summary = _run(tmp_path, _raw({}, [{"at": "1s", "action": "pause", "down_for": "600ms"}]))
    saga = summary["saga"]
    (fault,) = summary["faults"]
    caught = fault["sagas"]
    assert fault["status"] == "done" and fault["answering_at_s"] - fault["started_at_s"] >= 0.6
    # In flight at the pause, or started during it: about 600 ms of 200/s, and more.
    assert caught["caught"] >= 100, caught
    assert caught["final"] == {"COMPLETED": caught["caught"], "COMPENSATED": 0, "FAILED": 0}
    assert caught["stuck"] == 0 and saga["stuck"] == 0
    assert caught["timeouts"] > 0 and caught["retries"] == caught["timeouts"]
    # A retry reaches a participant that already has the first command: idempotent, so each
    # retry is one duplicate and no step ran twice.
    assert sum(p["duplicates"] for p in saga["participants"]) == caught["retries"]
    assert saga["invariants"] == {"ok": True, "violations": []}
    # The caught sagas waited out the pause; the others did not.
    assert caught["latency_us"]["p99"] >= 500_000
    assert summary["latency_us"]["saga_outside_faults"]["p99"] < 100_000
    assert fault["final_outage_s"] >= 0.5 and fault["recovery_s"] is not None
    assert fault["errors"] == summary["errors"]["total"] == 0
    assert summary["verdict"]["result"] == "pass", summary["verdict"]


def test_an_outage_past_the_retry_budget_compensates_or_dead_letters_what_it_caught(
    tmp_path: Path,
) -> None:
    # Killed 1.8 s: a step's command and its retry both fail (800 ms), so the saga compensates;
    # a compensation that is also refused twice (the sagas the kill caught early) is
    # dead-lettered, and the dead letters are published again until they get through.
    summary = _run(
        tmp_path,
        _raw({}, [{"at": "800ms", "action": "kill", "down_for": "1800ms"}])
        | {"scenario": {"name": "saga-faults", "duration": "3s", "warmup": "500ms"}},
    )
    saga = summary["saga"]
    (fault,) = summary["faults"]
    caught = fault["sagas"]
    assert fault["status"] == "done"
    assert caught["final"]["COMPENSATED"] > 0 and caught["final"]["FAILED"] > 0, caught
    assert caught["stuck"] == 0 and saga["stuck"] == 0
    # Every saga the kill did not catch completed: the failures are the fault's alone.
    assert saga["final"]["COMPENSATED"] == caught["final"]["COMPENSATED"]
    assert saga["final"]["FAILED"] == caught["final"]["FAILED"]
    assert saga["dead_letters_received"] == saga["dead_lettered"] == saga["final"]["FAILED"]
    assert saga["invariants"] == {"ok": True, "violations": []}
    # The refused publishes are the run's errors, and all of them are the kill's.
    assert summary["errors"]["total"] > 0
    assert fault["errors"] + fault["errors_before"] == summary["errors"]["total"]
    # Recovery counts sagas that ended through the broker: none could while it was down (the
    # dead-lettering timers fire at the full rate then, and once read as a recovery).
    down_s = fault["answering_at_s"] - fault["started_at_s"]
    assert fault["recovery_s"] is not None and fault["recovery_s"] >= down_s, fault
    # The refused publishes are judged: failed attempts over all attempts, above 0.1%.
    errors = summary["errors"]
    assert errors["failed_in_window"] > 0 and errors["rate"] > 0.001
    assert any("error rate" in r for r in summary["verdict"]["reasons"]), summary["verdict"]


def test_a_saga_slo_judges_the_sagas_a_pause_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_support import run_bench_captured

    scenario = tmp_path / "saga.toml"
    scenario.write_text(
        '[scenario]\nname = "saga-slo"\nduration = "2s"\nwarmup = "500ms"\n\n'
        '[workload]\nkind = "saga"\nrate = 200\n\n[workload.saga]\ntimeout = "400ms"\n\n'
        '[slo]\n"saga.p99" = "100ms"\n\n'
        '[[faults]]\nat = "1s"\naction = "pause"\ndown_for = "600ms"\n\n'
        '[targets.memory]\ndriver = "memory"\n'
    )
    code, out, err = run_bench_captured(
        ["run", str(scenario), "-o", str(tmp_path / "r"), "--fail-on", "verdict"], capsys
    )
    assert code == 1, err  # the SLO failed: a failed verdict
    # The terminal's saga faults table (its columns wrap at a test's width: one word each).
    assert "faults on" in out and "caught" in out and "saga.p99" in out, out
    run_dir = next((tmp_path / "r").iterdir())
    report = (run_dir / "report.md").read_text()
    assert "### Faults on the saga timeline" in report and "\n## Faults" not in report


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_raw({}, [], slo={"e2e.p99": "10ms"}), "a saga point measures saga"),
        (
            _raw({}, [{"at": "1s", "action": "pause", "down_for": "1s", "on": "store"}]),
            "with no saga.store",
        ),
        (
            _raw(
                {"store": "state"},
                [{"at": "1s", "action": "pause", "down_for": "1s", "on": "store"}],
            )
            | {"targets": {"memory": {"driver": "memory"}, "state": {"driver": "memory"}}},
            "runs inside eventbench",
        ),
        (
            _raw({}, [{"at": "1s", "action": "kill_consumer"}]),
            "acts on the consumers of a stream workload",
        ),
    ],
)
def test_faults_and_slos_a_saga_cannot_take_are_one_line(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ScenarioError, match=words) as caught:
        expand(scenario_from_dict(raw, "saga.toml"))
    assert "\n" not in str(caught.value)


def test_a_saga_slo_on_a_stream_point_is_one_line() -> None:
    raw = {
        "scenario": {"name": "s"},
        "workload": {"rate": 100},
        "slo": {"saga.p99": "10ms"},
        "targets": {"memory": {"driver": "memory"}},
    }
    with pytest.raises(ScenarioError, match="saga's latency"):
        expand(scenario_from_dict(raw, "s.toml"))


def test_a_stop_inside_a_pause_brings_the_broker_back_and_judges_nothing_it_cut_short(
    tmp_path: Path,
) -> None:
    # Ctrl-C 1 s into a 3 s pause: the pause is cut short (the memory broker resumes), the
    # sends it held complete, and the run ends at once; the sagas still open are not judged
    # stuck, and the verdict is inconclusive. (It hung for good: the cancelled pause left the
    # broker frozen, and the wait for the held sends had no end.)
    import time

    point = expand(
        scenario_from_dict(
            _raw({}, [{"at": "1s", "action": "pause", "down_for": "3s"}])
            | {"scenario": {"name": "saga-stop", "duration": "4s", "warmup": "500ms"}},
            "saga.toml",
        )
    )[0]
    stop_at: list[float] = []

    def stop_requested() -> bool:
        if not stop_at:
            stop_at.append(time.monotonic() + 2.5)  # the load starts about now
        return time.monotonic() >= stop_at[0]

    started = time.monotonic()
    summary = PointRunner(point, "saga", tmp_path, stop_requested=stop_requested).run()
    assert time.monotonic() - started < 15
    assert summary["status"] == "interrupted"
    saga = summary["saga"]
    assert saga["stuck_judged"] is False and saga["invariants"]["violations"] == []
    assert summary["verdict"]["result"] == "inconclusive", summary["verdict"]
    (fault,) = summary["faults"]
    assert fault["status"] == "done" and fault["restored_at_s"] - fault["started_at_s"] < 2.5
