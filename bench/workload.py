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
from pathlib import Path
from typing import Any

import numpy as np

from bench.drivers.base import Message
from bench.metrics.audit import ACK_PENDING, ProducerLedger
from bench.scenario import PayloadDistribution, Workload

_BATCH = 4096
_PAD = b"x" * 65536
_EVENT_ID_OPEN = b'{"event_id":"'
_TIMESTAMP_OPEN = b',"timestamp":"'
_LOW_HEX = [f"{i:03x}" for i in range(4096)]  # an event id's last three hex digits
_VERSIONS_KEPT = 10_000
_VERSIONS = [b"%d" % v for v in range(_VERSIONS_KEPT)]
_TAILS_KEPT = 4096  # padding lengths whose encoded tail a factory keeps
_time_ns = time.time_ns


def key_probabilities(spec: str, n: int) -> np.ndarray | None:
    """Per-key probabilities for a key distribution; None means uniform (round robin too: each
    key equally often, in turn)."""
    if spec in ("uniform", "round_robin"):
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
    """Builds the messages of one producer: ``next(intended_ns)`` returns the next Message.

    The body is assembled from pre-encoded pieces rather than formatted field by field: the
    text that never changes (per event type, per aggregate, per padding length) is encoded
    once, and each event only joins it with its event id, version, timestamp and causation id.
    The bytes are exactly those of a field-by-field JSON encoding (tests/unit/test_workload.py
    pins a body).
    """

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
        # keys = "round_robin" (OMB's KEY_ROUND_ROBIN): each producer cycles through every
        # aggregate in turn, starting at its own offset so producers do not move in step.
        self._round_robin = workload.keys == "round_robin"
        self._next_key = (producer_id * 7919) % workload.aggregates
        # Raw bodies (payload_file, payload_random): each message's value is the next of these,
        # in turn, instead of the JSON event (None: the JSON event).
        self._bodies = raw_bodies(workload, np.random.default_rng([seed, producer_id, 1]))
        self._type_names = list(workload.event_types)
        weights = np.array(list(workload.event_types.values()), dtype=np.float64)
        self._type_probs = weights / weights.sum()
        self._payload = workload.payload_bytes
        self._aggregate_type = workload.aggregate_type
        self._prefix = workload.aggregate_type.lower() + "-"
        # A uuid-shaped, unique id: 8 hex from the seed, 4+3 from the producer, then the sequence
        # (below 16**12, i.e. 10**14 events, so the last group is the sequence itself). The
        # sequence's last three hex digits come from a table, the rest once per 4096 events.
        seed_part = (seed * 2654435761) & 0xFFFFFFFF
        pid_hi, pid_lo = (producer_id >> 16) & 0xFFF, producer_id & 0xFFFF
        self._id_prefix = f"{seed_part:08x}-{pid_lo:04x}-4{pid_hi:03x}-8000-"
        self._id_high = self._id_prefix + "000000000"
        # The body's constant pieces: '{"event_id":"' <id> '","event_type":"<type>",' (one per
        # type) <aggregate's head> <version> '","timestamp":"' ... see _aggregate().
        self._type_pieces = [f'","event_type":"{name}",'.encode() for name in self._type_names]
        self._type_lengths = np.array([len(piece) for piece in self._type_pieces], np.int64)
        self._tail_head = f'","producer":{producer_id}}},"payload":{{"pad":"'.encode()
        # Everything but the type, the aggregate's pieces, the version and the padding.
        self._fixed_length = (
            len(_EVENT_ID_OPEN) + 36 + len(_TIMESTAMP_OPEN) + 24 + 36 + len(self._tail_head) + 3
        )
        self._tails: dict[int, bytes] = {}
        # Per aggregate: [version, aggregate id, first event id, last event id (bytes),
        # head piece, metadata piece, their length].
        self._aggregates: dict[int, list[Any]] = {}
        # The batch's draws, per event: (key index, type index, room), where room is the size
        # less everything but the aggregate's pieces, the version and the padding.
        self._draw: Callable[[], tuple[int, int, int]] = iter(()).__next__
        self._ts_second = -1
        self._ts_ms = -1
        self._ts_prefix = ""
        self._ts = b""
        self.oversize = 0  # events whose fields alone exceed the requested payload size
        self.seq = 0

    # -- batched draws
    def _refill(self) -> None:
        rng = self._rng
        if self._round_robin:
            keys = (np.arange(_BATCH, dtype=np.int64) + self._next_key) % self._n_keys
            self._next_key = (self._next_key + _BATCH) % self._n_keys
        elif self._key_probs is None:
            keys = rng.integers(0, self._n_keys, size=_BATCH)
        else:
            keys = rng.choice(self._n_keys, size=_BATCH, p=self._key_probs)
        types = rng.choice(len(self._type_names), size=_BATCH, p=self._type_probs)
        payload = self._payload
        if isinstance(payload, int):
            sizes = np.full(_BATCH, payload, dtype=np.int64)
        else:
            sizes = _draw_sizes(rng, payload, _BATCH).astype(np.int64)
        room = sizes - self._fixed_length - self._type_lengths[types]
        self._draw = zip(keys.tolist(), types.tolist(), room.tolist(), strict=True).__next__

    def _timestamp(self, now_ms: int) -> bytes:
        """The body's ',"timestamp":"...' piece for this millisecond."""
        # Millisecond precision, formatted once per millisecond (hundreds of events share it).
        self._ts_ms = now_ms
        second, ms = divmod(now_ms, 1000)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._ts = ts = _TIMESTAMP_OPEN + f"{self._ts_prefix}.{ms:03d}Z".encode()
        return ts

    def _aggregate(self, key_index: int, event_id: str) -> list[Any]:
        key = f"{self._prefix}{key_index:08d}"
        head = f'"aggregate_id":"{key}","aggregate_type":"{self._aggregate_type}","version":'
        meta = f'","metadata":{{"correlation_id":"{event_id}","causation_id":"'
        head_b, meta_b = head.encode(), meta.encode()
        state = [0, key, event_id, b"", head_b, meta_b, len(head_b) + len(meta_b)]
        self._aggregates[key_index] = state
        return state

    def _tail(self, pad: int) -> bytes:
        if pad < 0:  # not kept: every such event is counted
            self.oversize += 1
            return self._tail_head + b'"}}'
        tail = self._tail_head + (_PAD[:pad] if pad <= 65536 else b"x" * pad) + b'"}}'
        if len(self._tails) < _TAILS_KEPT:
            self._tails[pad] = tail
        return tail

    def next(self, intended_ns: int) -> Message:
        try:
            key_index, type_index, room = self._draw()
        except StopIteration:
            self._refill()
            key_index, type_index, room = self._draw()
        seq = self.seq
        self.seq = seq + 1
        low = seq & 0xFFF
        if not low:
            self._id_high = f"{self._id_prefix}{seq >> 12:09x}"
        event_id = self._id_high + _LOW_HEX[low]
        event_id_b = event_id.encode()
        # Per aggregate: [version, aggregate id, first event id (correlation), last event id].
        state = self._aggregates.get(key_index)
        if state is None:
            state = self._aggregate(key_index, event_id)
            causation_b = event_id_b
        else:
            causation_b = state[3]
        version = state[0] = state[0] + 1
        state[3] = event_id_b
        self._ledger_keys(key_index)
        self._ledger_acks(ACK_PENDING)
        if self._ledger_intended is not None:
            self._ledger_intended(intended_ns)
        if self._bodies is not None:
            bodies = self._bodies
            return Message(
                state[1],
                bodies[seq % len(bodies)],
                self._type_names[type_index],
                event_id,
                state[2],
                self.producer_id,
                seq,
                version,
                intended_ns,
            )
        version_b = _VERSIONS[version] if version < _VERSIONS_KEPT else b"%d" % version
        now_ms = _time_ns() // 1_000_000
        ts = self._ts if now_ms == self._ts_ms else self._timestamp(now_ms)
        pad = room - state[6] - len(version_b)
        tail = self._tails.get(pad)
        if tail is None:
            tail = self._tail(pad)
        value = b"".join(
            (
                _EVENT_ID_OPEN,
                event_id_b,
                self._type_pieces[type_index],
                state[4],
                version_b,
                ts,
                state[5],
                causation_b,
                tail,
            )
        )
        return Message(
            state[1],
            value,
            self._type_names[type_index],
            event_id,
            state[2],
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


def raw_bodies(workload: Workload, rng: np.random.Generator) -> list[bytes] | None:
    """The raw message bodies of ``payload_file`` or ``payload_random`` (None: JSON events).

    A random body is OMB's randomized payload: its first ``payload_random`` share random bytes,
    the rest zero bytes (so 0.0 compresses to nothing, 1.0 not at all)."""
    if workload.payload_file is not None:
        return [Path(workload.payload_file).read_bytes()]
    if workload.payload_random is None:
        return None
    size = workload.payload_bytes
    assert isinstance(size, int)  # validated: a number of bytes with payload_random
    random_part = int(size * workload.payload_random)
    zeros = bytes(size - random_part)
    return [rng.bytes(random_part) + zeros for _ in range(workload.payload_pool)]


def key_namer(workload: Workload) -> Callable[[int], str]:
    prefix = workload.aggregate_type
    return lambda index: aggregate_id(prefix, index)
