"""Classifying lost messages: what the target still stores, against what the consumers missed.

After the drain the audit knows which acknowledged messages no consumer received (``lost``).
A stream driver that can read its topic again (``bench.drivers.base.Rereadable``) lets the
coordinator sort each of them:

* **not stored**: the target acknowledged it and no longer has it (a durability loss);
* **not delivered**: the target stores it and never handed it to the consumers (a delivery
  gap, such as Tansu 0.6.0 skipping records for a live consumer group).

A loss is *unclassified* when the re-read could not finish (its time budget ran out, or it
failed): a message not seen by a partial read may still be stored. When the driver has no
re-read at all, or cannot re-read as configured, the result says so (``checked`` false, with
the reason) instead of guessing.

The re-read is bounded in time by ``budget_s`` and in memory by the lost set: stored messages
stream through in batches and only their membership in the lost set is tested (one byte per
seq up to each producer's highest lost seq). The result is ``summary["audit"]["loss"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.drivers.base import Rereadable, Topology, topic_of, topic_topologies
from bench.errors import BenchError
from bench.units import format_count, format_duration

SAMPLES_KEPT = 10
NOTHING_LOST = "nothing lost: no re-read needed"

# The marks per seq: 0 not lost, LOST lost and not (yet) seen stored, STORED lost and stored.
_LOST = 1
_STORED = 2


async def classify_losses(
    driver: object, topology: Topology, lost: Mapping[int, np.ndarray], budget_s: float
) -> dict[str, Any]:
    """Sort every lost (producer, seq) into not stored / not delivered by re-reading the topic.

    ``driver`` is a connected stream driver; ``lost`` maps a producer id to its lost seqs
    (``bench.metrics.audit.lost_ids``). Never raises for the target's sake: a re-read that
    fails or runs out of time leaves its losses unclassified, with the reason.
    """
    total = sum(int(np.asarray(seqs).size) for seqs in lost.values())
    name = str(getattr(driver, "name", type(driver).__name__))
    if total == 0:
        return _result(checked=True, method=NOTHING_LOST, unclassified=0)
    if not isinstance(driver, Rereadable):
        return not_checked(total, f"not checked: {name} cannot re-read its topic")
    unsupported = driver.reread_unsupported(topology)
    if unsupported is not None:
        return not_checked(total, f"not checked: {unsupported}")

    marks = _marks(lost)
    found = 0
    read = 0
    reason: str | None = None
    started = time.monotonic()
    try:
        async with asyncio.timeout(budget_s):
            async with contextlib.aclosing(driver.reread(topology)) as batches:
                async for batch in batches:
                    read += len(batch)
                    found += _mark_stored(marks, batch)
                    if found == total:
                        # Every loss is stored: the rest of the topic cannot change that.
                        break
    except TimeoutError:
        reason = (
            f"the re-read stopped at its {format_duration(budget_s)} budget after "
            f"{format_count(read)} stored messages"
        )
    except BenchError as exc:
        reason = f"the re-read failed after {format_count(read)} stored messages: {exc.message}"
    except Exception as exc:  # a client library's own error: the run's figures still stand
        reason = (
            f"the re-read failed after {format_count(read)} stored messages: "
            f"{type(exc).__name__}: {exc}"
        )
    elapsed_s = time.monotonic() - started

    stored_ids = _ids_marked(marks, _STORED)
    missing_ids = _ids_marked(marks, _LOST)
    complete = reason is None
    method = f"{name}: {driver.reread_method}"
    return _result(
        checked=True,
        method=method,
        complete=complete,
        not_stored=_count(missing_ids) if complete else 0,
        not_delivered=_count(stored_ids),
        unclassified=0 if complete else _count(missing_ids),
        samples={
            "not_stored": _samples(missing_ids) if complete else [],
            "not_delivered": _samples(stored_ids),
        },
        read=read,
        elapsed_s=round(elapsed_s, 3),
        reason=reason,
    )


async def classify_topics(
    driver: object, topology: Topology, lost: Mapping[int, np.ndarray], budget_s: float
) -> dict[str, Any]:
    """``classify_losses`` over a point's topics: each producer sends to one topic
    (``topic_of``), so each topic is re-read for its own producers' losses, within what is
    left of the one budget, and the results combine into one."""
    if topology.topics == 1:
        return await classify_losses(driver, topology, lost, budget_s)
    deadline = time.monotonic() + budget_s
    results = []
    for topic in topic_topologies(topology):
        mine = {
            producer: seqs
            for producer, seqs in lost.items()
            if topic_of(producer, topology.topics) == topic.topic
        }
        if not any(np.asarray(seqs).size for seqs in mine.values()):
            continue
        left = max(0.001, deadline - time.monotonic())
        results.append(await classify_losses(driver, topic, mine, left))
    if not results:
        return _result(checked=True, method=NOTHING_LOST, unclassified=0)
    return combine_losses(results)


def combine_losses(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One classification from several (the memory target's, one per worker: each worker has
    its own broker, and so its own re-read)."""
    if not results:
        return _result(checked=False, method="none", unclassified=0, reason="not checked")
    samples: dict[str, list[str]] = {"not_stored": [], "not_delivered": []}
    for result in results:
        for name, ids in (result.get("samples") or {}).items():
            samples.setdefault(name, []).extend(ids)
    reasons = list(dict.fromkeys(r["reason"] for r in results if r.get("reason")))
    methods = list(dict.fromkeys(str(r.get("method", "none")) for r in results))
    if len(methods) > 1 and NOTHING_LOST in methods:
        methods.remove(NOTHING_LOST)
    return _result(
        checked=all(r.get("checked") for r in results),
        complete=all(r.get("complete", r.get("checked")) for r in results),
        method="; ".join(methods),
        not_stored=sum(int(r.get("not_stored") or 0) for r in results),
        not_delivered=sum(int(r.get("not_delivered") or 0) for r in results),
        unclassified=sum(int(r.get("unclassified") or 0) for r in results),
        samples={name: ids[:SAMPLES_KEPT] for name, ids in samples.items()},
        read=sum(int(r.get("read") or 0) for r in results),
        elapsed_s=max(float(r.get("elapsed_s") or 0.0) for r in results),
        reason="; ".join(reasons) if reasons else None,
    )


def _marks(lost: Mapping[int, np.ndarray]) -> dict[int, bytearray]:
    """One byte per seq up to each producer's highest lost seq: a bytearray, because the
    per-message test below indexes it from Python, where a numpy scalar read costs more."""
    marks: dict[int, bytearray] = {}
    for producer_id, seqs in lost.items():
        seqs = np.asarray(seqs, dtype=np.int64)
        if not seqs.size:
            continue
        mark = bytearray(int(seqs.max()) + 1)
        np.frombuffer(mark, dtype=np.uint8)[seqs] = _LOST
        marks[int(producer_id)] = mark
    return marks


def _mark_stored(marks: dict[int, bytearray], batch: list[tuple[int, int]]) -> int:
    """Mark the lost messages of ``batch`` as stored; how many were newly marked."""
    newly = 0
    for producer_id, seq in batch:
        mark = marks.get(producer_id)
        if mark is not None and 0 <= seq < len(mark) and mark[seq] == _LOST:
            mark[seq] = _STORED
            newly += 1
    return newly


def _ids_marked(marks: dict[int, bytearray], state: int) -> list[tuple[int, np.ndarray]]:
    out = []
    for producer_id in sorted(marks):
        seqs = np.flatnonzero(np.frombuffer(marks[producer_id], dtype=np.uint8) == state)
        if seqs.size:
            out.append((producer_id, seqs))
    return out


def _count(ids: list[tuple[int, np.ndarray]]) -> int:
    return sum(int(seqs.size) for _, seqs in ids)


def _samples(ids: list[tuple[int, np.ndarray]]) -> list[str]:
    """The first ids in (producer, seq) order, as "producer:seq" (the envelope's own form)."""
    out: list[str] = []
    for producer_id, seqs in ids:
        for seq in seqs[: SAMPLES_KEPT - len(out)]:
            out.append(f"{producer_id}:{int(seq)}")
        if len(out) >= SAMPLES_KEPT:
            break
    return out


def not_checked(total: int, reason: str) -> dict[str, Any]:
    """The classification when no re-read could run (the coordinator could not reach the
    target, say): every loss unclassified, and why."""
    return _result(checked=False, method="none", unclassified=total, reason=reason)


def _result(
    *,
    checked: bool,
    method: str,
    unclassified: int,
    complete: bool | None = None,
    not_stored: int = 0,
    not_delivered: int = 0,
    samples: dict[str, list[str]] | None = None,
    read: int = 0,
    elapsed_s: float = 0.0,
    reason: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "checked": checked,
        "complete": checked if complete is None else complete,
        "not_stored": not_stored,
        "not_delivered": not_delivered,
        "unclassified": unclassified,
        "method": method,
        "samples": samples or {"not_stored": [], "not_delivered": []},
        "read": read,
        "elapsed_s": elapsed_s,
    }
    if reason is not None:
        out["reason"] = reason
    return out
