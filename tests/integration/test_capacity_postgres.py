"""find-max against the real PostgreSQL event store: bounded in time, judged on commands
(abandoned commands, projection lag), and its answer holds up in a fixed-rate run."""

import json
import time
from pathlib import Path

from bench.capacity.checks import Criteria, judge, verdict
from tests.e2e.test_cli import bench, only_run

SLO_P99_US = 50_000


def scenario(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "store-capacity.toml"
    path.write_text(
        f"""
[scenario]
name = "store-capacity"
duration = "4s"
warmup = "1s"
drain_timeout = "5s"

[workload]
kind = "store"
rate = 200
producers = 1
max_in_flight = 4
aggregates = 10000
keys = "uniform"
payload_bytes = 256

[workload.store]
events_per_append = [1, 3]

[targets.pg]
driver = "postgres"
dsn = "{dsn}"
strategy = "streams_cas"

[slo]
"response.p99" = "50ms"
"""
    )
    return path


def test_find_max_on_the_postgres_store_is_bounded_and_agrees_with_a_fixed_rate_run(
    tmp_path, postgres_dsn
):
    path = scenario(tmp_path, postgres_dsn)
    started = time.monotonic()
    done = bench(
        "find-max", str(path), "--probe-duration", "2s", "--warmup", "1s",
        "--verify-duration", "4s", "--max-probes", "20", "--no-report",
        "-o", str(tmp_path / "search"), timeout=600,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 20 * 12 + 60
    run_dir = only_run(tmp_path / "search")
    (search,) = json.loads((run_dir / "capacity.json").read_text())["searches"]
    assert search["server"]["product"] == "PostgreSQL"
    assert search["kind"] == "store" and search["writers"] == 4
    assert search["status"] in ("found", "harness-bound", "budget"), search
    rate = search["max_rate_per_s"]
    assert rate and rate > 50
    assert search["upper_rate_per_s"] > rate
    assert len(search["probes"]) <= 20
    # Every open-loop probe was judged on the store's own terms: abandoned commands, and the
    # projector keeping up (PostgreSQL has one), never a consumer backlog.
    for probe in search["probes"]:
        if probe["rate_per_s"] is None:
            continue
        names = [c["name"] for c in probe["checks"]]
        assert "projection keeps up" in names and "backlog bounded" not in names, names
        errors = next(c for c in probe["checks"] if c["name"] == "errors")
        assert "commands abandoned" in errors["value"]
    # The store's invariants held in every probe (a violation fails the point).
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for point in manifest["points"]:
        summary = json.loads((run_dir / point["dir"] / "summary.json").read_text())
        assert summary["store"]["invariants"]["ok"], summary["store"]["invariants"]

    # A fixed-rate run at the answer, judged by the search's own checks and its rule (a rate
    # fails its SLO only when a second run confirms it; twice the SLO at the very edge).
    criteria = Criteria(slo_us={"response.p99": 2 * SLO_P99_US})
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
            assert summary["throughput"]["sent_per_s"] >= 0.95 * rate
        outcomes.append(verdict(list(checks.values())))
        if outcomes[-1] in agreeing:
            break
    assert agreeing & set(outcomes), outcomes
