import numpy as np
import pytest

from bench.engine.schedule import ConstantSchedule, PoissonSchedule


def _drain(schedule):
    times = []
    while (t := schedule.next()) is not None:
        times.append(t)
    return np.array(times)


def test_constant_schedule_is_evenly_spaced_and_ends_on_time():
    times = _drain(ConstantSchedule(1000.0, start_ns=0, end_ns=2_000_000_000))
    assert len(times) == 2000
    assert set(np.diff(times).tolist()) <= {1_000_000}
    assert times[-1] < 2_000_000_000


def test_poisson_schedule_has_the_requested_rate_and_exponential_gaps():
    times = _drain(PoissonSchedule(5000.0, start_ns=0, end_ns=10_000_000_000, seed=3))
    assert len(times) == pytest.approx(50_000, rel=0.03)
    gaps = np.diff(times)
    # For exponential gaps the standard deviation equals the mean.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_poisson_schedule_is_deterministic_for_a_seed():
    a = _drain(PoissonSchedule(1000.0, 0, 1_000_000_000, seed=9))
    b = _drain(PoissonSchedule(1000.0, 0, 1_000_000_000, seed=9))
    c = _drain(PoissonSchedule(1000.0, 0, 1_000_000_000, seed=10))
    assert np.array_equal(a, b)
    assert not np.array_equal(a[: len(c)], c[: len(a)])


@pytest.mark.parametrize("cls", [ConstantSchedule, PoissonSchedule])
def test_remaining_counts_what_was_not_taken(cls):
    full = len(_drain(cls(20_000.0, 0, 2_000_000_000, seed=4)))
    schedule = cls(20_000.0, 0, 2_000_000_000, seed=4)
    for _ in range(1000):
        schedule.next()
    left = schedule.remaining()
    assert 1000 + left == pytest.approx(full, rel=0.02)
    assert schedule.next() is None
