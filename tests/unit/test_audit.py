from array import array

from bench.metrics.audit import (
    ACK_FAILED,
    ACK_OK,
    ACK_PENDING,
    ConsumerLedger,
    ProducerLedger,
    merge,
)


def _producer(producer_id, keys, acks):
    ledger = ProducerLedger(producer_id)
    ledger.keys = array("I", keys)
    ledger.acks = bytearray(acks)
    return ledger.export()


def test_the_audit_counts_loss_duplicates_and_reordering_exactly():
    # producer 0 sends 6 messages over keys 0 and 1; message 5 failed to send.
    producer = _producer(0, [0, 1, 0, 1, 0, 1], [ACK_OK] * 5 + [ACK_FAILED])
    c1, c2 = ConsumerLedger(), ConsumerLedger()
    c1.record(0, 0, "k0", 1)
    c1.record(0, 2, "k0", 2)
    c1.record(0, 2, "k0", 2)  # duplicate delivery
    c2.record(0, 3, "k1", 2)
    c2.record(0, 1, "k1", 1)  # k1 seq 1 after seq 2 at the same consumer: reordered
    # message 4 (acked) never arrives: lost. message 5 (failed) never arrives: unacked loss.
    result = merge([producer], [c1.export(), c2.export()])
    assert (result.sent, result.acked, result.failed) == (6, 5, 1)
    assert (result.received, result.delivered) == (4, 5)
    assert result.lost == 1
    assert result.unacked_lost == 1
    assert result.duplicated == 1
    assert result.reordered == 1
    assert result.keys_with_loss == 1
    assert result.worst_keys[0]["lost"] == 1
    assert not result.clean


def test_duplicates_across_consumers_in_different_workers_are_found_by_the_merge():
    producer = _producer(3, [0, 0], [ACK_OK, ACK_OK])
    a, b = ConsumerLedger(), ConsumerLedger()
    a.record(3, 0, "k", 1)
    a.record(3, 1, "k", 2)
    b.record(3, 1, "k", 2)
    result = merge([producer], [a.export(), b.export()])
    assert result.duplicated == 1 and result.lost == 0 and result.received == 2


def test_deliveries_nobody_sent_are_reported():
    producer = _producer(0, [0], [ACK_OK])
    c = ConsumerLedger()
    c.record(0, 0, "k", 1)
    c.record(0, 5000, "k", 2)  # beyond what producer 0 sent
    c.record(9, 0, "k", 1)  # an unknown producer
    result = merge([producer], [c.export()])
    assert result.unknown_received == 2


def test_a_clean_run_is_clean():
    producer = _producer(1, [0, 1, 2], [ACK_OK] * 3)
    c = ConsumerLedger()
    for seq in range(3):
        c.record(1, seq, f"k{seq}", 1)
    result = merge([producer], [c.export()])
    assert result.clean and result.lost == 0 and result.received == 3


def test_pending_acks_that_were_received_are_not_loss():
    producer = _producer(0, [0], [ACK_PENDING])
    c = ConsumerLedger()
    c.record(0, 0, "k", 1)
    result = merge([producer], [c.export()])
    assert result.lost == 0 and result.unacked_lost == 0 and result.acked == 0


def test_the_order_projection_counts_events_that_arrive_before_their_state():
    ledger = ConsumerLedger()
    # k0 in order: nothing to count.
    for seq, key_seq in enumerate((1, 2, 3)):
        ledger.record(0, seq, "k0", key_seq)
    # k1: event 3 before 2 (one failure, applied once 2 arrives), then 4 in order.
    ledger.record(0, 10, "k1", 1)
    ledger.record(0, 12, "k1", 3)
    ledger.record(0, 11, "k1", 2)
    ledger.record(0, 13, "k1", 4)
    # k2: event 1 never comes (lost, or consumed by another worker): 2 and 3 wait to the end.
    ledger.record(0, 21, "k2", 2)
    ledger.record(0, 21, "k2", 2)  # a duplicate delivery is no second failure
    ledger.record(0, 22, "k2", 3)
    # The same key from another producer is another aggregate, in order.
    ledger.record(1, 0, "k1", 1)
    assert ledger.projection() == {"failures": 3, "keys": 2, "stuck": 2, "keys_stuck": 1}
    assert ledger.applied[(0, "k1")] == 4 and (0, "k1") not in ledger.parked
    # The audit's reordered counts late arrivals, the projection early ones: k1's 2 (late)
    # and k2's none (nothing came after a later one).
    assert ledger.reordered == 1


def test_the_projection_in_the_audit_sums_workers_and_is_unclean():
    from bench.metrics.audit import add_projection

    producer = _producer(0, [0, 0], [ACK_OK, ACK_OK])
    first, second = ConsumerLedger(), ConsumerLedger()
    # An aggregate's two events went to consumers in two workers: the second never finds the
    # state the first event made (each worker's consumers are one projection instance).
    first.record(0, 0, "k0", 1)
    second.record(0, 1, "k0", 2)
    result = merge([producer], [first.export(), second.export()])
    assert result.clean and result.projection_failures is None
    add_projection(result, [first.projection(), second.projection()])
    assert (result.projection_failures, result.keys_projection_failed) == (1, 1)
    assert result.projection_stuck == 1
    assert not result.clean


def test_the_projection_counts_aggregates_not_producer_streams_and_is_not_summed_blindly():
    from bench.metrics.audit import AuditResult, add_projection

    ledger = ConsumerLedger()
    # Two producers write the same aggregate ids: k0 is hit in both streams, one aggregate.
    for producer in (0, 1):
        ledger.record(producer, 0, "k0", 2)
    assert ledger.projection()["keys"] == 1 and ledger.projection()["keys_stuck"] == 1
    # Not keyed by the aggregate, with consumers in two workers, each worker's gaps are the
    # other's deliveries: not judged, and said.
    result = AuditResult()
    add_projection(result, [ledger.projection(), ledger.projection()], by_aggregate=False)
    assert result.projection_failures is None
    assert result.projection_note and "2 worker processes" in result.projection_note
    # One worker, or keyed by the aggregate: counted.
    add_projection(result, [ledger.projection()], by_aggregate=False)
    assert result.projection_failures == 2
