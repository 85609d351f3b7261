"""Hypothesis fuzzes the scenario loader: whatever a file holds, the only outcomes are a valid
scenario (whose every matrix point expands) or our own ``ScenarioError`` naming the file."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.errors import ScenarioError
from bench.scenario import ScenarioMeta, Workload, expand, load_scenario, scenario_from_dict

BASE: dict[str, Any] = {
    "scenario": {"name": "fuzz", "duration": "1s", "warmup": "0s"},
    "workload": {"rate": 100, "producers": 1, "consumers": 1},
    "targets": {"mem": {"driver": "memory", "service_time": "1ms"}},
    "slo": {"e2e.p99": "50ms"},
}

# Field names the loader knows, so mutations hit real validation paths, plus a few it does not.
PATHS = (
    [("scenario", name) for name in ScenarioMeta.model_fields]
    + [("workload", name) for name in Workload.model_fields]
    + [("targets", "mem", name) for name in ("driver", "service_time", "jitter", "stall_at",
                                              "stall_for", "capacity_per_s", "drop_rate",
                                              "client_cpu_per_send", "max_backlog")]
    + [("targets", "other", "driver"), ("slo", "e2e.p99"), ("slo", "response.p50"),
       ("slo", "bogus"), ("matrix", "workload.rate"), ("matrix", "target.jitter"),
       ("matrix", "scenario.seed"), ("unknown",), ("workload", "unknown"), ("targets",),
       ("scenario",), ("matrix",)]
)  # fmt: skip

SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1s", "0s", "10", "5ms", "-1s", "1h", "2m", "max", "zipf:1.1", "hot:0.1:0.9",
                     "uniform", "poisson", "constant", "memory", "kafka", "stream", "store",
                     "auto", "100us", "1e3s", "nan"]),
)  # fmt: skip
# Values that are valid for many fields, so that mutated files often stay valid and the
# valid path (matrix expansion, point checks) is fuzzed too.
PLAUSIBLE = st.sampled_from(
    [1, 2, 4, 8, 100, 1000, 0.5, True, False, "1s", "500ms", "2s", "0s", "uniform",
     "zipf:1.2", "poisson", "constant", "max", "memory", [100, 200], ["1ms", "2ms"], [1, 2]]
)  # fmt: skip
VALUES = st.one_of(
    PLAUSIBLE,
    PLAUSIBLE,
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
)


def _set(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = raw
    for part in path[:-1]:
        if not isinstance(node, dict):
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if isinstance(node, dict):
        node[path[-1]] = value


def _check_outcome(raw: dict[str, Any]) -> None:
    try:
        scenario = scenario_from_dict(raw, "fuzz.toml")
    except ScenarioError as error:
        assert error.source == "fuzz.toml"
        assert str(error)  # a message a user can read
        event(f"error in {(error.field or '-').split('.')[0]}")
        return
    event("valid")
    points = expand(scenario, "fuzz.toml")
    assert points, "a valid scenario has at least one point"
    for point in points:
        w = point.workload
        assert w.closed_loop or (isinstance(w.rate, float) and w.rate > 0 and math.isfinite(w.rate))
        assert point.scenario.scenario.duration > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
def test_mutated_scenarios_are_valid_or_our_own_error(mutations):
    raw = copy.deepcopy(BASE)
    for path, value in mutations:
        _set(raw, path, value)
    _check_outcome(raw)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), VALUES, max_size=5))
def test_arbitrary_tables_are_valid_or_our_own_error(raw):
    _check_outcome(raw)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_file_contents_are_valid_or_our_own_error(tmp_path: Path, content):
    path = tmp_path / "fuzz.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        load_scenario(path)
    except ScenarioError as error:
        assert error.source == str(path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), PLAUSIBLE), min_size=1, max_size=2))
def test_plausible_edits_are_valid_or_our_own_error(mutations):
    raw = copy.deepcopy(BASE)
    for path, value in mutations:
        _set(raw, path, value)
    _check_outcome(raw)
