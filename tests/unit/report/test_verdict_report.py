"""The verdict where a person reads it: the report's banner and verdict table, the summary
table's verdict column, and the terminal's status column, in words."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from bench.report.html import write_report
from bench.report.tables import load
from bench.report.terminal import store_table, summary_table
from bench.report.verdicts import PASS_BANNER, banner, status_text
from tests.fabricate import PointSpec, make_run
from tests.report_numbers import banner_and_tables, missing_numbers, numbers


def _render(table) -> str:
    console = Console(record=True, width=400, color_system=None)
    console.print(table)
    return console.export_text()


def _summaries(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("*/summary.json"))]


def test_a_passing_run_has_a_pass_banner_and_nothing_listed(golden, tmp_path):
    found = banner(load(golden.base).points)
    assert found.result == "pass" and found.lines == []
    html_path, md_path = write_report(golden.base, tmp_path)
    page = html_path.read_text()
    assert 'class="banner pass" id="verdicts"' in page and PASS_BANNER in page
    assert PASS_BANNER in md_path.read_text()


def test_lost_events_fail_the_banner_with_the_count_found_in_a_table(golden, tmp_path):
    html_path, md_path = write_report(golden.lost, tmp_path)
    page = html_path.read_text()
    text, tables = banner_and_tables(page)
    assert 'class="banner fail" id="verdicts"' in page
    assert "kafka: ok · FAIL: lost 4 acknowledged" in text
    assert "memory" not in text  # the point that passed is not listed
    assert "Every other point ran and passed." in text
    assert missing_numbers(text, tables) == []
    assert "4" in numbers(text)
    md = md_path.read_text()
    assert "- kafka: ok · FAIL: lost 4 acknowledged" in md
    # The summary table says FAIL beside "ok", so the point never reads as ok alone.
    summary = page.split('id="summary"')[1].split("</table>")[0]
    assert "<th>verdict</th>" in summary and "<td>FAIL</td>" in summary


def test_a_broken_slo_is_in_the_banner_in_the_tables_units(golden, tmp_path):
    html_path, _ = write_report(golden.slo_broken, tmp_path)
    text, tables = banner_and_tables(html_path.read_text())
    assert "kafka: ok · FAIL: SLO e2e.p99 " in text and "> 10.00ms" in text
    assert missing_numbers(text, tables) == []


def test_a_point_that_did_not_finish_is_never_a_pass(tmp_path):
    run = make_run(
        tmp_path,
        "mixed",
        [
            PointSpec("memory"),
            PointSpec("kafka", status="failed"),
            PointSpec("nats", errors=50, status="interrupted"),
        ],
        seed=3,
    )
    found = banner(load(run).points)
    assert found.result == "inconclusive"
    assert found.lines[0].startswith("kafka: failed · inconclusive: the point did not run")
    assert found.lines[1] == "nats: interrupted · inconclusive: interrupted before the end"
    html_path, _ = write_report(run, tmp_path / "out")
    page = html_path.read_text()
    assert 'class="banner inconclusive" id="verdicts"' in page
    text, tables = banner_and_tables(page)
    assert missing_numbers(text, tables) == []


def test_every_number_of_a_many_reason_banner_is_in_a_table(tmp_path):
    run = make_run(
        tmp_path,
        "many",
        [
            PointSpec(
                "kafka",
                lost=1234,
                duplicated=3,
                reordered=7,
                slo_e2e_p99_us=1000.0,
                rate_per_s=2000.0,
            ),
        ],
        seed=4,
    )
    summary_path = next(run.glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    # What a newer runner adds: the window's error counts and the loss classification.
    summary["errors"].update(
        failed_in_window=800, scheduled_in_window=11_000, rate=800 / 11_000, max_rate=0.001
    )
    summary["audit"]["loss"] = {
        "checked": True,
        "not_stored": 1200,
        "not_delivered": 34,
        "unclassified": 0,
    }
    summary["audit"]["keys_reordered"] = 5
    summary_path.write_text(json.dumps(summary))
    html_path, _ = write_report(run, tmp_path / "out")
    text, tables = banner_and_tables(html_path.read_text())
    for reason in (
        "lost 1,234 acknowledged (1,200 not stored, 34 stored, not delivered)",
        "duplicated 3",
        "reordered 7 over 5 keys",
        "error rate 7.3% > 0.1% (800 failed or skipped of 11,000)",
    ):
        assert reason in text, text
    assert missing_numbers(text, tables) == []


def test_the_missing_numbers_check_catches_a_number_no_table_prints():
    assert missing_numbers("lost 4; SLO e2e.p99 70.84ms > 50.00ms", "4 e2e.p99 70.84ms") == [
        "50.00ms"
    ]
    assert missing_numbers("lost 1,000", "1000") == ["1,000"]
    assert missing_numbers("lost 4", "40") == ["4"]


def test_the_terminal_status_column_says_the_verdict_in_words(golden):
    text = _render(summary_table(_summaries(golden.lost)))
    assert "ok · FAIL: lost 4 acknowledged" in text
    assert "ok · pass" in text
    assert status_text(_summaries(golden.base)[0]) == "ok · pass"


def test_the_terminal_store_table_says_abandoned_commands_fail(tmp_path):
    run = make_run(tmp_path, "store", [PointSpec("memory")], seed=5)
    summary_path = next(run.glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    summary["kind"] = "store"
    summary["store"] = {
        "commands": 1000,
        "abandoned": 49,
        "conflict_rate": 0.25,
        "goodput_per_s": 300.0,
        "invariants": {"ok": True, "violations": []},
    }
    text = _render(store_table([summary]))
    assert "ok · FAIL: abandoned 49 of 1,000 commands (4.9% > 0.1%)" in text
    assert "25.0%" in text


def test_a_pass_the_rules_allowed_says_what_they_allowed():
    from types import SimpleNamespace

    summary = {
        "status": "ok",
        "kind": "stream",
        "audit": {"lost": 0, "duplicated": 0, "reordered": 125, "projection_failures": 127},
        "verdict": {"result": "pass", "reasons": []},
    }
    found = banner([SimpleNamespace(label="memory", summary=summary)])
    assert found.result == "pass"
    assert "reordered" not in PASS_BANNER.split("lost")[0]  # the plain banner claims none
    assert found.headline != PASS_BANNER
    assert "allowed what the audit found: reordered 125, projection failures 127" in (
        found.headline
    )
    clean = {**summary, "audit": {"lost": 0, "reordered": 0}}
    assert banner([SimpleNamespace(label="memory", summary=clean)]).headline == PASS_BANNER
