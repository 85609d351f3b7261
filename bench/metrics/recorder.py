"""Latency recording: HdrHistograms in integer nanoseconds, fed from a cheap hot path.

Recording one value with pure-Python ``HdrHistogram.record_value`` costs about 1.2 µs, which
at 100k events/s and four latency kinds would eat half a core. The hot path therefore only
appends the integer to an ``array('q')`` (tens of nanoseconds); ``flush()`` moves a whole buffer
into the histogram at once with numpy, computing the HdrHistogram counts index exactly as
HdrHistogram does. Histograms (never percentiles) are what leave a worker: as their non-empty
buckets (``export_sparse``, cheap on the worker's loop), merged by the coordinator, which writes
the standard compressed V2 encoding into the ``.hlog`` files.

Values above the trackable maximum are clamped to it and counted; negative values (possible for
end-to-end latency across hosts) are counted and left out of the histogram, never dropped
silently.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_NS = 1
HIGHEST_NS = 3_600_000_000_000  # one hour, far beyond any sane latency, so clamping is rare
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)


def _counts_view(hist: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts)


_TEMPLATE = new_histogram()


def _bucket_indexes(values: np.ndarray) -> np.ndarray:
    """HdrHistogram's counts index of each (non-negative, clamped) value.

    The bucket comes from the bit length of (value | sub_bucket_mask), the sub-bucket from the
    value shifted by the bucket. frexp's exponent is the bit length for positive integers
    below 2**53, which the clamp guarantees.
    """
    t = _TEMPLATE
    masked = values | t.sub_bucket_mask
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - t.unit_magnitude - (t.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + t.unit_magnitude)
    return ((bucket + 1) << t.sub_bucket_half_count_magnitude) + (
        sub_bucket - t.sub_bucket_half_count
    )


def _clean(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values without negatives and clamped, the mask of kept values, the clamped mask)."""
    kept = values >= 0
    if not kept.all():
        values = values[kept]
    clamped = values > HIGHEST_NS
    if clamped.any():
        values = np.minimum(values, HIGHEST_NS)
    return values, kept, clamped


def record_values(hist: HdrHistogram, values: np.ndarray) -> tuple[int, int]:
    """Record an int64 array of values; return (negatives skipped, values clamped)."""
    if values.size == 0:
        return 0, 0
    values, kept, clamped_mask = _clean(values)
    negatives = int(kept.size - values.size)
    clamped = int(clamped_mask.sum())
    if values.size == 0:
        return negatives, clamped
    index = _bucket_indexes(values)
    counts = _counts_view(hist)
    if values.size * 8 < hist.counts_len:
        # A small batch: touch only its buckets, not all 33k of them.
        buckets, per_bucket = np.unique(index, return_counts=True)
        counts[buckets] += per_bucket.astype(np.uint64)
    else:
        counts += np.bincount(index, minlength=hist.counts_len).astype(np.uint64)
    hist.total_count += int(values.size)
    hist.min_value = min(hist.min_value, int(values.min()))
    hist.max_value = max(hist.max_value, int(values.max()))
    return negatives, clamped


def _sparse_of(index: np.ndarray, values: np.ndarray) -> Sparse:
    if values.size * 8 < _TEMPLATE.counts_len:
        buckets, per_bucket = np.unique(index, return_counts=True)  # sorts: small batches
    else:
        dense = np.bincount(index, minlength=_TEMPLATE.counts_len)  # linear: large batches
        buckets = np.flatnonzero(dense)
        per_bucket = dense[buckets]
    return (
        buckets.astype(np.int32).tobytes(),
        per_bucket.astype(np.uint64).tobytes(),
        int(values.size),
        int(values.min()),
        int(values.max()),
    )


def combine_sparse(parts: list[Sparse]) -> Sparse:
    """One sparse histogram holding every part's counts."""
    parts = [p for p in parts if p[2]]
    if not parts:
        return EMPTY_SPARSE
    if len(parts) == 1:
        return parts[0]
    buckets = np.concatenate([np.frombuffer(p[0], dtype=np.int32) for p in parts])
    counts = np.concatenate([np.frombuffer(p[1], dtype=np.uint64) for p in parts])
    unique, inverse = np.unique(buckets, return_inverse=True)
    summed = np.zeros(unique.size, dtype=np.uint64)
    np.add.at(summed, inverse, counts)
    return (
        unique.astype(np.int32).tobytes(),
        summed.tobytes(),
        sum(p[2] for p in parts),
        min(p[3] for p in parts),
        max(p[4] for p in parts),
    )


_EMPTY_MIN_VALUE = new_histogram().min_value


def reset(hist: HdrHistogram) -> None:
    """Clear a histogram in place (hdrh's own reset loops in Python over 33k slots)."""
    _counts_view(hist)[:] = 0
    hist.total_count = 0
    hist.min_value = _EMPTY_MIN_VALUE
    hist.max_value = 0


def encode(hist: HdrHistogram) -> str:
    """The standard compressed, base64 V2 encoding (what .hlog lines and workers carry)."""
    return hist.encode().decode("ascii")


def decode(blob: str | bytes) -> HdrHistogram:
    return HdrHistogram.decode(blob)


# A histogram's non-empty buckets, as workers ship them to the coordinator: bucket indexes
# (int32 bytes), their counts (uint64 bytes), total, min, max. Encoding the standard V2 form
# costs ~0.2 ms per histogram on the worker's event loop, a dozen times per interval; this
# costs a scan of the counts. The coordinator writes the standard form to the .hlog files.
Sparse = tuple[bytes, bytes, int, int, int]
EMPTY_SPARSE: Sparse = (b"", b"", 0, 0, 0)


def export_sparse(hist: HdrHistogram) -> Sparse:
    counts = _counts_view(hist)
    buckets = np.flatnonzero(counts)
    return (
        buckets.astype(np.int32).tobytes(),
        counts[buckets].tobytes(),
        int(hist.total_count),
        int(hist.min_value),
        int(hist.max_value),
    )


def _merge_sparse(target: HdrHistogram, sparse: Sparse) -> None:
    buckets_raw, counts_raw, total, low, high = sparse
    if not total:
        return
    buckets = np.frombuffer(buckets_raw, dtype=np.int32)
    counts = _counts_view(target)
    counts[buckets] += np.frombuffer(counts_raw, dtype=np.uint64)
    target.total_count += total
    target.min_value = min(target.min_value, low)
    target.max_value = max(target.max_value, high)


def merge_into(target: HdrHistogram, source: str | bytes | HdrHistogram | Sparse) -> None:
    """Add a histogram (object, standard encoding, or ``export_sparse`` form) into ``target``."""
    if isinstance(source, tuple | list):  # a list once it has crossed msgpack (bench locust)
        _merge_sparse(target, tuple(source))
        return
    other = source if isinstance(source, HdrHistogram) else decode(source)
    if other.total_count:
        target.add(other)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles of one latency kind, in microseconds (floats, from nanosecond histograms)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
            "mean": self.mean,
        }


def value_at_percentiles(hist: HdrHistogram, percentiles: tuple[float, ...]) -> list[int]:
    """HdrHistogram's getValueAtPercentile for several percentiles at once, with numpy.

    Same semantics as the reference implementation: the highest value equivalent to the bucket
    in which the cumulative count first reaches ceil(p/100 * total).
    """
    total = hist.total_count
    if total == 0:
        return [0 for _ in percentiles]
    cumulative = np.cumsum(_counts_view(hist), dtype=np.uint64)
    out = []
    for p in percentiles:
        target = max(1, int(np.ceil(min(p, 100.0) / 100.0 * total)))
        index = int(np.searchsorted(cumulative, target, side="left"))
        out.append(int(hist.get_highest_equivalent_value(hist.get_value_from_index(index))))
    return out


def stats_us(hist: HdrHistogram) -> LatencyStats:
    if hist.total_count == 0:
        return LatencyStats(0, None, None, None, None, None, None)
    p50, p90, p99, p999 = value_at_percentiles(hist, PERCENTILES)
    counts = _counts_view(hist)
    nonzero = np.nonzero(counts)[0]
    # The mean from bucket midpoints, like HdrHistogram's getMean.
    mids = np.array(
        [hist._hdr_median_equiv_value(hist.get_value_from_index(int(i))) for i in nonzero],
        dtype=np.float64,
    )
    mean_ns = float((mids * counts[nonzero]).sum() / hist.total_count)
    return LatencyStats(
        count=int(hist.total_count),
        p50=p50 / 1e3,
        p90=p90 / 1e3,
        p99=p99 / 1e3,
        p999=p999 / 1e3,
        max=hist.get_max_value() / 1e3,
        mean=mean_ns / 1e3,
    )


class LatencyRecorder:
    """One latency kind in one worker: two hot-path buffers and the histograms they feed.

    ``interval`` takes every sample (it is shipped to the interval log each interval, warm-up
    included, and labelled by phase there); ``measured`` takes only samples whose intended
    time falls in the measurement window, and is what the summary's percentiles come from.

    Both are kept as sparse histograms (the non-empty buckets of each recorded batch): a dense
    HdrHistogram has 33k buckets, and scanning and zeroing a dozen of them every interval
    blocked the worker's event loop for milliseconds, which showed up in the latencies it
    was measuring.
    """

    __slots__ = (
        "clamped",
        "interval_buf",
        "interval_parts",
        "measured_buf",
        "measured_parts",
        "name",
        "negatives",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.interval_buf: array[int] = array("q")
        self.measured_buf: array[int] = array("q")
        self.interval_parts: list[Sparse] = []
        self.measured_parts: list[Sparse] = []
        self.negatives = 0
        self.clamped = 0

    def record(self, values: np.ndarray, measured: np.ndarray) -> None:
        """Record a batch: every value in the interval histogram, the ``measured`` ones (a
        boolean mask) in the measurement histogram too."""
        if values.size == 0:
            return
        clean, kept, clamped = _clean(values)
        if kept.size != clean.size:
            self.negatives += int((measured & ~kept).sum())
            measured = measured[kept]
        if clean.size == 0:
            return
        index = _bucket_indexes(clean)
        self.interval_parts.append(_sparse_of(index, clean))
        if measured.any():
            self.measured_parts.append(_sparse_of(index[measured], clean[measured]))
            self.clamped += int(clamped[measured].sum())

    def _take_buffer(self, buf: array[int], parts: list[Sparse], counted: bool) -> None:
        if not len(buf):
            return
        values = np.frombuffer(buf, dtype=np.int64).copy()
        del buf[:]
        clean, kept, clamped = _clean(values)
        if counted:
            self.negatives += int(kept.size - clean.size)
            self.clamped += int(clamped.sum())
        if clean.size:
            parts.append(_sparse_of(_bucket_indexes(clean), clean))

    def flush(self) -> None:
        """Move both buffers into their histograms (clears the buffers in place, so bound
        ``append`` methods held by the hot path stay valid)."""
        self._take_buffer(self.interval_buf, self.interval_parts, counted=False)
        self._take_buffer(self.measured_buf, self.measured_parts, counted=True)

    @property
    def measured_count(self) -> int:
        self.flush()
        return sum(part[2] for part in self.measured_parts)

    def take_interval(self) -> Sparse:
        """Flush, export the interval histogram, and start the next interval."""
        self.flush()
        sparse = combine_sparse(self.interval_parts)
        self.interval_parts = []
        return sparse

    def take_measured_delta(self) -> Sparse:
        """Export what was measured since the last call (the coordinator sums the deltas)."""
        self.flush()
        sparse = combine_sparse(self.measured_parts)
        self.measured_parts = []
        return sparse
