"""Validation holes of issue 14: values that passed ``bench validate`` and then crashed the
workers or the run (exit 70), durations that lost the precision they were written with, and
text fields without a bound. Each is now refused at validation in one line naming the file and
the field, or (a rate whose window holds no event) warned about."""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest

from bench.errors import ScenarioError
from bench.scenario import expand, scenario_from_dict
from bench.units import Seconds, format_duration, parse_duration_s

SOURCE = "s.toml"


def _raw(**tables: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "scenario": {"name": "t", "duration": "1s", "warmup": "0s"},
        "workload": {"rate": 100, "producers": 1, "consumers": 1},
        "targets": {"mem": {"driver": "memory"}},
    }
    for name, values in tables.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def _error(raw: dict[str, Any], overrides: list[str] | None = None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(raw, SOURCE, overrides)
    error = info.value
    assert error.exit_code == 2
    text = str(error)
    assert text.startswith(f"{SOURCE}: ") and "\n" not in text
    assert len(text) < 300, text
    return error


# --------------------------------------------------------------------------- the seed


@pytest.mark.parametrize("seed", ["-1", "-9223372036854775808", "true", "1.5"])
def test_a_seed_the_generators_refuse_is_refused_at_validation(seed):
    error = _error(_raw(), [f"scenario.seed={seed}"])
    assert error.field == "scenario.seed"


def test_validation_accepts_every_seed_the_generators_take():
    import numpy as np

    for seed in (0, 1, 2**63 - 1):
        scenario = scenario_from_dict(_raw(), SOURCE, [f"scenario.seed={seed}"])
        np.random.default_rng([scenario.scenario.seed, 7])


# --------------------------------------------------------------------------- broker URLs

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"amqp://guest:{SECRET}@127.0.0.1:abc/", "the port is not a number"),
        (f"amqp://guest:{SECRET}@127.0.0.1:70000/", "out of range"),
        (f"amqp://guest:{SECRET}@127.0.0.1:0/", "out of range"),
        (f"amqp://guest:{SECRET}@:5672/", "has no host"),
        (f"http://guest:{SECRET}@127.0.0.1:5672/", "scheme 'http'"),
        (f"guest:{SECRET}@127.0.0.1:5672", "no scheme"),
        (f"amqp://guest:{SECRET}@[::1/", "not a valid URL"),
    ],
)
def test_a_malformed_rabbitmq_url_is_refused_without_its_password(url, words):
    raw = _raw(targets={"rmq": {"driver": "rabbitmq", "url": url}})
    error = _error(raw)
    assert error.field == "targets.rmq.url"
    assert words in error.problem
    assert SECRET not in str(error) and SECRET not in (error.hint or "")


def test_a_password_equal_to_the_bad_port_is_not_echoed():
    raw = _raw(targets={"rmq": {"driver": "rabbitmq", "url": "amqp://guest:abc@127.0.0.1:abc/"}})
    assert "abc" not in str(_error(raw))


def test_a_sound_rabbitmq_url_still_passes():
    for url in ("amqp://guest:guest@127.0.0.1:5672/", "amqps://u:p@[::1]/vh", "amqp://h"):
        raw = _raw(targets={"rmq": {"driver": "rabbitmq", "url": url}})
        assert expand(scenario_from_dict(raw, SOURCE), SOURCE)


def test_a_bad_rabbitmq_url_from_the_environment_fails_validation(monkeypatch):
    monkeypatch.setenv("BENCH_RABBITMQ_URL", f"amqp://guest:{SECRET}@127.0.0.1:abc/")
    error = _error(_raw(targets={"rmq": {"driver": "rabbitmq"}}))
    assert error.field == "targets.rmq.url"
    assert "BENCH_RABBITMQ_URL" in error.problem and SECRET not in str(error)


@pytest.mark.parametrize(
    ("servers", "words"),
    [
        (["nats://127.0.0.1:xyz"], "the port is not a number"),
        ([f"nats://u:{SECRET}@127.0.0.1:xyz"], "the port is not a number"),
        (["127.0.0.1:xyz"], "the port is not a number"),
        (["nats://127.0.0.1:70000"], "out of range"),
        (["nats://127.0.0.1:4222", "nats://127.0.0.1:0"], "server 2 of 2: the port is out"),
        (["nats://:4222"], "has no host"),
        ([""], "is empty"),
        ([f"http://u:{SECRET}@127.0.0.1:4222"], "scheme 'http'"),
        (["nats://127.0.0.1:4222", "ws://127.0.0.1:8080"], "mixes websocket"),
    ],
)
def test_a_malformed_nats_server_is_refused_without_its_password(servers, words):
    raw = _raw(targets={"n": {"driver": "nats", "servers": servers}})
    error = _error(raw)
    assert error.field == "targets.n.servers"
    assert words in error.problem
    assert SECRET not in str(error)


def test_sound_nats_servers_still_pass():
    for servers in (["nats://127.0.0.1:4222"], ["127.0.0.1"], ["tls://u:p@h:4443", "h:1"]):
        raw = _raw(targets={"n": {"driver": "nats", "servers": servers}})
        assert expand(scenario_from_dict(raw, SOURCE), SOURCE)


def test_nats_refuses_exactly_what_nats_py_refuses():
    # The validator and the client agree: whatever validation passes, nats-py parses.
    from nats.aio.client import Client

    from bench.drivers.nats import public_server, server_problem

    for server in ["nats://h:4222", "h", "h:1", "tls://u:p@h:2", "ws://h:80", "nats://h:xyz",
                   "nats://:1", "nats://h:99999", "nats://[::1]:4222"]:  # fmt: skip
        if server_problem(server) is None:
            assert Client._parse_server_uri(server).hostname
            public_server(server)  # the describe()/error path that crashed with exit 70
        else:
            with pytest.raises(Exception):  # noqa: B017 (nats-py raises its own or ValueError)
                uri = Client._parse_server_uri(server)
                assert uri.port and 1 <= uri.port <= 65535


@pytest.mark.parametrize("driver", ["rabbitmq", "nats"])
def test_a_publish_timeout_of_zero_is_refused(driver):
    error = _error(_raw(targets={"t": {"driver": driver, "publish_timeout": "0s"}}))
    assert error.field == "targets.t.publish_timeout"


# --------------------------------------------------------------------------- durations


def test_a_duration_finer_than_the_resolution_is_refused_in_the_users_words():
    error = _error(_raw(scenario={"duration": "1ns"}))
    assert error.field == "scenario.duration"
    assert "'1ns'" in error.problem and "1us" in error.problem
    assert "e-0" not in error.problem  # never a re-spelling such as '1e-06ms'
    assert error.problem.count("1ns") == 1  # said once, not again as "(got '1ns')"


@pytest.mark.parametrize("text", ["1ns", "999ns", "0.5us", "0.0000001s"])
def test_durations_below_one_microsecond_are_refused(text):
    with pytest.raises(ValueError, match="finest resolution"):
        parse_duration_s(text)


@pytest.mark.parametrize("text", ["0s", "0ns", "1us", "1000ns", "1500ns"])
def test_zero_and_durations_from_one_microsecond_up_are_accepted(text):
    assert format_duration(parse_duration_s(text)) == text


@pytest.mark.parametrize("text", ["1.2345678s", "1234.5678ms", "0.000123456s", "1.5h"])
def test_a_duration_keeps_the_precision_it_was_written_with(text):
    seconds = parse_duration_s(text)
    assert isinstance(seconds, Seconds) and seconds.text == text
    assert format_duration(seconds) == text
    # Exact arithmetic: "1234.5678ms" is the float nearest 1.2345678, not 1.2345678000000001.
    from decimal import Decimal

    number, unit = text.rstrip("hmsu"), text[len(text.rstrip("hmsu")) :]
    factor = {"s": "1", "ms": "0.001", "h": "3600"}[unit]
    assert float(seconds) == float(Decimal(number) * Decimal(factor))


def test_a_duration_is_recorded_and_shown_back_as_written():
    raw = _raw(scenario={"duration": "1.2345678s", "drain_timeout": "1234.5678ms"})
    scenario = scenario_from_dict(raw, SOURCE)
    dumped = scenario.model_dump(mode="json")["scenario"]  # what manifest.json records
    assert dumped["duration"] == "1.2345678s"
    assert dumped["drain_timeout"] == "1234.5678ms"
    assert scenario.scenario.duration == 1.2345678
    # The matrix expansion and the workers (spawned: pickled) see the same value.
    point = expand(scenario, SOURCE)[0]
    assert point.scenario.scenario.duration == 1.2345678
    revived = pickle.loads(pickle.dumps(point.scenario))
    assert revived.model_dump(mode="json")["scenario"]["duration"] == "1.2345678s"


def test_a_fault_message_shows_durations_as_written():
    raw = _raw(scenario={"duration": "1.2345678s"})
    raw["faults"] = [{"at": "1.5s", "action": "kill"}]
    assert "1.2345678s" in _error(raw).problem


@pytest.mark.parametrize(
    "seconds", [0.5, 2.0, 120.0, 3600.0, 0.00025, 1.2345678, 0.1 + 0.2, 1234567.8, 2.5e-6]
)
def test_a_computed_duration_formats_to_a_spelling_that_reads_back_exactly(seconds):
    text = format_duration(seconds)
    assert "e" not in text
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("value", ['"0s"', "0"])
def test_a_send_timeout_of_zero_is_refused(value):
    error = _error(_raw(), [f"workload.send_timeout={value}"])
    assert error.field == "workload.send_timeout"
    assert "longer than 0s" in error.problem


def test_a_rate_whose_window_holds_no_event_is_a_warning_not_an_error():
    raw = _raw(scenario={"duration": "5s"}, workload={"rate": 0.1})
    point = expand(scenario_from_dict(raw, SOURCE), SOURCE)[0]
    (warning,) = point.warnings
    assert "workload.rate = 0.1/s" in warning and "5s" in warning and "no event" in warning


def test_a_rate_split_so_thin_that_a_producer_sends_nothing_is_a_warning():
    raw = _raw(scenario={"duration": "1s"}, workload={"rate": 10, "producers": 20})
    point = expand(scenario_from_dict(raw, SOURCE), SOURCE)[0]
    (warning,) = point.warnings
    assert "20 producers" in warning


def test_a_rate_that_fills_the_window_has_no_warning():
    for workload in ({"rate": 1}, {"rate": "max"}, {"rate": 100, "producers": 4}):
        raw = _raw(scenario={"duration": "1s"}, workload=workload)
        assert expand(scenario_from_dict(raw, SOURCE), SOURCE)[0].warnings == []


# --------------------------------------------------------------------------- text bounds

BIG = "x" * 100_000


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (f'scenario.description="{BIG}"', "scenario.description"),
        (f'scenario.name="{BIG}"', "scenario.name"),
        (f'workload.aggregate_type="{BIG}"', "workload.aggregate_type"),
        (f'workload.keys="{BIG}"', "workload.keys"),
        (f'workload.rate="{BIG}"', "workload.rate"),
        (f'scenario.duration="{BIG}"', "scenario.duration"),
        (f'verdict.max_error_rate="{BIG}"', "verdict.max_error_rate"),
        (f'targets.mem.service_time="{BIG}"', "targets.mem.service_time"),
        (f'targets.mem.anything=["{BIG}"]', "targets.mem.anything"),
        (f"workload.event_types={{{BIG[:200]}=1}}", "workload.event_types"),
        (f'targets.{BIG[:200]}.driver="memory"', "targets"),
    ],
)
def test_a_huge_text_is_refused_at_once_in_one_short_line(override, field):
    started = time.perf_counter()
    error = _error(_raw(), [override])
    assert time.perf_counter() - started < 1.0
    assert error.field == field


def test_a_description_within_the_bound_is_kept():
    text = "A paragraph about this scenario. " * 100
    scenario = scenario_from_dict(_raw(scenario={"description": text}), SOURCE)
    assert scenario.scenario.description == text


@pytest.mark.parametrize(
    ("workload", "field"),
    [
        ({"aggregate_type": 'Or"der'}, "workload.aggregate_type"),
        ({"aggregate_type": "Order\n"}, "workload.aggregate_type"),
        ({"event_types": {'Placed"': 1.0}}, "workload.event_types"),
        ({"event_types": {"Order Placed": 1.0}}, "workload.event_types"),
        ({"event_types": {"": 1.0}}, "workload.event_types"),
        # "$" matched before a final newline: the workers then failed on "uniform\n".
        ({"keys": "uniform\n"}, "workload.keys"),
    ],
)
def test_a_type_name_that_would_break_the_events_json_is_refused(workload, field):
    # Both names are written verbatim into every event's JSON and into message headers.
    assert _error(_raw(workload=workload)).field == field


def test_every_type_name_validation_accepts_makes_valid_event_json():
    import json

    from bench.workload import EventFactory

    raw = _raw(workload={"aggregate_type": "shop.Order-2", "event_types": {"v1:Placed_x": 1}})
    workload = scenario_from_dict(raw, SOURCE).workload
    event = json.loads(EventFactory(workload, 0, 1).next(0).value)
    assert (event["aggregate_type"], event["event_type"]) == ("shop.Order-2", "v1:Placed_x")


@pytest.mark.parametrize(
    "raw",
    [
        _raw(scenario={"name": "ok\n"}),
        {**_raw(), "targets": {"mem\n": {"driver": "memory"}}},
    ],
    ids=["scenario name", "target name"],
)
def test_a_name_with_a_trailing_newline_is_refused(raw):
    # A regex "$" matches before a final newline; names become directories.
    _error(raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bootstrap_servers", "127.0.0.1:abc"),
        ("bootstrap_servers", "127.0.0.1:9092,h:0"),
        ("bootstrap_servers", ":9092"),
    ],
)
def test_a_malformed_kafka_address_is_refused_at_validation(field, value):
    # Before: validate said ok, and the run failed at connect.
    error = _error(_raw(targets={"k": {"driver": "kafka", field: value}}))
    assert f"targets.k.{field}" in str(error)


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://u:s3cret@127.0.0.1:xyz/test", "postgresql://[::1]:x/t", "mysql://h:3306/t"],
)
def test_a_malformed_postgres_dsn_is_refused_without_its_password(dsn):
    # Before: validate said ok, and the run ended in "internal error: ValueError" (exit 70).
    raw = _raw(targets={"pg": {"driver": "postgres", "dsn": dsn}})
    raw["workload"] = {"rate": 100, "kind": "store", "consumers": 0}
    error = _error(raw)
    assert "targets.pg.dsn" in str(error) and "s3cret" not in str(error)


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://u:pw@127.0.0.1:5432/test", "postgresql://[::1]:5432/t",
     "postgresql:///test?host=/tmp", "postgresql://h1:5432,h2:5433/t", "host=localhost port=5432"],
)  # fmt: skip
def test_sound_postgres_dsns_still_pass(dsn):
    raw = _raw(targets={"pg": {"driver": "postgres", "dsn": dsn}})
    raw["workload"] = {"rate": 100, "kind": "store", "consumers": 0}
    assert expand(scenario_from_dict(raw, SOURCE))


def test_a_100kb_matrix_key_or_override_is_not_echoed_in_full():
    key = "workload." + "x" * 100_000
    error = _error(_raw(matrix={key: [1]}))
    assert "characters)" in str(error)
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_raw(), SOURCE, ["y" * 100_000])
    assert len(str(info.value)) < 200


def test_nats_servers_may_be_one_text_as_bench_nats_url_is_written():
    from bench.drivers.nats import NatsConfig

    one = NatsConfig(driver="nats", servers="nats://127.0.0.1:4222")  # type: ignore[arg-type]
    assert one.servers == ["nats://127.0.0.1:4222"]
    two = NatsConfig(driver="nats", servers=" nats://a:4222, nats://b:4223 ")  # type: ignore[arg-type]
    assert two.servers == ["nats://a:4222", "nats://b:4223"]
    raw = _raw(targets={"n": {"driver": "nats", "servers": "nats://127.0.0.1:4222,nats://h:0"}})
    error = _error(raw)
    assert error.field == "targets.n.servers" and "server 2 of 2" in error.problem
