"""The delivery audit: exact counts of lost, duplicated and reordered messages.

Every message carries (producer id, seq, key, key_seq). Producers keep a ledger of what they
sent and what was acknowledged; consumers keep a ledger of what they received. After the drain
the coordinator merges every worker's ledgers and counts, exactly:

* ``sent``        messages handed to the driver;
* ``acked``       of those, acknowledged by the target;
* ``received``    distinct messages delivered at least once;
* ``lost``        acknowledged but never received (the definition that matters to users);
* ``unacked_lost`` not acknowledged and never received (a failed send: counted apart);
* ``duplicated``  deliveries beyond the first; of those, ``redelivered`` are messages a killed
  consumer had processed and not committed, received again (the ``kill_consumer`` fault), and
  the rest are ``broker_duplicates``;
* ``reordered``   first deliveries whose key_seq is below one already seen for that
  (producer, key) at the same consumer: per-key order broken.

Ledgers are byte arrays indexed by the producer's seq, so the hot path is a few list
operations and the merge is numpy.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ACK_PENDING = 0
ACK_OK = 1
ACK_FAILED = 2
ACK_NOT_SENT = 3  # built, then abandoned before sending (the run was interrupted)
REORDERED_SEQS_KEPT = 1_000_000


class ProducerLedger:
    """What one producer sent: the key index of every seq, and its acknowledgement state.

    With ``track_intended`` it also keeps every seq's intended time, so the audit can be split
    along the run's timeline (the fault timeline's per-fault audit).
    """

    __slots__ = ("acks", "intended", "keys", "producer_id")

    def __init__(self, producer_id: int, track_intended: bool = False) -> None:
        self.producer_id = producer_id
        self.keys: array[int] = array("I")  # key index per seq
        self.acks = bytearray()  # ACK_* per seq
        self.intended: array[int] | None = array("q") if track_intended else None

    def export(self) -> tuple[int, bytes, bytes]:
        return self.producer_id, self.keys.tobytes(), bytes(self.acks)


class ConsumerLedger:
    """What the consumers of one worker received, per producer.

    Beside the audit it runs the order projection every order-dependent read model is: an
    aggregate's event N can only be applied to the state event N-1 left (OrderConfirmed needs
    the OrderPlaced order, OrderShipped the confirmed one). An event that arrives before the
    state it needs is a **projection failure**: counted, and parked until its predecessor
    comes (as a projection that retries it would). One still parked at the end never found its
    state here: **stuck** (its predecessor was lost, or went to another worker's consumer).
    """

    __slots__ = (
        "applied",
        "parked",
        "projection_failed_keys",
        "projection_failures",
        "received",
        "reordered",
        "reordered_by_key",
        "reordered_seqs",
    )

    def __init__(self) -> None:
        self.received: dict[int, bytearray] = {}
        self.reordered = 0
        self.reordered_by_key: dict[tuple[int, str], int] = {}
        self.reordered_seqs: list[tuple[int, int]] = []  # (producer, seq), for segment audits
        # Per (producer, key): the last key_seq applied in order, and the ones parked ahead of
        # it (the order projection; the highest key_seq seen, for reordered, derives from them).
        self.applied: dict[tuple[int, str], int] = {}
        self.parked: dict[tuple[int, str], set[int]] = {}
        self.projection_failures = 0
        self.projection_failed_keys: set[tuple[int, str]] = set()

    def record(self, producer_id: int, seq: int, key: str, key_seq: int) -> bool:
        """Register one delivery; True if it is the first delivery of that message here."""
        counts = self.received.get(producer_id)
        if counts is None:
            counts = self.received[producer_id] = bytearray(1024)
        if seq >= len(counts):
            counts.extend(bytes(max(seq + 1 - len(counts), len(counts))))
        seen = counts[seq]
        if seen:
            if seen < 255:
                counts[seq] = seen + 1
            return False
        counts[seq] = 1
        pk = (producer_id, key)
        applied = self.applied.get(pk, 0)
        parked = self.parked.get(pk)
        if key_seq == applied + 1 and parked is None:
            self.applied[pk] = key_seq  # in order: the hot path
            return True
        # The highest key_seq seen is the last parked one, or the last applied: one below it
        # arrives late (reordered, the audit's count); one above the next to apply arrives
        # early (a projection failure).
        if key_seq < (max(parked) if parked else applied):
            self.reordered += 1
            self.reordered_by_key[pk] = self.reordered_by_key.get(pk, 0) + 1
            if len(self.reordered_seqs) < REORDERED_SEQS_KEPT:
                self.reordered_seqs.append((producer_id, seq))
        if key_seq == applied + 1:
            self._unpark(pk, key_seq)
        elif key_seq > applied:
            # Ahead of the state it needs: the projection cannot apply it yet.
            self.projection_failures += 1
            self.projection_failed_keys.add(pk)
            if parked is None:
                parked = self.parked[pk] = set()
            parked.add(key_seq)
        return True

    def _unpark(self, pk: tuple[int, str], applied: int) -> None:
        """The state an event waited for is there: apply what waited behind it, in order."""
        parked = self.parked[pk]
        while applied + 1 in parked:
            applied += 1
            parked.discard(applied)
        self.applied[pk] = applied
        if not parked:
            del self.parked[pk]

    def projection(self) -> dict[str, int]:
        """The order projection's counts: failures (events that arrived before the state they
        need), the aggregates they hit, and those still stuck at the end."""
        return {
            "failures": self.projection_failures,
            # Aggregates, not (producer, aggregate) streams: producers share aggregate ids.
            "keys": len({key for _, key in self.projection_failed_keys}),
            "stuck": sum(len(parked) for parked in self.parked.values()),
            "keys_stuck": len({key for _, key in self.parked}),
        }

    def export(self) -> tuple[dict[int, bytes], int, dict[str, int]]:
        by_key = {f"{p}/{k}": n for (p, k), n in self.reordered_by_key.items()}
        return {p: bytes(c) for p, c in self.received.items()}, self.reordered, by_key


@dataclass
class AuditResult:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    received: int = 0
    delivered: int = 0
    lost: int = 0
    unacked_lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    unknown_received: int = 0  # deliveries of seqs no producer of this run sent
    # Consumer faults on the timeline: what killed consumers had not committed, how much of it
    # came again (part of duplicated), and the duplicates the broker made by itself. None:
    # no consumer was killed.
    redelivery_owed: int | None = None
    redelivered: int | None = None
    broker_duplicates: int | None = None
    keys_with_loss: int = 0
    keys_with_duplicates: int = 0
    keys_reordered: int = 0
    # The order projection (ConsumerLedger): None where no stream consumer ran one, or where
    # it could not be judged (projection_note says why).
    projection_failures: int | None = None
    keys_projection_failed: int | None = None
    projection_stuck: int | None = None
    projection_note: str | None = None
    worst_keys: list[dict[str, object]] = field(default_factory=list)
    # Fan-out (workload.subscriptions > 1): each subscription's own audit (received, lost,
    # duplicated, reordered, ...); the counts above are then their sums. None: one.
    subscriptions: list[dict[str, int]] | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.reordered
            or self.unknown_received
            or self.projection_failures
        )


def add_projection(
    result: AuditResult, projections: list[dict[str, int]], by_aggregate: bool = True
) -> None:
    """Every worker's order projection into the point's audit (each worker's consumers are one
    projection instance, with the read model of the aggregates they received).

    Keyed by the aggregate (``by_aggregate``; or on a broker inside each worker), an
    aggregate's events all reach one worker's consumers, and the instances add up. Otherwise
    one aggregate's events reach consumers in several workers, each worker sees gaps that are
    another worker's deliveries, and the sum would be failures that never happened: not
    judged, and ``projection_note`` says so."""
    if not projections:
        return
    if len(projections) > 1 and not by_aggregate:
        result.projection_note = (
            f"not judged: without the aggregate as partition key, an aggregate's events reach "
            f"consumers in {len(projections)} worker processes, and each projects only its "
            "own; run the consumers in one worker to count projection failures"
        )
        return
    result.projection_failures = sum(p["failures"] for p in projections)
    result.keys_projection_failed = sum(p["keys"] for p in projections)
    result.projection_stuck = sum(p["stuck"] for p in projections)


def merge(
    producers: list[tuple[int, bytes, bytes]],
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
    key_name: Callable[[int], str] | None = None,
) -> AuditResult:
    """Combine every worker's ledgers into the run point's exact audit."""
    result = AuditResult()
    received_by_producer = _received_by_producer(consumers)
    for _, reordered, _ in consumers:
        result.reordered += reordered

    worst: list[dict[str, object]] = []
    known = set()
    for producer_id, keys_blob, acks_blob in producers:
        known.add(producer_id)
        acks = np.frombuffer(acks_blob, dtype=np.uint8)
        keys = np.frombuffer(keys_blob, dtype=np.uint32)
        n = acks.size
        not_sent = acks == ACK_NOT_SENT
        counts = received_by_producer.get(producer_id, np.zeros(0, dtype=np.int64))
        got = np.zeros(n, dtype=np.int64)
        got[: min(n, counts.size)] = counts[:n]
        if counts.size > n:
            result.unknown_received += int(counts[n:].sum())
        acked = acks == ACK_OK
        received = got > 0
        lost = acked & ~received
        dup = np.maximum(got - 1, 0)
        result.sent += n - int(not_sent.sum())
        result.acked += int(acked.sum())
        result.failed += int((acks == ACK_FAILED).sum())
        result.received += int(received.sum())
        result.delivered += int(got.sum())
        result.lost += int(lost.sum())
        result.unacked_lost += int((~acked & ~received & ~not_sent).sum())
        result.duplicated += int(dup.sum())
        if lost.any():
            lost_keys = np.bincount(keys[lost])
            result.keys_with_loss += int((lost_keys > 0).sum())
            for k in np.argsort(lost_keys)[::-1][:3]:
                if lost_keys[k]:
                    worst.append(_key_row(producer_id, int(k), key_name, lost=int(lost_keys[k])))
        if dup.any():
            dup_keys = np.bincount(keys, weights=dup)
            result.keys_with_duplicates += int((dup_keys > 0).sum())
    for producer_id, counts in received_by_producer.items():
        if producer_id not in known:
            result.unknown_received += int(counts.sum())
    result.keys_reordered = sum(len(by_key) for _, _, by_key in consumers)
    result.worst_keys = worst[:5]
    return result


def redelivered(
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
    owed: list[tuple[int, int]],
) -> int:
    """Of the deliveries the audit counts as duplicated, those that are redeliveries: a
    message a killed consumer had processed and not committed (``owed``, once per kill that
    owed it), received again. Any other duplicate is the broker's (``duplicated`` minus this).
    """
    if not owed:
        return 0
    received_by_producer = _received_by_producer(consumers)
    times_owed = Counter(owed)
    count = 0
    for (producer_id, seq), times in times_owed.items():
        counts = received_by_producer.get(producer_id)
        got = int(counts[seq]) if counts is not None and seq < counts.size else 0
        count += min(times, max(0, got - 1))
    return count


def lost_ids(
    producers: list[tuple[int, bytes, bytes]],
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
) -> dict[int, np.ndarray]:
    """The seqs ``merge`` counts as lost (acknowledged, never received), per producer.

    Sorted int64 arrays, producers without a loss left out: what a re-read of the topic sorts
    into *not stored* and *not delivered*."""
    received_by_producer = _received_by_producer(consumers)
    out: dict[int, np.ndarray] = {}
    for producer_id, _keys, acks_blob in producers:
        acks = np.frombuffer(acks_blob, dtype=np.uint8)
        n = acks.size
        counts = received_by_producer.get(producer_id, np.zeros(0, dtype=np.int64))
        received = np.zeros(n, dtype=bool)
        received[: min(n, counts.size)] = counts[:n] > 0
        lost = np.flatnonzero((acks == ACK_OK) & ~received).astype(np.int64)
        if lost.size:
            known = out.get(producer_id)
            out[producer_id] = lost if known is None else np.union1d(known, lost)
    return out


def _key_row(
    producer_id: int, key_index: int, key_name: Callable[[int], str] | None, **counts: int
) -> dict[str, object]:
    name = key_name(key_index) if key_name else str(key_index)
    return {"producer": producer_id, "key": name, **counts}


def _received_by_producer(
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
) -> dict[int, np.ndarray]:
    """Deliveries per seq, per producer, summed over every worker's consumers."""
    received_by_producer: dict[int, np.ndarray] = {}
    for received_by_seq, _, _ in consumers:
        for producer_id, blob in received_by_seq.items():
            counts = np.frombuffer(blob, dtype=np.uint8).astype(np.int64)
            current = received_by_producer.get(producer_id)
            if current is None:
                received_by_producer[producer_id] = counts
            else:
                size = max(current.size, counts.size)
                merged = np.zeros(size, dtype=np.int64)
                merged[: current.size] += current
                merged[: counts.size] += counts
                received_by_producer[producer_id] = merged
    return received_by_producer


SEGMENT_FIELDS = (
    "sent",
    "acked",
    "failed",
    "lost",
    "duplicated",
    "reordered",
    "unacked_lost",
    "unacked_received",
)


def segment_audit(
    producers: list[tuple[int, bytes, bytes]],
    intended: dict[int, bytes],
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
    reordered_seqs: list[tuple[int, int]],
    boundaries_ns: list[int],
) -> list[dict[str, int]]:
    """The audit split by intended time: segment i holds the events intended in
    [boundaries[i-1], boundaries[i]) (segment 0 starts at the beginning, the last runs to the
    end), so the segments add up to the whole run's audit. ``unacked_received`` counts failed
    sends that were delivered all the same (the acknowledgement, not the event, was lost).
    """
    edges = np.asarray(boundaries_ns, dtype=np.int64)
    segments = [dict.fromkeys(SEGMENT_FIELDS, 0) for _ in range(len(edges) + 1)]
    received_by_producer = _received_by_producer(consumers)
    segment_of: dict[int, np.ndarray] = {}
    for producer_id, _keys, acks_blob in producers:
        acks = np.frombuffer(acks_blob, dtype=np.uint8)
        times = np.frombuffer(intended.get(producer_id, b""), dtype=np.int64)
        n = min(acks.size, times.size)
        acks = acks[:n]
        seg = np.searchsorted(edges, times[:n], side="right")
        segment_of[producer_id] = seg
        counts = received_by_producer.get(producer_id, np.zeros(0, dtype=np.int64))
        got = np.zeros(n, dtype=np.int64)
        got[: min(n, counts.size)] = counts[:n]
        sent = acks != ACK_NOT_SENT
        acked = acks == ACK_OK
        failed = acks == ACK_FAILED
        received = got > 0
        columns = {
            "sent": sent,
            "acked": acked,
            "failed": failed,
            "lost": acked & ~received,
            "duplicated": np.maximum(got - 1, 0),
            "unacked_lost": sent & ~acked & ~received,
            "unacked_received": ~acked & received,
        }
        for name, values in columns.items():
            per = np.bincount(seg, weights=values.astype(np.float64), minlength=len(segments))
            for i, v in enumerate(per):
                segments[i][name] += int(v)
    for producer_id, seq in reordered_seqs:
        of = segment_of.get(producer_id)
        if of is not None and seq < of.size:
            segments[int(of[seq])]["reordered"] += 1
    return segments


SUBSCRIPTION_FIELDS = (
    "received",
    "delivered",
    "lost",
    "unacked_lost",
    "duplicated",
    "reordered",
    "unknown_received",
    "keys_with_loss",
    "keys_with_duplicates",
    "keys_reordered",
)


def merge_subscriptions(
    producers: list[tuple[int, bytes, bytes]],
    by_subscription: list[list[tuple[dict[int, bytes], int, dict[str, int]]]],
    key_name: Callable[[int], str] | None = None,
) -> AuditResult:
    """The audit of a fan-out: each subscription's consumer ledgers audited against every
    producer on its own (``merge``), and the point's audit their sum. The producer side (sent,
    acknowledged, failed) is counted once; every delivery-side count is summed, so a message
    one subscription lost is lost once, whatever the others received."""
    audits = [merge(producers, consumers, key_name) for consumers in by_subscription]
    result = audits[0]
    if len(audits) == 1:
        return result
    result.subscriptions = [
        {name: int(getattr(audit, name)) for name in SUBSCRIPTION_FIELDS} for audit in audits
    ]
    for name in SUBSCRIPTION_FIELDS:
        if name != "unacked_lost":  # a failed send, missing from every subscription: once
            setattr(result, name, sum(int(getattr(audit, name)) for audit in audits))
    worst = [row for audit in audits for row in audit.worst_keys]
    result.worst_keys = worst[:5]
    return result
