"""The decision rules of ``bench choose`` (R1 to R5, bench/capacity/decide.py), on columns read
from summaries as the suite writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.capacity.decide import RULES, column, decide, is_lower_bound


def _summary(
    rate: float,
    *,
    p50_us: float = 1000.0,
    p99_us: float = 5000.0,
    verdict: str = "pass",
    client_bound: bool = False,
    lost: int = 0,
    resources: dict[str, Any] | None = None,
    in_process: bool = False,
    faults: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "status": "ok",
        "workload": {"rate_per_s": rate},
        "throughput": {"acked_per_s": rate},
        "latency_us": {"e2e": {"p50": p50_us, "p99": p99_us}},
        "audit": {"lost": lost, "duplicated": 0, "reordered": 0},
        "verdict": {"result": verdict, "reasons": [] if verdict == "pass" else ["slo e2e.p99"]},
        "client_bound": client_bound,
        "host_bound": False,
        "resources": resources,
        "faults": faults or [],
        "target_info": {
            "product": "Broker",
            "version": "1.0",
            "in_process": in_process,
            "client": {"library": "lib", "version": "2.0"},
        },
    }


class Suite:
    """A choose run's directory: summaries written as points, entries as choose.json holds."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def point(self, name: str, summary: dict[str, Any]) -> str:
        (self.root / name).mkdir()
        (self.root / name / "summary.json").write_text(json.dumps(summary))
        return name

    def target(
        self,
        name: str,
        *,
        status: str = "found",
        max_rate: float | None = 2000.0,
        upper: float | None = 2200.0,
        load: dict[str, Any] | None = None,
        load_checks: list[str] | None = None,
        fault: dict[str, Any] | None = None,
        load_per_s: float = 1000.0,
    ):
        max_dir = None
        if max_rate is not None:
            max_dir = self.point(f"{name}-max", _summary(max_rate))
        upper_dir = None
        if upper is not None:
            upper_dir = self.point(f"{name}-upper", _summary(upper, verdict="fail"))
        load_dir = None if load is None else self.point(f"{name}-load", load)
        fault_dir = None if fault is None else self.point(f"{name}-fault", fault)
        entry = {
            "target": name,
            "label": name,
            "driver": "x",
            "search": {
                "status": status,
                "max_rate_per_s": max_rate,
                "upper_rate_per_s": upper,
                "limited_by": ["keeps up"] if upper else [],
                "max_dir": max_dir,
                "upper_dir": upper_dir,
            },
            "load": {"rate_per_s": load_per_s, "dir": load_dir, "failed_checks": load_checks or []},
            "fault": {
                "action": "kill",
                "dir": fault_dir,
                "reason": None if fault else "not a service bench up started",
            },
            "points": [d for d in (max_dir, load_dir, fault_dir) if d],
        }
        return column(self.root, entry, "e2e")


def _fault(lost: int, recovery_s: float | None = 1.5) -> dict[str, Any]:
    return _summary(
        500.0,
        lost=lost,
        verdict="fail",
        faults=[{"action": "kill", "status": "done", "recovery_s": recovery_s}],
    )


def test_a_lower_bound_is_never_ranked_even_above_an_exact_maximum(tmp_path):
    suite = Suite(tmp_path)
    exact = suite.target("exact", max_rate=800.0, upper=900.0)
    capped = suite.target("capped", status="harness-bound", max_rate=5000.0, upper=7500.0)
    decision = decide([exact, capped], 1000.0)
    assert decision.capacity_ranking == ["exact"]
    assert decision.unranked_capacity == ["capped"]
    assert capped.max_rate.text == "at least 5,000/s"
    assert exact.max_rate.text == "800/s (failed at 900/s)"
    assert "capped sustains at least 5,000/s (the harness was the limit" in decision.answer
    assert "not ranked on that number" in decision.answer


def test_a_search_that_ran_out_of_probes_before_any_rate_failed_is_a_lower_bound():
    assert is_lower_bound("budget", None)
    assert not is_lower_bound("budget", 1200.0)
    assert is_lower_bound("ceiling", None) and is_lower_bound("harness-bound", 900.0)
    assert not is_lower_bound("found", 900.0)


def test_below_the_load_an_exact_max_does_not_reach_it_and_a_lower_bound_is_not_established(
    tmp_path,
):
    suite = Suite(tmp_path)
    short = suite.target("short", max_rate=600.0, upper=700.0)
    held_back = suite.target("held", status="harness-bound", max_rate=600.0, upper=900.0)
    assert short.load.value is False
    assert short.load_phrase == "does not reach the load (max 600/s)"
    assert held_back.load.value is None
    assert held_back.load_phrase == (
        "not established: it sustained at least 600/s (the harness was the limit; limited by "
        "keeps up), below the load"
    )
    # Each links the run that shows it: the failing probe, and the harness-bound maximum.
    assert short.load.dir == "short-upper/summary.json"
    assert held_back.load.dir == "held-max/summary.json"
    decision = decide([short, held_back], 1000.0)
    assert decision.ranking == []
    assert decision.answer.startswith("For this workload at 1,000/s, no target meets the SLO")


def test_a_client_bound_point_at_the_load_is_not_established_never_a_pass(tmp_path):
    suite = Suite(tmp_path)
    bound = suite.target("bound", load=_summary(1000.0, client_bound=True), load_checks=["harness"])
    assert bound.load.value is None
    assert "client-bound" in bound.load_phrase
    assert bound.client_bound == ["bound-load"]
    assert decide([bound], 1000.0).ranking == []


def test_the_choice_puts_no_loss_under_the_fault_before_cpu_and_cpu_before_p99(tmp_path):
    suite = Suite(tmp_path)
    res = {
        "source": "local",
        "cpu_s_per_mev": 5.0,
        "mem_kind": "pss",
        "mem_mean_bytes": 2**20,
        "mem_peak_bytes": 2**21,
        "write_amplification": 1.5,
        "disk_write_bytes": 3 * 2**20,
    }
    cheap_but_lossy = suite.target(
        "lossy",
        load=_summary(1000.0, resources={**res, "cpu_s_per_mev": 1.0}, p99_us=1000.0),
        fault=_fault(lost=12),
    )
    safe = suite.target("safe", load=_summary(1000.0, resources=res), fault=_fault(lost=0))
    decision = decide([cheap_but_lossy, safe], 1000.0)
    assert decision.ranking == ["safe", "lossy"]
    assert decision.criterion == "no acknowledged event lost under a kill"
    assert "lossy also meets it, and lost 12 acknowledged events under a kill" in decision.answer

    # Both lose nothing: the lower CPU per event decides, before the p99.
    other = Suite(tmp_path / "b")
    other.root.mkdir()
    cheap = other.target(
        "cheap", load=_summary(1000.0, resources={**res, "cpu_s_per_mev": 1.0}, p99_us=9000.0),
        fault=_fault(lost=0),
    )  # fmt: skip
    fast = other.target("fast", load=_summary(1000.0, resources=res, p99_us=1000.0),
                        fault=_fault(lost=0))  # fmt: skip
    unmeasured = other.target("inproc", load=_summary(1000.0, in_process=True, p99_us=10.0),
                              fault=_fault(lost=0))  # fmt: skip
    decision = decide([fast, unmeasured, cheap], 1000.0)
    # The in-process target is the harness's baseline: shown, never chosen over the others.
    assert decision.ranking == ["cheap", "fast"]
    assert "inproc (the in-process baseline, not a choice) meets it" in decision.answer
    assert decision.criterion == "the lowest CPU per event (1.00 CPU-s per million events)"
    assert decision.answer.startswith(
        "For this workload at 1,000/s, cheap meets the SLO with the lowest CPU per event"
    )
    assert unmeasured.cpu_per_mev.text == (
        "not measured: in-process target (its work is the harness's)"
    )
    assert cheap.rss.text == "PSS mean 1.0 MiB, peak 2.0 MiB"
    assert cheap.write_amplification.text == "1.50x (3.0 MiB written)"


def test_without_cpu_figures_the_lower_p99_decides(tmp_path):
    suite = Suite(tmp_path)
    a = suite.target("a", load=_summary(1000.0, p99_us=8000.0))
    b = suite.target("b", load=_summary(1000.0, p99_us=2000.0))
    decision = decide([a, b], 1000.0)
    assert decision.ranking == ["b", "a"]
    assert decision.criterion == "the lowest p99 at the load (2.00ms)"


def test_a_failed_point_at_the_load_does_not_meet_it_and_says_what_failed(tmp_path):
    suite = Suite(tmp_path)
    slow = suite.target(
        "slow", load=_summary(1000.0, verdict="fail"), load_checks=["slo e2e.p99", "keeps up"]
    )
    assert slow.load.value is False
    assert slow.load_phrase == "does not meet the SLO at the load (slo e2e.p99, keeps up)"


def test_an_unfaultable_target_says_why_and_its_resources_absent_say_not_measured(tmp_path):
    suite = Suite(tmp_path)
    col = suite.target("shared", load=_summary(1000.0))
    assert col.fault_lost.value is None and col.fault_lost.dir is None
    assert col.fault_lost.text == "not faulted: not a service bench up started"
    assert col.cpu_per_mev.text == "not measured: the target's processes were not sampled"
    assert col.p99.dir == "shared-load/summary.json"


def test_the_rules_are_five_and_named():
    assert [name.split()[0] for name, _ in RULES] == ["R1", "R2", "R3", "R4", "R5"]


def test_the_readme_quotes_the_rules_the_code_applies():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Choosing a broker: bench choose", 1)[1].split("\n## ", 1)[0]
    for name, text in RULES:
        assert f"- **{name}.** {text}" in section, name


def test_a_search_that_failed_only_above_the_load_leaves_the_load_open(tmp_path):
    suite = Suite(tmp_path)
    col = suite.target("k", status="budget", max_rate=None, upper=7776.0)
    assert col.load.value is None
    assert col.load_phrase.startswith("not established: no probed rate passed (budget")
    low = suite.target("l", status="budget", max_rate=None, upper=800.0)
    assert low.load.value is False
    assert low.load_phrase.startswith("does not reach the load")
