"""Per-fault figures, from what the injector did and what the workers saw.

For each fault, with S its start and N the next fault's start (or the end of the timeline):

* ``errors``: the errors the run counted in [S, N) (for the last fault: through the drain and
  the shutdown), ``errors_by_kind`` the same by kind, and ``time_to_first_error_s`` /
  ``first_error_kind`` the first of them. An error is anything the run's ``errors`` counts:
  a failed send, and what a client reported on its own (a disconnect, a reconnect, a failed
  fetch). The errors before the first fault that ran are the first row's ``errors_before``,
  so ``errors_before`` and ``errors`` over the rows add up to the run's ``errors.total``
  (``errors_counted`` is ``"all"``). Results from a worker that shipped only the times of its
  failed sends count those alone (``errors_counted`` is ``"failed sends"``);
* the fault spans [S, N) run between the faults that ran: a fault that was not reached
  has none, and the one before it keeps the rest of the run;
* ``producer_outage_s``: the longest stretch in [S, min(N, end of load)) with no
  acknowledgement at all; ``consumer_outage_s`` the same for deliveries (through the drain),
  and ``consumers_resumed`` whether any delivery came after it (False: they never did);
* ``recovery_s``: from S to the first moment t when the acknowledgements since max(end of that
  producer outage, t - 1 s), a window of at least 100 ms, reach ``RECOVERED_FRACTION`` of the
  target rate (closed loop: of the rate in the five seconds before the fault); None when that
  never happened before the next fault or the end of the load;
* ``audit``: the delivery audit of the events *intended* from ``AUDIT_LEAD_S`` before this
  fault (but not before the previous fault's scheduled end) up to where the next fault's
  segment begins. The lead catches acknowledged events a crash loses just before it; the
  segments, with the one before the first fault, add up to the run's audit. A target that
  stays down past the next fault's segment start hands the rest of its outage to that one.
  Unacknowledged events are counted apart (``unacked_lost``,
  ``unacked_received``).

Outages and recovery are resolved to the workers' 10 ms timeline buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.metrics import audit as audit_mod
from bench.units import format_duration

AUDIT_LEAD_S = 1.0
RECOVERED_FRACTION = 0.9
BASELINE_S = 5.0
MIN_WINDOW_BUCKETS = 10


# errors_counted: which errors the rows hold.
ALL_ERRORS = "all"
FAILED_SENDS = "failed sends"


@dataclass(frozen=True)
class ErrorTimes:
    """When each of a point's errors was counted (monotonic ns, sorted), and its kind."""

    at_ns: np.ndarray
    kind: np.ndarray  # index into kinds, per error; all -1 when the kinds are unknown
    kinds: tuple[str, ...]
    counted: str  # ALL_ERRORS or FAILED_SENDS

    @classmethod
    def failed_sends(cls, fail_at_ns: np.ndarray) -> ErrorTimes:
        """Failed sends only, kinds unknown: what workers shipped before every error was timed."""
        at = np.sort(np.asarray(fail_at_ns, dtype=np.int64))
        return cls(at, np.full(at.size, -1, dtype=np.int64), (), FAILED_SENDS)

    @classmethod
    def of_kinds(cls, by_kind: dict[str, np.ndarray]) -> ErrorTimes:
        """Every counted error, from their times by kind."""
        kinds = tuple(sorted(by_kind))
        if not kinds:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, (), ALL_ERRORS)
        at = np.concatenate([np.asarray(by_kind[k], dtype=np.int64) for k in kinds])
        kind = np.concatenate(
            [np.full(np.asarray(by_kind[k]).size, i, dtype=np.int64) for i, k in enumerate(kinds)]
        )
        order = np.argsort(at, kind="stable")
        return cls(at[order], kind[order], kinds, ALL_ERRORS)

    def between(self, lo_ns: int | None, hi_ns: int | None) -> tuple[int, int]:
        """Index range of the errors in [lo_ns, hi_ns) (None: unbounded)."""
        lo = 0 if lo_ns is None else int(np.searchsorted(self.at_ns, lo_ns, side="left"))
        hi = (
            self.at_ns.size
            if hi_ns is None
            else int(np.searchsorted(self.at_ns, hi_ns, side="left"))
        )
        return lo, max(lo, hi)

    def by_kind(self, lo: int, hi: int) -> dict[str, int] | None:
        if not self.kinds:
            return None if self.counted == FAILED_SENDS else {}
        counts = np.bincount(self.kind[lo:hi], minlength=len(self.kinds))
        return {k: int(n) for k, n in zip(self.kinds, counts, strict=True) if n}

    def kind_at(self, i: int) -> str | None:
        k = int(self.kind[i])
        return self.kinds[k] if k >= 0 else None


def error_times(timelines: list[dict[str, Any]]) -> ErrorTimes:
    """The errors of every worker's timeline: all of them when each worker shipped
    ``error_at`` (kind -> int64 monotonic ns), else the failed sends of ``fail_at``."""
    if timelines and all("error_at" in t for t in timelines):
        by_kind: dict[str, list[np.ndarray]] = {}
        for t in timelines:
            for kind, raw in t["error_at"].items():
                by_kind.setdefault(kind, []).append(np.frombuffer(raw, dtype=np.int64))
        return ErrorTimes.of_kinds({k: np.concatenate(v) for k, v in by_kind.items()})
    return ErrorTimes.failed_sends(
        np.concatenate(
            [np.zeros(0, dtype=np.int64)]
            + [np.frombuffer(t["fail_at"], dtype=np.int64) for t in timelines]
        )
    )


def audit_boundaries_ns(
    t0_ns: int, faults_at_s: list[float], down_for_s: list[float] | None = None
) -> list[int]:
    """Where each fault's audit segment begins, on the monotonic clock: AUDIT_LEAD_S before
    it, but never before the previous fault's scheduled end (its outage stays its own)."""
    bounds = []
    previous_end = 0.0
    for i, at in enumerate(faults_at_s):
        bounds.append(t0_ns + int(max(0.0, at - AUDIT_LEAD_S, previous_end) * 1e9))
        previous_end = at + (down_for_s[i] if down_for_s else 0.0)
    return bounds


def _longest_empty_run(counts: np.ndarray, first: int, last: int) -> int:
    """The longest run of zero buckets within counts[first:last]."""
    window = counts[max(first, 0) : max(last, 0)]
    if window.size == 0:
        return 0
    empty = np.concatenate([[0], (window == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(empty))
    if edges.size == 0:
        return 0
    return int((edges[1::2] - edges[0::2]).max())


def _gap_end(counts: np.ndarray, first: int, last: int) -> int:
    """The bucket where the longest empty run in counts[first:last] ends (first if none)."""
    window = counts[max(first, 0) : max(last, 0)]
    empty = np.concatenate([[0], (window == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(empty))
    if edges.size == 0:
        return first
    lengths = edges[1::2] - edges[0::2]
    return first + int(edges[1::2][int(np.argmax(lengths))])


def _recovery_s(
    acked: np.ndarray, first: int, gap_end: int, last: int, per_bucket: float, per_second: int
) -> int | None:
    """Buckets from ``first`` until the acknowledgements in the last second after the gap
    (at least 100 ms of it) reach RECOVERED_FRACTION of the expected count."""
    cumulative = np.concatenate([[0], np.cumsum(acked)])
    start = max(first, gap_end)
    for end in range(start + MIN_WINDOW_BUCKETS, last + 1):
        begin = max(start, end - per_second)
        if cumulative[end] - cumulative[begin] >= RECOVERED_FRACTION * per_bucket * (end - begin):
            return end - first
    return None


def fault_figures(
    events: list[dict[str, Any]],
    t0_ns: int,
    bucket_ns: int,
    acked: np.ndarray,
    delivered: np.ndarray,
    errors: ErrorTimes | np.ndarray,
    rate_per_s: float | None,
    load_s: float,
    segments: list[dict[str, int]] | None,
) -> list[dict[str, Any]]:
    """The summary's ``faults`` list: each event with its measured figures.

    ``errors``: every counted error (``ErrorTimes``), or the times of the failed sends alone.
    """
    if not isinstance(errors, ErrorTimes):
        errors = ErrorTimes.failed_sends(errors)
    bucket_s = bucket_ns / 1e9
    per_second = max(1, round(1.0 / bucket_s))
    load_end = round(load_s / bucket_s)
    starts = [
        e["started_ns"] if e.get("started_ns") is not None else t0_ns + int(e["at_s"] * 1e9)
        for e in events
    ]
    # A fault's span ends where the next fault that ran began: one never reached has no span.
    reached = [i for i, e in enumerate(events) if e["status"] != "not reached"]
    span_end: dict[int, int | None] = {
        i: (starts[reached[j + 1]] if j + 1 < len(reached) else None) for j, i in enumerate(reached)
    }
    # Errors before the first fault that ran (all of them when none ran) belong to no fault.
    before_lo, before_hi = errors.between(None, starts[reached[0]] if reached else None)
    bounds = audit_boundaries_ns(
        t0_ns, [e["at_s"] for e in events], [e["down_for_s"] for e in events]
    )
    out = []
    for i, event in enumerate(events):

        def rel(key: str, event: dict[str, Any] = event) -> float | None:
            value = event.get(key)
            return None if value is None else round((value - t0_ns) / 1e9, 3)

        row: dict[str, Any] = {
            "index": event["index"],
            "action": event["action"],
            "at_s": event["at_s"],
            "down_for_s": event["down_for_s"],
            "service": event["service"],
            "endpoint": event["endpoint"],
            "status": event["status"],
            "detail": event["detail"],
            "started_at_s": rel("started_ns"),
            "down_at_s": rel("down_ns"),
            "restored_at_s": rel("restored_ns"),
            "answering_at_s": rel("answering_ns"),
            "time_to_first_error_s": None,
            "producer_outage_s": None,
            "consumer_outage_s": None,
            "consumers_resumed": None,
            "recovery_s": None,
            "errors": 0,
            "errors_by_kind": errors.by_kind(0, 0),
            "first_error_kind": None,
            "errors_from_s": None,
            "errors_to_s": None,
            "errors_before": before_hi - before_lo if i == 0 else 0,
            "errors_counted": errors.counted,
            "audit": None,
        }
        if segments is not None and i + 1 < len(segments):
            to_s = (bounds[i + 1] - t0_ns) / 1e9 if i + 1 < len(bounds) else None
            row["audit"] = {
                "from_s": round((bounds[i] - t0_ns) / 1e9, 3),
                "to_s": None if to_s is None else round(to_s, 3),
                **segments[i + 1],
            }
        if event["status"] == "not reached":
            out.append(row)
            continue
        start_ns = starts[i]
        next_ns = span_end[i]
        lo, hi = errors.between(start_ns, next_ns)
        row["errors"] = hi - lo
        row["errors_by_kind"] = errors.by_kind(lo, hi)
        row["errors_from_s"] = round((start_ns - t0_ns) / 1e9, 3)
        row["errors_to_s"] = None if next_ns is None else round((next_ns - t0_ns) / 1e9, 3)
        if hi > lo:
            row["time_to_first_error_s"] = round((int(errors.at_ns[lo]) - start_ns) / 1e9, 4)
            row["first_error_kind"] = errors.kind_at(lo)
        first = (start_ns - t0_ns) // bucket_ns
        next_bucket = (next_ns - t0_ns) // bucket_ns if next_ns is not None else None
        p_last = min(load_end, acked.size if next_bucket is None else next_bucket)
        c_last = delivered.size if next_bucket is None else min(next_bucket, delivered.size)
        if acked.size:
            row["producer_outage_s"] = round(_longest_empty_run(acked, first, p_last) * bucket_s, 3)
        if delivered.size:
            row["consumer_outage_s"] = round(
                _longest_empty_run(delivered, first, c_last) * bucket_s, 3
            )
            # Did any delivery come after that gap (before the next fault or the end)?
            row["consumers_resumed"] = bool(
                delivered[_gap_end(delivered, first, c_last) : c_last].sum()
            )
        expected = rate_per_s
        if expected is None and acked.size:
            before = acked[max(0, first - int(BASELINE_S * per_second)) : max(first, 0)]
            expected = float(before.sum()) / (before.size * bucket_s) if before.size else None
        if expected and acked.size:
            row["recovery_s"] = _recovery_s(
                acked,
                first,
                _gap_end(acked, first, p_last),
                p_last,
                expected * bucket_s,
                per_second,
            )
            if row["recovery_s"] is not None:
                row["recovery_s"] = round(row["recovery_s"] * bucket_s, 3)
        out.append(row)
    return out


def consumer_fault_text(action: str, counts: dict[str, Any], down_for_s: float) -> str:
    """What a consumer fault did, from its counts (one worker's, or every worker's summed)."""
    stopped = int(counts.get("consumers") or 0)
    verb = "killed" if action == "kill_consumer" else "stopped (committing)"
    text = f"{action}: {stopped} consumer{'s' if stopped != 1 else ''} {verb}"
    if action == "kill_consumer":
        text += f" with {int(counts.get('owed') or 0):,} processed and not committed"
    text += f"; {int(counts.get('started') or 0)} new started {format_duration(down_for_s)} later"
    assigned = counts.get("assigned_ns")
    if assigned is not None:
        text += f", consuming {int(assigned) / 1e9:.1f}s after the fault"
    return text


def _consumer_fault_event(
    action: str, down_for_s: float, events: list[dict[str, Any]]
) -> dict[str, Any]:
    """One consumer fault as every consuming worker acted it out: failed if any worker's
    failed, its counts summed, from the first start to the last restore."""
    if not events:
        return {}
    failed = [e for e in events if e.get("status") == "failed"]
    starts = [e["started_ns"] for e in events if e.get("started_ns") is not None]
    restores = [e["restored_ns"] for e in events if e.get("restored_ns") is not None]
    counts = {
        key: sum(int(e.get(key) or 0) for e in events) for key in ("consumers", "owed", "started")
    }
    assigned = [int(e["assigned_ns"]) for e in events if e.get("assigned_ns") is not None]
    if assigned:
        counts["assigned_ns"] = max(assigned)
    if failed:
        detail = "; ".join(str(e.get("detail") or "failed") for e in failed)
        status = "failed"
    elif all(e.get("status") == "done" for e in events) and len(assigned) == len(events):
        detail, status = consumer_fault_text(action, counts, down_for_s), "done"
    else:  # the load ended while some were down
        detail = "; ".join(dict.fromkeys(str(e.get("detail") or "") for e in events))
        status = "done"
    return {
        "status": status,
        "detail": detail,
        "started_ns": min(starts) if starts else None,
        "restored_ns": max(restores) if restores else None,
    }


def summarize(
    faults: list[Any],
    injected: list[dict[str, Any]] | None,
    timelines: list[dict[str, Any]],
    producers: list[tuple[int, bytes, bytes]],
    consumers: list[tuple[dict[int, bytes], int, dict[str, int]]],
    t0_ns: int,
    rate_per_s: float | None,
    load_s: float,
    end_ns: int,
    consuming: bool = True,
) -> list[dict[str, Any]]:
    """The ``faults`` list of a point's summary, from every worker's final timeline.

    ``injected`` holds the coordinator's events (a real service); None means each worker
    acted the faults out on its own in-process target, and the first worker's times stand.
    """
    if not faults:
        return []
    if not timelines:
        return []
    bucket_ns = int(timelines[0]["bucket_ns"])

    # Every bucket up to the end of the drain: silence at the end is an outage too.
    end_buckets = max(0, (end_ns - t0_ns) // bucket_ns)

    def summed(key: str) -> np.ndarray:
        arrays = [np.frombuffer(t[key], dtype=np.int64) for t in timelines]
        total = np.zeros(max([end_buckets, *(a.size for a in arrays)]), dtype=np.int64)
        for a in arrays:
            total[: a.size] += a
        return total

    # Without consumers (or for the event store) there are no deliveries to judge.
    delivered = summed("delivered") if consuming else np.zeros(0, dtype=np.int64)
    if injected is None:
        injected = []
        # The first worker that acted them out (a producing-only worker has no consumers to
        # fault, and acts out no consumer fault).
        acted: list[dict[str, Any]] = next((t["faults"] for t in timelines if t.get("faults")), [])
        for i, fault in enumerate(faults):
            event = acted[i] if i < len(acted) else {}
            on_consumers = getattr(fault, "on_consumers", False)
            if on_consumers:
                # Every consuming worker acted it out on its own consumers: add them up.
                event = _consumer_fault_event(
                    fault.action,
                    fault.down_for_s,
                    [t["faults"][i] for t in timelines if i < len(t.get("faults") or [])],
                )
            injected.append(
                {
                    "index": i,
                    "action": fault.action,
                    "at_s": float(fault.at),
                    "down_for_s": fault.down_for_s,
                    "service": "consumers" if on_consumers else "memory",
                    "endpoint": "the point's consumers" if on_consumers else "in-process",
                    "status": event.get("status", "not reached"),
                    "detail": event.get("detail", ""),
                    "started_ns": event.get("started_ns"),
                    "down_ns": event.get("started_ns"),
                    "restored_ns": event.get("restored_ns"),
                    "answering_ns": event.get("restored_ns"),
                }
            )
    intended: dict[int, bytes] = {}
    reordered: list[tuple[int, int]] = []
    for t in timelines:
        intended.update(t["intended"])
        reordered.extend(tuple(pair) for pair in t["reordered_seqs"])
    # The event store has no delivery audit (its invariants are checked instead).
    segments = (
        None
        if not producers
        else audit_mod.segment_audit(
            producers,
            intended,
            consumers,
            reordered,
            audit_boundaries_ns(
                t0_ns, [e["at_s"] for e in injected], [e["down_for_s"] for e in injected]
            ),
        )
    )
    return fault_figures(
        injected,
        t0_ns,
        bucket_ns,
        summed("acked"),
        delivered,
        error_times(timelines),
        rate_per_s,
        load_s,
        segments,
    )


def coordinator_fault_rows(
    events: list[dict[str, Any]],
    t0_ns: int,
    final_ns: np.ndarray,
    errors: ErrorTimes,
    rate_per_s: float,
    load_s: float,
    bucket_ns: int = 10_000_000,
) -> list[dict[str, Any]]:
    """The ``faults`` rows of a point run in the coordinator (sagas), from what its faults did
    (``events``), when each unit of work reached its final state (``final_ns``: a saga's
    COMPLETED, COMPENSATED or FAILED) and every counted error.

    The figures are :func:`fault_figures`' with the finals standing for acknowledgements:
    ``final_outage_s`` is the longest stretch from the fault's start (to the next fault, or the
    end of the load) in which no saga reached a final state, and ``recovery_s`` the time until
    finals came at ``RECOVERED_FRACTION`` of the start rate again. There is no delivery audit
    and no consumer outage: a saga's own invariants judge it."""
    ends = np.asarray(final_ns, dtype=np.int64)
    ends = ends[ends >= t0_ns]
    end_buckets = round(load_s * 1e9 / bucket_ns)
    if ends.size:
        end_buckets = max(end_buckets, int((ends.max() - t0_ns) // bucket_ns) + 1)
    finals = np.bincount((ends - t0_ns) // bucket_ns, minlength=end_buckets).astype(np.int64)
    rows = fault_figures(
        events,
        t0_ns,
        bucket_ns,
        finals,
        np.zeros(0, dtype=np.int64),
        errors,
        rate_per_s,
        load_s,
        None,
    )
    for row in rows:
        row["final_outage_s"] = row["producer_outage_s"]
        row["producer_outage_s"] = None  # nothing here is a producer's acknowledgement
    return rows
