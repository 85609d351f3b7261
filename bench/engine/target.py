"""A shared target's lifecycle, from the coordinator: prepare before the workers start, verify
a store after they finished, sort lost messages by re-reading, clean up at the end.

Each step opens its own connection (the workers have theirs) and is bounded in time: a target
that stops answering makes the step fail with one line naming it, never a hang. An in-process
target (the memory driver) lives inside each worker and has none of these steps here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.drivers.base import (
    ConsumerLag,
    Driver,
    DriverContext,
    Outbox,
    ServerCounters,
    SharedStore,
    Topology,
    as_store,
    as_stream,
    load_driver,
    subscription_topology,
    topic_topologies,
)
from bench.engine import reread
from bench.engine.eventstore import StoreTotals, check_store, unchecked_invariants
from bench.errors import DriverError
from bench.scenario import RunPoint

CONNECT_MARGIN_S = 5.0  # beyond connect_timeout: a client's own retries
SETUP_TIMEOUT_S = 60.0  # creating, purging or dropping what a point needs
VERIFY_TIMEOUT_S = 300.0  # checking a store's invariants over everything it stored
CLOSE_TIMEOUT_S = 10.0
REREAD_BUDGET_S = 60.0  # how long sorting the lost messages may re-read a shared target
LAG_TIMEOUT_S = 5.0  # asking the broker for its consumer lag during the drain
# Topics created or removed at once (``topics = N``): hundreds one after another would make
# setup dominate a short run; all at once would flood the broker's controller.
TOPIC_SETUP_CONCURRENCY = 16


@dataclass
class StoreCheck:
    """What the coordinator learned of a shared store around the run."""

    violations: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    counters_before: dict[str, int] | None = None
    counters_after: dict[str, int] | None = None


class SharedTarget:
    """The steps of one run point on a target outside the workers."""

    def __init__(self, point: RunPoint, topology: Topology, outbox: bool = False) -> None:
        self.point = point
        self.topology = topology
        self.timeout = point.driver_config.connect_timeout
        # A pipeline's store: prepared with its transactional outbox (``Outbox.use_outbox``).
        self.outbox = outbox
        # How long creating and removing the point's topics took (``topics``), in seconds.
        self.create_s: float | None = None
        self.remove_s: float | None = None

    @contextlib.asynccontextmanager
    async def _connected(self, step: str) -> AsyncIterator[Driver]:
        driver = load_driver(self.point.driver)(self.point.driver_config, DriverContext())
        try:
            await asyncio.wait_for(driver.connect(), self.timeout + CONNECT_MARGIN_S)
            yield driver
        except TimeoutError:
            raise DriverError(f"{self.point.target}: {step} timed out") from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), CLOSE_TIMEOUT_S)

    async def _bounded(self, call: Any, seconds: float) -> Any:
        return await asyncio.wait_for(call, self.timeout + seconds)

    async def prepare(self, check: StoreCheck) -> dict[str, Any]:
        """Create or purge what the point needs; the target's describe()."""
        async with self._connected("prepare") as driver:
            if self.outbox and isinstance(driver, Outbox):
                driver.use_outbox()
            if self.point.workload.kind == "store":
                prepare = (
                    driver.prepare_store(self.topology.name)
                    if isinstance(driver, SharedStore)
                    else as_store(driver).prepare_store()
                )
                await self._bounded(prepare, SETUP_TIMEOUT_S)
                if isinstance(driver, ServerCounters):
                    check.counters_before = await driver.server_counters()
            else:
                stream = as_stream(driver)
                self.create_s = await self._each_topic(stream.prepare)
            described: dict[str, Any] = await self._bounded(driver.describe(), CONNECT_MARGIN_S)
            return described

    async def verify(self, merged: StoreTotals, check: StoreCheck) -> None:
        """The store's invariants against the workers' merged ledger."""
        async with self._connected("verify") as driver:
            if isinstance(driver, SharedStore):
                await driver.attach_store(self.topology.name)
            store = as_store(driver)
            check.violations = await self._bounded(check_store(store, merged), VERIFY_TIMEOUT_S)
            check.not_checked = unchecked_invariants(driver)
            if isinstance(driver, ServerCounters):
                check.counters_after = await driver.server_counters()

    async def consumer_lag(self) -> int | None:
        """The messages the broker still holds for the consumers; None if it cannot tell."""
        async with self._connected("consumer lag") as driver:
            if not isinstance(driver, ConsumerLag):
                return None
            # Every subscription's consumer group: what the broker holds for any of them.
            total = 0
            for topic in topic_topologies(self.topology):
                for subscription in range(self.topology.subscriptions):
                    topology = subscription_topology(topic, subscription)
                    lag: int | None = await self._bounded(
                        driver.consumer_lag(topology), LAG_TIMEOUT_S
                    )
                    if lag is None:
                        return None
                    total += lag
            return total

    async def classify(self, lost: dict[int, np.ndarray]) -> dict[str, Any]:
        """Sort the lost messages: not stored, or stored and not delivered (engine/reread.py)."""
        async with self._connected("classify") as driver:
            return await reread.classify_topics(driver, self.topology, lost, REREAD_BUDGET_S)

    async def cleanup(self) -> None:
        """Remove what prepare created."""
        async with self._connected("cleanup") as driver:
            if self.point.workload.kind == "store":
                if isinstance(driver, SharedStore):
                    await driver.attach_store(self.topology.name)
                    await self._bounded(driver.drop_store(), SETUP_TIMEOUT_S)
            else:
                self.remove_s = await self._each_topic(as_stream(driver).cleanup)

    async def _each_topic(self, step: Callable[[Topology], Awaitable[None]]) -> float:
        """``step`` (prepare or cleanup) on every topic of the point, TOPIC_SETUP_CONCURRENCY
        at a time, within one SETUP_TIMEOUT_S per batch; the seconds it took."""
        started = time.monotonic()
        topics = topic_topologies(self.topology)
        for first in range(0, len(topics), TOPIC_SETUP_CONCURRENCY):
            batch = topics[first : first + TOPIC_SETUP_CONCURRENCY]
            await self._bounded(asyncio.gather(*(step(t) for t in batch)), SETUP_TIMEOUT_S)
        return time.monotonic() - started
