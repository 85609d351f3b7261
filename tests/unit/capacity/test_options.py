"""The capacity commands' option parsing: --slo and percentages."""

from __future__ import annotations

import pytest

from bench.capacity.commands import parse_fraction, parse_slo
from bench.errors import ScenarioError


def test_an_slo_is_read_in_microseconds():
    assert parse_slo(["e2e.p99<50ms"]) == {"e2e.p99": 50000.0}


def test_several_slos_with_spaces_and_other_units():
    assert parse_slo([" response.p999 <= 2s ", "service.max<250us", "e2e.p50<1.5ms"]) == {
        "response.p999": pytest.approx(2_000_000.0),
        "service.max": pytest.approx(250.0),
        "e2e.p50": pytest.approx(1500.0),
    }


def test_no_slos_give_an_empty_table():
    assert parse_slo([]) == {}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("latency.p99<50ms", "latency.p99"),  # unknown kind
        ("e2e.p75<50ms", "e2e.p75"),  # unknown stat
    ],
)
def test_an_unknown_kind_or_stat_is_refused_and_the_options_listed(text, names):
    with pytest.raises(ScenarioError) as caught:
        parse_slo([text])
    assert caught.value.field == "--slo"
    assert names in caught.value.problem
    assert "schedule_lag" in caught.value.problem and "p999" in caught.value.problem


@pytest.mark.parametrize("text", ["e2e.p99<50", "e2e.p99<50xs", "e2e.p99<fast"])
def test_a_threshold_without_a_unit_is_refused(text):
    with pytest.raises(ScenarioError) as caught:
        parse_slo([text])
    assert caught.value.field == "--slo"
    assert "--slo" in str(caught.value)


@pytest.mark.parametrize("text", ["e2e.p99>50ms", "e2e.p99", "e2e<50ms", "", "E2E.P99<50ms"])
def test_what_is_not_an_slo_is_refused_with_a_hint(text):
    with pytest.raises(ScenarioError) as caught:
        parse_slo(["e2e.p50<1ms", text])
    assert caught.value.field == "--slo"
    assert "is not an SLO" in caught.value.problem
    assert caught.value.hint == 'write it as "e2e.p99<50ms"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5%", 0.05), ("0.05", 0.05), (" 0.1% ", 0.001), ("99.5%", 0.995), ("0.5", 0.5)],
)
def test_a_fraction_is_a_percentage_or_a_plain_number(text, expected):
    assert parse_fraction(text, "--precision") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["150%", "100%", "0%", "0", "1", "1.5", "-5%"])
def test_a_fraction_outside_zero_and_one_is_refused(text):
    with pytest.raises(ScenarioError) as caught:
        parse_fraction(text, "--errors")
    assert caught.value.field == "--errors"
    assert "between 0% and 100%" in caught.value.problem


@pytest.mark.parametrize("text", ["five", "5%%", "", "%"])
def test_what_is_not_a_number_is_refused_naming_the_option(text):
    with pytest.raises(ScenarioError) as caught:
        parse_fraction(text, "--precision")
    assert caught.value.field == "--precision"
    assert "is not a percentage" in caught.value.problem


@pytest.mark.parametrize(
    ("text", "expected"), [("30%", 0.3), ("0.3", 0.3), ("0%", 0.0), ("200%", 2.0)]
)
def test_headroom_reads_like_the_other_percentages_and_may_exceed_100(text, expected):
    assert parse_fraction(text, "--headroom", upper=10.0, allow_zero=True) == pytest.approx(
        expected
    )
