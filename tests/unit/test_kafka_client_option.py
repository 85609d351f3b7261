"""The Kafka target's ``client`` option: which library producers and consumers run on, refused
in one line naming the field when it cannot work, and mapped onto librdkafka's properties."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from pydantic import ValidationError

from bench.drivers.kafka import KafkaConfig
from bench.errors import ScenarioError
from bench.scenario import scenario_from_dict

SOURCE = "s.toml"


def scenario_error(target: dict[str, Any]) -> str:
    raw = {
        "scenario": {"name": "t", "duration": "1s", "warmup": "0s"},
        "workload": {"rate": 100, "producers": 1, "consumers": 1},
        "targets": {"k": {"driver": "kafka", **target}},
    }
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(raw, SOURCE)
    text = str(info.value)
    assert text.startswith(f"{SOURCE}: ") and "\n" not in text, text
    return text


def test_the_default_client_is_aiokafka() -> None:
    assert KafkaConfig.model_validate({"driver": "kafka"}).client == "aiokafka"


def test_an_unknown_client_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        KafkaConfig.model_validate({"driver": "kafka", "client": "librdkafka"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("client",)
    assert "targets.k.client" in scenario_error({"client": "kafka-python"})


def test_confluent_without_the_package_is_refused_naming_the_extra(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "confluent_kafka" else real(name, *a),
    )
    with pytest.raises(ValidationError) as caught:
        KafkaConfig.model_validate({"driver": "kafka", "client": "confluent"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("client",)
    assert "confluent-kafka" in error["msg"] and "kafka-confluent" in error["msg"]


def test_transactions_with_confluent_are_refused_naming_the_field() -> None:
    pytest.importorskip("confluent_kafka")
    text = scenario_error(
        {
            "client": "confluent",
            "transactional": 10,
            "enable_idempotence": True,
            "acks": "all",
        }
    )
    assert "transactional: not supported with client = 'confluent'" in text
    # The same options on aiokafka are fine.
    KafkaConfig.model_validate({"driver": "kafka", "transactional": 10, "enable_idempotence": True})


def test_confluent_compresses_with_librdkafka_codecs_whatever_python_has() -> None:
    pytest.importorskip("confluent_kafka")
    for codec in ("gzip", "lz4", "zstd", "snappy"):
        config = KafkaConfig.model_validate(
            {"driver": "kafka", "client": "confluent", "compression": codec}
        )
        assert config.compression == codec


def test_confluent_settings_partition_by_murmur2_and_keep_the_password_out() -> None:
    pytest.importorskip("confluent_kafka")
    from bench.drivers.kafka import confluent

    config = KafkaConfig.model_validate(
        {
            "driver": "kafka",
            "client": "confluent",
            "acks": 1,
            "linger_ms": 2,
            "max_batch_bytes": 65536,
            "commit": "explicit",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": "s3cret",
        }
    )
    produce = confluent.producer_settings(config)
    assert produce["partitioner"] == "murmur2_random"
    assert (produce["acks"], produce["linger.ms"], produce["batch.size"]) == (1, 2, 65536)
    consume = confluent.consumer_settings(config, "g")
    assert consume["enable.auto.commit"] is False and consume["enable.auto.offset.store"] is False
    assert consume["group.id"] == "g"
    assert confluent.common_settings(config)["sasl.password"] == "s3cret"
    assert "s3cret" not in str(confluent.common_settings(config, secrets=False))
    info = confluent.client_info()
    assert info["library"] == "confluent-kafka"
    assert info["version"][0].isdigit() and info["librdkafka"][0].isdigit()
