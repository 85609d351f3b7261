"""Fabricated results directories with known values, for the report, compare, gate and history
tests (golden runs built by the tests themselves, so no binary fixture goes stale).

A fabricated run looks like one ``bench run`` wrote: ``manifest.json``, and per point
``summary.json``, the ``.hlog`` interval logs (real HdrHistograms, standard encoding),
``timeseries.csv``. Latencies are lognormal around a chosen median, drawn from a seeded
generator; the summary's percentiles are computed from the merged measurement-window
histograms, exactly as the runner does. Warm-up intervals carry a planted 10 s outlier, so a
reader that forgets to cut the warm-up shows it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine.intervals import TIMESERIES_COLUMNS
from bench.engine.workers import KINDS
from bench.metrics.hlog import HlogWriter
from bench.metrics.recorder import encode, merge_into, new_histogram, record_values, stats_us

WARMUP_OUTLIER_NS = 10_000_000_000
TIMESERIES_HEADER = list(TIMESERIES_COLUMNS)  # the runner's own columns


@dataclass
class PointSpec:
    """What one fabricated point measured."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)
    e2e_median_us: float = 2000.0
    sigma: float = 0.25
    scale: float = 1.0  # multiplies every latency: a run-level effect (regression, noise)
    rate_per_s: float = 1000.0
    throughput_factor: float = 1.0  # achieved / offered
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    errors: int = 0
    slo_e2e_p99_us: float | None = 50_000.0
    status: str = "ok"
    client_bound: bool = False
    invariants: dict[str, Any] | None = None
    # The target's CPU-seconds per million events (summary["resources"]); None: not read.
    cpu_s_per_mev: float | None = None


def _label(spec: PointSpec) -> str:
    params = " ".join(f"{k.split('.')[-1]}={v}" for k, v in spec.params.items())
    return f"{spec.target} {params}".strip()


def _slug(index: int, spec: PointSpec) -> str:
    params = "-".join(f"{k.split('.')[-1]}{v}" for k, v in spec.params.items())
    return f"{index:03d}-{spec.target}" + (f"-{params}" if params else "")


def make_run(
    root: Path,
    run_id: str,
    points: list[PointSpec],
    *,
    scenario: str = "golden",
    started_at: float = 1_790_000_000.0,
    seed: int = 0,
    warmup_s: int = 1,
    duration_s: int = 3,
    git_revision: str = "0123456789abcdef0123456789abcdef01234567",
) -> Path:
    """Write a complete results directory ``root/run_id`` and return its path."""
    rng = np.random.default_rng(seed)
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    manifest_points = []
    for index, spec in enumerate(points):
        slug = _slug(index, spec)
        point_dir = run_dir / slug
        point_dir.mkdir()
        manifest_points.append(
            {
                "index": index,
                "target": spec.target,
                "label": _label(spec),
                "dir": slug,
                "status": spec.status,
            }
        )
        _write_point(point_dir, run_id, index, spec, rng, started_at, warmup_s, duration_s)
    manifest = {
        "schema_version": 1,
        "run_id": run_id,
        "scenario_file": f"scenarios/{scenario}.toml",
        "scenario": {
            "scenario": {
                "name": scenario,
                "description": "fabricated for the tests",
                "duration": f"{duration_s}s",
                "warmup": f"{warmup_s}s",
            },
            "slo": {"e2e.p99": "50ms"},
        },
        "overrides": [],
        "environment": {
            "host": "testhost",
            "platform": "Linux-test",
            "cpu_model": "Test CPU",
            "cpu_count": 4,
            "memory_bytes": 8 * 2**30,
            "load_average": [0.1, 0.1, 0.1],
            "python": "3.11.0",
            "eventbench": "0.1.0",
            "git": {"revision": git_revision, "dirty": False},
            "libraries": {"numpy": "2"},
        },
        "started_at": started_at,
        "ended_at": started_at + warmup_s + duration_s + 2,
        "status": "failed" if any(p.status == "failed" for p in points) else "ok",
        "points": manifest_points,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_dir


def _write_point(
    point_dir: Path,
    run_id: str,
    index: int,
    spec: PointSpec,
    rng: np.random.Generator,
    started_at: float,
    warmup_s: int,
    duration_s: int,
) -> None:
    medians_us = {
        "e2e": spec.e2e_median_us,
        "response": spec.e2e_median_us * 0.8,
        "response_ok": spec.e2e_median_us * 0.8,
        "service": spec.e2e_median_us * 0.7,
        "schedule_lag": 20.0,
    }
    per_interval = int(spec.rate_per_s * spec.throughput_factor)
    intervals = warmup_s + duration_s + 1  # warm-up, measurement, one drain interval
    writers = {k: HlogWriter(point_dir / f"{k}.hlog", started_at, k) for k in KINDS}
    measured = {k: new_histogram() for k in KINDS}
    rows = []
    for k in range(intervals):
        phase = "warmup" if k < warmup_s else "measure" if k < warmup_s + duration_s else "drain"
        hists = {}
        for kind in KINDS:
            scale = spec.scale if kind != "schedule_lag" else 1.0
            values = rng.lognormal(np.log(medians_us[kind] * scale * 1e3), spec.sigma, per_interval)
            values_ns = values.astype(np.int64)
            if phase == "warmup":
                values_ns[0] = WARMUP_OUTLIER_NS
            hist = new_histogram()
            record_values(hist, values_ns)
            writers[kind].write(float(k), 1.0, encode(hist), hist.get_max_value())
            if phase == "measure":
                merge_into(measured[kind], hist)
            hists[kind] = stats_us(hist)
        rate = spec.rate_per_s * spec.throughput_factor
        rows.append(
            [
                k + 1,
                float(k + 1),
                phase,
                spec.rate_per_s,
                rate,
                rate,
                0,
                4,
                hists["response"].p50,
                hists["response"].p99,
                hists["service"].p99,
                hists["schedule_lag"].p99,
                hists["e2e"].p50,
                hists["e2e"].p99,
                hists["e2e"].max,
                50.0,
                20.0,
                0,
            ]
        )
    for kind, writer in writers.items():
        hist = measured[kind]
        writer.write_window(float(warmup_s), float(duration_s), encode(hist), hist.get_max_value())
        writer.close()
    with (point_dir / "timeseries.csv").open("w", newline="") as handle:
        writer_csv = csv.writer(handle)
        writer_csv.writerow(TIMESERIES_HEADER)
        writer_csv.writerows(rows)
    latency = {}
    for kind in KINDS:
        latency[kind] = {**stats_us(measured[kind]).as_dict(), "negative": 0, "clamped": 0}
    slo = {}
    if spec.slo_e2e_p99_us is not None:
        value = latency["e2e"]["p99"]
        slo["e2e.p99"] = {
            "threshold_us": spec.slo_e2e_p99_us,
            "value_us": value,
            "pass": value is not None and value <= spec.slo_e2e_p99_us,
        }
    achieved = spec.rate_per_s * spec.throughput_factor
    sent = int(spec.rate_per_s * (warmup_s + duration_s))
    summary: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id,
        "point": index,
        "dir": point_dir.name,
        "target": spec.target,
        "driver": "memory",
        "label": _label(spec),
        "params": spec.params,
        "mode": f"open-loop poisson {spec.rate_per_s:g}/s",
        "closed_loop": False,
        "workload": {
            "rate_per_s": spec.rate_per_s,
            "duration_s": float(duration_s),
            "warmup_s": float(warmup_s),
        },
        "throughput": {
            "sent_per_s": spec.rate_per_s,
            "acked_per_s": achieved,
            "received_per_s": achieved,
            "skipped": 0,
        },
        "latency_us": latency,
        "audit": {
            "sent": sent,
            "acked": sent,
            "received": sent - spec.lost + spec.duplicated,
            "lost": spec.lost,
            "duplicated": spec.duplicated,
            "reordered": spec.reordered,
        },
        "errors": {
            "total": spec.errors,
            "by_kind": {"timeout": spec.errors} if spec.errors else {},
        },
        "client_bound": spec.client_bound,
        "client_bound_reasons": ["a worker used 100% of a core"] if spec.client_bound else [],
        "slo": slo,
        "target_info": {"product": f"Fake {spec.target}", "version": "1.2.3"},
        "started_at": started_at,
        "ended_at": started_at + warmup_s + duration_s,
        "status": spec.status,
        "problems": ["the target went away"] if spec.status == "failed" else [],
    }
    if spec.invariants is not None:
        summary["invariants"] = spec.invariants
    if spec.cpu_s_per_mev is not None:
        summary["resources"] = {
            "source": "local",
            "processes": [f"fake-{spec.target}"],
            "cpu_s_per_mev": spec.cpu_s_per_mev,
            "mem_peak_bytes": 100 * 2**20,
            "write_amplification": 1.5,
        }
    (point_dir / "summary.json").write_text(json.dumps(summary, indent=2))


# --------------------------------------------------------------------------- golden sets

BASE_POINTS = (
    PointSpec("memory", e2e_median_us=2000.0),
    PointSpec("kafka", e2e_median_us=10_000.0),
)


def points(**overrides: dict[str, Any]) -> list[PointSpec]:
    """The two golden points, with per-target field overrides: points(kafka={"scale": 1.5})."""
    out = []
    for base in BASE_POINTS:
        fields = {**base.__dict__, "params": dict(base.params), **overrides.get(base.target, {})}
        out.append(PointSpec(**fields))
    return out
