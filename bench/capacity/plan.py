"""Sizing (``bench plan``): from measured sustainable rates to partitions and consumers.

The model is deliberately simple and says so: throughput scales linearly with partitions
(Kafka partitions, RabbitMQ queues, NATS subjects), at the per-partition rate that was
measured, and with consumers at the per-consumer rate that was measured. Both stop being
true somewhere: at the broker's disks, network or CPU, at the consumer group's coordinator,
at the client machines. So every row says how far it extrapolates beyond the highest total
rate that was actually sustained, and flags the rows that go far beyond it.

When a target was searched at several partition counts (a ``[matrix]`` over
``workload.partitions``), the measured scaling efficiency is shown, and the per-partition
rate of the largest measured count is used: per-partition rates usually fall as partitions
grow, so that is the conservative choice.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.drivers.base import Sizing, load_driver, sizing_of
from bench.errors import BenchError, ScenarioError
from bench.units import format_bytes

# Beyond this multiple of the highest measured total, a row is flagged as a far extrapolation.
FAR_EXTRAPOLATION = 2.0

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*(?:/\s*s)?\s*$")


def parse_rate(text: str, field_name: str = "--load") -> float:
    """``15000/s``, ``15k/s``, ``1.5M`` -> events per second."""
    match = _RATE_RE.match(text)
    if not match:
        raise ScenarioError(
            "bench", field_name, f"{text!r} is not a rate", hint="write it as 15000/s or 15k/s"
        )
    value = float(match.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[match.group(2)]
    if value <= 0:
        raise ScenarioError("bench", field_name, "must be above 0/s")
    return value


@dataclass
class PlanRow:
    target: str
    label: str
    driver: str
    unit: str  # partitions, queues, subjects
    measured_rate_per_s: float
    measured_partitions: int
    measured_consumers: int
    per_partition_per_s: float
    per_consumer_per_s: float | None
    required_per_s: float
    partitions: int
    consumers: int | None
    scale: float  # required / measured total
    lower_bound: bool  # the measurement was capped by the harness: the real rate is higher
    flags: list[str] = field(default_factory=list)
    scaling: str | None = None
    # The target's cores and memory for the required rate, from its measured cost per event
    # (None: the target was not read, e.g. in-process); ``cost_basis`` says from which probe.
    cores: float | None = None
    memory_bytes: int | None = None
    cost_basis: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    load_per_s: float
    headroom: float
    required_per_s: float
    rows: list[PlanRow]
    skipped: list[str]
    assumptions: list[str]
    # Event stores: no partitions to size, the required rate against the measured one.
    stores: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [r.as_dict() for r in self.rows]
        return data


def plan(searches: list[dict[str, Any]], load_per_s: float, headroom: float) -> Plan:
    """One row per target: the largest measured partition count with a sustainable rate."""
    required = load_per_s * (1 + headroom)
    groups: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    stores: list[str] = []
    for search in searches:
        rate = search.get("max_rate_per_s")
        if not rate or search.get("status") in ("failed", "none"):
            skipped.append(f"{search.get('label')}: no sustainable rate was measured")
            continue
        if search.get("kind") == "store":
            stores.append(_store_line(search, float(rate), required))
            continue
        groups.setdefault(_group(search), []).append(search)
    rows = []
    for name, found in groups.items():
        # Per partition count, the most conservative measurement (repeated searches).
        by_count: dict[int, dict[str, Any]] = {}
        for search in found:
            count = int(search.get("partitions") or 1)
            known = by_count.get(count)
            if known is None or search["max_rate_per_s"] < known["max_rate_per_s"]:
                by_count[count] = search
        measured = [by_count[count] for count in sorted(by_count)]
        rows.append(_row(name, measured[-1], measured, required, headroom))
    assumptions = [
        f"required rate = load x (1 + headroom) = {load_per_s:,.0f}/s x {1 + headroom:.2f} "
        f"= {required:,.0f}/s",
        "throughput scales linearly with partitions (queues, subjects) at the measured "
        "per-partition sustainable rate, and with consumers at the measured per-consumer rate, "
        "up to the measured limit; beyond it these are extrapolations",
        "the measured rates hold for the measured workload only (payload size, keys, acks, "
        "replication, broker hardware); a change there needs a new find-max",
        "one broker deployment was measured: above its measured total, more partitions only "
        "help with more broker capacity (nodes, cores, disks)",
        "cores = a fixed part plus a part per event, fitted to the target's CPU at every probe "
        "that kept up (CPU per event falls as the rate grows); memory = its measured peak x "
        "(1 + headroom), not scaled with the rate (it is mostly buffers and caches); both only "
        "where the target's resources were read",
    ]
    return Plan(load_per_s, headroom, required, rows, skipped, assumptions, stores)


def _store_line(search: dict[str, Any], rate: float, required: float) -> str:
    """An event store has no partitions to add: one database carries every stream, so the
    plan only says how the required rate stands against the measured one."""
    scale = required / rate
    where = "within" if scale <= 1 else "beyond"
    writers = search.get("writers")
    line = (
        f"{search.get('label')}: an event store is sized by its database, not by partitions: "
        f"it sustained {rate:,.0f} commands/s"
        + (f" with {writers} writers" if writers else "")
        + f"; the required {required:,.0f}/s is {scale:.1f}x, {where} what was measured"
    )
    if search.get("status") in ("harness-bound", "ceiling"):
        line += " (the measured rate is a lower bound)"
    return line


def _sizing(driver: str) -> Sizing:
    """The driver's own sizing facts (bench/drivers/base.py); the defaults when the driver is
    not installed here (a plan can be made on a machine without the client libraries)."""
    try:
        return sizing_of(load_driver(driver))
    except BenchError:
        return Sizing()


def _group(search: dict[str, Any]) -> str:
    """Searches that differ only in their partition (queue) count size one row."""
    params = search.get("params") or {}
    others = [
        f"{key.split('.')[-1]}={value}"
        for key, value in params.items()
        if not key.endswith((".partitions", ".queues"))
    ]
    return " ".join([str(search.get("target")), *others])


def _row(
    name: str,
    basis: dict[str, Any],
    found: list[dict[str, Any]],
    required: float,
    headroom: float,
) -> PlanRow:
    rate = float(basis["max_rate_per_s"])
    partitions = max(1, int(basis.get("partitions") or 1))
    consumers = int(basis.get("consumers") or 0)
    per_partition = rate / partitions
    per_consumer = rate / consumers if consumers else None
    need_partitions = max(1, math.ceil(required / per_partition))
    need_consumers = math.ceil(required / per_consumer) if per_consumer else None
    driver = str(basis.get("driver") or basis.get("target"))
    sizing = _sizing(driver)
    flags = []
    limit = sizing.one_consumer_per_partition
    if limit and need_consumers is not None and need_consumers > need_partitions:
        # More consumers than partitions would sit idle (a Kafka consumer group, say).
        flags.append(
            f"{need_consumers} consumers need {need_consumers} {sizing.partition_noun} ({limit})"
        )
        need_partitions = need_consumers
    scale = required / rate
    lower_bound = basis.get("status") in ("harness-bound", "ceiling")
    if scale > FAR_EXTRAPOLATION:
        flags.append(
            f"extrapolated {scale:.1f}x beyond the highest measured sustainable total "
            f"({rate:,.0f}/s): measure at a larger partition count or on the production cluster"
        )
    elif scale > 1:
        flags.append(f"extrapolated {scale:.1f}x beyond the measured total ({rate:,.0f}/s)")
    if sizing.scale_out_advice and scale > 1:
        flags.append(sizing.scale_out_advice)
    if lower_bound:
        flags.append(
            "the measured rate is a lower bound (the harness or the search ceiling was the "
            "limit, not the target): this plan over-provisions"
        )
    if basis.get("status") == "budget":
        flags.append("the search stopped on its probe budget: the rate is not at full precision")
    if not basis.get("verified"):
        flags.append("the rate was not verified by a full-length run")
    scaling = None
    if len(found) > 1:
        small = found[0]
        small_per = float(small["max_rate_per_s"]) / max(1, int(small.get("partitions") or 1))
        efficiency = per_partition / small_per if small_per else 0.0
        counts = ", ".join(
            f"{int(s.get('partitions') or 1)}: {float(s['max_rate_per_s']):,.0f}/s" for s in found
        )
        scaling = f"measured {counts}; per-partition efficiency {efficiency:.0%}"
        if efficiency > 1.25:
            flags.append(
                f"per-partition rate rose to {efficiency:.0%} from "
                f"{int(small.get('partitions') or 1)} to {partitions} partitions: the smaller "
                "count was held back by something else (see its search's limits), so the "
                "scaling between them says little"
            )
        if efficiency < 0.8:
            flags.append(
                f"per-partition rate fell to {efficiency:.0%} from "
                f"{int(small.get('partitions') or 1)} to {partitions} partitions: scaling is "
                "sub-linear, expect less than this plan"
            )
    cores, memory, cost_basis = _resources_for(basis, required, headroom)
    return PlanRow(
        target=str(basis.get("target")),
        label=name,
        driver=driver,
        unit=sizing.partition_noun,
        measured_rate_per_s=rate,
        measured_partitions=partitions,
        measured_consumers=consumers,
        per_partition_per_s=per_partition,
        per_consumer_per_s=per_consumer,
        required_per_s=required,
        partitions=need_partitions,
        consumers=need_consumers,
        scale=scale,
        lower_bound=lower_bound,
        flags=flags,
        scaling=scaling,
        cores=cores,
        memory_bytes=memory,
        cost_basis=cost_basis,
    )


def _resources_for(
    search: dict[str, Any], required: float, headroom: float
) -> tuple[float | None, int | None, str | None]:
    """Cores and memory for the required rate.

    Cores: the target's CPU (in cores) against the rate it served, over every probe that kept
    up (passed, or a closed-loop ramp step) and whose target was read, fitted as a fixed part
    plus a part per event (least squares, neither negative): CPU per event falls as the rate
    grows (a broker's fixed work is spread over more events), so one probe's figure would
    under-provision a lower load and over-provision a higher one. One such probe: the line
    through zero. Memory: the measured peak of the fastest passing probe (the verification run
    if it passed) x (1 + headroom), not scaled with the rate (it is mostly buffers and caches).
    """
    probes = [
        p
        for p in search.get("probes") or []
        if p.get("verdict") in ("pass", "measured")
        and (p.get("resources") or {}).get("cpu_pct") is not None
        and float(p.get("achieved_per_s") or 0) > 0
    ]
    if not probes:
        return None, None, None
    xs = [float(p["achieved_per_s"]) for p in probes]
    ys = [float(p["resources"]["cpu_pct"]) / 100.0 for p in probes]
    fixed, per_event = _fit(xs, ys)
    cores = fixed + per_event * required
    passing = [p for p in probes if p.get("verdict") == "pass" and p.get("rate_per_s")]
    verified = [p for p in passing if p.get("phase") == "verify"]
    fastest = max(verified or passing or probes, key=lambda p: float(p["achieved_per_s"]))
    cost = fastest["resources"]
    peak = cost.get("mem_peak_bytes")
    memory = None if peak is None else int(peak * (1 + headroom))
    names = ", ".join(cost.get("processes") or []) or "the target"
    span = f"{min(xs):,.0f}/s to {max(xs):,.0f}/s" if len(probes) > 1 else f"{xs[0]:,.0f}/s"
    beyond = " (extrapolated)" if required > max(xs) * 1.05 else ""
    basis = (
        f"{names}: {fixed:.2f} cores + {per_event * 1000:.3f} cores per 1,000/s, fitted to "
        f"{len(probes)} probe(s) from {span}{beyond}; {format_bytes(peak)} peak memory "
        f"({cost.get('mem_kind') or 'rss'}) at {float(fastest['achieved_per_s']):,.0f}/s "
        f"(probe {fastest.get('dir')})"
    )
    return cores, memory, basis


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = a + b x by least squares with a, b >= 0 (a line through zero when that fails)."""
    n = len(xs)
    if n > 1 and max(xs) > min(xs):
        mx, my = sum(xs) / n, sum(ys) / n
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        a = my - b * mx
        if a >= 0 and b >= 0:
            return a, b
        if b < 0:  # CPU that falls with the rate is noise around a fixed cost
            return max(my, 0.0), 0.0
    through_zero = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    return 0.0, max(through_zero, 0.0)


def cores_text(cores: float | None) -> str:
    """Cores for people: to a tenth below 10, whole above."""
    if cores is None:
        return "-"
    return f"{cores:.2f}" if cores < 1 else f"{cores:.1f}" if cores < 10 else f"{cores:,.0f}"


def to_markdown(result: Plan) -> str:
    lines = [f"# Sizing for {result.load_per_s:,.0f}/s with {result.headroom:.0%} headroom\n"]
    if result.rows:
        lines += [
            "| target | measured | per partition | per consumer | partitions needed | "
            "consumers needed | cores | memory | scale | flags |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
    for row in result.rows:
        lines.append(
            f"| {row.label} | {row.measured_rate_per_s:,.0f}/s on {row.measured_partitions} "
            f"{row.unit}, {row.measured_consumers} consumers | {row.per_partition_per_s:,.0f}/s | "
            + (f"{row.per_consumer_per_s:,.0f}/s" if row.per_consumer_per_s else "-")
            + f" | {row.partitions} {row.unit} | "
            + (str(row.consumers) if row.consumers is not None else "-")
            + f" | {cores_text(row.cores)} | {format_bytes(row.memory_bytes)}"
            + f" | {row.scale:.1f}x | {'; '.join(row.flags) or '-'} |"
        )
    lines.append("")
    for row in result.rows:
        if row.scaling:
            lines.append(f"- {row.target}: {row.scaling}")
        if row.cost_basis:
            lines.append(f"- {row.target}: cores and memory from {row.cost_basis}")
    lines += [f"- {s}" for s in result.stores]
    lines += [f"- {s}" for s in result.skipped]
    lines += ["", "Assumptions:", *[f"- {a}" for a in result.assumptions], ""]
    return "\n".join(lines)
