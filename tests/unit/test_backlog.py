"""Backlog build and drain (``workload.backlog``, issue 20): byte sizes, the workload's
validation, the phases' figures, the verdict and the report's row, one source for each."""

from __future__ import annotations

import pickle

import pytest

from bench.engine.backlog import BacklogPhases, drained_threshold
from bench.errors import ScenarioError
from bench.report.backlog import backlog_row
from bench.scenario import expand, scenario_from_dict
from bench.units import format_bytes, parse_bytes
from bench.verdict import backlog_failures, judge


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("1GiB", 2**30),
        ("1GB", 10**9),
        ("512MiB", 512 * 2**20),
        ("1.5KiB", 1536),
        ("2 MB", 2_000_000),
        ("1024", 1024),
        (4096, 4096),
        ("0", 0),
    ],
)
def test_sizes_parse_to_bytes_si_and_iec(text: object, count: int) -> None:
    assert parse_bytes(text) == count


@pytest.mark.parametrize("bad", ["lots", "1.5B", "1 GiBs", "-1MiB", True, 1.5, -3, "9" * 50])
def test_sizes_that_are_not_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_bytes(bad)
    assert "\n" not in str(caught.value)


def test_a_size_keeps_its_spelling_and_pickles() -> None:
    size = parse_bytes("2MiB")
    assert pickle.loads(pickle.dumps(size)) == 2 * 2**20
    assert format_bytes(size) == "2.0 MiB" and format_bytes(512) == "512 B"
    assert format_bytes(None) == "-" and format_bytes(3 * 2**30) == "3.0 GiB"


def _workload(**fields: object):  # type: ignore[no-untyped-def]
    raw = {
        "scenario": {"name": "b"},
        "workload": fields,
        "targets": {"memory": {"driver": "memory"}},
    }
    return expand(scenario_from_dict(raw, "b.toml"))[0]


def test_backlog_messages_follow_the_mean_payload() -> None:
    point = _workload(backlog="2MiB", payload_bytes=1024)
    assert point.workload.backlog_messages() == 2048
    assert point.workload.model_dump()["backlog"] == "2MiB"  # dumped as written
    spread = _workload(backlog="1MB", payload_bytes={"min": 100, "max": 900})
    assert spread.workload.mean_payload_bytes() == 500
    assert spread.workload.backlog_messages() == 2000
    assert _workload().workload.backlog_messages() == 0


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"backlog": "lots"}, "workload.backlog", "is not a size"),
        ({"backlog": "1MiB", "kind": "store"}, "workload.backlog", "for streams"),
        ({"backlog": "1MiB", "consumers": 0}, "workload.backlog", "consumers >= 1"),
        ({"backlog": "1MiB", "rate": "max"}, "workload.backlog", 'not "max"'),
        ({"backlog": 0}, "workload.backlog", "at least one message"),
        ({"backlog_drain_ratio": 0.5}, "workload.backlog_drain_ratio", "needs a backlog"),
        (
            {"backlog": "1MiB", "backlog_drain_ratio": 1.5},
            "workload.backlog_drain_ratio",
            "at most 1",
        ),
        ({"backlog": "1MiB", "backlog_drain_ratio": 0}, "workload.backlog_drain_ratio", "above 0"),
    ],
)
def test_a_backlog_that_cannot_run_is_one_line_naming_the_field(
    fields: dict, field: str, words: str
) -> None:
    with pytest.raises(ScenarioError, match=words) as caught:
        _workload(**fields)
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_faults_with_a_backlog_are_not_built_yet() -> None:
    raw = {
        "scenario": {"name": "b", "duration": "2s"},
        "workload": {"backlog": "1MiB"},
        "targets": {"memory": {"driver": "memory"}},
        "faults": [{"at": "1s", "action": "pause", "down_for": "500ms"}],
    }
    with pytest.raises(ScenarioError, match="not built yet"):
        expand(scenario_from_dict(raw, "b.toml"))


def test_the_drained_threshold_has_a_floor() -> None:
    assert drained_threshold(100_000, 1.0) == 1000  # the floor, producers keep sending
    assert drained_threshold(2048, 1.0) == 204  # a tenth of a small backlog
    assert drained_threshold(100_000, 0.5) == 50_000


def test_phases_time_the_build_the_resume_and_the_drain() -> None:
    s = 1_000_000_000
    phases = BacklogPhases(messages=10_000, ratio=1.0, backlog_bytes=10_000 * 1024)
    phases.start(0)
    phases.observe(1 * s, 5_000, 0)
    assert not phases.built and not phases.resumed
    phases.observe(2 * s, 10_000, 0)
    assert phases.built
    phases.resume(2 * s, 10_000, 0)
    phases.observe(3 * s, 11_000, 6_000)  # 5,000 owed: not drained
    assert not phases.drained
    phases.observe(4 * s, 12_000, 11_500)  # 500 owed, under the floor of 1,000
    phases.workers_resumed([{"resume_ns": 2 * s, "resumed_ns": 2 * s + 250_000_000}])
    figures = phases.figures()
    assert figures["built"] and figures["drained"]
    assert figures["built_s"] == 2.0 and figures["owed_at_resume"] == 10_000
    assert figures["drain_s"] == 2.0 and figures["drain_read_per_s"] == 11_500 / 2
    assert figures["consumers_started_ms"] == 250.0
    assert backlog_failures(figures) == []


def test_an_unbuilt_backlog_fails_the_point_with_a_reason() -> None:
    phases = BacklogPhases(messages=10_000, ratio=1.0, backlog_bytes=10_000 * 1024)
    phases.start(0)
    phases.observe(3_000_000_000, 4_000, 0)
    phases.resume(3_000_000_000, 4_000, 0)  # the load is over: resumed anyway
    phases.observe(3_500_000_000, 4_000, 4_000)
    figures = phases.figures()
    assert figures["drained"] and not figures["built"]
    reasons = backlog_failures(figures)
    assert reasons == [
        "backlog not built: 10,000 messages never acknowledged within the load "
        "(4,000 owed when the consumers resumed)"
    ]
    summary = {"status": "ok", "kind": "stream", "audit": {}, "backlog": figures}
    verdict = judge(summary)
    assert verdict.result == "fail" and verdict.reasons == reasons
    # Interrupted, the backlog never had its chance: doubted, never failed for it.
    assert judge({**summary, "status": "interrupted"}).result == "inconclusive"


def test_the_report_row_shows_the_summary_figures() -> None:
    figures = {
        "backlog_messages": 2048,
        "backlog_bytes": 2 * 2**20,
        "built": True,
        "built_s": 1.0577,
        "owed_at_resume": 2116,
        "consumers_started_ms": 3.26,
        "drained": False,
        "drain_s": None,
        "drain_read_per_s": None,
    }
    latency = {"catchup": {"p50": 530_841.6, "p99": 1_048_576.0}}
    row = backlog_row({"backlog": figures, "latency_us": latency}, "memory")
    assert row == {
        "point": "memory",
        "backlog": "2.0 MiB (2,048 messages)",
        "built in": "1.06s",
        "owed at resume": "2,116",
        "consumers started": "3.26ms",
        "drain": "not drained",
        "drain read/s": "-",
        "catch-up e2e p50": "530.84ms",
        "catch-up e2e p99": "1.05s",
    }
