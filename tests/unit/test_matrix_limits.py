"""Matrix size and speed (issue 14, "No hangs"): the point count is known before anything is
expanded, a matrix over the limit is refused in one line, and checking a point is cheap, with
every bad value still caught before anything runs."""

from __future__ import annotations

import time

import pytest

from bench.errors import ScenarioError
from bench.scenario import (
    MAX_MATRIX_POINTS,
    Scenario,
    expand,
    matrix_limit,
    point_count,
    scenario_from_dict,
)


def _raw(matrix: dict, targets: int = 1) -> dict:
    return {
        "scenario": {"name": "m", "duration": "5s"},
        "workload": {"rate": 1000, "producers": 2, "consumers": 2, "workers": 1},
        "targets": {f"mem{i}": {"driver": "memory", "service_time": "1ms"} for i in range(targets)},
        "matrix": matrix,
    }


def _big(n1: int, n2: int) -> dict:
    return {
        "workload.rate": list(range(100, 100 + n1)),
        "workload.aggregates": list(range(1, 1 + n2)),
    }


@pytest.mark.timeout(20)
def test_a_million_point_matrix_is_refused_at_once_with_its_count():
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_raw(_big(1000, 1000)), "big.toml")
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert message.startswith("big.toml: matrix: 1,000,000 points")
    assert "10,000" in message and "--allow-large-matrix" in message


def test_the_count_multiplies_targets_and_list_lengths_without_expanding():
    # Built without the matrix check: 3 targets x 10^4 x 10^4 x 2 = 6 * 10^8 points.
    scenario = Scenario.model_validate(
        _raw({**_big(10_000, 10_000), "workload.schedule": ["constant", "poisson"]}, targets=3)
    )
    started = time.perf_counter()
    assert point_count(scenario) == 3 * 10_000 * 10_000 * 2
    assert time.perf_counter() - started < 0.1
    assert point_count(Scenario.model_validate(_raw({}, targets=2))) == 2


def test_the_limit_is_configurable_and_counts_every_target():
    raw = _raw(_big(10, 10), targets=2)  # 200 points
    with pytest.raises(ScenarioError, match=r"200 points .* limit of 150"):
        scenario_from_dict(raw, "s.toml", max_points=150)
    scenario = scenario_from_dict(raw, "s.toml", max_points=200)
    assert len(expand(scenario, "s.toml", max_points=200)) == 200
    with pytest.raises(ScenarioError, match=r"matrix: 200 points"):
        expand(scenario, "s.toml", max_points=199)
    assert matrix_limit() == MAX_MATRIX_POINTS == 10_000
    assert matrix_limit(max_points=50) == 50
    assert matrix_limit(max_points=50, allow_large=True) is None
    assert len(expand(scenario, "s.toml", max_points=None)) == 200


def test_exactly_the_limit_is_allowed():
    scenario = scenario_from_dict(_raw(_big(100, 100)), "s.toml")
    assert len(expand(scenario, "s.toml")) == MAX_MATRIX_POINTS


def test_checking_a_point_is_cheap():
    # 12 ms a point before (the driver registry was scanned twice per point, twice over).
    raw = _raw(_big(50, 40))  # 2,000 points
    started = time.perf_counter()
    scenario = scenario_from_dict(raw, "s.toml")
    points = expand(scenario, "s.toml")
    per_point_ms = (time.perf_counter() - started) * 1000 / len(points)
    assert len(points) == 2000
    assert per_point_ms < 1.0, f"{per_point_ms:.2f} ms a point"


def test_each_point_has_its_own_values_and_the_file_is_untouched():
    raw = _raw({"workload.rate": [100, 200], "target.service_time": ["1ms", "3ms"]}, targets=2)
    raw["workload"]["event_types"] = {"A": 1.0}
    scenario = scenario_from_dict(raw, "s.toml")
    points = expand(scenario, "s.toml")
    assert [(p.target, p.workload.rate, p.driver_config.service_time) for p in points] == [
        ("mem0", 100.0, 0.001),
        ("mem0", 100.0, 0.003),
        ("mem0", 200.0, 0.001),
        ("mem0", 200.0, 0.003),
        ("mem1", 100.0, 0.001),
        ("mem1", 100.0, 0.003),
        ("mem1", 200.0, 0.001),
        ("mem1", 200.0, 0.003),
    ]
    assert [p.index for p in points] == list(range(8))
    assert all(p.scenario.matrix == {} for p in points)
    assert points[1].scenario.targets["mem0"]["service_time"] == "3ms"
    assert points[1].scenario.targets["mem1"]["service_time"] == "1ms"  # only its own target
    assert raw["workload"]["rate"] == 1000 and raw["targets"]["mem0"]["service_time"] == "1ms"
    assert scenario.workload.rate == 1000.0


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        # The bad value is the last one: every point is still checked.
        (
            {"workload.rate": [100, 200, -5], "workload.aggregates": [1, 2]},
            "s.toml: workload.rate: must be more than 0 events/s, a finite number (got -5)",
        ),
        (
            {"workload.aggregates": [1, 2], "target.service_time": ["1ms", "soon"]},
            "s.toml: targets.mem0.service_time:",
        ),
        # Good values one by one, bad together: 1 producer for 2 in-process workers.
        (
            {"workload.producers": [2, 1], "workload.workers": [1, 2]},
            "s.toml: workload.producers: target 'mem0' runs inside each worker process",
        ),
        # A path through a value that is not a table (was a TypeError, exit 70).
        (
            {"workload.rate.mean": [100]},
            "s.toml: matrix.workload.rate.mean: workload.rate is not a table",
        ),
    ],
)
def test_every_bad_value_is_still_caught_before_anything_runs(matrix, expected):
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_raw(matrix), "s.toml")
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)
