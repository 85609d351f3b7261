"""A bounded find-max against a real service, and the check that its answer holds up in
ordinary fixed-rate runs: what the capacity tests of every target share."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.capacity.checks import Criteria, judge, verdict
from tests.cli_support import bench, only_run

MAX_PROBES = 20
# Each probe: spawn, a 0.5 s warm-up, a 2 s window (4 s to verify), the drain.
PROBE_BOUND_S = 12


def bounded_find_max(path: Path, out: Path) -> tuple[dict[str, Any], Path]:
    """Run find-max with short probes and a probe budget; the one search and its directory."""
    started = time.monotonic()
    done = bench(
        # A 10% bracket: these tests check the search against a real service and that its
        # answer holds in a fixed-rate run, not its precision (the memory target's tests do).
        "find-max", str(path), "--probe-duration", "2s", "--warmup", "500ms",
        "--precision", "10%", "--verify-duration", "4s", "--max-probes", str(MAX_PROBES),
        "--no-report",
        "-o", str(out), timeout=600,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < MAX_PROBES * PROBE_BOUND_S + 60
    run_dir = only_run(out)
    (search,) = json.loads((run_dir / "capacity.json").read_text())["searches"]
    # On a noisy 2-core VM the budget may end the search before full precision; it still
    # has a bracketed, probed answer.
    assert search["status"] in ("found", "harness-bound", "budget"), search
    assert search["max_rate_per_s"] and search["upper_rate_per_s"] > search["max_rate_per_s"]
    assert len(search["probes"]) <= MAX_PROBES
    return search, run_dir


def assert_a_fixed_rate_run_agrees(
    path: Path,
    out: Path,
    search: dict[str, Any],
    criteria: Criteria,
    achieved: str,
    margin: float = 1.0,
) -> None:
    """The scenario as an ordinary run at the answer's rate, judged by the search's own checks
    and by its rule that one failure is not a verdict: the answer sits at the knee, where a 4 s
    window on this VM falls behind or breaks its p99 now and then (the search's own probes
    passed there only once each). So up to three runs, and one must agree; none may lose
    events or fail sends beyond the search's error threshold.

    When the search ended harness-bound, the answer sits at the harness's own limit (one
    worker's core): a fixed run there may be client-bound too, which agrees with the search.
    """
    rate = search["max_rate_per_s"]
    if not search["verified"]:
        # The probe budget ended the search before a full-length run confirmed its answer, and
        # the search says so: the claim it stands behind is the best verified rate, else one
        # bracket step (10%) under the unconfirmed edge.
        verified = [
            p["rate_per_s"]
            for p in search["probes"]
            if p["phase"] == "verify" and p["verdict"] == "pass"
        ]
        rate = max(verified) if verified else 0.9 * rate
    # margin < 1: the run goes one bracket step under the answer, for a knee that is the
    # host's CPU (the client and the target on the same 2 cores), where a short window at
    # exactly the knee falls behind as often as not.
    rate *= margin
    agreeing = {"pass", "client-bound"} if search["status"] == "harness-bound" else {"pass"}
    outcomes = []
    for attempt in range(3):
        fixed = bench(
            "run", str(path), "--set", f"workload.rate={rate:.1f}", "--no-report", "-q",
            "-o", str(out / f"fixed-{attempt}"), timeout=300,
        )  # fmt: skip
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        fixed_dir = only_run(out / f"fixed-{attempt}")
        (point,) = json.loads((fixed_dir / "manifest.json").read_text())["points"]
        summary = json.loads((fixed_dir / point["dir"] / "summary.json").read_text())
        checks = {c.name: c for c in judge(summary, fixed_dir / point["dir"], criteria)}
        # Whatever the latency did, nothing was lost or failed beyond the threshold.
        assert checks["errors"].passed, checks
        outcome = verdict(list(checks.values()))
        if outcome == "pass":
            # It kept up with the rate the search found.
            assert summary["throughput"][achieved] >= 0.95 * rate
        outcomes.append(
            (outcome, [f"{c.name}: {c.value}" for c in checks.values() if not c.passed])
        )
        if outcome in agreeing:
            break
    assert agreeing & {outcome for outcome, _ in outcomes}, outcomes
