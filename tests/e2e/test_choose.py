"""``bench choose`` as a user runs it, on two memory targets whose capacities are known.

``fast`` serves 3,000/s (1 ms service time), ``slow`` 800/s (3 ms). The suite's ceiling
(``choose.max_rate = 1500``) stops fast's search below its capacity, so its max is a lower
bound ("at least 1,500/s"), while slow's search finds its limit: the capacity sentence ranks
slow alone and never ranks fast on the number the search capped. At the common load of
1,000/s fast meets the SLO and slow, past its capacity, does not: the answer names fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.units import format_latency_us, format_rate, format_seconds
from tests.cli_support import bench, only_run, run_bench_captured

SCENARIO = """
[scenario]
name = "choose-two"
duration = "1s"
warmup = "250ms"
interval = "250ms"
drain_timeout = "3s"

[workload]
rate = 1000
schedule = "constant"
payload_bytes = 256
producers = 1
consumers = 1
partitions = 4
max_in_flight = 64

[targets.fast]
driver = "memory"
service_time = "1ms"
capacity_per_s = 3000

[targets.slow]
driver = "memory"
service_time = "3ms"
capacity_per_s = 800

[slo]
"e2e.p99" = "50ms"

[choose]
probe_duration = "1s"
precision = "25%"
max_probes = 6
max_rate = 1500
fractions = [0.5]
fault_duration = "2s"
fault_down_for = "500ms"
"""

LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


@pytest.fixture(scope="module")
def chosen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("choose")
    path = root / "choose.toml"
    path.write_text(SCENARIO)
    results = root / "results"
    done = bench("choose", str(path), "-o", str(results), "--no-report", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    run_dir = only_run(results)
    return run_dir, json.loads((run_dir / "choose.json").read_text()), done.stdout


def _table(md: str) -> dict[str, dict[str, tuple[str, str | None]]]:
    """The decision table of choose.md: row -> target -> (text, link)."""
    lines = md.split("## Side by side", 1)[1].split("## Setting", 1)[0].splitlines()
    rows = [line for line in lines if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")][1:]
    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        name, values = cells[0], cells[1:]
        out[name] = {}
        for target, cell in zip(header, values, strict=True):
            match = LINK.fullmatch(cell)
            out[name][target] = (match.group(1), match.group(2)) if match else (cell, None)
    return out


@pytest.mark.slow
def test_choose_ranks_by_the_numbers_and_never_ranks_a_lower_bound(chosen):
    run_dir, choose, stdout = chosen
    decision = choose["decision"]
    searches = {t["target"]: t["search"] for t in choose["targets"]}
    # slow's search found its limit near its known capacity; fast's stopped at the ceiling.
    assert searches["slow"]["status"] in ("found", "budget")
    assert 500 <= searches["slow"]["max_rate_per_s"] <= 800 * 1.05
    # Its search ended at the ceiling, or ran out of probes there: nothing above it failed.
    assert searches["fast"]["status"] in ("ceiling", "budget")
    assert searches["fast"]["upper_rate_per_s"] is None
    assert searches["fast"]["max_rate_per_s"] == pytest.approx(1500)
    # The ranking at the load follows from the numbers: only fast meets the SLO at 1,000/s.
    assert decision["ranking"] == ["fast"]
    # R1: fast's 1,500/s is a lower bound and is never ranked, although it is the larger number.
    assert decision["capacity_ranking"] == ["slow"]
    assert decision["unranked_capacity"] == ["fast"]
    answer = decision["answer"]
    assert answer.startswith("For this workload at 1,000/s, fast meets the SLO")
    assert "fast sustains at least 1,500/s" in answer and "not ranked" in answer
    assert "slow does not" in answer
    assert answer in stdout.replace("\n", " ") or "answer:" in stdout
    md = (run_dir / "choose.md").read_text()
    html = (run_dir / "choose.html").read_text()
    assert answer in md
    assert 'id="answer"' in html and "at least 1,500/s" in html
    # The memory target lives inside the harness: its cost is not measured, and says why.
    table = _table(md)
    for target in ("fast", "slow"):
        text, _ = table["CPU per million events (target)"][target]
        assert text.startswith("not measured: in-process target")


@pytest.mark.slow
def test_every_cell_equals_the_summary_it_links_to(chosen):
    run_dir, choose, _ = chosen
    table = _table((run_dir / "choose.md").read_text())
    checked = 0
    for target in ("fast", "slow"):

        def linked(row: str, target: str = target) -> tuple[str, dict]:
            text, href = table[row][target]
            assert href is not None, (row, target, text)
            assert not Path(href).is_absolute() and href.endswith("/summary.json")
            return text, json.loads((run_dir / href).read_text())

        text, summary = linked("max sustainable rate under the SLO")
        assert format_rate(summary["workload"]["rate_per_s"]) in text
        assert summary["verdict"]["result"] == "pass"
        for stat in ("p50", "p99"):
            text, summary = linked(f"e2e latency {stat} at the load")
            assert text == format_latency_us(summary["latency_us"]["e2e"][stat])
            assert summary["workload"]["rate_per_s"] == pytest.approx(choose["load_per_s"])
        text, summary = linked("acknowledged events lost under the fault")
        assert text == f"{summary['audit']['lost']:,}"
        assert summary["faults"][0]["action"] == "kill"
        text, summary = linked("recovery time after the fault")
        assert text == format_seconds(summary["faults"][0]["recovery_s"])
        for where in ("at the load", "under the fault"):
            text, summary = linked(f"duplicates {where}")
            assert text == f"{summary['audit']['duplicated']:,}"
            text, summary = linked(f"per-key order {where}")
            reordered = summary["audit"]["reordered"]
            assert text == (f"broken ({reordered:,} reordered)" if reordered else "held")
        text, summary = linked("product and version that served")
        info = summary["target_info"]
        assert text == f"{info['product']} {info['version']}"
        checked += 1
    assert checked == 2
    # The answer at the load agrees with the linked load points' own verdicts.
    fast = json.loads((run_dir / table["at the common load"]["fast"][1]).read_text())
    text, href = table["at the common load"]["slow"]
    slow = json.loads((run_dir / href).read_text())
    assert fast["verdict"]["result"] == "pass" and not fast["client_bound"]
    if text.startswith("does not reach the load"):
        # No point at the load: the cell links the probe that failed at or below it.
        assert slow["workload"]["rate_per_s"] <= choose["load_per_s"]
    else:
        assert text.startswith("does not meet the SLO at the load")
        assert slow["workload"]["rate_per_s"] == pytest.approx(choose["load_per_s"])
    # Every point of the suite is a point of the one results directory.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "choose" and manifest["status"] == "ok"
    dirs = {p["dir"] for p in manifest["points"]}
    for entry in choose["targets"]:
        assert set(entry["points"]) <= dirs


@pytest.mark.slow
def test_bench_report_writes_the_report_and_the_same_decision_again(chosen):
    run_dir, choose, _ = chosen
    before = (run_dir / "choose.md").read_text()
    assert "The full report of every point: not written" in before
    done = bench("report", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    after = (run_dir / "choose.md").read_text()
    assert "[report.html](report.html)" in after and (run_dir / "report.html").is_file()
    assert choose["decision"]["answer"] in after
    assert _table(after) == _table(before)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--target", "nosuch"], "--target"),
        (["--slo", "e2e.p99<fast"], "--slo"),
        (["--slo", "nonsense"], "--slo"),
        (["--load", "lots"], "--load"),
        (["--load", "0/s"], "--load"),
        (["--set", "choose.precision=2"], "choose.precision"),
        (["--set", "choose.fractions=[0.5,1.5]"], "choose.fractions"),
        (["--set", 'choose.fault_at="5s"'], "choose.fault_at"),
        (["--set", "matrix.workload.partitions=[1,2]"], "matrix"),
        (["--set", 'workload.kind="store"'], "workload.kind"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(tmp_path, capsys, argv, needle):
    path = tmp_path / "choose.toml"
    path.write_text(SCENARIO)
    code, out, err = run_bench_captured(
        ["choose", str(path), "-o", str(tmp_path / "results"), *argv], capsys
    )
    assert code == 2, out + err
    assert needle in err.splitlines()[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_scenario_without_an_slo_or_with_rate_max_is_refused(tmp_path, capsys):
    path = tmp_path / "choose.toml"
    path.write_text(SCENARIO.replace('[slo]\n"e2e.p99" = "50ms"\n', ""))
    code, _, err = run_bench_captured(["choose", str(path), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "--slo" in err.splitlines()[0]
    path.write_text(SCENARIO.replace("rate = 1000", 'rate = "max"'))
    code, _, err = run_bench_captured(["choose", str(path), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "--load" in err.splitlines()[0]


def test_a_part_that_failed_to_run_exits_1_and_the_page_says_what_failed(tmp_path):
    # Nothing listens on port 1: the target's first probe fails, so its search fails. That is
    # a part of the suite that did not run, not an answer: exit 1, with the page written.
    path = tmp_path / "choose.toml"
    path.write_text(
        SCENARIO.replace(
            '[targets.slow]\ndriver = "memory"\nservice_time = "3ms"\ncapacity_per_s = 800\n',
            '[targets.gone]\ndriver = "kafka"\nbootstrap_servers = "127.0.0.1:1"\n',
        )
    )
    results = tmp_path / "results"
    done = bench("choose", str(path), "--target", "gone", "-o", str(results), "--no-report")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "failed: gone: the search failed" in done.stderr
    run_dir = only_run(results)
    choose = json.loads((run_dir / "choose.json").read_text())
    assert choose["failures"] and choose["failures"][0].startswith("gone: the search failed")
    assert choose["decision"]["ranking"] == []
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    md = (run_dir / "choose.md").read_text()
    assert "The suite ended failed" in md and "gone: the search failed" in md
    assert "no target meets the SLO" in md
