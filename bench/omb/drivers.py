"""An OMB driver YAML (``--omb-driver kafka.yaml``) as one eventbench target.

OMB names its driver by Java class (``driverClass``) and passes client properties as text
(``commonConfig``, ``producerConfig``, ``consumerConfig``, ``topicConfig``: ``key=value`` lines)
or as fields of its own. Each one eventbench has a counterpart for becomes that target option
(``KAFKA_PROPERTIES`` and the tables below); one it has not is one line in ``notes``, naming the
key, never applied in secret and never a failure (OMB's stock files tune brokers in ways a
client-side harness cannot). A ``driverClass`` eventbench has no driver for is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ScenarioError
from bench.omb.workload import read_yaml

# driverClass -> eventbench driver.
DRIVER_CLASSES = {
    "io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver": "kafka",
    "io.openmessaging.benchmark.driver.rabbitmq.RabbitMqBenchmarkDriver": "rabbitmq",
    "io.openmessaging.benchmark.driver.nats.NatsBenchmarkDriver": "nats",
    "io.openmessaging.benchmark.driver.natsJetStream.NatsJetStreamBenchmarkDriver": "nats",
}


def _ms(value: str) -> str:
    return f"{int(value)}ms"


def _kafka_acks(value: str) -> Any:
    return {"all": "all", "-1": "all", "1": 1, "0": 0}[value]


def _bool_text(value: str) -> bool:
    return {"true": True, "false": False}[value.strip().lower()]


# Kafka client property -> (target option, how the text becomes its value).
KAFKA_PROPERTIES: dict[str, tuple[str, Any]] = {
    "bootstrap.servers": ("bootstrap_servers", str),
    "request.timeout.ms": ("request_timeout", _ms),
    "security.protocol": ("security_protocol", str),
    "sasl.mechanism": ("sasl_mechanism", str),
    "acks": ("acks", _kafka_acks),
    "linger.ms": ("linger_ms", int),
    "batch.size": ("max_batch_bytes", int),
    "compression.type": ("compression", str),
    "enable.idempotence": ("enable_idempotence", _bool_text),
    "auto.offset.reset": ("auto_offset_reset", str),
    "enable.auto.commit": ("commit", lambda v: "auto" if _bool_text(v) else "explicit"),
    "fetch.max.wait.ms": ("fetch_max_wait_ms", int),
    "fetch.min.bytes": ("fetch_min_bytes", int),
    "max.poll.records": ("max_poll_records", int),
    "session.timeout.ms": ("session_timeout_ms", int),
}


@dataclass
class OmbTarget:
    """One target from an OMB driver file: its name, its options, and the keys not mapped."""

    name: str
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _properties(source: str, key: str, value: Any) -> dict[str, str]:
    """OMB's ``key=value`` property text (or a mapping) as a dict."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise ScenarioError(source, key, f"expected key=value lines, got {value!r}")
    found: dict[str, str] = {}
    for line in value.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, text = line.partition("=")
        if not sep:
            raise ScenarioError(source, key, f"{line!r} is not a key=value line")
        found[name.strip()] = text.strip()
    return found


def omb_target(path: Path) -> OmbTarget:
    """The target of the OMB driver file at ``path``."""
    source = str(path)
    data = read_yaml(path, "driver")
    driver_class = data.get("driverClass")
    driver = DRIVER_CLASSES.get(str(driver_class))
    if driver is None:
        raise ScenarioError(
            source,
            "driverClass",
            f"{driver_class!r}: eventbench has no driver for it",
            hint=f"it maps {', '.join(sorted(DRIVER_CLASSES))}",
        )
    name = str(data.get("name") or driver).lower()
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or driver
    target = OmbTarget(name, {"driver": driver})
    if driver == "kafka":
        _kafka(source, data, target)
    elif driver == "rabbitmq":
        _rabbitmq(source, data, target)
    else:
        _nats(source, data, target)
    return target


def _unmapped(target: OmbTarget, where: str) -> None:
    target.notes.append(f"{where}: no eventbench counterpart, not applied")


def _kafka(source: str, data: dict[str, Any], target: OmbTarget) -> None:
    for key, value in data.items():
        if key in ("name", "driverClass"):
            continue
        if key == "replicationFactor":
            target.options["replication_factor"] = int(value)
        elif key == "reset":
            target.options["recreate_topic"] = bool(value)
        elif key in ("commonConfig", "producerConfig", "consumerConfig", "topicConfig"):
            for prop, text in _properties(source, key, value).items():
                mapped = KAFKA_PROPERTIES.get(prop) if key != "topicConfig" else None
                if mapped is None:
                    _unmapped(target, f"{key} {prop}")
                    continue
                option, convert = mapped
                try:
                    target.options[option] = convert(text)
                except (KeyError, ValueError):
                    raise ScenarioError(
                        source, f"{key}.{prop}", f"{text!r} is not a value eventbench takes"
                    ) from None
        else:
            _unmapped(target, key)


def _rabbitmq(source: str, data: dict[str, Any], target: OmbTarget) -> None:
    for key, value in data.items():
        if key in ("name", "driverClass"):
            continue
        if key == "amqpUris":
            uris = value if isinstance(value, list) else [value]
            if not uris or not isinstance(uris[0], str):
                raise ScenarioError(source, key, "expected a list of amqp:// URIs")
            target.options["url"] = uris[0]
            if len(uris) > 1:
                target.notes.append(f"amqpUris: the first of {len(uris)} is used")
        elif key == "messagePersistence":
            target.options["persistent"] = bool(value)
        elif key == "queueType":
            queue_type = str(value).lower()
            if queue_type not in ("classic", "quorum", "stream"):
                raise ScenarioError(source, key, f"{value!r}: classic, quorum or stream")
            target.options["queue_type"] = queue_type
        else:
            _unmapped(target, key)


def _nats(source: str, data: dict[str, Any], target: OmbTarget) -> None:
    for key, value in data.items():
        if key in ("name", "driverClass"):
            continue
        if key in ("natsHostUrl", "natsHostUrls"):
            urls = value if isinstance(value, list) else str(value).split(",")
            target.options["servers"] = [str(u).strip() for u in urls if str(u).strip()]
        elif key in ("replicationFactor", "jsReplicas"):
            target.options["replicas"] = int(value)
        else:
            _unmapped(target, key)
