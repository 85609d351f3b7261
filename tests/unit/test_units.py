import pytest

from bench.units import format_duration, format_latency_us, parse_duration_s


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
