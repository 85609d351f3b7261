import textwrap

import pytest

from bench.errors import ScenarioError
from bench.scenario import apply_override, expand, load_scenario, scenario_from_dict

BASE = """
[scenario]
name = "t"
duration = "5s"

[workload]
rate = 1000

[targets.mem]
driver = "memory"
"""


def _write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path, text, overrides=None) -> ScenarioError:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    assert info.value.exit_code == 2
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def test_the_shipped_scenarios_are_valid():
    from pathlib import Path

    for path in Path(__file__).resolve().parents[2].joinpath("scenarios").rglob("*.toml"):
        scenario = load_scenario(path)
        assert expand(scenario, str(path))


def test_defaults_fill_a_minimal_file(tmp_path):
    scenario = load_scenario(_write(tmp_path, BASE))
    assert scenario.scenario.warmup == 2.0
    assert scenario.workload.rate == 1000.0
    assert scenario.workload.schedule == "constant"


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ("workload.rate=-5", "workload.rate", "more than 0"),
        ("workload.rate=0", "workload.rate", "more than 0"),
        ("workload.rate='fast'", "workload.rate", "not a rate"),
        ("workload.ratee=5", "workload.ratee", "unknown field"),
        ("workload.keys='zipf:-1'", "workload.keys", "key distribution"),
        ("workload.event_types={}", "workload.event_types", "at least one"),
        ("workload.producers=0", "workload.producers", "greater than or equal to 1"),
        ("scenario.duration='10'", "scenario.duration", "no unit"),
        ("scenario.duration=10", "scenario.duration", "no unit"),
        ("scenario.duration='0s'", "scenario.duration", "longer than 0s"),
        ("targets.mem.service_tim='1ms'", "targets.mem.service_tim", "unknown field"),
        ("targets.mem.drop_rate=2", "targets.mem.drop_rate", "less than 1"),
        ("targets.mem.stall_at='1s'", "targets.mem", "go together"),
        ("targets.x.driver='nosuch'", "targets.x.driver", "unknown driver"),
        ("matrix.workload.rate=[]", "matrix.workload.rate", "empty list"),
        ("matrix.workload.rate=[100, -1]", "workload.rate", "more than 0"),
        ("matrix.bogus.rate=[1]", "matrix.bogus.rate", "unknown path"),
        ("slo.e2e.p98='5ms'", "slo", "not a latency SLO"),
    ],
)
def test_bad_fields_are_named_with_the_problem(tmp_path, override, field, words):
    error = _error(tmp_path, BASE, [override])
    assert error.field is not None and error.field.startswith(field), error
    assert words in str(error), error


def test_unknown_fields_in_the_file_itself_are_named(tmp_path):
    error = _error(tmp_path, BASE.replace("rate = 1000", "rate = 1000\nburst = 3"))
    assert error.field == "workload.burst"


def test_broken_toml_is_one_line_naming_the_file(tmp_path):
    error = _error(tmp_path, "[scenario\nname = 1")
    assert "invalid TOML" in str(error)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.toml")


def test_no_targets_is_an_error(tmp_path):
    error = _error(tmp_path, "[scenario]\nname='t'\n")
    assert error.field == "targets"


def test_overrides_set_any_field_with_toml_values(tmp_path):
    path = _write(tmp_path, BASE)
    scenario = load_scenario(
        path,
        [
            "workload.rate=5000",
            "workload.schedule=poisson",
            "targets.mem.service_time=2ms",
            "matrix.workload.producers=[1, 2]",
            "slo.e2e.p99=50ms",
        ],
    )
    assert scenario.workload.rate == 5000.0
    assert scenario.workload.schedule == "poisson"
    assert scenario.targets["mem"]["service_time"] == "2ms"
    assert scenario.matrix == {"workload.producers": [1, 2]}
    assert scenario.slo["e2e.p99"] == pytest.approx(0.05)


def test_a_bad_override_names_the_field(tmp_path):
    error = _error(tmp_path, BASE, ["workload.rate=-1"])
    assert error.field == "workload.rate"
    with pytest.raises(ScenarioError, match="PATH=VALUE"):
        apply_override({}, "workload.rate")


def test_matrix_expands_to_the_cross_product_for_every_target(tmp_path):
    text = (
        BASE
        + """
[targets.mem2]
driver = "memory"
service_time = "1ms"

[matrix]
"workload.rate" = [100, 200, 300]
"target.service_time" = ["0s", "1ms"]
"""
    )
    scenario = load_scenario(_write(tmp_path, text))
    points = expand(scenario)
    assert len(points) == 2 * 3 * 2
    assert {p.target for p in points} == {"mem", "mem2"}
    rates = sorted({p.workload.rate for p in points})
    assert rates == [100.0, 200.0, 300.0]
    assert {p.driver_config.service_time for p in points} == {0.0, 0.001}
    assert len({p.slug for p in points}) == len(points)


def test_in_process_targets_need_producers_and_consumers_in_every_worker():
    raw = {
        "scenario": {"name": "t"},
        "workload": {"workers": 2, "producers": 1, "consumers": 2},
        "targets": {"mem": {"driver": "memory"}},
    }
    with pytest.raises(ScenarioError, match=r"workload\.producers"):
        scenario_from_dict(raw, "x.toml")


def test_credentials_come_from_the_environment_or_a_file(tmp_path, monkeypatch):
    from bench.scenario import validate_target

    monkeypatch.setenv("EB_UNIT_PW", "from-env")
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    env = validate_target(
        "n", {"driver": "nats", "user": "u", "password": "${env:EB_UNIT_PW}"}, "s.toml"
    )
    assert env.password.get_secret_value() == "from-env"  # type: ignore[attr-defined]
    from_file = validate_target(
        "n", {"driver": "nats", "user": "u", "password": f"${{file:{secret}}}"}, "s.toml"
    )
    assert from_file.password.get_secret_value() == "from-file"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reference", "words"),
    [("${env:EB_UNIT_NOT_SET}", "EB_UNIT_NOT_SET is not set"), ("${file:/nope/pw}", "cannot read")],
)
def test_a_missing_credential_source_names_the_field(reference, words, monkeypatch):
    from bench.scenario import validate_target

    monkeypatch.delenv("EB_UNIT_NOT_SET", raising=False)
    with pytest.raises(ScenarioError) as caught:
        validate_target("n", {"driver": "nats", "user": "u", "password": reference}, "s.toml")
    assert caught.value.field == "targets.n.password" and words in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("workload", "rate"), float("nan"), "workload.rate"),
        (("workload", "rate"), float("inf"), "workload.rate"),
        (("workload", "event_types"), {"OrderPlaced": float("nan")}, "workload.event_types"),
        (("workload", "event_types"), {"OrderPlaced": float("inf")}, "workload.event_types"),
    ],
)
def test_a_rate_or_weight_that_is_not_a_finite_number_is_our_own_error(path, value, field):
    raw = {"scenario": {"name": "x"}, "targets": {"m": {"driver": "memory"}}, "workload": {}}
    raw[path[0]][path[1]] = value
    with pytest.raises(ScenarioError) as error:
        scenario_from_dict(raw, "x.toml")
    assert error.value.field == field
