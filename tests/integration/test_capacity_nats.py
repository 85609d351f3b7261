"""find-max against a real broker (NATS JetStream): bounded in time, and its answer holds up
in an ordinary fixed-rate run at that rate."""

import json
import time
from pathlib import Path

from bench.capacity.checks import Criteria, judge, verdict
from tests.e2e.test_cli import bench, only_run

SLO_P99_US = 50_000


def scenario(tmp_path: Path, nats_url: str) -> Path:
    path = tmp_path / "nats-capacity.toml"
    path.write_text(
        f"""
[scenario]
name = "nats-capacity"
duration = "4s"
warmup = "1s"
drain_timeout = "5s"

[workload]
rate = 1000
payload_bytes = 1024
keys = "uniform"
producers = 2
consumers = 2
partitions = 4
max_in_flight = 64

[targets.nats]
driver = "nats"
servers = ["{nats_url}"]
publish = "pipelined"
publish_window = 64

[slo]
"e2e.p99" = "50ms"
"""
    )
    return path


def test_find_max_on_nats_is_bounded_and_agrees_with_a_fixed_rate_run(tmp_path, nats_url):
    path = scenario(tmp_path, nats_url)
    started = time.monotonic()
    done = bench(
        "find-max", str(path), "--probe-duration", "2s", "--warmup", "1s",
        "--verify-duration", "4s", "--max-probes", "20", "--no-report",
        "-o", str(tmp_path / "search"), timeout=600,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    # 20 probes of at most ~12 s each (spawn, warm-up, window, drain) bound the search.
    assert elapsed < 20 * 12 + 60
    (search,) = json.loads((only_run(tmp_path / "search") / "capacity.json").read_text())[
        "searches"
    ]
    assert search["server"]["product"] == "NATS Server"
    # On a noisy 2-core VM the budget may end the search before full precision; it still
    # has a bracketed, probed answer.
    assert search["status"] in ("found", "harness-bound", "budget"), search
    rate = search["max_rate_per_s"]
    assert rate and rate > 100
    assert search["upper_rate_per_s"] > rate
    assert len(search["probes"]) <= 20

    # The same scenario, as an ordinary run at the answer's rate, judged by the search's own
    # checks and by its rule: a rate fails its SLO only when a second run confirms it (a 4 s
    # p99 on this VM rests on a few samples, and one 100 ms hiccup breaks it). A single run's
    # p99 at the very edge of the SLO gets twice the SLO; a rate past the knee is far over.
    criteria = Criteria(slo_us={"e2e.p99": 2 * SLO_P99_US})
    # When the search ended harness-bound, the answer sits at the harness's own limit (one
    # worker's core): a fixed run there may be client-bound too, which agrees with the search.
    agreeing = {"pass", "client-bound"} if search["status"] == "harness-bound" else {"pass"}
    outcomes = []
    for attempt in range(2):
        fixed = bench(
            "run", str(path), "--set", f"workload.rate={rate:.1f}", "--no-report", "-q",
            "-o", str(tmp_path / f"fixed-{attempt}"), timeout=300,
        )  # fmt: skip
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        fixed_dir = only_run(tmp_path / f"fixed-{attempt}")
        (point,) = json.loads((fixed_dir / "manifest.json").read_text())["points"]
        summary = json.loads((fixed_dir / point["dir"] / "summary.json").read_text())
        checks = {c.name: c for c in judge(summary, fixed_dir / point["dir"], criteria)}
        # Whatever the p99 did, nothing was lost and the backlog stayed bounded; and unless
        # the harness was the limit, the target kept up with the rate the search found.
        assert all(c.passed for n, c in checks.items() if n in ("errors", "backlog bounded",
                   "projection keeps up")), checks  # fmt: skip
        if not summary["client_bound"]:
            assert checks["keeps up"].passed, checks
            assert summary["throughput"]["acked_per_s"] >= 0.95 * rate
        outcomes.append(verdict(list(checks.values())))
        if outcomes[-1] in agreeing:
            break
    assert agreeing & set(outcomes), outcomes
