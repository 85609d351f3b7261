"""The Kafka stream driver: topics, producers, consumer groups and server identification.

This package owns everything eventbench knows about the Kafka protocol and its client library
(aiokafka): the ``KafkaConfig`` model a ``[targets.NAME]`` table with ``driver = "kafka"`` is
validated against, topic creation and deletion per run point, keyed producers that keep many
acknowledged sends in flight, optional transactional batching, consumer-group members that
hand every record to the engine's callback, and ``describe()``, which asks the cluster what it
is (ApiVersions, metadata, broker configs) so a result names the server that produced it.

It works against Apache Kafka and against Tansu (a Kafka-protocol broker in Rust). Where the
two differ (idempotent producers, broker configs), the differences are reported, not hidden.

Modules: ``config`` (options, address, aiokafka settings), ``failures`` (one-line reasons),
``apiversions`` (the hand-built ApiVersions v3 request), ``identify`` (what the server is),
``producer``, ``consumer``, ``reread`` (the loss re-read) and ``driver`` (``KafkaDriver``).
The entry point ``bench.drivers.kafka:KafkaDriver`` and the names below are re-exported here.
"""

from bench.drivers.kafka.config import DEFAULT_BOOTSTRAP, KafkaConfig, available_compressions
from bench.drivers.kafka.consumer import KafkaConsumer
from bench.drivers.kafka.driver import KafkaDriver
from bench.drivers.kafka.producer import (
    KafkaProducer,
    KafkaTransactionalProducer,
    TransactionAbortedError,
)
from bench.drivers.kafka.reread import REREAD_STALL_S

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "REREAD_STALL_S",
    "KafkaConfig",
    "KafkaConsumer",
    "KafkaDriver",
    "KafkaProducer",
    "KafkaTransactionalProducer",
    "TransactionAbortedError",
    "available_compressions",
]
