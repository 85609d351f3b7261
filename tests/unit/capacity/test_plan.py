"""Sizing from measured max sustainable rates (``bench plan``)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.capacity.plan import FAR_EXTRAPOLATION, parse_rate, plan, to_markdown
from bench.errors import ScenarioError


def search(**changes: Any) -> dict[str, Any]:
    """One capacity.json search: 4000/s on 8 partitions with 2 consumers, verified."""
    return {
        "key": "mem",
        "label": "mem",
        "target": "mem",
        "driver": "memory",
        "status": "found",
        "max_rate_per_s": 4000.0,
        "partitions": 8,
        "consumers": 2,
        "verified": True,
        **changes,
    }


# --------------------------------------------------------------------------- parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15000/s", 15000.0),
        ("15k/s", 15000.0),
        ("15K/s", 15000.0),
        ("1.5M", 1.5e6),
        ("2m/s", 2e6),
        (" 250 / s ", 250.0),
        ("42", 42.0),
    ],
)
def test_parse_rate_reads_events_per_second(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "fast", "15 k/m", "-5/s", "15/min", "1e3/s", "0/s"])
def test_parse_rate_rejects_what_is_not_a_positive_rate(text):
    with pytest.raises(ScenarioError) as caught:
        parse_rate(text, "--max-rate")
    assert caught.value.field == "--max-rate"


# --------------------------------------------------------------------------- rows


def test_partitions_and_consumers_are_the_required_rate_over_the_measured_per_unit_rates():
    result = plan([search()], load_per_s=10_000.0, headroom=0.3)
    assert result.required_per_s == pytest.approx(13_000.0)
    (row,) = result.rows
    assert row.per_partition_per_s == 500.0
    assert row.per_consumer_per_s == 2000.0
    assert row.partitions == math.ceil(13_000 / 500) == 26
    assert row.consumers == math.ceil(13_000 / 2000) == 7
    assert row.scale == pytest.approx(13_000 / 4000)
    assert row.unit == "partitions"
    assert not row.lower_bound


def test_a_rate_that_does_not_divide_evenly_rounds_partitions_up():
    result = plan([search(max_rate_per_s=3000.0, partitions=7)], 1000.0, 0.0)
    # 428.6/s per partition: 1000/s needs 2.33 partitions, so 3.
    assert result.rows[0].partitions == 3


def test_a_load_under_the_measured_rate_needs_no_extrapolation_flag():
    (row,) = plan([search()], load_per_s=1000.0, headroom=0.3).rows
    assert row.partitions == 3  # 1300 / 500
    assert row.scale < 1
    assert not any("extrapolated" in f for f in row.flags)
    assert row.flags == []


def test_kafka_consumers_beyond_partitions_raise_the_partition_count_and_say_so():
    kafka = search(target="kafka", label="kafka", driver="kafka", consumers=16)
    (row,) = plan([kafka], load_per_s=10_000.0, headroom=0.3).rows
    # 250/s per consumer: 52 consumers, but only 26 partitions for the rate alone.
    assert row.consumers == 52
    assert row.partitions == 52
    assert any("52 consumers need 52 partitions" in f for f in row.flags)


def test_other_brokers_keep_the_partition_count_when_consumers_outnumber_it():
    rabbit = search(target="rabbit", label="rabbit", driver="rabbitmq", consumers=16)
    (row,) = plan([rabbit], load_per_s=10_000.0, headroom=0.3).rows
    assert row.consumers == 52
    assert row.partitions == 26
    assert row.unit == "queues"
    assert not any("consumers need" in f for f in row.flags)


def test_no_consumers_measured_means_no_consumer_count():
    (row,) = plan([search(consumers=0)], 1000.0, 0.0).rows
    assert row.per_consumer_per_s is None
    assert row.consumers is None


@pytest.mark.parametrize("status", ["harness-bound", "ceiling"])
def test_a_harness_or_ceiling_bound_search_is_flagged_as_a_lower_bound(status):
    (row,) = plan([search(status=status)], 1000.0, 0.3).rows
    assert row.lower_bound
    assert any("lower bound" in f and "over-provisions" in f for f in row.flags)


def test_a_scale_beyond_two_is_flagged_as_a_far_extrapolation():
    (row,) = plan([search()], load_per_s=10_000.0, headroom=0.3).rows
    assert row.scale > FAR_EXTRAPOLATION
    far = [f for f in row.flags if "extrapolated" in f]
    assert len(far) == 1
    assert "measure at a larger partition count" in far[0]


def test_a_scale_between_one_and_two_is_a_mild_extrapolation():
    (row,) = plan([search()], load_per_s=5000.0, headroom=0.0).rows
    assert row.scale == pytest.approx(1.25)
    assert row.flags == ["extrapolated 1.2x beyond the measured total (4,000/s)"]


def test_an_unverified_or_budget_limited_rate_is_flagged():
    (row,) = plan([search(status="budget", verified=False)], 1000.0, 0.0).rows
    assert any("probe budget" in f for f in row.flags)
    assert any("not verified" in f for f in row.flags)


def test_two_partition_counts_give_a_scaling_line_and_a_sub_linear_flag():
    small = search(partitions=4, max_rate_per_s=4000.0)  # 1000/s per partition
    large = search(partitions=16, max_rate_per_s=8000.0)  # 500/s per partition
    (row,) = plan([large, small], load_per_s=10_000.0, headroom=0.0).rows
    # The largest measured count is the (conservative) basis.
    assert row.measured_partitions == 16
    assert row.per_partition_per_s == 500.0
    assert row.partitions == 20
    assert row.scaling == "measured 4: 4,000/s, 16: 8,000/s; per-partition efficiency 50%"
    assert any("fell to 50% from 4 to 16 partitions" in f for f in row.flags)


def test_near_linear_scaling_is_shown_without_a_flag():
    small = search(partitions=4, max_rate_per_s=4000.0)
    large = search(partitions=8, max_rate_per_s=7200.0)  # 90% per partition
    (row,) = plan([small, large], load_per_s=5000.0, headroom=0.0).rows
    assert row.scaling is not None and "efficiency 90%" in row.scaling
    assert not any("sub-linear" in f for f in row.flags)


def test_a_per_partition_rate_that_rises_with_partitions_is_flagged_as_saying_little():
    # One partition held back by something else (30/s), four partitions at 1,200/s.
    small = search(partitions=1, max_rate_per_s=30.0)
    large = search(partitions=4, max_rate_per_s=1200.0)
    (row,) = plan([small, large], load_per_s=1000.0, headroom=0.0).rows
    assert row.per_partition_per_s == 300.0
    assert any("rose to 1000% from 1 to 4 partitions" in f for f in row.flags)
    assert not any("sub-linear" in f for f in row.flags)
    (near,) = plan([small, search(partitions=4, max_rate_per_s=140.0)], 100.0, 0.0).rows
    assert not any("rose to" in f for f in near.flags)  # 117%: within the noise


def test_searches_without_a_max_are_listed_as_skipped():
    searches = [
        search(),
        search(target="kafka", label="kafka p=8", max_rate_per_s=None, status="none"),
        search(target="nats", label="nats", status="failed"),
    ]
    result = plan(searches, 1000.0, 0.3)
    assert [r.target for r in result.rows] == ["mem"]
    assert result.skipped == [
        "kafka p=8: no sustainable rate was measured",
        "nats: no sustainable rate was measured",
    ]


def test_one_row_per_target():
    searches = [search(), search(target="kafka", label="kafka", driver="kafka", consumers=8)]
    result = plan(searches, 1000.0, 0.0)
    assert sorted(r.target for r in result.rows) == ["kafka", "mem"]


def test_the_assumptions_state_the_required_rate():
    result = plan([search()], 10_000.0, 0.3)
    assert result.assumptions[0] == (
        "required rate = load x (1 + headroom) = 10,000/s x 1.30 = 13,000/s"
    )
    assert any("scales linearly with partitions" in a for a in result.assumptions)


# --------------------------------------------------------------------------- markdown


def test_to_markdown_has_the_table_the_rows_and_the_assumptions():
    searches = [
        search(partitions=4, max_rate_per_s=4000.0),
        search(partitions=16, max_rate_per_s=8000.0),
        search(target="nats", label="nats", status="failed"),
    ]
    result = plan(searches, 10_000.0, 0.3)
    text = to_markdown(result)
    lines = text.splitlines()
    assert lines[0] == "# Sizing for 10,000/s with 30% headroom"
    assert (
        "| target | measured | per partition | per consumer | partitions needed | consumers "
        "needed | cores | memory | scale | flags |"
    ) in lines
    row = next(line for line in lines if line.startswith("| mem |"))
    assert "8,000/s on 16 partitions, 2 consumers" in row
    assert "| 26 partitions | 4 |" in row
    assert "- mem: measured 4: 4,000/s, 16: 8,000/s" in text
    assert "- nats: no sustainable rate was measured" in lines
    assert "Assumptions:" in lines
    for assumption in result.assumptions:
        assert f"- {assumption}" in lines


def test_plan_as_dict_holds_the_rows():
    data = plan([search()], 1000.0, 0.3).as_dict()
    assert data["rows"][0]["partitions"] == 3
    assert data["required_per_s"] == pytest.approx(1300.0)


def test_searches_that_differ_in_more_than_partitions_size_separate_rows():
    small_events = search(params={"workload.payload_bytes": 100}, max_rate_per_s=10_000.0)
    large_events = search(params={"workload.payload_bytes": 10_000}, max_rate_per_s=1_000.0)
    rows = plan([small_events, large_events], load_per_s=5000.0, headroom=0.0).rows
    assert sorted(row.measured_rate_per_s for row in rows) == [1_000.0, 10_000.0]
    assert all(row.scaling is None for row in rows)


def test_repeated_searches_at_one_partition_count_size_from_the_most_conservative():
    fast = search(max_rate_per_s=5000.0)
    slow = search(max_rate_per_s=4000.0)
    (row,) = plan([fast, slow], load_per_s=8000.0, headroom=0.0).rows
    assert row.measured_rate_per_s == 4000.0
    assert row.partitions == math.ceil(8000.0 / (4000.0 / 8))
    assert row.scaling is None


def test_an_event_store_is_not_sized_by_partitions_but_set_against_its_measured_rate():
    store = search(key="pg", label="pg", target="pg", driver="postgres", kind="store",
                   max_rate_per_s=2000.0, partitions=1, consumers=0, writers=8)  # fmt: skip
    result = plan([store, search()], load_per_s=3000.0, headroom=0.0)
    assert [row.target for row in result.rows] == ["mem"]
    (line,) = result.stores
    assert "sustained 2,000 commands/s with 8 writers" in line
    assert "1.5x, beyond what was measured" in line
    assert line in to_markdown(result)
    only = plan([store], load_per_s=1000.0, headroom=0.0)
    assert not only.rows and "0.5x, within what was measured" in only.stores[0]
    assert "| target |" not in to_markdown(only)


def test_nats_beyond_the_measured_total_is_told_to_add_streams_not_subjects():
    nats = search(driver="nats", max_rate_per_s=4000.0)
    (within,) = plan([nats], load_per_s=3000.0, headroom=0.0).rows
    assert not any("JetStream stream" in flag for flag in within.flags)
    (beyond,) = plan([nats], load_per_s=12000.0, headroom=0.0).rows
    assert beyond.unit == "subjects"
    assert any("split the load over streams" in flag for flag in beyond.flags)


# --------------------------------------------------------------------------- cores and memory


def _probe(
    rate: float, phase: str, verdict: str, cpu_pct: float | None, peak_mib: int = 200
) -> dict[str, Any]:
    resources = None
    if cpu_pct is not None:
        resources = {
            "processes": ["nats-server"],
            "cpu_pct": cpu_pct,
            "cpu_s_per_mev": cpu_pct / 100 * 1e6 / rate,
            "mem_peak_bytes": peak_mib * 2**20,
            "mem_kind": "pss",
        }
    return {
        "rate_per_s": rate,
        "achieved_per_s": rate,
        "phase": phase,
        "verdict": verdict,
        "dir": f"{phase}-{rate:.0f}",
        "resources": resources,
    }


def test_cores_follow_a_fixed_part_plus_a_part_per_event_and_memory_the_peak_with_headroom():
    # 10% of a core at rest plus 0.1 core per 1,000/s: CPU per event falls as the rate grows.
    probes = [
        _probe(2000.0, "ramp", "measured", 30.0, peak_mib=150),
        _probe(8000.0, "bracket", "fail", 95.0),  # failed: not a load it kept up with
        _probe(4000.0, "verify", "pass", 50.0),
    ]
    result = plan([search(probes=probes)], load_per_s=10_000.0, headroom=0.3)
    (row,) = result.rows
    assert row.cores == pytest.approx(0.1 + 0.1 * 13.0)  # 1.4 cores at 13,000/s
    assert row.memory_bytes == int(200 * 2**20 * 1.3)  # the verification run's peak
    assert row.cost_basis is not None
    assert row.cost_basis.startswith(
        "nats-server: 0.10 cores + 0.100 cores per 1,000/s, fitted to 2 probe(s) from "
        "2,000/s to 4,000/s (extrapolated)"
    )
    assert "at 4,000/s (probe verify-4000)" in row.cost_basis
    text = to_markdown(result)
    assert "| 1.4 | 260 MiB |" in text
    assert "cores and memory from nats-server" in text
    # A lower load needs the fixed part too: 0.1 + 0.1 x 1.0 cores at 1,000/s, not the
    # 0.125 that 4,000/s's CPU per event alone would give.
    (low,) = plan([search(probes=probes)], load_per_s=1000.0, headroom=0.0).rows
    assert low.cores == pytest.approx(0.2)


def test_one_probe_gives_the_line_through_zero_and_falling_cpu_a_fixed_cost():
    (row,) = plan([search(probes=[_probe(4000.0, "verify", "pass", 40.0)])], 8000.0, 0.0).rows
    assert row.cores == pytest.approx(0.8)
    noisy = [_probe(2000.0, "ramp", "measured", 52.0), _probe(4000.0, "verify", "pass", 48.0)]
    (flat,) = plan([search(probes=noisy)], 8000.0, 0.0).rows
    assert flat.cores == pytest.approx(0.5)


def test_no_cores_or_memory_where_the_target_was_not_read():
    probes = [_probe(4000.0, "verify", "pass", None)]
    (row,) = plan([search(probes=probes)], load_per_s=10_000.0, headroom=0.3).rows
    assert row.cores is None and row.memory_bytes is None and row.cost_basis is None
    assert "| - | - |" in to_markdown(plan([search()], load_per_s=10_000.0, headroom=0.3))
