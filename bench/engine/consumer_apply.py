"""What a stream workload's consumers do with a delivery besides the audit (``workload.apply``).

At-least-once delivery means a consumer sees some events twice: a consumer that dies before it
commits what it processed gets it again after its restart (the ``kill_consumer`` fault; the
audit counts those as *redelivered*), and brokers duplicate by themselves. Whether that
corrupts the read model depends on the consumer:

* ``naive``: every delivery is applied. A redelivered OrderPlaced counts the order twice.
* ``guarded``: a processed-events record (here a set of event ids, the memory form of a
  processed-events table) is checked first; an id already processed is skipped and counted.

The read model is an order summary per aggregate: how many events it applied and the last
event type. ``applied`` counts every application; the duplicates applied are found when the
workers' figures meet (applications summed over workers, minus the distinct events received:
``apply_figures``), so a redelivery that reaches a consumer in another worker, past that
worker's own guard, counts too, as it would corrupt a read model shared by both.
"""

from __future__ import annotations

from typing import Any

from bench.drivers.base import Message


class StreamReadModel:
    """The consumers' read model in one worker, with or without the idempotency guard."""

    __slots__ = ("applied", "guarded", "processed", "skipped", "summaries")

    def __init__(self, guarded: bool) -> None:
        self.guarded = guarded
        self.processed: set[str] = set()
        self.summaries: dict[str, list[Any]] = {}  # aggregate -> [events applied, last type]
        self.applied = 0
        self.skipped = 0

    def apply(self, msg: Message) -> bool:
        """Apply one delivery; False when the guard skipped it (already processed)."""
        if self.guarded:
            processed = self.processed
            if msg.event_id in processed:
                self.skipped += 1
                return False
            processed.add(msg.event_id)
        summary = self.summaries.get(msg.key)
        if summary is None:
            self.summaries[msg.key] = [1, msg.event_type]
        else:
            summary[0] += 1
            summary[1] = msg.event_type
        self.applied += 1
        return True

    def export(self) -> dict[str, int]:
        return {
            "applied": self.applied,
            "skipped": self.skipped,
            "aggregates": len(self.summaries),
        }


def apply_figures(
    mode: str, exports: list[dict[str, int]], received_distinct: int
) -> dict[str, Any]:
    """The point's apply figures from every consuming worker's export: applications, the
    duplicates applied (applications beyond one per distinct event received) and those the
    guard skipped."""
    applied = sum(e["applied"] for e in exports)
    return {
        "mode": mode,
        "applied": applied,
        "duplicates_applied": max(0, applied - received_distinct),
        "duplicates_skipped": sum(e["skipped"] for e in exports),
    }
