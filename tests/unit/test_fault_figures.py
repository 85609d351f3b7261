"""Per-fault figures from synthetic timelines whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bench.faults.figures import audit_boundaries_ns, fault_figures, summarize
from bench.metrics.audit import ACK_FAILED, ACK_NOT_SENT, ACK_OK, merge, segment_audit

T0 = 1_000_000_000_000
BUCKET = 10_000_000  # 10 ms


def event(index: int, action: str, at_s: float, down_for_s: float = 0.0, **extra) -> dict:
    started = T0 + int(at_s * 1e9)
    return {
        "index": index,
        "action": action,
        "at_s": at_s,
        "down_for_s": down_for_s,
        "service": "nats",
        "endpoint": "127.0.0.1:1",
        "status": "done",
        "detail": "",
        "started_ns": started,
        "down_ns": started,
        "restored_ns": started + int(down_for_s * 1e9),
        "answering_ns": started + int(down_for_s * 1e9),
        **extra,
    }


def steady(seconds: float, per_bucket: int = 10) -> np.ndarray:
    return np.full(int(seconds * 100), per_bucket, dtype=np.int64)  # 1000/s


def test_an_outage_its_first_error_and_the_recovery():
    acked = steady(10)
    acked[300:500] = 0  # no acks from 3.0 s to 5.0 s
    acked[500:520] = 5  # half rate for 200 ms, then the full rate again
    delivered = steady(10)
    delivered[300:560] = 0
    fails = np.array([T0 + 3_020_000_000, T0 + 3_500_000_000, T0 + 9_000_000_000])
    rows = fault_figures(
        [event(0, "kill", 3.0, 2.0), event(1, "pause", 8.5, 0.2)],
        T0,
        BUCKET,
        acked,
        delivered,
        fails,
        rate_per_s=1000.0,
        load_s=10.0,
        segments=None,
    )
    kill, pause = rows
    assert kill["time_to_first_error_s"] == pytest.approx(0.02)
    assert kill["producer_outage_s"] == pytest.approx(2.0)
    assert kill["consumer_outage_s"] == pytest.approx(2.6)
    assert kill["consumers_resumed"] is True
    assert kill["errors"] == 2  # the third failure belongs to the next fault
    # Back to >= 90% of 1000/s over the window since the gap ended (5.0 s): the half-rate
    # 200 ms (100 acks) then full rate reaches 0.9 x 1000/s over L buckets when
    # 100 + 10 (L - 20) >= 9 L, i.e. L = 100: at 6.0 s, 3.0 s after the fault began.
    assert kill["recovery_s"] == pytest.approx(3.0)
    assert kill["started_at_s"] == 3.0 and kill["answering_at_s"] == 5.0
    assert pause["errors"] == 1 and pause["time_to_first_error_s"] == pytest.approx(0.5)
    assert pause["producer_outage_s"] == 0.0


def test_a_target_that_never_comes_back_is_not_recovered():
    acked = steady(10)
    acked[400:] = 0
    delivered = steady(10)
    delivered[400:] = 0
    (row,) = fault_figures(
        [event(0, "kill", 4.0, 1.0)],
        T0,
        BUCKET,
        acked,
        delivered,
        np.zeros(0, dtype=np.int64),
        rate_per_s=1000.0,
        load_s=10.0,
        segments=None,
    )
    assert row["recovery_s"] is None
    assert row["producer_outage_s"] == pytest.approx(6.0)
    assert row["consumers_resumed"] is False
    assert row["time_to_first_error_s"] is None and row["errors"] == 0


def test_closed_loop_recovery_is_judged_against_the_rate_before_the_fault():
    acked = steady(10, per_bucket=4)  # 400/s
    acked[500:600] = 0
    (row,) = fault_figures(
        [event(0, "pause", 5.0, 1.0)],
        T0,
        BUCKET,
        acked,
        steady(10, 4),
        np.zeros(0, dtype=np.int64),
        rate_per_s=None,
        load_s=10.0,
        segments=None,
    )
    assert row["producer_outage_s"] == pytest.approx(1.0)
    assert row["recovery_s"] == pytest.approx(1.1)  # the gap, then the 100 ms minimum window


def test_a_fault_that_was_not_reached_has_no_figures():
    (row,) = fault_figures(
        [{**event(0, "kill", 4.0, 1.0), "status": "not reached", "started_ns": None}],
        T0,
        BUCKET,
        steady(3),
        steady(3),
        np.zeros(0, dtype=np.int64),
        rate_per_s=1000.0,
        load_s=10.0,
        segments=None,
    )
    assert row["status"] == "not reached"
    assert row["producer_outage_s"] is None and row["recovery_s"] is None


def test_the_segment_audit_adds_up_to_the_run_audit():
    # One producer, 10 events intended 1 s apart; faults at 3.5 s and 7.5 s (lead 1 s).
    n = 10
    intended = np.array([T0 + i * 1_000_000_000 for i in range(n)], dtype=np.int64)
    acks = bytearray([ACK_OK] * n)
    acks[3] = ACK_FAILED  # failed, never delivered
    acks[4] = ACK_FAILED  # failed, delivered all the same (the ack was lost)
    acks[9] = ACK_NOT_SENT
    received = bytearray(n)
    for seq in (0, 1, 2, 4, 5, 6, 7):
        received[seq] = 1
    received[6] = 2  # duplicated
    producers = [(7, np.zeros(n, dtype=np.uint32).tobytes(), bytes(acks))]
    consumers = [({7: bytes(received)}, 1, {"7/k": 1})]
    bounds = audit_boundaries_ns(T0, [3.5, 7.5])
    segments = segment_audit(producers, {7: intended.tobytes()}, consumers, [(7, 5)], bounds)
    # Segments: [0, 2.5 s) holds seqs 0-2, [2.5 s, 6.5 s) seqs 3-6, [6.5 s, end) seqs 7-9.
    assert [s["sent"] for s in segments] == [3, 4, 2]
    assert segments[1] == {
        "sent": 4,
        "acked": 2,
        "failed": 2,
        "lost": 0,
        "duplicated": 1,
        "reordered": 1,
        "unacked_lost": 1,
        "unacked_received": 1,
    }
    assert segments[2]["lost"] == 1  # seq 8: acknowledged, never delivered
    whole = merge(producers, consumers)
    for name in ("sent", "acked", "failed", "lost", "duplicated", "reordered", "unacked_lost"):
        assert sum(s[name] for s in segments) == getattr(whole, name), name


def timeline(
    acked: np.ndarray,
    error_at: dict[str, list[int]] | None,
    fail_at: tuple[int, ...] = (),
) -> dict:
    """One worker's final timeline, as Worker._timeline_export ships it."""
    shipped = {
        "bucket_ns": BUCKET,
        "acked": acked.tobytes(),
        "delivered": acked.tobytes(),
        "fail_at": np.array(fail_at, dtype=np.int64).tobytes(),
        "intended": {},
        "reordered_seqs": [],
        "faults": [],
    }
    if error_at is not None:
        shipped["error_at"] = {
            kind: np.array(times, dtype=np.int64).tobytes() for kind, times in error_at.items()
        }
    return shipped


def at(seconds: float) -> int:
    return T0 + int(seconds * 1e9)


def test_errors_the_client_reported_during_an_outage_are_the_faults():
    # Issue 13: a NATS client reports its own errors while a kill lasts (no send fails):
    # the kill row held 0 errors and no first error although the run counted them.
    acked = steady(10)
    acked[300:500] = 0
    workers = [
        timeline(acked, {"nats_error": [at(3.05), at(3.5)], "disconnect": [at(3.02)]}),
        timeline(acked, {"reconnect": [at(5.1)], "timeout": [at(0.5), at(8.0)]}, [at(8.0)]),
    ]
    total = 6
    kill, pause = summarize(
        [object(), object()],
        [event(0, "kill", 3.0, 2.0), event(1, "pause", 7.0, 0.5)],
        workers,
        [],
        [],
        T0,
        1000.0,
        10.0,
        at(12.0),
    )
    assert kill["errors_counted"] == "all"
    assert kill["errors"] == 4 and kill["time_to_first_error_s"] == pytest.approx(0.02)
    assert kill["first_error_kind"] == "disconnect"
    assert kill["errors_by_kind"] == {"disconnect": 1, "nats_error": 2, "reconnect": 1}
    assert (kill["errors_from_s"], kill["errors_to_s"]) == (3.0, 7.0)
    # The failed send at 8 s is timed once (error_at), not again from fail_at.
    assert pause["errors"] == 1 and pause["errors_by_kind"] == {"timeout": 1}
    assert pause["errors_to_s"] is None and pause["errors_before"] == 0
    # The timeout at 0.5 s came before any fault: no fault's, and the rows add up.
    assert kill["errors_before"] == 1
    assert kill["errors_before"] + kill["errors"] + pause["errors"] == total


def test_a_fault_never_reached_leaves_the_rest_of_the_run_to_the_one_before():
    acked = steady(10)
    workers = [timeline(acked, {"timeout": [at(2.5), at(6.0), at(9.5)]})]
    kill, pause = summarize(
        [object(), object()],
        [
            event(0, "kill", 2.0, 1.0),
            {**event(1, "pause", 5.0, 1.0), "status": "not reached", "started_ns": None},
        ],
        workers,
        [],
        [],
        T0,
        1000.0,
        10.0,
        at(12.0),
    )
    assert kill["errors"] == 3 and kill["errors_to_s"] is None
    assert pause["errors"] == 0 and pause["errors_from_s"] is None


def test_no_fault_reached_leaves_every_error_before_the_faults():
    workers = [timeline(steady(3), {"timeout": [at(1.0), at(2.0)]})]
    (row,) = summarize(
        [object()],
        [{**event(0, "kill", 5.0, 1.0), "status": "not reached", "started_ns": None}],
        workers,
        [],
        [],
        T0,
        1000.0,
        3.0,
        at(3.0),
    )
    assert row["errors_before"] == 2 and row["errors"] == 0


def test_older_workers_shipped_failed_sends_only_and_the_rows_say_so():
    acked = steady(10)
    workers = [timeline(acked, None, [at(3.1), at(3.2)]), timeline(acked, None, [at(0.2)])]
    (kill,) = summarize(
        [object()], [event(0, "kill", 3.0, 1.0)], workers, [], [], T0, 1000.0, 10.0, at(10.0)
    )
    assert kill["errors_counted"] == "failed sends" and kill["errors_by_kind"] is None
    assert kill["errors"] == 2 and kill["errors_before"] == 1
    assert kill["first_error_kind"] is None
    assert kill["time_to_first_error_s"] == pytest.approx(0.1)
