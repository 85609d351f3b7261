"""The targets the conformance suite runs by default: every built-in driver pointed at its local
service, and the example third-party driver of docs/writing-a-driver.md. Each broker's probe
looks at the target with its own client library, not through the driver."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from bench.drivers.base import Topology
from tests.conformance.support import DriverUnderTest


async def _kafka_topic_exists(driver: Any, config: Any, topology: Topology) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    await asyncio.wait_for(admin.start(), 10)
    try:
        return topology.name in await admin.list_topics()
    finally:
        await admin.close()


async def _rabbitmq_queues_exist(driver: Any, config: Any, topology: Topology) -> bool:
    import aio_pika
    from aio_pika.exceptions import ChannelNotFoundEntity

    connection = await aio_pika.connect(config.url.get_secret_value(), timeout=10)
    try:
        found = False
        for index in range(topology.partitions):
            # A failed passive declare closes its channel: one channel per queue.
            channel = await connection.channel()
            try:
                await channel.declare_queue(f"{topology.name}.{index}", passive=True)
                found = True
            except ChannelNotFoundEntity:
                pass
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
        return found
    finally:
        await connection.close()


async def _nats_stream_exists(driver: Any, config: Any, topology: Topology) -> bool:
    import nats
    from nats.js.errors import NotFoundError

    from bench.drivers.nats import stream_name

    client = await nats.connect(servers=config.servers, connect_timeout=10, allow_reconnect=False)
    try:
        await client.jetstream().stream_info(stream_name(topology))
        return True
    except NotFoundError:
        return False
    finally:
        await client.close()


async def _postgres_schema_exists(driver: Any, config: Any, topology: Topology) -> bool:
    import asyncpg

    from bench.drivers.postgres import schema_for

    conn = await asyncpg.connect(config.dsn.get_secret_value(), timeout=10)
    try:
        found = await conn.fetchval(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            schema_for(topology.name),
        )
        return found is not None
    finally:
        await conn.close()


BUILT_IN = (
    DriverUnderTest("memory", kind="both"),
    DriverUnderTest(
        "kafka",
        kind="stream",
        # Tansu holds a JoinGroup for half the session timeout; 6 s is Kafka's minimum.
        options={"bootstrap_servers": "{address}", "session_timeout_ms": 6000},
        unreachable={"bootstrap_servers": "127.0.0.1:{port}"},
        service="kafka",
        exists=_kafka_topic_exists,
        # Tansu 0.6 (the suite's Kafka) skips a stored record for a live group now and then.
        delivery_gaps=4,
    ),
    DriverUnderTest(
        "rabbitmq",
        kind="stream",
        options={"url": "{address}"},
        unreachable={"url": "amqp://guest:guest@127.0.0.1:{port}/"},
        service="rabbitmq",
        exists=_rabbitmq_queues_exist,
    ),
    DriverUnderTest(
        "nats",
        kind="stream",
        options={"servers": ["{address}"]},
        unreachable={"servers": ["nats://127.0.0.1:{port}"]},
        service="nats",
        exists=_nats_stream_exists,
    ),
    DriverUnderTest(
        "postgres",
        kind="store",
        options={"dsn": "{address}", "pool_size": 2},
        unreachable={"dsn": "postgresql://postgres@127.0.0.1:{port}/test"},
        service="postgres",
        exists=_postgres_schema_exists,
    ),
)

# The example third-party driver of docs/writing-a-driver.md, registered by its own entry point
# once this folder is on sys.path (and PYTHONPATH, for worker processes).
THIRD_PARTY_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "thirdparty"
EXAMPLE = DriverUnderTest("loopback", kind="stream")
