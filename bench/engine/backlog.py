"""A backlog point's phases, as the coordinator sees them (``workload.backlog``; OMB's
consumerBacklogSizeGB and backlogDrainRatio).

Consumers are held back while the producers build ``messages`` of backlog; then they are
resumed and read at full speed while the producers keep sending at the rate. From the
workers' live counts (acknowledged, and received over every subscription) this tracks when
the backlog was built, what was owed when the consumers were resumed, and when what is owed
fell to the drained threshold. ``figures()`` is the summary's ``backlog``: every report shows
these numbers and computes none of its own.
"""

from __future__ import annotations

from typing import Any

# The drained threshold never goes below this many messages (or a tenth of a small backlog):
# producers keep sending, so the messages in flight are always owed.
DRAINED_FLOOR_MESSAGES = 1000


def drained_threshold(messages: int, ratio: float) -> int:
    """Messages still owed (per subscription) at which the backlog counts as drained:
    (1 - ratio) of it, and no less than min(1000, a tenth of it)."""
    return max(int((1.0 - ratio) * messages), min(DRAINED_FLOOR_MESSAGES, messages // 10))


class BacklogPhases:
    """Build, resume and drain, observed from the counts (``observe``)."""

    def __init__(
        self, messages: int, ratio: float, backlog_bytes: int, subscriptions: int = 1
    ) -> None:
        self.messages = messages
        self.ratio = ratio
        self.backlog_bytes = backlog_bytes
        self.subscriptions = subscriptions
        # Each subscription owes every acknowledged message.
        self.threshold = drained_threshold(messages, ratio) * subscriptions
        self.start_ns = 0  # the load's start (t0)
        self.built_ns: int | None = None
        self.resume_ns: int | None = None  # when the coordinator sent Resume
        self.drained_ns: int | None = None
        self.owed_at_resume: int | None = None
        self.received_at_resume = 0
        self.received_at_drain: int | None = None
        self.received = 0  # the last count seen
        self.consumers_started_ns: int | None = None  # the slowest worker's start() (finals)

    def start(self, t0_ns: int) -> None:
        self.start_ns = t0_ns

    def owed(self, acked: int, received: int) -> int:
        return max(0, acked * self.subscriptions - received)

    def observe(self, now_ns: int, acked: int, received: int) -> None:
        """The latest counts: every worker's acknowledged sends and distinct receipts."""
        self.received = received
        if self.built_ns is None and acked >= self.messages:
            self.built_ns = now_ns
        if self.resume_ns is None or self.drained_ns is not None:
            return
        if received > self.received_at_resume and self.owed(acked, received) <= self.threshold:
            self.drained_ns = now_ns
            self.received_at_drain = received

    @property
    def built(self) -> bool:
        return self.built_ns is not None

    @property
    def resumed(self) -> bool:
        return self.resume_ns is not None

    @property
    def drained(self) -> bool:
        return self.drained_ns is not None

    @property
    def reading(self) -> bool:
        """Something arrived since the resume (a slow group join is not a quiet drain)."""
        return self.resume_ns is not None and self.received > self.received_at_resume

    def resume(self, now_ns: int, acked: int, received: int) -> None:
        """The coordinator sent Resume with these counts in hand."""
        self.resume_ns = now_ns
        self.owed_at_resume = self.owed(acked, received)
        self.received_at_resume = received
        self.received = received

    def workers_resumed(self, reports: list[dict[str, Any]]) -> None:
        """The workers' ``backlog`` reports: how long their consumers took to start (the
        slowest's, from its Resume to its last start() returning)."""
        took = [
            int(r["resumed_ns"]) - int(r["resume_ns"])
            for r in reports
            if r.get("resume_ns") and r.get("resumed_ns")
        ]
        self.consumers_started_ns = max(took) if took and len(took) == len(reports) else None

    def figures(self) -> dict[str, Any]:
        """The summary's ``backlog``."""
        drain_s = (
            (self.drained_ns - self.resume_ns) / 1e9
            if self.drained_ns is not None and self.resume_ns is not None
            else None
        )
        read = (
            (self.received_at_drain - self.received_at_resume) / drain_s
            if drain_s and self.received_at_drain is not None
            else None
        )
        return {
            "backlog_messages": self.messages,
            "backlog_bytes": self.backlog_bytes,
            "drain_ratio": self.ratio,
            "drained_threshold": self.threshold,
            "built": self.built,
            "built_s": (self.built_ns - self.start_ns) / 1e9 if self.built_ns else None,
            "resumed": self.resumed,
            "resumed_s": (self.resume_ns - self.start_ns) / 1e9 if self.resume_ns else None,
            "owed_at_resume": self.owed_at_resume,
            "consumers_started_ms": (
                self.consumers_started_ns / 1e6 if self.consumers_started_ns is not None else None
            ),
            "drained": self.drained,
            "drain_s": drain_s,
            "drain_read_per_s": read,
        }
