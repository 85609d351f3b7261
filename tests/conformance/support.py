"""The driver conformance checks: what any driver, built-in or third-party, must do against a
live target, written once and run by tests/conformance/test_driver_conformance.py.

Each check is an async function that takes the driver under test and returns the problems it
found, one sentence each (an empty list: the driver conforms). A check the driver gives no way
to observe raises ``NotObservable`` with the reason; the test reports it as skipped, with that
reason, never as passed.

Run the suite against a driver of your own (installed, so that its ``bench.drivers`` entry
point is registered) by naming it in the environment; the built-in drivers then stay out:

    BENCH_CONFORMANCE_DRIVER=mydriver \\
    BENCH_CONFORMANCE_OPTIONS='{"url": "mybroker://127.0.0.1:7000"}' \\
    BENCH_CONFORMANCE_UNREACHABLE='{"url": "mybroker://127.0.0.1:{port}"}' \\
    python -m pytest tests/conformance

* ``BENCH_CONFORMANCE_OPTIONS``: the target's options as JSON, as in a ``[targets.NAME]``
  table without ``driver`` (default ``{}``).
* ``BENCH_CONFORMANCE_UNREACHABLE``: the options that point the driver at an address where
  nothing listens; ``{port}`` becomes a closed port on 127.0.0.1. Unset, the unreachable
  check is skipped as not applicable (a target inside the process has no address).
* ``BENCH_CONFORMANCE_KEY_ORDER=0``: the driver does not promise per-key order with one
  consumer per partition, so reordering is reported but not failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from bench.drivers.base import (
    DriverConfig,
    DriverContext,
    Message,
    Rereadable,
    SharedStore,
    StoredEvent,
    Topology,
    load_driver,
)
from bench.engine.reread import classify_losses
from bench.errors import DriverError
from bench.metrics import audit
from bench.redaction import redact_text

T = TypeVar("T")

ENV_DRIVER = "BENCH_CONFORMANCE_DRIVER"
ENV_OPTIONS = "BENCH_CONFORMANCE_OPTIONS"
ENV_UNREACHABLE = "BENCH_CONFORMANCE_UNREACHABLE"
ENV_KEY_ORDER = "BENCH_CONFORMANCE_KEY_ORDER"

PRODUCERS = 2
CONSUMERS = 2
PARTITIONS = 2  # one consumer per partition: the shape in which drivers promise key order
KEYS_PER_PRODUCER = 8
PER_PRODUCER = 250  # 500 messages in all
LEFT_IN_TOPIC = 10  # sent with no consumer, for the fresh-topology and cleanup checks
STALE_PRODUCER = 7  # the producer id of messages an earlier point left behind
PAYLOAD = b'{"conformance": true}'

CHECK_DEADLINE_S = 60.0  # one check, whole
DRAIN_DEADLINE_S = 20.0
LATE_DUPLICATE_S = 0.5  # listen a little longer once everything arrived
UNREACHABLE_TIMEOUT_S = 2.0  # connect_timeout for the unreachable check
UNREACHABLE_MARGIN_S = 1.5  # how much later than connect_timeout the error may come


class NotObservable(Exception):
    """The driver offers no way to make this check; the message says why."""


# --------------------------------------------------------------------------- drivers under test

# What the target still holds of a topology: True (it exists), False (gone); None: cannot say.
ExistsProbe = Callable[[Any, DriverConfig, Topology], Awaitable[bool | None]]


@dataclass(frozen=True)
class DriverUnderTest:
    """A driver and how to point it at a live target.

    In ``options`` and ``unreachable``, ``{address}`` becomes the address of ``service`` (a
    service that ``bench up`` knows) and ``{port}`` a closed port on 127.0.0.1."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    unreachable: dict[str, Any] | None = None
    service: str | None = None
    keeps_key_order: bool = True
    # "stream", "store" or "both"; None: what the driver class declares.
    kind: str | None = None
    # Whether a stream topology (or a store namespace) still exists on the target, looked at
    # with the target's own client: a stricter cleanup check than the generic re-read.
    exists: ExistsProbe | None = None
    # At most this many acknowledged messages the target stores but never hands to the live
    # consumer group (a broker's delivery gap, as Tansu 0.6 has: 0-4 in 18,000). The check then
    # re-reads the topic: each such loss must be found stored, and is reported as a warning; a
    # loss the target no longer stores, or more than this many, still fails.
    delivery_gaps: int = 0

    @property
    def driver_cls(self) -> type:
        return load_driver(self.name)

    def config(self, address: str | None = None, **overrides: Any) -> DriverConfig:
        options = {**_filled(self.options, address=address), **overrides}
        model: type[DriverConfig] = self.driver_cls.config_model
        return model.model_validate({"driver": self.name, **options})

    def unreachable_config(self, port: int) -> DriverConfig:
        if self.unreachable is None:
            raise NotObservable(f"{self.name}: no address to make unreachable (in-process)")
        options = {**_filled(self.options), **_filled(self.unreachable, port=port)}
        options["connect_timeout"] = f"{UNREACHABLE_TIMEOUT_S:g}s"  # durations carry a unit
        model: type[DriverConfig] = self.driver_cls.config_model
        return model.model_validate({"driver": self.name, **options})

    def kinds(self) -> set[str]:
        """{"stream"}, {"store"} or both: which checks apply."""
        kind = self.kind or str(getattr(self.driver_cls, "kind", "stream"))
        return {"stream", "store"} if kind == "both" else {kind}


def _filled(options: dict[str, Any], **values: Any) -> dict[str, Any]:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for name, replacement in values.items():
                if replacement is not None:
                    value = value.replace("{" + name + "}", str(replacement))
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return {key: fill(value) for key, value in options.items()}


def from_environment() -> DriverUnderTest | None:
    """The driver named by ``BENCH_CONFORMANCE_DRIVER``, or None."""
    name = os.environ.get(ENV_DRIVER, "").strip()
    if not name:
        return None
    unreachable = os.environ.get(ENV_UNREACHABLE)
    return DriverUnderTest(
        name=name,
        options=json.loads(os.environ.get(ENV_OPTIONS) or "{}"),
        unreachable=json.loads(unreachable) if unreachable else None,
        keeps_key_order=os.environ.get(ENV_KEY_ORDER, "1") != "0",
    )


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(coro_fn: Callable[[], Awaitable[T]], deadline_s: float = CHECK_DEADLINE_S) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), deadline_s)

    return asyncio.run(bounded())


def unique_topology(driver: str) -> Topology:
    unique = uuid.uuid4().hex[:10]
    return Topology(
        name=f"eb-conformance-{driver}-{unique}",
        partitions=PARTITIONS,
        producers=PRODUCERS,
        consumers=CONSUMERS,
        consumer_group=f"eb-conformance-{unique}",
    )


@contextlib.asynccontextmanager
async def connected(dut: DriverUnderTest, config: DriverConfig) -> Any:
    """The driver, connected within its connect_timeout, closed afterwards."""
    driver = dut.driver_cls(config, DriverContext())
    try:
        await asyncio.wait_for(driver.connect(), config.connect_timeout + 5)
        yield driver
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(driver.close(), 10)


# --------------------------------------------------------------------------- any driver


async def check_unreachable(dut: DriverUnderTest) -> list[str]:
    """connect() to a closed port fails with a one-line DriverError naming the address, no
    later than connect_timeout (plus a small margin)."""
    port = closed_port()
    config = dut.unreachable_config(port)
    driver = dut.driver_cls(config, DriverContext())
    problems: list[str] = []
    started = time.monotonic()
    try:
        await asyncio.wait_for(driver.connect(), config.connect_timeout + 10)
        problems.append(f"connect() to the closed port {port} succeeded")
    except DriverError as exc:
        problems += _one_line_problems("the error", exc.message, port, config)
        if exc.hint is not None:
            problems += _one_line_problems("the hint", exc.hint, None, config)
    except TimeoutError:
        problems.append(f"connect() to a closed port hung for {config.connect_timeout + 10:g}s")
    except Exception as exc:
        problems.append(f"connect() raised {type(exc).__name__}, not DriverError: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(driver.close(), 10)
    elapsed = time.monotonic() - started
    if elapsed > config.connect_timeout + UNREACHABLE_MARGIN_S:
        problems.append(
            f"connect() gave up after {elapsed:.1f}s, connect_timeout is "
            f"{config.connect_timeout:g}s"
        )
    return problems


def _one_line_problems(what: str, text: str, port: int | None, config: DriverConfig) -> list[str]:
    problems = []
    if not text.strip():
        problems.append(f"{what} is empty")
    if "\n" in text.strip():
        problems.append(f"{what} is more than one line: {text!r}")
    if port is not None and str(port) not in text:
        problems.append(f"{what} does not name the address (port {port}): {text!r}")
    problems += [f"{what} shows a secret: {s}" for s in _secrets_shown(text, config)]
    return problems


async def check_describe(dut: DriverUnderTest, address: str | None) -> list[str]:
    """describe() after connect: a dict that JSON can write, without secrets."""
    config = dut.config(address)
    async with connected(dut, config) as driver:
        described = await driver.describe()
    if not isinstance(described, dict):
        return [f"describe() returned {type(described).__name__}, not a dict"]
    problems = []
    try:
        text = json.dumps(described)
    except (TypeError, ValueError) as exc:
        problems.append(f"describe() is not JSON: {exc}")
        text = repr(described)
    if not described:
        problems.append("describe() is empty: it should say what answered")
    problems += [f"describe() shows a secret: {s}" for s in _secrets_shown(text, config)]
    return problems


def secret_values(config: BaseModel) -> list[str]:
    """Every secret in a config: SecretStr fields, and the password inside a URL-valued one."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
                found.extend(s for s in _url_passwords(secret) if s not in found)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.extend(_url_passwords(value))

    walk(config)
    return found


def _url_passwords(text: str) -> list[str]:
    passwords = []
    for token in text.replace(",", " ").split():
        with contextlib.suppress(ValueError):
            parts = urlsplit(token if "://" in token else f"x://{token}")
            # A password equal to the user name (guest:guest) is shown with the user name.
            if parts.password and parts.password != parts.username:
                passwords.append(parts.password)
    return passwords


def _secrets_shown(text: str, config: BaseModel) -> list[str]:
    shown = [f"{secret[:2]}…" for secret in secret_values(config) if secret in text]
    if redact_text(text) != text:
        shown.append("credentials in a URL or a password=… pair")
    return shown


# --------------------------------------------------------------------------- stream drivers


@dataclass
class Sent:
    """Messages of one producer, per key (key_seq counts within the key), and its ledger."""

    producer_id: int
    per_key: dict[str, list[Message]]
    ledger: audit.ProducerLedger

    @classmethod
    def build(cls, producer_id: int, count: int) -> Sent:
        ledger = audit.ProducerLedger(producer_id)
        per_key: dict[str, list[Message]] = {}
        for seq in range(count):
            key_index = seq % KEYS_PER_PRODUCER
            key = f"order-{producer_id}-{key_index}"
            messages = per_key.setdefault(key, [])
            messages.append(
                Message(
                    key=key,
                    value=PAYLOAD,
                    event_type="OrderPlaced",
                    event_id=str(uuid.uuid4()),
                    correlation_id=f"conformance-{producer_id}",
                    producer_id=producer_id,
                    seq=seq,
                    key_seq=len(messages),
                    intended_ns=time.monotonic_ns(),
                )
            )
            ledger.keys.append(key_index)
            ledger.acks.append(audit.ACK_PENDING)
        return cls(producer_id, per_key, ledger)

    @property
    def ids(self) -> set[tuple[int, int]]:
        return {(m.producer_id, m.seq) for msgs in self.per_key.values() for m in msgs}


async def send_all(driver: Any, topology: Topology, sent: Sent) -> None:
    """One coroutine per key, each sending its messages one after the other (as the engine
    does per aggregate); the keys overlap in flight. Acks go to the ledger."""
    producer = await driver.producer(topology, sent.producer_id)
    acks = sent.ledger.acks

    async def one_key(messages: list[Message]) -> None:
        for msg in messages:
            try:
                await producer.send(msg)
                acks[msg.seq] = audit.ACK_OK
            except Exception:
                acks[msg.seq] = audit.ACK_FAILED

    try:
        await asyncio.gather(*(one_key(msgs) for msgs in sent.per_key.values()))
    finally:
        await producer.close()


async def check_exchange(
    dut: DriverUnderTest, address: str | None, drain_deadline_s: float = DRAIN_DEADLINE_S
) -> list[str]:
    """prepare (twice: what an earlier point left must be gone), then 2 producers x 250
    messages on 16 keys to 2 consumers, one per partition; the audit must be exact: every
    message acknowledged and received once, nothing unknown, per-key order kept (if promised).
    """
    config = dut.config(address)
    topology = unique_topology(dut.name)
    async with connected(dut, config) as driver:
        await driver.prepare(topology)
        try:
            await send_all(driver, topology, Sent.build(STALE_PRODUCER, LEFT_IN_TOPIC))
            await driver.prepare(topology)
            result, lost = await _produce_and_consume(driver, topology, drain_deadline_s)
            gaps = await _delivery_gaps(dut, driver, topology, result, lost)
        finally:
            await driver.cleanup(topology)
    expected = PRODUCERS * PER_PRODUCER
    if gaps:
        # Classified as the broker's, found stored: count them as received for the checks below.
        result = dataclasses.replace(
            result, received=result.received + gaps, lost=result.lost - gaps
        )
    problems = [
        f"{name} is {getattr(result, name)}, expected {want}"
        for name, want in (
            ("sent", expected),
            ("acked", expected),
            ("failed", 0),
            ("received", expected),
            ("lost", 0),
            ("duplicated", 0),
        )
        if getattr(result, name) != want
    ]
    if result.unknown_received:
        problems.append(
            f"{result.unknown_received} messages no producer of this point sent were received "
            "(prepare did not start the topology empty)"
        )
    if result.reordered and dut.keeps_key_order:
        problems.append(
            f"{result.reordered} messages broke per-key order ({result.keys_reordered} keys), "
            "with one consumer per partition"
        )
    return problems


async def _delivery_gaps(
    dut: DriverUnderTest,
    driver: Any,
    topology: Topology,
    result: audit.AuditResult,
    lost: dict[int, Any],
) -> int:
    """How many of ``result``'s losses are the broker's known delivery gap: 0 unless the driver
    under test allows some, every loss is found stored by a complete re-read, and there are no
    more than it allows. Those are reported as a warning, never silently."""
    if not result.lost or result.lost > dut.delivery_gaps:
        return 0
    classified = await classify_losses(driver, topology, lost, budget_s=20)
    if not classified.get("complete") or classified["not_delivered"] != result.lost:
        return 0
    warnings.warn(
        f"{dut.name}: the target skipped {result.lost} stored messages for the live consumer "
        f"group (a broker delivery gap: the re-read found each one stored, e.g. "
        f"{', '.join(classified['samples']['not_delivered'][:3])})",
        stacklevel=1,
    )
    return int(result.lost)


async def _produce_and_consume(
    driver: Any, topology: Topology, drain_deadline_s: float
) -> tuple[audit.AuditResult, dict[int, Any]]:
    """The audit of one exchange, and its lost seqs per producer (for a re-read)."""
    ledgers = [audit.ConsumerLedger() for _ in range(CONSUMERS)]
    seen: set[tuple[int, int]] = set()

    def on_message_of(ledger: audit.ConsumerLedger) -> Callable[[Message], None]:
        def on_message(msg: Message) -> None:
            ledger.record(msg.producer_id, msg.seq, msg.key, msg.key_seq)
            seen.add((msg.producer_id, msg.seq))

        return on_message

    consumers = [
        await driver.consumer(topology, i, on_message_of(ledger))
        for i, ledger in enumerate(ledgers)
    ]
    # Together, as the engine starts them: a group forms in one round.
    await asyncio.gather(*(consumer.start() for consumer in consumers))
    try:
        sent = [Sent.build(p, PER_PRODUCER) for p in range(PRODUCERS)]
        await asyncio.gather(*(send_all(driver, topology, s) for s in sent))
        expected = set().union(*(s.ids for s in sent))
        deadline = time.monotonic() + drain_deadline_s
        while not expected <= seen and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(LATE_DUPLICATE_S)
    finally:
        for consumer in consumers:
            await consumer.stop()
    produced = [s.ledger.export() for s in sent]
    consumed = [ledger.export() for ledger in ledgers]
    return audit.merge(produced, consumed), audit.lost_ids(produced, consumed)


async def check_cleanup(dut: DriverUnderTest, address: str | None) -> list[str]:
    """Messages left in a prepared topology are stored, and cleanup removes the topology with
    them. Observed through the driver's re-read (``Rereadable``) and, where the suite has one,
    the target's own client (``DriverUnderTest.exists``). (That prepare starts a topology
    empty is checked by ``check_exchange``.)"""
    config = dut.config(address)
    topology = unique_topology(dut.name)
    problems: list[str] = []
    observed = can_reread = False
    async with connected(dut, config) as driver:
        left = Sent.build(0, LEFT_IN_TOPIC)
        try:
            await driver.prepare(topology)
            # As after a run: the group subscribed once, then left (a broker that keeps
            # messages per group keeps none for a group that never was).
            await _subscribe_then_leave(driver, topology)
            if dut.exists is not None and await dut.exists(driver, config, topology) is False:
                problems.append("the target has no trace of the prepared topology")
            await send_all(driver, topology, left)
            can_reread = (
                isinstance(driver, Rereadable) and driver.reread_unsupported(topology) is None
            )
            if can_reread:
                stored = await _reread(driver, topology)
                if not left.ids <= stored:
                    problems.append(
                        f"the re-read found {len(left.ids & stored)} of the "
                        f"{LEFT_IN_TOPIC} messages left in the topology"
                    )
        finally:
            await driver.cleanup(topology)
        if can_reread:
            observed = True
            # A re-read that is refused, finds nothing, or finds no topology: all say "gone".
            if driver.reread_unsupported(topology) is None:
                try:
                    after = await _reread(driver, topology)
                except DriverError:
                    after = set()
                if after & left.ids:
                    problems.append(
                        f"after cleanup a re-read still finds {len(after & left.ids)} messages"
                    )
        if dut.exists is not None:
            still_there = await dut.exists(driver, config, topology)
            if still_there is not None:
                observed = True
                if still_there:
                    problems.append("after cleanup the target still has the topology")
    if not observed:
        raise NotObservable(
            f"{dut.name}: cleanup ran, but what it removed is not observable (the driver is "
            "not Rereadable as configured, and the suite has no probe for its target)"
        )
    return problems


async def _subscribe_then_leave(driver: Any, topology: Topology) -> None:
    consumers = [
        await driver.consumer(topology, i, lambda msg: None) for i in range(topology.consumers)
    ]
    await asyncio.gather(*(consumer.start() for consumer in consumers))
    for consumer in consumers:
        await consumer.stop()


async def _reread(driver: Any, topology: Topology) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    async with contextlib.aclosing(driver.reread(topology)) as batches:
        async for ids in batches:
            found.update(ids)
    return found


# --------------------------------------------------------------------------- store drivers


def _event(aggregate_id: str, n: int) -> StoredEvent:
    return StoredEvent(
        event_id=str(uuid.uuid4()),
        aggregate_id=aggregate_id,
        aggregate_type="Order",
        event_type="OrderPlaced" if n == 1 else "OrderConfirmed",
        version=0,  # the store assigns versions
        payload=json.dumps({"n": n}).encode(),
        metadata={"correlation-id": f"conformance-{n}"},
    )


async def check_store(dut: DriverUnderTest, address: str | None) -> list[str]:
    """prepare_store, appends with expected versions (one of them a conflict), load, and
    verify() finding nothing; a SharedStore's namespace is dropped afterwards."""
    config = dut.config(address)
    namespace = f"eb_conformance_{uuid.uuid4().hex[:10]}"
    problems: list[str] = []
    async with connected(dut, config) as driver:
        shared = isinstance(driver, SharedStore)
        if shared:
            # What the engine's coordinator does for a store outside the workers.
            await driver.prepare_store(namespace)
        else:
            await driver.prepare_store()
        try:
            aggregate = f"order-{uuid.uuid4().hex[:8]}"
            first = [_event(aggregate, 1), _event(aggregate, 2)]
            result = await driver.append(aggregate, first, 0)
            if not result.committed or result.version not in (2, None):
                problems.append(f"append at expected version 0 gave {result}, expected version 2")
            rival = await driver.append(aggregate, [_event(aggregate, 2)], 0)
            if rival.committed:
                problems.append("a second append at expected version 0 committed (no conflict)")
            elif rival.version not in (2, None):
                problems.append(f"the conflict reports version {rival.version}, the stream has 2")
            third = _event(aggregate, 3)
            result = await driver.append(aggregate, [third], 2)
            if not result.committed or result.version not in (3, None):
                problems.append(f"append at expected version 2 gave {result}, expected version 3")
            loaded = await driver.load(aggregate)
            want = [(e.event_id, v) for e, v in ((first[0], 1), (first[1], 2), (third, 3))]
            got = [(e.event_id, e.version) for e in loaded]
            if got != want:
                problems.append(f"load returned (event_id, version) {got}, expected {want}")
            if loaded and loaded[-1].payload and json.loads(loaded[-1].payload) != {"n": 3}:
                problems.append(f"load changed the payload: {loaded[-1].payload!r}")
            if await driver.load(f"order-{uuid.uuid4().hex[:8]}") != []:
                problems.append("load of an aggregate never written is not empty")
            violations = await driver.verify()
            if violations:
                problems.append(f"verify() found {violations}")
        finally:
            if shared:
                await driver.drop_store()
        if shared and dut.exists is not None:
            probe = Topology(namespace, 1, 0, 0, "")
            if await dut.exists(driver, config, probe):
                problems.append(f"after drop_store the namespace {namespace!r} still exists")
    return problems
