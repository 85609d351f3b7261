"""OMB workload and driver files as eventbench scenarios (issue 20): every field maps to one
scenario field or is one line naming it; the written scenario reads back as the same one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.errors import ScenarioError
from bench.omb.drivers import omb_target
from bench.omb.workload import OmbSources, load_omb, omb_scenario
from bench.scenario import expand, load_scenario, scenario_from_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "omb"
WORKLOADS = FIXTURES / "workloads"
MEMORY = {"memory": {"driver": "memory"}}


def _import(name: str, **targets: dict) -> dict:
    imported = omb_scenario(WORKLOADS / name, targets or MEMORY)
    scenario_from_dict(imported.raw, name)  # a scenario that validates
    return imported.raw


def test_a_single_topic_workload_maps_field_by_field() -> None:
    raw = _import("1-topic-1-partition-100b.yaml")
    workload = raw["workload"]
    assert raw["scenario"]["duration"] == "900s" and raw["scenario"]["warmup"] == "60s"
    assert workload["partitions"] == 1 and workload["producers"] == 1
    assert workload["consumers"] == 1 and workload["rate"] == 50000
    assert workload["payload_bytes"] == 100
    # The payload file found in the OMB checkout the workload sits in (workloads/ next to
    # payload/), and checked to be messageSize bytes.
    assert Path(workload["payload_file"]) == (FIXTURES / "payload" / "payload-100b.data")
    # NO_KEY: no key, so no per-key order promised, and none judged.
    assert workload["partition_key"] == "none" and raw["verdict"] == {"allow_reordering": True}


def test_key_distributors_and_randomized_payloads() -> None:
    round_robin = _import("1-topic-16-partitions-1kb.yaml")["workload"]
    assert round_robin["keys"] == "round_robin" and round_robin["aggregates"] == 10_000
    assert "partition_key" not in round_robin  # keyed: per-key order is judged
    random = _import("1-topic-100-partitions-1kb-3-producers.yaml")
    workload = random["workload"]
    assert workload["partition_key"] == "event_id"  # RANDOM_NANO: a new key per message
    assert workload["payload_random"] == 0.5 and workload["payload_pool"] == 100
    assert workload["producers"] == 3 and workload["consumers"] == 2
    assert workload["partitions"] == 100 and "payload_file" not in workload


def test_producer_rate_0_is_a_find_max() -> None:
    imported = omb_scenario(WORKLOADS / "max-rate-1-topic-1-partition-1kb.yaml", MEMORY)
    assert imported.find_max
    assert any("find-max" in note for note in imported.notes)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"compressionType": "lz4"}, "compressionType", "not an OMB workload field"),
        ({"topics": 1001}, "topics", "at most 1000 topics"),
        ({"subscriptionsPerTopic": 65}, "subscriptionsPerTopic", "at most 64"),
        ({"consumerBacklogSizeGB": -1}, "consumerBacklogSizeGB", "at least 0"),
        ({"consumerBacklogSizeGB": 1, "producerRate": 0}, "producerRate", "with a backlog"),
        ({"consumerBacklogSizeGB": 1, "backlogDrainRatio": 1.5}, "backlogDrainRatio", "share"),
        ({"keyDistributor": "ZIPF"}, "keyDistributor", "not an OMB key distributor"),
        ({"messageSize": "big"}, "messageSize", "expected a whole number"),
        ({"payloadFile": "payload/nowhere.data"}, "payloadFile", "was not found"),
        ({"messageSize": 99}, "payloadFile", "OMB requires them equal"),
    ],
)
def test_what_cannot_map_is_one_line_naming_the_field(
    tmp_path: Path, change: dict, field: str, words: str
) -> None:
    import yaml

    data = yaml.safe_load((WORKLOADS / "1-topic-1-partition-100b.yaml").read_text())
    data.update(change)
    path = tmp_path / "workloads" / "w.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "payload").symlink_to(FIXTURES / "payload")
    with pytest.raises(ScenarioError, match=words) as caught:
        omb_scenario(path, MEMORY)
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_a_driver_file_becomes_a_target_and_says_what_it_could_not_map() -> None:
    kafka = omb_target(FIXTURES / "driver" / "kafka.yaml")
    assert kafka.name == "kafka"
    assert kafka.options == {
        "driver": "kafka",
        "replication_factor": 1,
        "recreate_topic": True,
        "bootstrap_servers": "127.0.0.1:9092",
        "request_timeout": "30000ms",
        "acks": "all",
        "linger_ms": 1,
        "max_batch_bytes": 131072,
        "auto_offset_reset": "earliest",
        "commit": "explicit",
    }
    assert kafka.notes == [
        "topicConfig min.insync.replicas: no eventbench counterpart, not applied",
        "consumerConfig max.partition.fetch.bytes: no eventbench counterpart, not applied",
    ]
    rabbit = omb_target(FIXTURES / "driver" / "rabbitmq.yaml")
    assert rabbit.options["persistent"] is False and rabbit.options["queue_type"] == "classic"
    nats = omb_target(FIXTURES / "driver" / "nats.yaml")
    assert nats.options == {
        "driver": "nats",
        "servers": ["nats://127.0.0.1:4222"],
        "replicas": 1,
    }


def test_an_unknown_driver_class_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pulsar.yaml"
    path.write_text("name: Pulsar\ndriverClass: io.openmessaging.benchmark.driver.pulsar.X\n")
    with pytest.raises(ScenarioError, match="no driver for it") as caught:
        omb_target(path)
    assert caught.value.field == "driverClass"


def test_the_imported_scenario_file_reads_back_as_the_same_scenario(tmp_path: Path) -> None:
    from tests.cli_support import run_bench

    workload = WORKLOADS / "1-topic-16-partitions-1kb.yaml"
    out = tmp_path / "s.toml"
    driver = FIXTURES / "driver" / "nats.yaml"
    code = run_bench(["import-omb", str(workload), "-o", str(out), "--omb-driver", str(driver)])
    assert code == 0
    text = out.read_text()
    assert text.startswith("# Imported from the OMB workload")
    written = load_scenario(out)
    direct = load_scenario(workload, omb=OmbSources((driver,)))
    assert written.model_dump() == direct.model_dump()
    assert [p.target for p in expand(written)] == ["nats"]
    assert tomllib.loads(text)["targets"]["nats"]["servers"] == ["nats://127.0.0.1:4222"]
    # Not over an existing file without --force.
    assert run_bench(["import-omb", str(workload), "-o", str(out), "-t", "memory"]) == 2


def test_targets_by_name_and_from_driver_files_together() -> None:
    imported = load_omb(
        WORKLOADS / "1-topic-1-partition-100b.yaml",
        ["memory"],
        OmbSources((FIXTURES / "driver" / "kafka.yaml",)),
    )
    assert list(imported.raw["targets"]) == ["kafka", "memory"]


def test_subscriptions_are_consumer_groups_of_consumerpersubscription_members(
    tmp_path: Path,
) -> None:
    import yaml

    data = yaml.safe_load((WORKLOADS / "1-topic-16-partitions-1kb.yaml").read_text())
    data.update(subscriptionsPerTopic=3, consumerPerSubscription=2)
    path = tmp_path / "workloads" / "fan-out.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "payload").symlink_to(FIXTURES / "payload")
    workload = omb_scenario(path, MEMORY).raw["workload"]
    assert workload["subscriptions"] == 3 and workload["consumers"] == 2


def test_many_topics_spread_producers_and_consumers_per_topic() -> None:
    raw = _import("100-topics-1-partition-1kb.yaml")
    workload = raw["workload"]
    # OMB counts per topic; eventbench's producers and consumers are totals over the topics.
    assert workload["topics"] == 100 and workload["partitions"] == 1
    assert workload["producers"] == 100 and workload["consumers"] == 100


def test_a_backlog_is_gb_times_1024_mib_with_its_drain_ratio(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load((WORKLOADS / "1-topic-16-partitions-1kb.yaml").read_text())
    data.update(consumerBacklogSizeGB=2, backlogDrainRatio=0.5)
    path = tmp_path / "workloads" / "backlog.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "payload").symlink_to(FIXTURES / "payload")
    raw = omb_scenario(path, MEMORY).raw
    assert raw["workload"]["backlog"] == "2048MiB"
    assert raw["workload"]["backlog_drain_ratio"] == 0.5
    workload = scenario_from_dict(raw, "backlog.yaml").workload
    assert workload.backlog == 2 * 2**30 and workload.backlog_messages() == 2 * 2**20
    data.update(consumerBacklogSizeGB=0.0001)  # not a whole number of MiB: bytes
    path.write_text(yaml.safe_dump(data))
    assert omb_scenario(path, MEMORY).raw["workload"]["backlog"] == round(0.0001 * 2**30)
