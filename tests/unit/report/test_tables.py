"""The metric registry, point matching and loading of results directories."""

from __future__ import annotations

import json

import pytest

from bench.errors import ResultsError
from bench.report.tables import (
    METRICS,
    environment_frame,
    expand_group,
    latency_frame,
    load,
    metric,
    point_key,
    summary_frame,
)
from bench.scenario import LATENCY_KINDS
from tests.fabricate import PointSpec, make_run


def test_every_metric_knows_its_direction():
    assert metric("throughput").higher_is_better
    assert metric("throughput.received_per_s").higher_is_better
    for key in ("e2e.p99", "response.p50", "service.max", "errors.total", "audit.lost"):
        assert not metric(key).higher_is_better, key
    assert metric("lost") is METRICS["audit.lost"]
    assert metric("reordered").key == "audit.reordered"


def test_an_unknown_metric_names_the_known_ones():
    with pytest.raises(KeyError, match=r"e2e\.p99"):
        metric("e2e.p98")


def test_points_match_by_target_and_parameters_not_position():
    a = {"target": "kafka", "params": {"workload.rate": 1000, "workload.partitions": 4}}
    b = {"target": "kafka", "params": {"workload.partitions": 4, "workload.rate": 1000.0}}
    assert point_key(a) == point_key(b) == "kafka workload.partitions=4 workload.rate=1000"
    assert point_key({"target": "nats", "params": {}}) == "nats"


def test_load_reads_every_point_with_its_directory(golden):
    run = load(golden.sweep)
    assert run.scenario_name == "golden"
    assert [p.label for p in run.points][:3] == [
        "memory rate=500",
        "memory rate=2000",
        "memory rate=8000",
    ]
    assert all((p.dir / "e2e.hlog").exists() for p in run.points)
    frame = summary_frame(run.points)
    assert list(frame["target"]) == ["memory"] * 3 + ["kafka"] * 3
    assert "client-bound" in frame.loc[2, "status"]
    assert set(latency_frame(run.points)["kind"]) == set(LATENCY_KINDS)


def test_a_group_is_a_comma_list_or_a_directory_of_runs(golden):
    assert expand_group(f"{golden.base},{golden.noise}") == [golden.base, golden.noise]
    assert golden.base in expand_group(golden.root)
    with pytest.raises(ResultsError, match="not a directory"):
        expand_group(golden.root / "nope")


def test_a_broken_summary_is_one_error_naming_the_file(tmp_path, golden):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(golden.base, run)
    (run / "000-memory" / "summary.json").write_text("{not json")
    with pytest.raises(ResultsError, match=r"000-memory/summary.json: not valid JSON"):
        load(run)
    (run / "000-memory" / "summary.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultsError, match="schema_version"):
        load(run)


def test_the_environment_names_the_client_library_a_target_ran_on(tmp_path):
    # Two runs of the Kafka driver may differ only in their client (client = "confluent"):
    # the report must say which, as describe() recorded it.
    run = make_run(tmp_path, "clients", [PointSpec("kafka"), PointSpec("nats")], seed=3)
    clients = {
        "kafka": {"library": "confluent-kafka", "version": "2.16.1", "librdkafka": "2.16.0"},
        "nats": {"library": "nats-py", "version": "2.7.2"},
    }
    for path in run.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary["target_info"]["client"] = clients[summary["target"]]
        path.write_text(json.dumps(summary))
    values = dict(environment_frame(load(run)).itertuples(index=False, name=None))
    assert values["target kafka"].endswith(
        "(driver memory, client confluent-kafka 2.16.1, librdkafka 2.16.0)"
    )
    assert values["target nats"].endswith("client nats-py 2.7.2)")
