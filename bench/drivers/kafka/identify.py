"""What the broker is: the questions describe() asks the cluster and how the answers name it.

The Kafka protocol has no "server software" field. This module asks for the cluster's
metadata, one broker's ApiVersions (with features) and broker configs, and reads the
fingerprints each implementation leaves there (Apache Kafka, Redpanda, Tansu).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from bench.drivers.kafka.apiversions import api_versions

# metadata.version feature level -> Apache Kafka release that introduced it. It is a floor:
# a cluster may run newer software at an older metadata.version.
_METADATA_VERSION_RELEASE = {
    1: "3.0",
    2: "3.1",
    3: "3.2",
    **dict.fromkeys(range(4, 8), "3.3"),
    8: "3.4",
    **dict.fromkeys(range(9, 12), "3.5"),
    **dict.fromkeys(range(12, 15), "3.6"),
    **dict.fromkeys(range(15, 20), "3.7"),
    20: "3.8",
    21: "3.9",
}


@dataclass(frozen=True, slots=True)
class _ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[dict[str, Any]]


async def describe_server(admin: AIOKafkaAdminClient, client: AIOKafkaClient) -> dict[str, Any]:
    """The server half of describe(): product, version, evidence, brokers, APIs, features."""
    cluster = await _cluster(admin)
    node_id = cluster.controller_id
    if node_id is None or all(b["node_id"] != node_id for b in cluster.brokers):
        node_id = cluster.brokers[0]["node_id"] if cluster.brokers else None
    api: dict[str, str] = {}
    features: dict[str, int] = {}
    broker_config_keys: list[str] = []
    if node_id is not None:
        api, features = await api_versions(client, node_id)
        broker_config_keys = await _broker_config_keys(admin, node_id)
    product, version, evidence = _identify(cluster, features, broker_config_keys)
    if product == "Tansu" and version is None:
        version, evidence = await _local_tansu_version(cluster.brokers, evidence)
    return {
        "product": product,
        "version": version,
        "product_evidence": evidence,
        "cluster_id": cluster.cluster_id,
        "broker_count": len(cluster.brokers),
        "brokers": cluster.brokers,
        "controller_id": cluster.controller_id,
        "api_versions_of_node": node_id,
        "api_versions": api,
        "features": features,
        "broker_config_entries": len(broker_config_keys),
    }


async def _cluster(admin: AIOKafkaAdminClient) -> _ClusterInfo:
    meta = await admin.describe_cluster()
    brokers = [
        {"node_id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
        for b in meta.get("brokers", [])
    ]
    controller = meta.get("controller_id")
    return _ClusterInfo(
        cluster_id=meta.get("cluster_id"),
        controller_id=controller if controller is not None and controller >= 0 else None,
        brokers=sorted(brokers, key=lambda b: b["node_id"]),
    )


async def _broker_config_keys(admin: AIOKafkaAdminClient, node_id: int) -> list[str]:
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(node_id))]
        )
    except KafkaError:
        return []
    keys: list[str] = []
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            keys.extend(entry[0] for entry in resource[4])
    return keys


def _identify(
    cluster: _ClusterInfo, features: dict[str, int], broker_config_keys: list[str]
) -> tuple[str, str | None, str]:
    """Product, version (when the protocol tells) and why we think so.

    The Kafka protocol has no "server software" field, so this reads the fingerprints each
    implementation leaves: Apache Kafka in KRaft mode finalizes ``metadata.version``; Apache
    Kafka and Redpanda answer DescribeConfigs with hundreds of broker settings (Redpanda's
    prefixed ``redpanda.``); Tansu finalizes no features and reports no broker configs.
    """
    if any(key.startswith("redpanda.") for key in broker_config_keys):
        return "Redpanda", None, "broker configs include redpanda.* keys"
    level = features.get("metadata.version")
    if level is not None:
        release = _METADATA_VERSION_RELEASE.get(level)
        if release is not None:
            version = f">={release} (metadata.version level {level})"
        elif level > max(_METADATA_VERSION_RELEASE):
            version = f">3.9 (metadata.version level {level})"
        else:
            version = f"metadata.version level {level}"
        return "Apache Kafka", version, "KRaft feature metadata.version is finalized"
    if broker_config_keys:
        return (
            "Apache Kafka",
            None,
            f"{len(broker_config_keys)} broker configs, no finalized features (ZooKeeper mode)",
        )
    if cluster.cluster_id and "tansu" in cluster.cluster_id.lower():
        return "Tansu", None, "no broker configs, no finalized features, cluster id names tansu"
    return (
        "unknown Kafka-protocol broker (Tansu-like)",
        None,
        "no broker configs and no finalized features; cluster id is not Tansu's default",
    )


async def _local_tansu_version(
    brokers: list[dict[str, Any]], evidence: str
) -> tuple[str | None, str]:
    """The Kafka protocol does not say Tansu's version; for a broker on this host, the process
    listening on its port does (``bench.infra`` knows how to ask it)."""
    if not brokers or str(brokers[0].get("host")) not in ("127.0.0.1", "localhost", "::1"):
        return None, evidence
    from bench import infra

    status = await asyncio.to_thread(infra.status, "kafka")
    if status.running and status.version and "Tansu" in status.product:
        return status.version, f"{evidence}; version from the local tansu binary on that port"
    return None, evidence
