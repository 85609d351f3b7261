"""The harness's throughput per worker: our own worker processes against Locust workers.

Measures, in one run, on this machine, the engine closed loop (``rate = "max"``) against the
in-process memory target (so the harness is the only limit), with full recording:

1. ``engine xN``: ``bench run``'s local worker processes, N = 1 and 2;
2. ``locust xN``: the same points on a Locust cluster (``bench locust``'s launcher), N = 1
   and 2 Locust workers, each hosting the engine in a native thread under gevent;

and prints acknowledged events/s per worker and the ratios locust/engine. Usage::

    .venv/bin/python benchmarks/locust_ceiling.py [--seconds 5] [--payload 1024] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.engine.runner import PointRunner
from bench.locust.cluster import LocustCluster
from bench.scenario import expand, scenario_from_dict


def point(workers: int, seconds: float, payload_bytes: int) -> Any:
    raw = {
        "scenario": {"name": "locust-ceiling", "duration": f"{seconds}s", "warmup": "1s"},
        "workload": {
            "rate": "max",
            "concurrency": 64 * workers,
            "producers": workers,
            "consumers": workers,
            "workers": workers,
            "payload_bytes": payload_bytes,
            "aggregates": 1000,
        },
        "targets": {"memory": {"driver": "memory"}},
    }
    return expand(scenario_from_dict(raw, "locust_ceiling"))[0]


def measure(workers: int, seconds: float, payload_bytes: int, locust: bool) -> dict[str, Any]:
    p = point(workers, seconds, payload_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        if locust:
            with LocustCluster(workers, log_dir=Path(tmp) / "logs") as cluster:
                summary = PointRunner(
                    p, "ceiling", Path(tmp) / "p", lambda: False, launcher=cluster.launcher(p)
                ).run()
        else:
            summary = PointRunner(p, "ceiling", Path(tmp) / "p", lambda: False).run()
    if summary["status"] != "ok":
        raise SystemExit(f"run failed: {summary['problems']}")
    rate = summary["throughput"]["acked_per_s"]
    return {
        "workers": workers,
        "acked_per_s": rate,
        "per_worker_per_s": rate / workers,
        "cpu_pct_max_worker": summary["harness"]["cpu_pct_max_worker"],
        "client_bound": summary["client_bound"],
        "lost": summary["audit"]["lost"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, Any] = {"seconds": args.seconds, "payload_bytes": args.payload}
    for workers in (1, 2):
        engine = measure(workers, args.seconds, args.payload, locust=False)
        locust = measure(workers, args.seconds, args.payload, locust=True)
        ratio = locust["per_worker_per_s"] / engine["per_worker_per_s"]
        figures[f"x{workers}"] = {"engine": engine, "locust": locust, "ratio": ratio}
        print(
            f"{workers} worker(s): engine {engine['per_worker_per_s']:10,.0f}/s per worker, "
            f"locust {locust['per_worker_per_s']:10,.0f}/s per worker  "
            f"(locust/engine {ratio:.2f})"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
