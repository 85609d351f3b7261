"""Judging one open-loop probe of a capacity search: did the target sustain this rate?

A rate is sustainable when, over the probe's measurement window (after its warm-up), every
one of these holds:

* ``slo KIND.STAT``: each SLO (``--slo`` or the scenario's ``[slo]``) holds;
* ``keeps up``: the target kept up with the schedule: no scheduled event was skipped, at least
  95% of the scheduled events were sent, and the response time (measured from the intended
  send time, so it holds the schedule lag *and* the in-flight queueing) did not trend upwards.
  A target below its capacity has a stationary response time; one above it falls behind by
  ``(rate - capacity) / capacity`` seconds every second, whether the backlog waits in the
  client (schedule lag) or in the broker (in flight);
* ``backlog bounded``: the consumers kept up: neither the acknowledged-but-not-delivered
  events nor the delivery delay (e2e p50 minus response p50) trended upwards;
* ``errors``: failed sends, timeouts and acknowledged losses stay under the threshold
  (default 0.1% of the events sent);
* ``harness``: the harness was not ``client_bound``. When it was, the probe says so and the
  search never reports that rate as the target's limit.

An event store (``workload.kind = "store"``) is judged on commands instead of events: the
schedule offers commands, ``keeps up`` reads the command response time, ``errors`` counts the
commands that were abandoned (retries exhausted, or a failure that no retry cured) against
the commands run, and, when the store has a projector, ``projection keeps up`` stands for the
consumer backlog: the projection lag (commit to read model) must not climb over the window.

A trend is the least-squares slope over the window's per-interval values, times the window
length: one noisy interval moves it little, a steady climb moves it a lot.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.units import format_latency_us

HARNESS = "harness"
KEEPS_UP = "keeps up"
BACKLOG = "backlog bounded"
PROJECTION = "projection keeps up"
# e2e p50 minus response p50 per interval: how long delivery takes beyond the acknowledgement.
DELIVERY = "delivery_delay_us"
ERRORS = "errors"
INVARIANTS = "invariants"
RUN = "run"

# A response-time climb over the window beyond the larger of these is "falling behind".
GROWTH_MIN_MS = 10.0
GROWTH_RELATIVE = 0.5  # of the window's first response-time p50
SENT_FRACTION = 0.95
BACKLOG_MIN_EVENTS = 100
BACKLOG_FRACTION = 0.01  # of the events scheduled in the window


@dataclass(frozen=True)
class Criteria:
    """What "sustainable" means for one search."""

    slo_us: dict[str, float] = field(default_factory=dict)  # "e2e.p99" -> threshold in µs
    error_threshold: float = 0.001


@dataclass
class Check:
    name: str
    passed: bool
    value: str
    limit: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _window_rows(point_dir: Path) -> list[dict[str, str]]:
    path = point_dir / "timeseries.csv"
    try:
        with path.open(newline="") as handle:
            return [row for row in csv.DictReader(handle) if row.get("phase") == "measure"]
    except OSError:
        return []


def trend(rows: list[dict[str, str]], column: str) -> tuple[float | None, float | None]:
    """(growth over the window, first value) of a timeseries column; None without data."""
    points: list[tuple[float, float]] = []
    for row in rows:
        value, at = row.get(column) or "", row.get("t_s") or ""
        if value and at:
            points.append((float(at), float(value)))
    if not points:
        return None, None
    if len(points) < 3:
        return points[-1][1] - points[0][1], points[0][1]
    times = np.array([p[0] for p in points])
    values = np.array([p[1] for p in points])
    slope = float(np.polyfit(times, values, 1)[0])
    return slope * float(times[-1] - times[0]), points[0][1]


def judge(summary: dict[str, Any], point_dir: Path, criteria: Criteria) -> list[Check]:
    """Every check of one open-loop probe, in a fixed order."""
    checks: list[Check] = []
    if summary.get("status") not in ("ok",):
        problems = "; ".join(summary.get("problems") or []) or str(summary.get("status"))
        checks.append(Check(RUN, False, problems[:200], "the point runs"))
    latency = summary.get("latency_us") or {}
    for key, threshold_us in criteria.slo_us.items():
        kind, _, stat = key.partition(".")
        value = (latency.get(kind) or {}).get(stat)
        if value is None:
            checks.append(Check(f"slo {key}", False, "no data", f"<= {_us(threshold_us)}"))
        else:
            checks.append(
                Check(f"slo {key}", value <= threshold_us, _us(value), f"<= {_us(threshold_us)}")
            )
    checks.append(_keeps_up(summary, point_dir))
    workload = summary.get("workload") or {}
    store = summary.get("store") if summary.get("kind") == "store" else None
    if store is not None:
        if (latency.get("e2e") or {}).get("p50") is not None:
            checks.append(_projection(point_dir))
        checks.append(_store_errors(store, criteria))
        checks.append(_invariants(store))
    else:
        if workload.get("consumers"):
            checks.append(_backlog(summary, point_dir))
        checks.append(_errors(summary, criteria))
    if summary.get("kind") == "pipeline":
        # An event lost or applied twice on its way to the read model, or a store that forks
        # a stream, is never sustainable (the audit above covers only the broker hop).
        pipeline = summary.get("pipeline") or {}
        invariants = dict(pipeline.get("invariants") or {})
        store_inv = (summary.get("store") or {}).get("invariants") or {}
        invariants["violations"] = [
            *(invariants.get("violations") or []),
            *(store_inv.get("violations") or []),
        ]
        invariants["ok"] = bool(invariants.get("ok")) and store_inv.get("ok", True) is not False
        checks.append(_invariants({"invariants": invariants}))
    reasons = "; ".join(summary.get("client_bound_reasons") or [])
    checks.append(
        Check(
            HARNESS,
            not summary.get("client_bound"),
            f"client-bound: {reasons}" if summary.get("client_bound") else "not client-bound",
            "not client-bound",
        )
    )
    return checks


def _keeps_up(summary: dict[str, Any], point_dir: Path) -> Check:
    workload = summary.get("workload") or {}
    throughput = summary.get("throughput") or {}
    rate = float(workload.get("rate_per_s") or 0.0)
    sent = float(throughput.get("sent_per_s") or 0.0)
    skipped = int(throughput.get("skipped") or 0)
    growth_us, first_us = trend(_window_rows(point_dir), "response_p50_us")
    allowed_ms = max(GROWTH_MIN_MS, GROWTH_RELATIVE * (first_us or 0.0) / 1e3)
    problems = []
    if skipped:
        problems.append(f"{skipped} skipped")
    if rate and sent < SENT_FRACTION * rate:
        problems.append(f"sent {sent:.0f}/s of {rate:.0f}/s")
    if growth_us is not None and growth_us / 1e3 > allowed_ms:
        problems.append(f"response p50 +{growth_us / 1e3:.1f} ms over the window")
    if problems:
        value = "; ".join(problems)
    else:
        climb = "" if growth_us is None else f", response p50 {growth_us / 1e3:+.1f} ms"
        value = f"sent {sent:.0f}/s{climb}"
    limit = f"sent >= {SENT_FRACTION:.0%}, 0 skipped, p50 climb <= {allowed_ms:.0f} ms"
    return Check(KEEPS_UP, not problems, value, limit)


def _backlog(summary: dict[str, Any], point_dir: Path) -> Check:
    """The consumers keep up: the backlog grows neither in events nor in time. A consumer
    falling behind by a few events a second stays under an event allowance for a long while,
    but the delay from acknowledgement to delivery climbs at once."""
    workload = summary.get("workload") or {}
    rate = float(workload.get("rate_per_s") or 0.0)
    window = float(workload.get("duration_s") or 0.0)
    allowed = max(BACKLOG_MIN_EVENTS, BACKLOG_FRACTION * rate * window)
    rows = _window_rows(point_dir)
    growth, _ = trend(rows, "backlog")
    throughput = summary.get("throughput") or {}
    if growth is None:
        # Results without the backlog column: compare the delivered and acknowledged rates.
        acked = float(throughput.get("acked_per_s") or 0.0)
        received = float(throughput.get("received_per_s") or 0.0)
        growth = (acked - received) * window
    # The delivery delay beyond the acknowledgement (e2e p50 - response p50): a producer side
    # falling behind moves both, and is the keeps-up check's business, not this one's.
    for row in rows:
        e2e, response = row.get("e2e_p50_us") or "", row.get("response_p50_us") or ""
        row[DELIVERY] = str(float(e2e) - float(response)) if e2e and response else ""
    climb_us, first_us = trend(rows, DELIVERY)
    allowed_ms = max(GROWTH_MIN_MS, GROWTH_RELATIVE * max(0.0, first_us or 0.0) / 1e3)
    passed = growth <= allowed
    value = f"{growth:+.0f} events"
    if climb_us is not None:
        passed = passed and climb_us / 1e3 <= allowed_ms
        value += f", delivery delay {climb_us / 1e3:+.1f} ms"
    limit = f"<= +{allowed:.0f} events, delivery delay climb <= {allowed_ms:.0f} ms"
    return Check(BACKLOG, passed, f"{value} over the window", limit)


def _projection(point_dir: Path) -> Check:
    """The projector keeps up when its lag (commit to read model) does not climb."""
    growth_us, first_us = trend(_window_rows(point_dir), "e2e_p50_us")
    allowed_ms = max(GROWTH_MIN_MS, GROWTH_RELATIVE * (first_us or 0.0) / 1e3)
    limit = f"lag p50 climb <= {allowed_ms:.0f} ms"
    if growth_us is None:
        return Check(PROJECTION, True, "no lag measured in the window", limit)
    passed = growth_us / 1e3 <= allowed_ms
    return Check(PROJECTION, passed, f"lag p50 {growth_us / 1e3:+.1f} ms over the window", limit)


def _store_errors(store: dict[str, Any], criteria: Criteria) -> Check:
    """Commands the store could not carry out: abandoned after their retries."""
    commands = int(store.get("commands") or 0)
    abandoned = int(store.get("abandoned") or 0)
    fraction = abandoned / max(1, commands)
    value = (
        f"{fraction:.3%} ({abandoned} of {commands} commands abandoned; "
        f"{int(store.get('errors') or 0)} errors, {int(store.get('conflicts') or 0)} conflicts)"
    )
    return Check(
        ERRORS, fraction <= criteria.error_threshold, value, f"<= {criteria.error_threshold:.2%}"
    )


def _invariants(store: dict[str, Any]) -> Check:
    """A rate at which the store forks a stream or leaves a gap is never sustainable."""
    invariants = store.get("invariants") or {}
    held = invariants.get("ok", True) is not False
    violations = "; ".join((invariants.get("violations") or [])[:2])
    return Check(INVARIANTS, held, "hold" if held else f"violated: {violations}", "hold")


def _errors(summary: dict[str, Any], criteria: Criteria) -> Check:
    audit = summary.get("audit") or {}
    errors = int((summary.get("errors") or {}).get("total") or 0)
    lost = int(audit.get("lost") or 0)
    sent = max(1, int(audit.get("sent") or 0))
    fraction = (errors + lost) / sent
    value = f"{fraction:.3%} ({errors} errors, {lost} lost of {sent})"
    return Check(
        ERRORS, fraction <= criteria.error_threshold, value, f"<= {criteria.error_threshold:.2%}"
    )


def _us(value_us: float) -> str:
    return format_latency_us(value_us)


def verdict(checks: list[Check]) -> str:
    """``pass``, ``client-bound`` (the harness was the limit: no verdict on the target) or
    ``fail``."""
    if all(c.passed for c in checks):
        return "pass"
    if any(c.name == HARNESS and not c.passed for c in checks):
        return "client-bound"
    return "fail"
