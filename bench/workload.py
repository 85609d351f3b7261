"""Event generation: domain events of event-sourced systems, with keys, types and sizes drawn
from the scenario's distributions.

Every event has the shape an event store keeps: event id, event type, aggregate id, aggregate
type, version, timestamp, metadata (correlation and causation ids) and a payload padded so that
the encoded event is exactly the requested size. Generation is deterministic for a given seed
and producer: the same scenario produces the same keys, types, sizes and ids.

Random draws are made in batches with numpy (a few hundred nanoseconds per event would
otherwise go to Python's random module on the hot path); event ids are derived from the seed,
producer and sequence, so they are unique without an RNG call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.drivers.base import Message
from bench.metrics.audit import ACK_PENDING, ProducerLedger
from bench.scenario import PayloadDistribution, Workload

_BATCH = 4096
_PAD = b"x" * 65536


def key_probabilities(spec: str, n: int) -> np.ndarray | None:
    """Per-key probabilities for a key distribution; None means uniform."""
    if spec == "uniform":
        return None
    kind, _, rest = spec.partition(":")
    if kind == "zipf":
        s = float(rest)
        weights = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), s)
        return weights / weights.sum()
    if kind == "hot":
        fraction_text, _, share_text = rest.partition(":")
        fraction, share = float(fraction_text), float(share_text)
        hot = max(1, min(n, round(n * fraction)))
        probs = np.empty(n, dtype=np.float64)
        if hot == n:
            probs[:] = 1.0 / n
            return probs
        probs[:hot] = share / hot
        probs[hot:] = (1.0 - share) / (n - hot)
        return probs
    raise ValueError(f"unknown key distribution {spec!r}")


def aggregate_id(aggregate_type: str, index: int) -> str:
    return f"{aggregate_type.lower()}-{index:08d}"


class EventFactory:
    """Builds the messages of one producer: ``next(intended_ns)`` returns the next Message."""

    def __init__(
        self, workload: Workload, producer_id: int, seed: int, ledger: ProducerLedger | None = None
    ) -> None:
        self.producer_id = producer_id
        self.ledger = ledger if ledger is not None else ProducerLedger(producer_id)
        self._ledger_keys = self.ledger.keys.append
        self._ledger_acks = self.ledger.acks.append
        intended = self.ledger.intended
        self._ledger_intended = intended.append if intended is not None else None
        self._rng = np.random.default_rng([seed, producer_id])
        self._n_keys = workload.aggregates
        self._key_probs = key_probabilities(workload.keys, workload.aggregates)
        self._type_names = list(workload.event_types)
        weights = np.array(list(workload.event_types.values()), dtype=np.float64)
        self._type_probs = weights / weights.sum()
        self._payload = workload.payload_bytes
        self._aggregate_type = workload.aggregate_type
        self._prefix = workload.aggregate_type.lower() + "-"
        # A uuid-shaped, unique id: 8 hex from the seed, 4+3 from the producer, then the sequence
        # (below 16**12, i.e. 10**14 events, so the last group is the sequence itself).
        seed_part = (seed * 2654435761) & 0xFFFFFFFF
        pid_hi, pid_lo = (producer_id >> 16) & 0xFFF, producer_id & 0xFFFF
        self._id_prefix = f"{seed_part:08x}-{pid_lo:04x}-4{pid_hi:03x}-8000-"
        # Per aggregate: [version, aggregate id, first event id, last event id].
        self._aggregates: dict[int, list[Any]] = {}
        self._keys: list[int] = []
        self._types: list[int] = []
        self._sizes: list[int] = []
        self._pos = _BATCH
        self._ts_second = -1
        self._ts_ms = -1
        self._ts_prefix = ""
        self._ts_text = ""
        self.oversize = 0  # events whose fields alone exceed the requested payload size
        self.seq = 0

    # -- batched draws
    def _refill(self) -> None:
        rng = self._rng
        if self._key_probs is None:
            keys = rng.integers(0, self._n_keys, size=_BATCH)
        else:
            keys = rng.choice(self._n_keys, size=_BATCH, p=self._key_probs)
        self._keys = keys.tolist()
        self._types = rng.choice(len(self._type_names), size=_BATCH, p=self._type_probs).tolist()
        payload = self._payload
        if isinstance(payload, int):
            self._sizes = [payload] * _BATCH
        else:
            self._sizes = _draw_sizes(rng, payload, _BATCH).tolist()
        self._pos = 0

    def _timestamp(self) -> str:
        # Millisecond precision, formatted once per millisecond (hundreds of events share it).
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._ts_ms:
            self._ts_ms = now_ms
            second, ms = divmod(now_ms, 1000)
            if second != self._ts_second:
                self._ts_second = second
                self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._ts_text = f"{self._ts_prefix}.{ms:03d}Z"
        return self._ts_text

    def next(self, intended_ns: int) -> Message:
        if self._pos >= _BATCH:
            self._refill()
        pos = self._pos
        self._pos = pos + 1
        key_index = self._keys[pos]
        event_type = self._type_names[self._types[pos]]
        size = self._sizes[pos]
        seq = self.seq
        self.seq = seq + 1
        event_id = f"{self._id_prefix}{seq:012x}"
        # Per aggregate: [version, aggregate id, first event id (correlation), last event id].
        state = self._aggregates.get(key_index)
        if state is None:
            key = f"{self._prefix}{key_index:08d}"
            state = self._aggregates[key_index] = [1, key, event_id, event_id]
            version = 1
            correlation_id = causation_id = event_id
        else:
            version = state[0] = state[0] + 1
            key = state[1]
            correlation_id = state[2]
            causation_id = state[3]
            state[3] = event_id
        self._ledger_keys(key_index)
        self._ledger_acks(ACK_PENDING)
        if self._ledger_intended is not None:
            self._ledger_intended(intended_ns)
        head = (
            f'{{"event_id":"{event_id}","event_type":"{event_type}","aggregate_id":"{key}",'
            f'"aggregate_type":"{self._aggregate_type}","version":{version},'
            f'"timestamp":"{self._timestamp()}","metadata":{{"correlation_id":"{correlation_id}",'
            f'"causation_id":"{causation_id}","producer":{self.producer_id}}},"payload":{{"pad":"'
        ).encode()
        pad = size - len(head) - 3  # the closing '"}}'
        if pad < 0:
            self.oversize += 1
            pad = 0
        value = head + (_PAD[:pad] if pad <= 65536 else b"x" * pad) + b'"}}'
        return Message(
            key,
            value,
            event_type,
            event_id,
            correlation_id,
            self.producer_id,
            seq,
            version,
            intended_ns,
        )


def _draw_sizes(rng: np.random.Generator, dist: PayloadDistribution, n: int) -> np.ndarray:
    if dist.distribution == "uniform":
        return rng.integers(dist.min, dist.max + 1, size=n)
    assert dist.mean is not None
    mu = np.log(dist.mean) - dist.sigma**2 / 2  # so that the mean is dist.mean
    sizes = rng.lognormal(mu, dist.sigma, size=n)
    return np.clip(np.round(sizes), dist.min, dist.max).astype(np.int64)


def key_namer(workload: Workload) -> Callable[[int], str]:
    prefix = workload.aggregate_type
    return lambda index: aggregate_id(prefix, index)
