"""--target selects targets before their drivers load (issue 15): a target that is not run
needs no client library, and the points that run keep their index in the whole file."""

from __future__ import annotations

import pytest

from bench.errors import ScenarioError
from bench.scenario import expand, scenario_from_dict


def raw() -> dict:
    return {
        "scenario": {"name": "pick", "duration": "1s", "warmup": "0s"},
        "targets": {
            "absent": {"driver": "not-installed-anywhere"},
            "m": {"driver": "memory"},
        },
        "matrix": {"workload.rate": [100, 200]},
    }


def test_an_unselected_targets_driver_is_never_loaded():
    with pytest.raises(ScenarioError, match=r"targets\.absent\.driver"):
        scenario_from_dict(raw(), "s.toml")
    scenario = scenario_from_dict(raw(), "s.toml", targets=["m"])
    assert scenario.selected_targets == ["m"]
    points = expand(scenario, "s.toml")
    assert [(p.index, p.target) for p in points] == [(2, "m"), (3, "m")]
    assert list(scenario.targets) == ["absent", "m"]  # the file as written, for the manifest


def test_an_unknown_target_is_one_error_naming_the_option():
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw(), "s.toml", targets=["m", "nope"])
    assert caught.value.message == "s.toml: --target: no target named 'nope'"


def test_without_targets_every_target_is_selected():
    data = raw()
    data["targets"]["absent"]["driver"] = "memory"
    scenario = scenario_from_dict(data, "s.toml")
    assert scenario.selected_targets == ["absent", "m"]
    assert [p.index for p in expand(scenario, "s.toml")] == [0, 1, 2, 3]
