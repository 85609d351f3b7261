"""The options of a Kafka target: the pydantic model, its bootstrap address, and the aiokafka
settings each option maps onto (the confluent-kafka ones are in ``confluent``)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any, Literal

from aiokafka import codec as kafka_codec
from aiokafka.conn import collect_hosts
from aiokafka.helpers import create_ssl_context
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from bench.drivers.base import DriverConfig
from bench.redaction import redact_text
from bench.units import Duration

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

# What each codec needs that aiokafka cannot use without it.
_CODEC_CHECKS: dict[str, tuple[Callable[[], bool], str]] = {
    "gzip": (kafka_codec.has_gzip, "the standard library's gzip"),
    "lz4": (kafka_codec.has_lz4, "the python package 'lz4'"),
    "zstd": (kafka_codec.has_zstd, "the python package 'zstandard' (or 'backports.zstd')"),
    "snappy": (kafka_codec.has_snappy, "the python package 'cramjam' (or 'python-snappy')"),
}


def available_compressions() -> list[str]:
    """The compression settings aiokafka can use in this environment."""
    return ["none", *(name for name, (check, _) in _CODEC_CHECKS.items() if check())]


class KafkaConfig(DriverConfig):
    """Options of a Kafka target. Client settings map one to one onto the client library's."""

    driver: Literal["kafka"] = "kafka"
    bootstrap_servers: str = Field(
        default_factory=lambda: os.environ.get("BENCH_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        validate_default=True,
    )
    client_id: str = "eventbench"
    # The library producers and consumers run on: aiokafka, or confluent-kafka (librdkafka,
    # the optional extra kafka-confluent). Topics, the lag query, the re-read and describe
    # use aiokafka either way.
    client: Literal["aiokafka", "confluent"] = "aiokafka"
    # Kafka's own producer default since 3.0; on one broker it costs nothing over acks=1.
    acks: Literal[0, 1, "all"] = "all"
    enable_idempotence: bool = False
    linger_ms: int = Field(default=0, ge=0)
    # A cap per partition, not a wait (linger_ms is the wait): with linger 0 a batch holds
    # what queued while the previous request was out. Kafka's 16 KiB (~14 records of 1 KiB)
    # parks senders on a full batch at 64 in flight over 4 partitions, and each stored batch
    # costs a Kafka-protocol broker a read per consumer fetch: measured on Tansu, 128 KiB
    # took the harness from 6.9k to 9.7k msgs/s (1 KiB, 64 in flight, with a consumer).
    max_batch_bytes: int = Field(default=131072, gt=0)
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    # Publish in transactions of this many events (0: no transactions).
    transactional: int = Field(default=0, ge=0)
    # Commit a transaction with fewer than `transactional` events once no event has joined
    # it for this long, so the end of a run or a slow rate does not hold events forever.
    transaction_linger_ms: int = Field(default=100, ge=0)
    request_timeout: Duration = 30.0
    # aiokafka's default (500 ms) makes brokers that hold fetches for the full wait (Tansu)
    # look 100+ ms slow at moderate rates; 10 ms keeps end-to-end latency honest.
    # Measured on Tansu 0.6.0 (1 KiB, 4 partitions): a fetch that finds records returns at
    # once whatever the wait, so at full rate the fetch count is set by the consumer's cycle
    # (~100/s), not by these two; raising the wait to 50 ms or min bytes to 16 KiB cut the
    # fetches at 1000 msgs/s (from 214/s to 176/s and 91/s) but not the broker's CPU; both
    # together cut it (68% to 41% of a core) and nearly tripled e2e p50 (8 to 22 ms).
    # Stored batches are what cost the broker, hence the larger max_batch_bytes.
    fetch_max_wait_ms: int = Field(default=10, ge=0)
    fetch_min_bytes: int = Field(default=1, ge=1)
    max_poll_records: int = Field(default=500, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit: Literal["auto", "explicit"] = "auto"
    # With commit = "explicit": commit what was processed once this many records are
    # uncommitted, or this long after the last commit, whichever comes first (both 0: after
    # every fetched batch). What a killed consumer (the kill_consumer fault) had not committed,
    # the group's next member reads again: redelivered.
    commit_every: int = Field(default=0, ge=0, le=10_000_000)
    commit_interval: Duration = 0.0
    # Tansu holds a JoinGroup for half the session timeout, so this also sets how long a
    # consumer's start() takes there (5 s at aiokafka's 10 s). Kafka's minimum is 6 s.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    replication_factor: int = Field(default=1, ge=1)
    recreate_topic: bool = True
    # Bound on topic creation/deletion and on a consumer's group join.
    setup_timeout: Duration = 30.0
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # aiokafka cannot log in with "user:secret@host:port"; it would only carry the secret
        # into error lines and results. The message names the problem, never the value.
        if "@" in value:
            raise ValueError(
                "holds credentials (a user before an @): Kafka takes them as sasl_username "
                "and sasl_password, with security_protocol = 'SASL_PLAINTEXT' or 'SASL_SSL'"
            )
        for entry in value.split(","):
            host, colon, port = entry.strip().rpartition(":")
            if not entry.strip() or (colon and not host):
                raise ValueError("an address has no host: write host:9092[,host:9092]")
            if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise ValueError(
                    "a port is not a number from 1 to 65535: write host:9092[,host:9092]"
                )
        return value

    @field_validator("client")
    @classmethod
    def _client_installed(cls, value: str) -> str:
        if value == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "'confluent' needs the python package 'confluent-kafka', which is not "
                "installed here (pip install 'eventbench[kafka-confluent]')"
            )
        return value

    @field_validator("compression")
    @classmethod
    def _compression_usable(cls, value: str, info: ValidationInfo) -> str:
        # librdkafka carries all four codecs itself; aiokafka needs a package for each.
        if value != "none" and info.data.get("client") != "confluent":
            check, needs = _CODEC_CHECKS[value]
            if not check():
                raise ValueError(
                    f"{value!r} needs {needs}, which is not installed here "
                    f"(usable: {', '.join(available_compressions())})"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError("acks: must be 'all' when enable_idempotence is true")
        if self.transactional and not self.enable_idempotence:
            raise ValueError(
                "transactional: needs enable_idempotence = true (and acks = 'all'); "
                "Kafka transactions are built on the idempotent producer"
            )
        if (self.commit_every or self.commit_interval) and self.commit != "explicit":
            given = "commit_every" if self.commit_every else "commit_interval"
            raise ValueError(
                f"{given} applies when the consumer commits itself: add commit = 'explicit'"
            )
        if self.transactional and self.client == "confluent":
            raise ValueError(
                "transactional: not supported with client = 'confluent' "
                "(use client = 'aiokafka' for transactions)"
            )
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise ValueError(f"sasl_mechanism: required with {self.security_protocol}")
            if self.sasl_username is None or self.sasl_password is None:
                raise ValueError(
                    f"sasl_username and sasl_password: required with {self.sasl_mechanism}"
                )
        return self

    def settings(self) -> dict[str, Any]:
        """Every option as given or defaulted, secrets left out (for describe and results)."""
        out = self.model_dump(mode="json", exclude={"sasl_password"})
        out["sasl_password_set"] = self.sasl_password is not None
        return out


# --------------------------------------------------------------------------- the address


def bootstrap_hosts(servers: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as (host, port) pairs, in the order given."""
    return [(host, port) for host, port, _family in collect_hosts(servers)]


def where(config: KafkaConfig) -> str:
    """The target as error lines name it, credentials redacted."""
    return f"kafka at {redact_text(config.bootstrap_servers)}"


# --------------------------------------------------------------------------- aiokafka settings


def client_settings(config: KafkaConfig) -> dict[str, Any]:
    """What every aiokafka client of the target is given: address, timeout, TLS and SASL."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "request_timeout_ms": int(config.request_timeout * 1000),
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(cafile=config.ssl_cafile)
    if config.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = config.sasl_mechanism
        kwargs["sasl_plain_username"] = config.sasl_username
        assert config.sasl_password is not None  # the model requires it with SASL
        kwargs["sasl_plain_password"] = config.sasl_password.get_secret_value()
    return kwargs


def producer_settings(config: KafkaConfig) -> dict[str, Any]:
    """The AIOKafkaProducer options the config sets."""
    return {
        "acks": config.acks,
        "enable_idempotence": config.enable_idempotence,
        "linger_ms": config.linger_ms,
        "max_batch_size": config.max_batch_bytes,
        "compression_type": None if config.compression == "none" else config.compression,
    }


def consumer_settings(config: KafkaConfig) -> dict[str, Any]:
    """The AIOKafkaConsumer options the config sets (a member of the run point's group)."""
    return {
        "enable_auto_commit": config.commit == "auto",
        # The drain asks the broker for the group's lag (committed offsets); aiokafka's 5 s
        # would keep up to 5 s of delivered messages counted as lag. One commit a second
        # costs the broker nothing measurable.
        "auto_commit_interval_ms": 1000,
        "auto_offset_reset": config.auto_offset_reset,
        "fetch_max_wait_ms": config.fetch_max_wait_ms,
        "fetch_min_bytes": config.fetch_min_bytes,
        "max_poll_records": config.max_poll_records,
        # Transactional events are only delivered once committed (aborted ones never).
        "isolation_level": "read_committed" if config.transactional else "read_uncommitted",
        "session_timeout_ms": config.session_timeout_ms,
        # A new member waits for the others to notice the rebalance on their heartbeat;
        # aiokafka's 3 s makes every consumer start slow.
        "heartbeat_interval_ms": min(1000, config.session_timeout_ms // 3),
    }
