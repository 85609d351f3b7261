"""The max-sustainable-rate search (``bench find-max``) and the rate sweep (``bench sweep``).

For one run point (a target at one matrix point) the search:

1. probes saturation with short closed-loop runs, doubling the concurrency until the
   throughput stops growing (by ``RAMP_GROWTH``) or the harness saturates;
2. searches open-loop rates, starting at that saturation throughput: it brackets (x1.5 up
   while probes pass, /2 down while they fail), then bisects until the highest passing rate
   and the lowest failing one are within the requested precision;
3. verifies the answer with a full-length run at that rate (the scenario's duration); if that
   fails, the failing rate becomes the new upper bound and the search goes on.

A probe that failed only its SLOs is repeated once, and the rate fails only if the repeat fails
too: a short window's p99 rests on its few slowest samples, and a single hiccup of the machine
(VM steal measured here: 10 ms stalls of an idle event loop) breaks it.

Every probe is an ordinary run point (its own directory, summary, ``.hlog`` and timeseries),
judged by ``checks.judge``. A probe on which the harness was client-bound is an upper bound
for the search, never the target's limit: the result then says the harness was the limit.

The search knows nothing of the CLI: it calls an ``execute`` function that runs a point into
a directory and returns its summary, and a ``report`` function after each probe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.capacity.checks import Check, Criteria, judge, verdict
from bench.scenario import Fault, RunPoint
from bench.units import format_latency_us
from bench.verdict import SAMPLES_BEYOND, STAT_QUANTILE

RATE_PARAM = "workload.rate"
PROBE_PARAM = "probe"
RAMP_GROWTH = 0.10
RAMP_STEPS = 8
UP_FACTOR = 1.5
DOWN_FACTOR = 0.5
# Without --max-rate, the search does not go beyond this multiple of the closed-loop throughput.
CEILING_FACTOR = 4.0
# Probes at low rates run longer, so an SLO's percentile rests on SAMPLES_BEYOND samples beyond
# it (the verdict's rule), up to this many times the probe's duration.
WINDOW_STRETCH = 4.0


@dataclass(frozen=True)
class Settings:
    precision: float = 0.05
    probe_duration_s: float = 5.0
    warmup_s: float | None = None  # None: the scenario's warm-up
    verify_duration_s: float | None = None  # None: the scenario's duration; 0: no verification
    max_probes: int = 30
    min_rate_per_s: float = 1.0
    max_rate_per_s: float | None = None
    criteria: Criteria = field(default_factory=Criteria)
    # A probe that failed only its SLOs is run once more; the rate fails if that fails too.
    retry_slo_failures: bool = True


@dataclass
class Probe:
    index: int
    phase: str  # ramp, bracket, bisect, retry, verify, sweep
    rate_per_s: float | None  # None: closed loop
    concurrency: int | None
    dir: str
    status: str
    duration_s: float
    achieved_per_s: float
    latency_us: dict[str, dict[str, float | None]]
    client_bound: bool
    checks: list[Check]
    verdict: str  # pass, fail, client-bound; "measured" for closed-loop ramp steps
    # What the target spent at this probe (summary.json's resources; None: not read).
    resources: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.as_dict() for c in self.checks]
        return data

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]


@dataclass
class SearchResult:
    """The answer for one run point, with every probe that led to it."""

    key: str
    label: str
    target: str
    driver: str
    params: dict[str, Any]
    partitions: int
    producers: int
    consumers: int
    workers: int
    kind: str = "stream"  # stream (rates of events) or store (rates of commands)
    writers: int | None = None  # an event store's open-loop writers (producers x max_in_flight)
    status: str = "running"  # found, harness-bound, ceiling, none, budget, failed, interrupted
    max_rate_per_s: float | None = None
    upper_rate_per_s: float | None = None
    precision: float | None = None
    limited_by: list[str] = field(default_factory=list)
    verified: bool = False
    saturation_per_s: float | None = None
    saturation_client_bound: bool = False
    server: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    sweep: list[Probe] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("probes", "sweep")}
        data["probes"] = [p.as_dict() for p in self.probes]
        data["sweep"] = [p.as_dict() for p in self.sweep]
        return data

    @property
    def headline(self) -> str:
        """One line: the answer and what limited it."""
        if self.max_rate_per_s is None:
            return f"{self.label}: no sustainable rate found ({self.status})"
        text = f"{self.label}: max sustainable {self.max_rate_per_s:,.0f}/s"
        if self.precision is not None:
            text += f" (within {self.precision:.1%})"
        if self.limited_by:
            text += f", limited by {', '.join(self.limited_by)}"
        if self.status == "harness-bound":
            text += ": the harness was the limit, the target's own limit is higher"
        elif self.status == "budget" and not self.verified:
            text += ": the probe budget ran out before a full-length run confirmed it"
        return text


def _cost(resources: Any) -> dict[str, Any] | None:
    """The figures of a probe's target resources that sizing uses."""
    if not isinstance(resources, dict):
        return None
    keys = ("processes", "cpu_pct", "cpu_s_per_mev", "mem_peak_bytes", "mem_kind")
    return {key: resources.get(key) for key in keys}


Execute = Callable[[RunPoint, str], tuple[dict[str, Any], Path]]
Report = Callable[[SearchResult, Probe], None]


class Search:
    """One run point's search; ``execute`` runs a probe point into a named directory."""

    def __init__(
        self,
        base: RunPoint,
        ordinal: int,
        settings: Settings,
        execute: Execute,
        report: Report,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.base = base
        self.ordinal = ordinal
        self.settings = settings
        self.execute = execute
        self.report = report
        self.stop_requested = stop_requested
        w = base.workload
        meta = base.scenario.scenario
        self.warmup_s = settings.warmup_s if settings.warmup_s is not None else meta.warmup
        verify = settings.verify_duration_s
        self.verify_duration_s = meta.duration if verify is None else verify
        self.result = SearchResult(
            key=search_key(base),
            label=base.label,
            target=base.target,
            driver=base.driver,
            params=dict(base.params),
            partitions=w.partitions,
            producers=w.producers,
            consumers=w.consumers if w.kind in ("stream", "pipeline") else 0,
            workers=w.workers,
            kind=w.kind,
            # Open loop, a store runs max_in_flight commands at once per producer.
            writers=w.producers * w.max_in_flight if w.kind == "store" else None,
        )

    # ------------------------------------------------------------------ probes
    def _point(
        self,
        rate: float | None,
        concurrency: int | None,
        phase: str,
        duration_s: float,
        fraction: float | None = None,
    ) -> RunPoint:
        base = self.base
        w = base.workload
        meta = base.scenario.scenario
        workload = w.model_copy(
            update={
                "rate": "max" if rate is None else float(rate),
                "concurrency": concurrency or w.concurrency,
            }
        )
        scenario_meta = meta.model_copy(
            update={
                "duration": duration_s,
                "warmup": self.warmup_s,
                # At least five intervals in the window, for the trends the checks read.
                "interval": min(meta.interval, duration_s / 5),
                # An overloaded probe's backlog is skipped (and counted) instead of drained.
                "drain_timeout": min(meta.drain_timeout, 2 * duration_s + 2),
            }
        )
        slo = {key: us / 1e6 for key, us in self.settings.criteria.slo_us.items()}
        scenario = base.scenario.model_copy(
            update={"workload": workload, "scenario": scenario_meta, "slo": slo}
        )
        params: dict[str, Any] = {**base.params, PROBE_PARAM: phase}
        if rate is None:
            params[RATE_PARAM] = "max"
            params["workload.concurrency"] = concurrency
        elif fraction is not None:
            # Sweep points compare across runs by their fraction of the max, not their rate.
            params["fraction"] = fraction
        else:
            params[RATE_PARAM] = round(rate, 1)
        # replace(): a pipeline point keeps its store (store_target, store_config).
        return dataclasses.replace(
            base,
            index=self.ordinal * 1000 + len(self.result.probes) + len(self.result.sweep),
            scenario=scenario,
            params=params,
        )

    def probe(
        self,
        phase: str,
        rate: float | None,
        concurrency: int | None = None,
        duration_s: float | None = None,
        fraction: float | None = None,
    ) -> Probe:
        duration = duration_s or self.settings.probe_duration_s
        if rate:
            duration = self._long_enough(rate, duration)
        point = self._point(rate, concurrency, phase, duration, fraction)
        number = len(self.result.probes) + len(self.result.sweep)
        what = f"c{concurrency}" if rate is None else f"{rate:.0f}"
        slug = f"{self.ordinal:02d}-{self.base.target}-{number:02d}-{phase}-{what}"
        summary, point_dir = self.execute(point, slug)
        latency = {
            kind: {
                stat: (summary.get("latency_us") or {}).get(kind, {}).get(stat)
                for stat in ("p50", "p99", "p999", "max")
            }
            for kind in (
                ("e2e", "response", "service", "schedule_lag", "visible")
                if point.workload.kind == "pipeline"
                else ("e2e", "response", "service", "schedule_lag")
            )
        }
        if rate is None:
            checks: list[Check] = []
            outcome = "client-bound" if summary.get("client_bound") else "measured"
            if summary.get("status") != "ok":
                outcome = "fail"
        else:
            checks = judge(summary, point_dir, self.settings.criteria)
            outcome = verdict(checks)
        info = summary.get("target_info") or {}
        if info and not self.result.server:
            self.result.server = {"product": info.get("product"), "version": info.get("version")}
        probe = Probe(
            index=number,
            phase=phase,
            rate_per_s=rate,
            concurrency=concurrency,
            dir=point_dir.name,
            status=str(summary.get("status")),
            duration_s=duration,
            achieved_per_s=_achieved(summary),
            latency_us=latency,
            client_bound=bool(summary.get("client_bound")),
            checks=checks,
            verdict=outcome,
            resources=_cost(summary.get("resources")),
        )
        if phase == "sweep":
            self.result.sweep.append(probe)
        else:
            self.result.probes.append(probe)
        self.report(self.result, probe)
        return probe

    def fault_point(self, rate: float, duration_s: float, fault: Fault) -> tuple[RunPoint, str]:
        """An open-loop point at ``rate`` with ``fault`` on its timeline, and its directory's
        name (``bench choose``'s fault step). It is no probe: a fault's errors say nothing of
        the rate, so it joins neither the search nor the sweep."""
        point = self._point(rate, None, "fault", duration_s, None)
        # Its index follows the search's and the sweep's points: nothing of this search runs
        # after it.
        point = dataclasses.replace(
            point, scenario=point.scenario.model_copy(update={"faults": [fault]})
        )
        number = len(self.result.probes) + len(self.result.sweep)
        slug = f"{self.ordinal:02d}-{self.base.target}-{number:02d}-fault-{rate:.0f}"
        return point, slug

    def _long_enough(self, rate: float, duration_s: float) -> float:
        """A window that holds enough samples for the SLOs' percentiles: ten beyond each
        (1,000 for a p99, 10,000 for a p99.9), up to ``WINDOW_STRETCH`` times the probe.
        A p99 over a few dozen samples is just their maximum, one hiccup of the machine."""
        needed = max(
            (SAMPLES_BEYOND / (1 - STAT_QUANTILE[key.split(".")[1]])
             for key in self.settings.criteria.slo_us
             if key.split(".")[1] in STAT_QUANTILE),
            default=0.0,
        )  # fmt: skip
        return max(duration_s, min(needed / rate, WINDOW_STRETCH * duration_s))

    def _budget_left(self) -> bool:
        return len(self.result.probes) < self.settings.max_probes

    # ------------------------------------------------------------------ find-max
    def saturation(self) -> float | None:
        """Closed-loop ramp: the highest throughput, or None when nothing was acknowledged."""
        w = self.base.workload
        concurrency = max(1, w.producers)
        best = 0.0
        for _ in range(RAMP_STEPS):
            if self.stop_requested() or not self._budget_left():
                break
            probe = self.probe(
                "ramp", None, concurrency, max(1.0, self.settings.probe_duration_s / 2)
            )
            if probe.status == "failed":
                self.result.notes.append(
                    f"closed-loop probe c{concurrency} failed: see {probe.dir}"
                )
                break
            grew = probe.achieved_per_s > best * (1 + RAMP_GROWTH)
            if probe.achieved_per_s > best:
                best = probe.achieved_per_s
                self.result.saturation_client_bound = probe.client_bound
            if not grew or probe.client_bound or concurrency * 2 > 100_000:
                break
            concurrency *= 2
        self.result.saturation_per_s = best or None
        if self.result.saturation_client_bound:
            self.result.notes.append(
                f"the closed-loop saturation throughput ({best:,.0f}/s) was client-bound: the "
                "harness, not the target, capped it"
            )
        return best or None

    def find_max(self) -> SearchResult:
        result = self.result
        settings = self.settings
        start = self.saturation()
        if self.stop_requested():
            result.status = "interrupted"
            return result
        if not start:
            result.status = "failed"
            result.notes.append("the target acknowledged nothing in the closed-loop probes")
            return result
        ceiling = settings.max_rate_per_s or start * CEILING_FACTOR
        start = min(start, ceiling)
        lo: Probe | None = None
        hi: Probe | None = None
        passes: list[Probe] = []
        verified_at: float | None = None
        while True:
            if self.stop_requested():
                result.status = "interrupted"
                break
            if not self._budget_left():
                result.status = "budget"
                result.notes.append(f"stopped after {settings.max_probes} probes (--max-probes)")
                break
            phase = "bracket"
            duration: float | None = None
            if lo is None and hi is None:
                rate = start
            elif lo is None:
                assert hi is not None and hi.rate_per_s is not None
                rate = hi.rate_per_s * DOWN_FACTOR
                if rate < settings.min_rate_per_s:
                    result.status = "none"
                    result.notes.append(
                        f"no rate down to {settings.min_rate_per_s:g}/s was sustainable"
                    )
                    break
            elif hi is None:
                assert lo.rate_per_s is not None
                if lo.rate_per_s >= ceiling * (1 - 1e-9):
                    if self.verify_duration_s and verified_at != lo.rate_per_s:
                        phase, rate, duration = "verify", lo.rate_per_s, self.verify_duration_s
                    else:
                        result.status = "ceiling"
                        result.notes.append(
                            f"sustained the highest rate searched ({ceiling:,.0f}/s): the limit "
                            "is higher (raise --max-rate)"
                        )
                        break
                else:
                    rate = min(lo.rate_per_s * UP_FACTOR, ceiling)
            else:
                assert lo.rate_per_s is not None and hi.rate_per_s is not None
                if (hi.rate_per_s - lo.rate_per_s) / lo.rate_per_s > settings.precision:
                    phase = "bisect"
                    rate = (lo.rate_per_s + hi.rate_per_s) / 2
                elif self.verify_duration_s and verified_at != lo.rate_per_s:
                    phase, rate, duration = "verify", lo.rate_per_s, self.verify_duration_s
                else:
                    result.status = "found"
                    break
            probe = self.probe(phase, rate, duration_s=duration)
            if (
                probe.verdict == "fail"
                and settings.retry_slo_failures
                and slo_only(probe)
                and self._budget_left()
                and not self.stop_requested()
            ):
                # A p99 over a few seconds rests on its few slowest samples, and one hiccup
                # of the machine (a VM steal, a pause) can break it: a rate fails its SLO only
                # when a second probe confirms it.
                again = "verify" if phase == "verify" else "retry"
                probe = self.probe(again, rate, duration_s=duration)
            if probe.status == "interrupted" or self.stop_requested():
                # A cut-short probe says nothing about the rate: it bounds nothing.
                result.status = "interrupted"
                break
            if probe.verdict == "pass":
                passes.append(probe)
                if phase == "verify":
                    verified_at = rate
                if lo is None or rate > (lo.rate_per_s or 0):
                    lo = probe
            else:
                hi = probe if hi is None or rate <= (hi.rate_per_s or math.inf) else hi
                if phase == "verify" or (lo is not None and rate <= (lo.rate_per_s or 0)):
                    # The longer run failed where the short one passed: that rate is an upper
                    # bound now; fall back to the best pass below it.
                    below = [p for p in passes if (p.rate_per_s or 0) < rate]
                    lo = max(below, key=lambda p: p.rate_per_s or 0) if below else None
                    verified_at = None
        self._conclude(lo, hi, verified_at)
        return result

    def _conclude(self, lo: Probe | None, hi: Probe | None, verified_at: float | None) -> None:
        result = self.result
        short_passes = {
            p.rate_per_s for p in result.probes if p.phase != "verify" and p.verdict == "pass"
        }
        overturned = sorted(
            {
                p.rate_per_s
                for p in result.probes
                if p.phase == "verify"
                and p.verdict == "fail"
                and p.rate_per_s is not None
                and p.rate_per_s in short_passes
            }
        )
        if len(overturned) >= 2:
            rates = ", ".join(f"{r:,.0f}/s" for r in overturned)
            result.notes.append(
                f"full-length runs failed at {len(overturned)} rates where short probes had "
                f"passed ({rates}): latency climbs over a longer run (the target degrades with "
                "time or with the data it holds), so what it sustains depends on how long it "
                "runs; check the answer with a bench run as long as the real load"
            )
        if lo is not None:
            result.max_rate_per_s = lo.rate_per_s
            result.verified = verified_at is not None and verified_at == lo.rate_per_s
        if hi is not None:
            result.upper_rate_per_s = hi.rate_per_s
            result.limited_by = hi.failed_checks
            if lo is not None and lo.rate_per_s and hi.rate_per_s:
                result.precision = (hi.rate_per_s - lo.rate_per_s) / lo.rate_per_s
            if hi.verdict == "client-bound" and result.status in ("found", "budget"):
                result.status = "harness-bound"
                sustained = (
                    f"The target sustained {lo.rate_per_s:,.0f}/s"
                    if lo is not None and lo.rate_per_s
                    else "No lower rate was confirmed before the search ended"
                )
                result.notes.append(
                    f"at {hi.rate_per_s:,.0f}/s the harness was the limit "
                    f"({_check_value(hi, 'harness')}). {sustained}; the target's own limit is "
                    "higher. Add workers (workload.workers) or machines (bench locust) to find it"
                )

    # ------------------------------------------------------------------ sweep
    def sweep(self, max_rate: float, fractions: list[float], duration_s: float) -> SearchResult:
        for fraction in fractions:
            if self.stop_requested():
                self.result.status = "interrupted"
                break
            self.probe("sweep", max_rate * fraction, duration_s=duration_s, fraction=fraction)
        return self.result


def _achieved(summary: dict[str, Any]) -> float:
    """The rate a probe achieved: events acknowledged, or for an event store commands run
    (a rejected command is an answer too, and it appends nothing)."""
    throughput = summary.get("throughput") or {}
    if summary.get("kind") == "pipeline":
        # A pipeline's rate is what reached the read model, not what the store committed.
        return float(throughput.get("received_per_s") or 0.0)
    key = "sent_per_s" if summary.get("kind") == "store" else "acked_per_s"
    return float(throughput.get(key) or 0.0)


def slo_only(probe: Probe) -> bool:
    failed = probe.failed_checks
    return bool(failed) and all(name.startswith("slo ") for name in failed)


def _check_value(probe: Probe, name: str) -> str:
    for check in probe.checks:
        if check.name == name:
            return check.value
    return ""


def search_key(point: RunPoint) -> str:
    """The point's identity across runs: the key compare and check match points by."""
    from bench.report.tables import point_key

    return point_key({"target": point.target, "params": point.params})


def probe_line(probe: Probe, store: bool = False) -> str:
    """One progress line for a finished probe (an event store's: commands run, response)."""
    what = (
        f"closed loop c{probe.concurrency}"
        if probe.rate_per_s is None
        else f"{probe.rate_per_s:,.0f}/s"
    )
    e2e = probe.latency_us["e2e"]
    response = probe.latency_us["response"]
    lat = e2e if e2e.get("p99") is not None and not store else response
    name = "e2e" if lat is e2e else "resp"
    done = "ran" if store else "acked"
    visible = probe.latency_us.get("visible") or {}
    if visible.get("p99") is not None:
        # A pipeline probe: rated by what reached the read model, judged on visible.
        lat, name, done = visible, "visible", "applied"
    text = (
        f"  {probe.index:2d} {probe.phase:<7} {what:>16}  {done} {probe.achieved_per_s:9,.0f}/s  "
        f"{name} p50 {format_latency_us(lat.get('p50')):>8} "
        f"p99 {format_latency_us(lat.get('p99')):>8}"
    )
    if probe.checks:
        marks = " ".join(
            ("+" if c.passed else "x") + c.name.replace(" ", "-") for c in probe.checks
        )
        text += f"  {marks}"
    return f"{text}  -> {probe.verdict}"
