"""The hand-built ApiVersions v3 request, and what its answer says: API ranges and features.

aiokafka negotiates with ApiVersions v0-v2, whose answer carries no feature levels. v3 adds
the finalized features (KIP-584); Apache Kafka in KRaft mode reports "metadata.version"
there, which is the nearest thing the protocol has to a server version.
"""

from __future__ import annotations

from io import BytesIO

import aiokafka
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response, ResponseHeader_v0
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)


class _ApiVersionsResponseV3(Response):
    API_KEY = 18
    API_VERSION = 3
    SCHEMA = Schema(
        ("error_code", Int16),
        (
            "api_versions",
            CompactArray(
                ("api_key", Int16),
                ("min_version", Int16),
                ("max_version", Int16),
                ("tags", TaggedFields),
            ),
        ),
        ("throttle_time_ms", Int32),
        ("tags", TaggedFields),
    )


class _ApiVersionsRequestV3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 18
    API_VERSION = 3
    RESPONSE_TYPE = _ApiVersionsResponseV3
    SCHEMA = Schema(
        ("client_software_name", CompactString("utf-8")),
        ("client_software_version", CompactString("utf-8")),
        ("tags", TaggedFields),
    )

    def parse_response_header(self, read_buffer: BytesIO | bytes) -> ResponseHeader_v0:
        # ApiVersions responses keep header v0 even in flexible versions, so that a client
        # can always read the answer to its first request.
        return ResponseHeader_v0.decode(read_buffer)


class _ApiVersionsV3(Request[_ApiVersionsRequestV3]):
    API_KEY = 18

    def build(self, request_struct_class: type[_ApiVersionsRequestV3]) -> _ApiVersionsRequestV3:
        return request_struct_class(
            client_software_name="eventbench",
            client_software_version=aiokafka.__version__,
            tags={},
        )


# Tag 2 of the v3 response: FinalizedFeatures [name, max_version_level, min_version_level].
_FINALIZED_FEATURES = CompactArray(
    ("name", CompactString("utf-8")),
    ("max_version_level", Int16),
    ("min_version_level", Int16),
    ("tags", TaggedFields),
)


_API_NAMES = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    22: "InitProducerId",
    23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    27: "WriteTxnMarkers",
    28: "TxnOffsetCommit",
    29: "DescribeAcls",
    30: "CreateAcls",
    31: "DeleteAcls",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs",
    36: "SaslAuthenticate",
    37: "CreatePartitions",
    38: "CreateDelegationToken",
    39: "RenewDelegationToken",
    40: "ExpireDelegationToken",
    41: "DescribeDelegationToken",
    42: "DeleteGroups",
    43: "ElectLeaders",
    44: "IncrementalAlterConfigs",
    45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments",
    47: "OffsetDelete",
    48: "DescribeClientQuotas",
    49: "AlterClientQuotas",
    50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials",
    55: "DescribeQuorum",
    57: "UpdateFeatures",
    60: "DescribeCluster",
    61: "DescribeProducers",
    64: "UnregisterBroker",
    65: "DescribeTransactions",
    66: "ListTransactions",
    68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
    71: "GetTelemetrySubscriptions",
    72: "PushTelemetry",
    74: "ListClientMetricsResources",
    75: "DescribeTopicPartitions",
}


def _finalized_features(tags: dict[int, bytes]) -> dict[str, int]:
    raw = tags.get(2)
    if not raw:
        return {}
    entries = _FINALIZED_FEATURES.decode(BytesIO(raw)) or []
    return {name: max_level for name, max_level, _min_level, _tags in entries}


async def api_versions(
    client: AIOKafkaClient, node_id: int
) -> tuple[dict[str, str], dict[str, int]]:
    """The API version ranges of one broker by name, and its finalized feature levels."""
    try:
        response = await client.send(node_id, _ApiVersionsV3())
    except KafkaError:
        response = None
    if response is None or response.error_code != 0:
        # Brokers older than Kafka 2.4 have no v3: fall back to what aiokafka negotiated.
        conn = await client._get_conn(node_id)
        versions = dict(getattr(conn, "_versions", {}) or {})
        rows = [(key, lo, hi) for key, (lo, hi) in versions.items()]
        features: dict[str, int] = {}
    else:
        rows = [(key, lo, hi) for key, lo, hi, _tags in response.api_versions]
        features = _finalized_features(response.tags)
    api = {_API_NAMES.get(key, f"api_key_{key}"): f"{lo}-{hi}" for key, lo, hi in sorted(rows)}
    return api, features
