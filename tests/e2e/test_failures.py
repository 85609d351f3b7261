"""Known production failures, reproduced on the memory target (no services): the failure shown
by a count, and the fix with that count at zero (scenarios/failures/)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict
from bench.verdict import judge

FAILURES = Path(__file__).resolve().parents[2] / "scenarios" / "failures"


def _on_memory(name: str, duration: str = "3s") -> dict[str, Any]:
    raw = tomllib.loads((FAILURES / name).read_text())
    raw["scenario"]["duration"] = duration
    raw["targets"] = {"memory": raw["targets"]["memory"]}
    return raw


def _run(tmp_path: Path, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each point's summary, by its partition key."""
    out = {}
    for point in expand(scenario_from_dict(raw, "failure.toml")):
        summary = PointRunner(
            point, "failure", tmp_path / f"p{point.index}", stop_requested=lambda: False
        ).run()
        out[point.workload.partition_key] = summary
    return out


def test_order_inversion_without_the_aggregate_key_and_the_fix(tmp_path: Path) -> None:
    runs = _run(tmp_path, _on_memory("order_inversion.toml"))
    fixed, broken = runs["aggregate"], runs["none"]
    for summary in (fixed, broken):
        audit = summary["audit"]
        assert audit["lost"] == 0 and audit["duplicated"] == 0, audit
        assert audit["received"] == audit["acked"] > 4000
    # The fix: every order's events in one partition, in order, applied in order.
    assert fixed["audit"]["reordered"] == 0
    assert fixed["audit"]["projection_failures"] == 0
    assert fixed["verdict"]["result"] == "pass", fixed["verdict"]
    # The failure: no key spreads an order over the partitions, and the 3 ms jitter between
    # them puts events ahead of the state they need.
    audit = broken["audit"]
    assert audit["reordered"] > 0 and audit["keys_reordered"] > 0
    assert audit["projection_failures"] > 0
    assert 0 < audit["keys_projection_failed"] <= 50  # the scenario's 50 aggregates
    # Every event was delivered: each one parked ahead of its state was applied in the end.
    assert audit["projection_stuck"] == 0
    assert broken["workload"]["partition_key"] == "none"
    assert broken["verdict"]["result"] == "fail"
    assert any(r.startswith("projection failures ") for r in broken["verdict"]["reasons"])
    # The verdict is the one the summary's figures give.
    assert judge(broken).reasons == broken["verdict"]["reasons"]


def test_an_event_id_key_spreads_an_aggregate_too(tmp_path: Path) -> None:
    raw = _on_memory("order_inversion.toml", duration="2s")
    raw["matrix"] = {"workload.partition_key": ["event_id"]}
    (summary,) = _run(tmp_path, raw).values()
    assert summary["audit"]["projection_failures"] > 0
    assert summary["audit"]["lost"] == 0
