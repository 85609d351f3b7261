import pytest

from bench.units import (
    format_count,
    format_duration,
    format_latency_us,
    format_percent,
    format_rate,
    format_seconds,
    parse_duration_s,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("2m", 120.0),
        ("500ms", 0.5),
        ("250us", 250e-6),
        ("1h", 3600.0),
        ("1.5s", 1.5),
    ],
)
def test_durations_with_units_parse_to_seconds(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10", 10, 2.5, "ten seconds", "10 parsecs", "", True, None, "-1s"])
def test_durations_without_a_unit_or_garbage_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_duration_s(bad)


def test_zero_needs_no_unit():
    assert parse_duration_s(0) == 0.0


@pytest.mark.parametrize("seconds", [0.0, 0.5, 2.0, 120.0, 3600.0, 0.00025])
def test_format_duration_round_trips(seconds):
    assert parse_duration_s(format_duration(seconds)) == pytest.approx(seconds)


def test_latency_formatting_picks_a_readable_unit():
    assert format_latency_us(850) == "850us"
    assert format_latency_us(2310) == "2.31ms"
    assert format_latency_us(1_200_000) == "1.20s"
    assert format_latency_us(None) == "-"


@pytest.mark.parametrize(
    ("value_us", "text"),
    [
        (70_844.415, "70.84ms"),  # a verdict's value, as the table beside it shows it
        (50_000.0, "50.00ms"),
        (5.55, "5.5us"),
        (-2310, "-2.31ms"),
        (float("nan"), "n/a"),
        (float("inf"), "n/a"),
    ],
)
def test_latency_formatting_covers_verdict_values_and_broken_ones(value_us, text):
    assert format_latency_us(value_us) == text


@pytest.mark.parametrize(
    ("per_s", "text"),
    [
        (850, "850/s"),
        (1315.4, "1,315/s"),  # as bench find-max prints its answer
        (12_345, "12.3k/s"),
        (1_500_000, "1.50M/s"),
        (-12_345, "-12.3k/s"),
        (-0.3, "0/s"),  # rounds to zero: never "-0/s"
        (None, "-"),
        (float("nan"), "n/a"),
    ],
)
def test_rate_formatting_never_shows_a_negative_zero(per_s, text):
    assert format_rate(per_s) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(7284, "7,284"), (8000.0, "8,000"), (7284.5, "7,284.5"), (0, "0"), (None, "-")],
)
def test_counts_have_thousands_separators(value, text):
    assert format_count(value) == text


@pytest.mark.parametrize(
    ("fraction", "plain", "signed"),
    [
        (0.727, "72.7%", "+72.7%"),
        (0.001, "0.1%", "+0.1%"),  # a small threshold never reads as 0.0%
        (0.00013, "0.013%", "+0.013%"),
        (0.00999, "1.0%", "+1.0%"),
        (-0.05, "-5.0%", "-5.0%"),
        (-1e-12, "0%", "0%"),  # rounds to zero: never "-0.0%"
        (0.0, "0%", "0%"),
        (float("-inf"), "n/a", "n/a"),
    ],
)
def test_percentages_keep_small_values_visible(fraction, plain, signed):
    assert format_percent(fraction) == plain
    assert format_percent(fraction, signed=True) == signed


def test_measured_seconds_read_like_latencies():
    assert format_seconds(0.012) == "12.00ms"
    assert format_seconds(1.83) == "1.83s"
    assert format_seconds(None) == "-"
