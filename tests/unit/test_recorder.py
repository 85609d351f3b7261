import numpy as np
import pytest

from bench.metrics.recorder import (
    HIGHEST_NS,
    LatencyRecorder,
    _counts_view,
    decode,
    encode,
    export_sparse,
    merge_into,
    new_histogram,
    record_values,
    stats_us,
    value_at_percentiles,
)


def test_vectorised_recording_matches_hdrhistogram_exactly():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.integers(0, 5_000, 3000),
            rng.integers(0, 10**10, 3000),
            rng.lognormal(14, 2, 3000).astype(np.int64),
        ]
    )
    reference = new_histogram()
    for v in values:
        reference.record_value(int(v))
    ours = new_histogram()
    record_values(ours, values.astype(np.int64))
    assert np.array_equal(
        np.ctypeslib.as_array(reference.counts), np.ctypeslib.as_array(ours.counts)
    )
    assert (ours.total_count, ours.min_value, ours.max_value) == (
        reference.total_count,
        reference.min_value,
        reference.max_value,
    )
    percentiles = (0.0, 50.0, 90.0, 99.0, 99.9, 100.0)
    assert value_at_percentiles(ours, percentiles) == [
        reference.get_value_at_percentile(p)
        if p > 0
        else reference.get_highest_equivalent_value(reference.get_value_at_percentile(0))
        for p in percentiles
    ]


def test_negative_values_are_counted_not_recorded_and_huge_ones_clamped():
    hist = new_histogram()
    negatives, clamped = record_values(
        hist, np.array([-5, -1, 10, HIGHEST_NS * 10], dtype=np.int64)
    )
    assert (negatives, clamped) == (2, 1)
    assert hist.total_count == 2
    assert hist.get_max_value() >= HIGHEST_NS * 0.999


def test_recorder_counts_negatives_of_the_measured_window():
    rec = LatencyRecorder("e2e")
    for v in (-3, 5, 7):
        rec.interval_buf.append(v)
        rec.measured_buf.append(v)
    rec.flush()
    assert rec.negatives == 1
    assert rec.measured_count == 2
    assert len(rec.interval_buf) == 0


def test_histograms_merge_by_counts_not_by_percentiles():
    a, b = new_histogram(), new_histogram()
    record_values(a, np.full(990, 1_000, dtype=np.int64))
    record_values(b, np.full(10, 1_000_000, dtype=np.int64))
    merged = new_histogram()
    merge_into(merged, encode(a))
    merge_into(merged, encode(b))
    assert merged.total_count == 1000
    # Averaging the two p99s would say ~500 µs; the merged distribution's p99 is 1 µs.
    assert value_at_percentiles(merged, (99.0,))[0] == pytest.approx(1_000, rel=0.001)
    assert value_at_percentiles(merged, (99.9,))[0] == pytest.approx(1_000_000, rel=0.001)


def test_encoded_histograms_round_trip():
    hist = new_histogram()
    record_values(hist, np.arange(1, 100_000, 7, dtype=np.int64))
    back = decode(encode(hist))
    assert back.total_count == hist.total_count
    assert stats_us(back).p99 == stats_us(hist).p99


def test_stats_of_an_empty_histogram_are_none():
    stats = stats_us(new_histogram())
    assert stats.count == 0 and stats.p99 is None


def test_sparse_export_merges_to_the_same_counts_as_the_standard_encoding():
    rng = np.random.default_rng(3)
    hist = new_histogram()
    record_values(hist, rng.integers(1, 10**10, 5_000, dtype=np.int64))
    via_sparse, via_blob = new_histogram(), new_histogram()
    merge_into(via_sparse, export_sparse(hist))
    merge_into(via_sparse, export_sparse(hist))
    merge_into(via_blob, encode(hist))
    merge_into(via_blob, encode(hist))
    assert np.array_equal(_counts_view(via_sparse), _counts_view(via_blob))
    assert via_sparse.total_count == via_blob.total_count == 10_000
    assert via_sparse.get_min_value() == via_blob.get_min_value()
    assert via_sparse.get_max_value() == via_blob.get_max_value()
    merge_into(via_sparse, export_sparse(new_histogram()))  # an empty interval adds nothing
    assert via_sparse.total_count == 10_000


@pytest.mark.parametrize("size", [10, 1_000, 50_000])
def test_small_and_large_batches_record_exactly_as_record_value(size):
    # Small batches take the sparse (unique) path, large ones the dense (bincount) path.
    values = np.random.default_rng(size).integers(1, 10**11, size, dtype=np.int64)
    fast, reference = new_histogram(), new_histogram()
    record_values(fast, values)
    for value in values:
        reference.record_value(int(value))
    assert np.array_equal(_counts_view(fast), _counts_view(reference))
    assert fast.get_min_value() == reference.get_min_value()


def test_a_recorder_exports_the_same_histograms_as_dense_recording():
    rng = np.random.default_rng(11)
    rec = LatencyRecorder("response")
    dense_interval, dense_measured = new_histogram(), new_histogram()
    for _batch in range(4):
        values = rng.integers(-50, 10**9, 700, dtype=np.int64)
        values[:3] = HIGHEST_NS + 5  # clamped
        measured = rng.random(700) < 0.6
        rec.record(values, measured)
        record_values(dense_interval, values)
        record_values(dense_measured, values[measured])
        rec.interval_buf.append(int(values[-1]))  # the buffered path joins the same parts
        record_values(dense_interval, values[-1:])
    got_interval, got_measured = new_histogram(), new_histogram()
    merge_into(got_interval, rec.take_interval())
    merge_into(got_measured, rec.take_measured_delta())
    for got, want in ((got_interval, dense_interval), (got_measured, dense_measured)):
        assert np.array_equal(_counts_view(got), _counts_view(want))
        assert got.total_count == want.total_count
        assert got.get_min_value() == want.get_min_value()
        assert got.get_max_value() == want.get_max_value()
    assert rec.take_interval()[2] == 0  # the next interval starts empty
