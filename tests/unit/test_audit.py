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
