"""A run's stream points as OMB ``TestResult`` JSON (``bench export-omb RUN_DIR``), so that
OMB's own chart script (``bin/create_charts.py``) and anything else that reads OMB results read
eventbench's.

One file per point, in the run directory: ``<point dir>-omb.json``. OMB's units: publish and
end-to-end latencies in milliseconds, publish delay in microseconds, rates per second. The
per-interval lists cover the measurement window's intervals (OMB drops its warm-up the same
way); the aggregated figures and quantile maps are the window's histograms, the ones every
eventbench table reads.

Which latency is which (the file says it too, under ``eventbench.latency``):

* ``publishLatency``: send -> acknowledgement, eventbench's ``service`` latency (OMB's own
  definition);
* ``publishDelayLatency``: intended send time -> send, eventbench's ``schedule_lag`` (OMB's
  own definition);
* ``endToEndLatency``: eventbench's ``e2e``, from the *intended* send time to the delivery.
  OMB measures it from the send, so this one also holds the publish delay: it is the latency a
  user of an open-loop system sees, never lower than OMB's for the same run.

eventbench's ``response`` latency (intended -> acknowledgement) is what OMB would call publish
latency plus publish delay; it is under ``eventbench.response_ms``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.errors import ResultsError
from bench.metrics.hlog import read_intervals, read_window
from bench.store import atomic_write_text, load_run

# OMB's percentile fields, by suffix.
PERCENTILES = (
    ("50pct", 50.0),
    ("75pct", 75.0),
    ("95pct", 95.0),
    ("99pct", 99.0),
    ("999pct", 99.9),
    ("9999pct", 99.99),
    ("99999pct", 99.999),
)
# Every field of OMB's TestResult (io.openmessaging.benchmark.TestResult), in its order.
SERIES = ("publishLatency", "publishDelayLatency", "endToEndLatency")
TEST_RESULT_FIELDS = (
    "workload",
    "driver",
    "messageSize",
    "topics",
    "partitions",
    "producersPerTopic",
    "consumersPerTopic",
    "publishRate",
    "publishErrorRate",
    "consumeRate",
    "backlog",
    *(
        f"{series}{suffix}"
        for series in SERIES
        for suffix in ("Avg", *(p for p, _ in PERCENTILES), "Max")
    ),
    *(
        f"aggregated{series[0].upper()}{series[1:]}{suffix}"
        for series in SERIES
        for suffix in ("Avg", *(p for p, _ in PERCENTILES), "Max")
    ),
    *(f"aggregated{series[0].upper()}{series[1:]}Quantiles" for series in SERIES),
)
# eventbench latency kind -> OMB series, and its unit divisor from ns.
KINDS = {
    "publishLatency": ("service", 1e6),
    "publishDelayLatency": ("schedule_lag", 1e3),
    "endToEndLatency": ("e2e", 1e6),
}
SUFFIX = "-omb.json"


def _stats(hist: HdrHistogram | None, divisor: float, whole: bool) -> dict[str, float | int]:
    """Avg, the percentiles and max of a histogram (values in ns) in OMB's unit."""

    def unit(ns: float) -> float | int:
        value = ns / divisor
        return round(value) if whole else round(value, 3)

    if hist is None or hist.get_total_count() == 0:
        return {"Avg": 0.0, **{suffix: unit(0) for suffix, _ in PERCENTILES}, "Max": unit(0)}
    return {
        "Avg": round(hist.get_mean_value() / divisor, 3),
        **{suffix: unit(hist.get_value_at_percentile(p)) for suffix, p in PERCENTILES},
        "Max": unit(hist.get_max_value()),
    }


def _quantiles(hist: HdrHistogram | None, divisor: float, whole: bool) -> dict[str, float | int]:
    """OMB's quantile map: percentile level -> value, from HdrHistogram's percentile
    iteration (5 ticks per half distance), as OMB writes it."""
    if hist is None or hist.get_total_count() == 0:
        return {}
    out: dict[str, float | int] = {}
    for item in hist.get_percentile_iterator(5):
        value = item.value_iterated_to / divisor
        out[repr(float(item.percentile_level_iterated_to))] = (
            round(value) if whole else round(value, 3)
        )
    return out


def _series(point_dir: Path, kind: str) -> dict[float, HdrHistogram]:
    path = point_dir / f"{kind}.hlog"
    if not path.exists():
        return {}
    return {round(i.start_s, 3): i.histogram for i in read_intervals(path)}


def point_result(
    run_dir: Path, summary: dict[str, Any], manifest: dict[str, Any]
) -> dict[str, Any]:
    """One stream point's TestResult."""
    point_dir = run_dir / str(summary.get("dir"))
    rows = _timeseries(point_dir / "timeseries.csv")
    measured = [r for r in rows if r["phase"] == "measure"]
    workload = summary.get("workload") or {}
    topology = summary.get("topology") or {}
    topics = max(1, int(topology.get("topics") or workload.get("topics") or 1))
    result: dict[str, Any] = {
        "workload": ((manifest.get("scenario") or {}).get("scenario") or {}).get("name")
        or summary.get("run_id"),
        "driver": summary.get("target"),
        "messageSize": workload.get("payload_bytes")
        if isinstance(workload.get("payload_bytes"), int)
        else 0,
        "topics": topics,
        "partitions": int(topology.get("partitions") or workload.get("partitions") or 0),
        # OMB counts per topic; eventbench's producers and consumers are totals over topics.
        "producersPerTopic": int(workload.get("producers") or 0) // topics,
        "consumersPerTopic": int(workload.get("consumers") or 0) // topics,
    }

    interval_s = [float(r["interval_s"]) for r in measured]
    result["publishRate"] = [float(r["acked_per_s"]) for r in measured]
    result["publishErrorRate"] = [
        float(r["errors"]) / s if s > 0 else 0.0 for r, s in zip(measured, interval_s, strict=True)
    ]
    result["consumeRate"] = [float(r["received_per_s"]) for r in measured]
    result["backlog"] = [int(float(r["backlog"] or 0)) for r in measured]
    # Each interval's histogram starts where its timeseries row does (t_s is its end).
    starts = [round(float(r["t_s"]) - s, 3) for r, s in zip(measured, interval_s, strict=True)]
    for series, (kind, divisor) in KINDS.items():
        whole = series == "publishDelayLatency"
        by_start = _series(point_dir, kind)
        per_interval = [_stats(_near(by_start, start), divisor, whole) for start in starts]
        for suffix in ("Avg", *(p for p, _ in PERCENTILES), "Max"):
            result[f"{series}{suffix}"] = [stats[suffix] for stats in per_interval]
        window_path = point_dir / f"{kind}.hlog"
        window = read_window(window_path) if window_path.exists() else None
        hist = window.histogram if window is not None else None
        name = f"aggregated{series[0].upper()}{series[1:]}"
        for suffix, value in _stats(hist, divisor, whole).items():
            result[f"{name}{suffix}"] = value
        result[f"{name}Quantiles"] = _quantiles(hist, divisor, whole)
    response = (summary.get("latency_us") or {}).get("response") or {}
    result["eventbench"] = {
        "run_id": summary.get("run_id"),
        "point": summary.get("label"),
        "target": summary.get("target"),
        "driver": summary.get("driver"),
        "latency": {
            "publishLatency": "send -> acknowledgement (eventbench service; OMB's definition)",
            "publishDelayLatency": "intended send -> send (eventbench schedule_lag; OMB's "
            "definition), microseconds",
            "endToEndLatency": "intended send -> delivery (eventbench e2e): OMB measures from "
            "the send, so this one also holds the publish delay",
        },
        "rates": {
            "publishRate": "acknowledged messages per second",
            "publishErrorRate": "every error the run counted per second: failed sends and "
            "what the client reported (a disconnect, a reconnect)",
            "backlog": "acknowledged and not yet delivered, at each interval's end",
        },
        "response_ms": {
            key: (round(float(value) / 1e3, 3) if value is not None else None)
            for key, value in response.items()
            if key in ("p50", "p99", "p999", "max", "mean")
        },
        "audit": summary.get("audit"),
        "verdict": summary.get("verdict"),
        "status": summary.get("status"),
        # Creating and removing the point's topics (a shared target's; null in-process).
        "topics_created_ms": _ms(topology.get("create_s")),
        "topics_removed_ms": _ms(topology.get("remove_s")),
        # workload.backlog's build and drain, and what the target spent (null: none, or the
        # target was not read on this host).
        "backlog": summary.get("backlog"),
        "resources": summary.get("resources"),
    }
    return result


def _ms(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) * 1000, 1)


def _near(by_start: dict[float, HdrHistogram], start: float) -> HdrHistogram | None:
    """The interval histogram that starts at ``start`` (to the millisecond)."""
    hist = by_start.get(round(start, 3))
    if hist is not None:
        return hist
    close = [s for s in by_start if abs(s - start) < 0.0015]
    return by_start[close[0]] if close else None


def _timeseries(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing (a stream point writes one)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from None
    # Each row's interval length: the gap to the previous row's end (the first: its t_s).
    previous = 0.0
    for row in rows:
        try:
            end = float(row["t_s"])
        except (KeyError, ValueError):
            raise ResultsError(f"{path}: t_s: expected a number in every row") from None
        row["interval_s"] = str(max(end - previous, 0.0))
        previous = end
    return rows


def export_run(run_dir: Path) -> list[Path]:
    """Write every stream point's TestResult next to the run's manifest; the files written.
    A run with no stream point is a ResultsError (OMB results are of message streams)."""
    results = load_run(run_dir)
    written = []
    for summary in results.summaries:
        if summary.get("kind", "stream") != "stream":
            continue
        result = point_result(run_dir, summary, results.manifest)
        path = run_dir / f"{summary.get('dir')}{SUFFIX}"
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        written.append(path)
    if not written:
        raise ResultsError(
            f"{run_dir}: no stream point to export (OMB results describe message streams)"
        )
    return written
