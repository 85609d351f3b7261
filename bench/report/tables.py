"""Results as tables: the metric registry, run and point loading, and pandas frames.

Everything that reads figures out of a results directory for a report, a comparison, the
regression gate or the history goes through here, so there is one definition of each metric:
its key (``e2e.p99``, ``throughput.acked_per_s``, ``audit.lost``), its unit, and whether higher
is better (Rally's idea: a diff is good or bad depending on the metric, not on its sign).

Points of different runs are matched by target and matrix parameters (``point_key``), never by
their position, so adding a target to a scenario does not shift every comparison.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ResultsError
from bench.redaction import redact
from bench.report import pipeline as pipeline_words
from bench.scenario import LATENCY_KINDS, SAGA_LATENCY_KINDS
from bench.scenario import PIPELINE_STAGES as STAGES
from bench.store import (
    CUT_OFF,
    MANIFEST,
    RUNNING,
    SCHEMA_VERSION,
    SUMMARY,
    UNFINISHED,
    RunResults,
    RunState,
    load_capacity,
    migrate,
    run_state,
)
from bench.units import format_bytes, format_count, format_latency_us, format_rate

# pandas is the report extra: it is imported where a frame is built, so the terminal
# tables (bench run, bench show) work on a core install.
if TYPE_CHECKING:
    import pandas as pd

LATENCY_STATS = ("p50", "p90", "p99", "p999", "max", "mean")
# Every latency kind a summary can hold: the stream's, then a pipeline's stages (whose
# ``visible`` is its headline; its ``e2e`` is the same histogram).
# A replay's aggregate load (read and fold) and a saga (intended start -> final state) are
# latency kinds of their own.
ALL_LATENCY_KINDS = (
    *LATENCY_KINDS,
    *(k for k in STAGES if k not in LATENCY_KINDS),
    "load",
    *SAGA_LATENCY_KINDS,
    # The sagas no fault caught (a saga point with faults): the baseline of its fault rows.
    "saga_outside_faults",
)
STAT_LABELS = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p99.9", "max": "max"}


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """One figure of a point's summary, with the direction that counts as better."""

    key: str
    label: str
    unit: str  # "us", "/s", "bytes", or a count or ratio ("count", "cpu-s", "ratio")
    higher_is_better: bool
    getter: Callable[[dict[str, Any]], float | None] = field(repr=False, compare=False)

    def value(self, summary: dict[str, Any]) -> float | None:
        return self.getter(summary)

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if self.unit == "us":
            return format_latency_us(value)
        if self.unit == "/s":
            return format_rate(value)
        if self.unit == "bytes":
            return format_bytes(value)
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"

    def format_diff(self, diff: float | None) -> str:
        if diff is None or math.isnan(diff):
            return "-"
        sign = "+" if diff > 0 else "-" if diff < 0 else ""
        return sign + self.format(abs(diff))

    def is_worse(self, baseline: float, candidate: float) -> bool:
        return candidate < baseline if self.higher_is_better else candidate > baseline


def _replay_checks_failed(summary: dict[str, Any]) -> float | None:
    """A replay's failed checks: streams a migration changed, and aggregates whose snapshot
    plus tail, or archive plus live table, folded differently from the history."""
    replay = summary.get("replay")
    if summary.get("kind") != "replay" or not isinstance(replay, dict):
        return None
    load = replay.get("load") or {}
    counts = [
        replay.get("meaning_changed"),
        (load.get("check") or {}).get("mismatched"),
        ((load.get("archive") or {}).get("check") or {}).get("mismatched"),
    ]
    return float(sum(int(c) for c in counts if isinstance(c, int | float)))


def _judged_duplicates(summary: dict[str, Any]) -> float | None:
    audit = summary.get("audit") or {}
    value = audit.get("broker_duplicates" if audit.get("redelivered") is not None else "duplicated")
    return float(value) if isinstance(value, int | float) else None


def _path_getter(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(summary: dict[str, Any]) -> float | None:
        node: Any = summary
        for part in path:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        if isinstance(node, bool) or not isinstance(node, int | float):
            return None
        return float(node)

    return get


def _build_registry() -> dict[str, Metric]:
    metrics: list[Metric] = [
        Metric(
            "throughput.acked_per_s",
            "acked/s",
            "/s",
            True,
            _path_getter("throughput", "acked_per_s"),
        ),
        Metric(
            "throughput.received_per_s",
            "received/s",
            "/s",
            True,
            _path_getter("throughput", "received_per_s"),
        ),
        Metric(
            "throughput.sent_per_s", "sent/s", "/s", True, _path_getter("throughput", "sent_per_s")
        ),
        # Capacity runs (find-max): the answer of each search.
        Metric(
            "capacity.max_rate_per_s",
            "max sustainable/s",
            "/s",
            True,
            _path_getter("capacity", "max_rate_per_s"),
        ),
    ]
    for kind in ALL_LATENCY_KINDS:
        for stat in LATENCY_STATS:
            metrics.append(
                Metric(
                    f"{kind}.{stat}",
                    f"{kind} {STAT_LABELS.get(stat, stat)}",
                    "us",
                    False,
                    _path_getter("latency_us", kind, stat),
                )
            )
    metrics += [
        Metric("errors.total", "errors", "count", False, _path_getter("errors", "total")),
        Metric("audit.lost", "lost", "count", False, _path_getter("audit", "lost")),
        Metric(
            "audit.duplicated", "duplicated", "count", False, _path_getter("audit", "duplicated")
        ),
        Metric("audit.reordered", "reordered", "count", False, _path_getter("audit", "reordered")),
        Metric(
            "audit.projection_failures",
            "projection failures",
            "count",
            False,
            _path_getter("audit", "projection_failures"),
        ),
        Metric(
            "throughput.skipped", "skipped", "count", False, _path_getter("throughput", "skipped")
        ),
        # Sagas (engine/saga.py): their rate, the stuck ones.
        Metric(
            "throughput.sagas_per_s",
            "sagas/s",
            "/s",
            True,
            _path_getter("throughput", "sagas_per_s"),
        ),
        Metric("saga.stuck", "stuck sagas", "count", False, _path_getter("saga", "stuck")),
        Metric(
            "saga.compensated",
            "compensated sagas",
            "count",
            False,
            _path_getter("saga", "final", "COMPENSATED"),
        ),
        Metric(
            "saga.dead_lettered",
            "dead-lettered sagas",
            "count",
            False,
            _path_getter("saga", "dead_lettered"),
        ),
        # A replay (engine/replay.py): how fast it read, what it left unread, and its checks.
        Metric(
            "replay.events_per_s",
            "replay events/s",
            "/s",
            True,
            _path_getter("replay", "replay", "events_per_s"),
        ),
        Metric(
            "replay.unread", "unread", "count", False, _path_getter("replay", "replay", "unread")
        ),
        Metric(
            "replay.checks_failed", "replay checks failed", "count", False, _replay_checks_failed
        ),
        # Consumer faults and workload.apply (engine/consumer_apply.py).
        Metric(
            "audit.redelivered", "redelivered", "count", False, _path_getter("audit", "redelivered")
        ),
        Metric(
            "audit.broker_duplicates",
            "broker duplicates",
            "count",
            False,
            _path_getter("audit", "broker_duplicates"),
        ),
        # The duplicates a verdict judges: the broker's own where consumers were killed (their
        # redeliveries are at-least-once doing its job), else every duplicate.
        Metric(
            "audit.judged_duplicates",
            "duplicates judged",
            "count",
            False,
            _judged_duplicates,
        ),
        Metric(
            "apply.duplicates_applied",
            "duplicates applied",
            "count",
            False,
            _path_getter("apply", "duplicates_applied"),
        ),
        # A pipeline's projection and its invariants (engine/summary.py pipeline_summary).
        Metric(
            "pipeline.applied_per_s",
            "applied/s",
            "/s",
            True,
            _path_getter("pipeline", "applied_per_s"),
        ),
        Metric(
            "pipeline.never_applied",
            "never applied",
            "count",
            False,
            _path_getter("pipeline", "invariants", "never_applied"),
        ),
        Metric(
            "pipeline.applied_twice",
            "applied twice",
            "count",
            False,
            _path_getter("pipeline", "invariants", "applied_twice"),
        ),
        # What the target spent (engine/resources.py): a target on this host only.
        Metric(
            "resources.cpu_s_per_mev",
            "target cpu-s/Mev",
            "cpu-s",
            False,
            _path_getter("resources", "cpu_s_per_mev"),
        ),
        Metric(
            "resources.mem_peak_bytes",
            "target memory peak",
            "bytes",
            False,
            _path_getter("resources", "mem_peak_bytes"),
        ),
        Metric(
            "resources.write_amplification",
            "target disk bytes per payload byte",
            "ratio",
            False,
            _path_getter("resources", "write_amplification"),
        ),
    ]
    return {m.key: m for m in metrics}


METRICS: dict[str, Metric] = _build_registry()
ALIASES = {
    "throughput": "throughput.acked_per_s",
    "acked_per_s": "throughput.acked_per_s",
    "received_per_s": "throughput.received_per_s",
    "errors": "errors.total",
    "lost": "audit.lost",
    "duplicated": "audit.duplicated",
    "reordered": "audit.reordered",
    "projection_failures": "audit.projection_failures",
    "redelivered": "audit.redelivered",
    "broker_duplicates": "audit.broker_duplicates",
    "duplicates_applied": "apply.duplicates_applied",
    "skipped": "throughput.skipped",
    "applied_per_s": "pipeline.applied_per_s",
    "never_applied": "pipeline.never_applied",
    "applied_twice": "pipeline.applied_twice",
    "max_rate": "capacity.max_rate_per_s",
    "capacity": "capacity.max_rate_per_s",
    "cpu_per_mev": "resources.cpu_s_per_mev",
    "memory": "resources.mem_peak_bytes",
    "write_amplification": "resources.write_amplification",
}
# What compare shows by default: the figures people choose a target by.
COMPARE_METRICS = (
    "capacity.max_rate_per_s",
    "throughput.acked_per_s",
    "throughput.received_per_s",
    "response.p50",
    "response.p99",
    "response.p999",
    "response.max",
    "service.p99",
    "e2e.p50",
    "e2e.p90",
    "e2e.p99",
    "e2e.p999",
    "e2e.max",
    "errors.total",
    "audit.lost",
    "audit.duplicated",
    "audit.reordered",
    "audit.projection_failures",
    "apply.duplicates_applied",
    "load.p50",
    "load.p99",
    "throughput.sagas_per_s",
    "saga.p50",
    "saga.p99",
    "saga_completed.p99",
    "saga_compensated.p99",
    "saga_failed.p99",
    "compensation.p99",
    "saga.stuck",
    "saga.compensated",
    "saga.dead_lettered",
    "replay.events_per_s",
    "replay.unread",
    "replay.checks_failed",
    "audit.redelivered",
    "audit.broker_duplicates",
    # A pipeline's: shown only for points that have them (compare skips a metric neither
    # side has).
    "visible.p50",
    "visible.p90",
    "visible.p99",
    "visible.p999",
    "visible.max",
    "append.p99",
    "relay.p99",
    "broker.p99",
    "apply.p99",
    "pipeline.applied_per_s",
    "pipeline.never_applied",
    "pipeline.applied_twice",
    "resources.cpu_s_per_mev",
    "resources.mem_peak_bytes",
    "resources.write_amplification",
)


def metric(key: str) -> Metric:
    """The metric named ``key`` (or an alias such as ``throughput``); KeyError with the
    known names otherwise."""
    resolved = ALIASES.get(key, key)
    try:
        return METRICS[resolved]
    except KeyError:
        known = ", ".join([*METRICS, *ALIASES])
        raise KeyError(f"unknown metric {key!r}; known: {known}") from None


# --------------------------------------------------------------------------- points and runs


def point_key(summary: dict[str, Any]) -> str:
    """Target and matrix parameters: what identifies "the same point" across runs."""
    params = summary.get("params") or {}
    parts = [str(summary.get("target", "?"))]
    parts += [f"{k}={_format_param(v)}" for k, v in sorted(params.items())]
    return " ".join(parts)


def _format_param(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def point_label(summary: dict[str, Any]) -> str:
    """A short label for tables and legends: the target, then the parameters' last parts."""
    params = summary.get("params") or {}
    parts = [str(summary.get("target", "?"))]
    parts += [f"{k.split('.')[-1]}={_format_param(v)}" for k, v in params.items()]
    return " ".join(parts)


@dataclass
class Point:
    """One point of one run: its summary and the directory holding its .hlog and CSV."""

    key: str
    label: str
    target: str
    params: dict[str, Any]
    summary: dict[str, Any]
    dir: Path

    @property
    def warmup_s(self) -> float:
        return float((self.summary.get("workload") or {}).get("warmup_s") or 0.0)

    @property
    def duration_s(self) -> float:
        return float((self.summary.get("workload") or {}).get("duration_s") or 0.0)


# --------------------------------------------------------------------------- strict loading

# Statuses of a run that ran to its end: "ok", and "finished" as some writers say it.
COMPLETE_STATUSES = ("ok", "finished")
# The sections of a summary that the reports read figures from: each must be an object.
_SECTIONS = ("latency_us", "throughput", "errors", "audit", "slo", "workload", "params")
# The figures of those sections that tables and metrics read as numbers. A rate or a latency
# may be NaN or infinite (a broken measurement: compare says n/a, the gate fails on it); a count
# is an integer when the runner writes it, so a non-finite one is a damaged file.
_NUMBERS = {"throughput": ("sent_per_s", "acked_per_s", "received_per_s")}
_COUNTS = {
    "throughput": ("skipped",),
    "errors": ("total", "failed_in_window", "scheduled_in_window"),
    "audit": ("sent", "acked", "received", "lost", "duplicated", "reordered", "failed"),
}
_LATENCY_COUNTS = ("count", "negative", "clamped")


def _show(value: Any) -> str:
    """A value as it reads in an error line, cut short: it can be anything a file held."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_json(path: Path) -> dict[str, Any]:
    """A results JSON file as an object, migrated to this schema; ResultsError naming the file
    (and the field) for anything else. A NaN or an infinity loads: it is a broken figure,
    which compare shows as n/a and the gate fails on, not a broken file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing", hint="is this a results directory?") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ResultsError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    version = data.get("schema_version")
    if isinstance(version, int | float) and _is_number(version) and version < 1:
        # No eventbench wrote it, and there is no migration from it.
        raise ResultsError(
            f"{path}: schema_version: {_show(version)} is not a schema eventbench writes "
            f"(1 to {SCHEMA_VERSION})"
        )
    # Results written before redaction covered everything are redacted on reading too.
    return redact(migrate(data, path))


def _check_number(value: Any, field_name: str, path: Path, count: bool) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise ResultsError(f"{path}: {field_name}: {_show(value)} is not a number")
    if count and not math.isfinite(value):
        raise ResultsError(f"{path}: {field_name}: {_show(value)} is not a count")


def check_summary(summary: dict[str, Any], path: Path) -> None:
    """Refuse a summary whose figures are not where and what the reports read: each section
    an object, each latency statistic and count a number (or null: not measured)."""
    for section in _SECTIONS:
        value = summary.get(section, {})
        if section == "params" and value is None:
            continue  # a point without parameters; readers take null for none
        if not isinstance(value, dict):
            raise ResultsError(
                f"{path}: {section}: {_show(value)} is not an object",
                hint="the file is damaged: rerun the point",
            )
    for name in ("target", "status", "dir"):
        if name in summary and not isinstance(summary[name], str):
            raise ResultsError(f"{path}: {name}: {_show(summary[name])} is not a string")
    for kind, stats in (summary.get("latency_us") or {}).items():
        if stats is None:
            continue
        if not isinstance(stats, dict):
            raise ResultsError(f"{path}: latency_us.{kind}: {_show(stats)} is not an object")
        for stat, value in stats.items():
            _check_number(value, f"latency_us.{kind}.{stat}", path, stat in _LATENCY_COUNTS)
    for numbers, count in ((_NUMBERS, False), (_COUNTS, True)):
        for section, names in numbers.items():
            values = summary.get(section) or {}
            for name in names:
                _check_number(values.get(name), f"{section}.{name}", path, count)
    for key, verdict in (summary.get("slo") or {}).items():
        if not isinstance(verdict, dict):
            raise ResultsError(f"{path}: slo.{key}: {_show(verdict)} is not an object")


def load_results(run_dir: Path) -> RunResults:
    """A run's manifest and the summaries of its points, each checked (``check_summary``):
    what every report command reads, so a damaged file is one line naming it and its field."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a directory", hint="give a results/<run-id> directory")
    manifest_path = run_dir / MANIFEST
    manifest = read_json(manifest_path)
    entries = manifest.get("points", [])
    if not isinstance(entries, list):
        raise ResultsError(f"{manifest_path}: points: {_show(entries)} is not a list of points")
    status = manifest.get("status")
    if status is not None and not isinstance(status, str):
        raise ResultsError(f"{manifest_path}: status: {_show(status)} is not a string")
    summaries = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ResultsError(f"{manifest_path}: points[{index}]: {_show(entry)} is not an object")
        directory = entry.get("dir")
        if not directory:
            continue
        if not isinstance(directory, str) or Path(directory).name != directory:
            raise ResultsError(
                f"{manifest_path}: points[{index}].dir: {_show(directory)} is not a point's "
                "directory name"
            )
        summary_path = run_dir / directory / SUMMARY
        if summary_path.exists():
            summary = read_json(summary_path)
            check_summary(summary, summary_path)
            summaries.append(summary)
    return RunResults(run_dir, manifest, summaries)


@dataclass
class Run:
    """A loaded results directory.

    For a capacity run (find-max, sweep) ``points`` holds one point per search, the probe at
    its max sustainable rate, with the answer under ``summary["capacity"]``: that is what
    compare, check and history match across runs. Every probe is in ``probes``.
    """

    path: Path
    manifest: dict[str, Any]
    points: list[Point]
    capacity: dict[str, Any] | None = None
    probes: list[Point] = field(default_factory=list)
    # The manifest's point directories that hold no summary: points that never ran to the end.
    missing: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def scenario_name(self) -> str:
        return str(((self.manifest.get("scenario") or {}).get("scenario") or {}).get("name", "?"))

    @property
    def started_at(self) -> float:
        value = self.manifest.get("started_at")
        return float(value) if isinstance(value, int | float) else 0.0

    @property
    def environment(self) -> dict[str, Any]:
        env = self.manifest.get("environment")
        return env if isinstance(env, dict) else {}

    @property
    def status(self) -> str | None:
        value = self.manifest.get("status")
        return value if isinstance(value, str) else None

    @property
    def state(self) -> RunState:
        """The status a reader is told: "cut off" for a "running" run whose coordinator died."""
        return run_state(self.manifest)

    def completion_note(self) -> str | None:
        """Why this report is not the whole run, in words (the run was cut off, stopped on an
        error, or some points have no summary), or None. What it did complete is reported."""
        state = self.state
        parts = []
        if state.status in (CUT_OFF, UNFINISHED, RUNNING) or (
            state.note and state.status not in COMPLETE_STATUSES
        ):
            parts.append(f"the run is {state.status}" + (f" ({state.note})" if state.note else ""))
        if self.missing:
            total = len(self.missing) + len(self.probes or self.points)
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            parts.append(
                f"{total - len(self.missing)} of {total} points completed; without a summary: "
                f"{shown}"
            )
        return "; ".join(parts) or None

    def incomplete(self) -> str | None:
        """Why this run did not complete (its manifest's status, points without a summary), or
        None when it did. A manifest without a status (none was ever written without one) is
        judged by its points alone."""
        total = len(self.missing) + len(self.probes or self.points)
        reasons = []
        if self.status is not None and self.status not in COMPLETE_STATUSES:
            reasons.append(f"status {self.status!r}")
        if self.missing:
            reasons.append(f"{len(self.missing)} of {total} points without a summary")
        return ", ".join(reasons) or None

    def point(self, key: str) -> Point | None:
        for p in self.points:
            if p.key == key:
                return p
        return None


def load(run_dir: Path) -> Run:
    """Load a run; every point with a summary, in the manifest's order."""
    results = load_results(Path(run_dir))
    by_dir = {
        str(p.get("dir")): p for p in results.manifest.get("points", []) if isinstance(p, dict)
    }
    points = []
    for summary in results.summaries:
        directory = str(summary.get("dir") or "")
        if directory not in by_dir:
            raise ResultsError(
                f"{results.path / directory / SUMMARY}: dir: {directory!r} is not a point of "
                f"{results.path / MANIFEST}"
            )
        if "target" not in summary:
            raise ResultsError(f"{results.path / directory / SUMMARY}: target: missing")
        points.append(
            Point(
                key=point_key(summary),
                label=point_label(summary),
                target=str(summary["target"]),
                params=dict(summary.get("params") or {}),
                summary=summary,
                dir=results.path / directory,
            )
        )
    loaded = {str(s.get("dir") or "") for s in results.summaries}
    missing = [
        str(entry["dir"])
        for entry in results.manifest.get("points", [])
        if entry.get("dir") and str(entry["dir"]) not in loaded
    ]
    capacity = load_capacity(results.path)
    if capacity is None:
        return Run(results.path, results.manifest, points, missing=missing)
    return Run(
        results.path,
        results.manifest,
        answer_points(capacity, points),
        capacity,
        points,
        missing=missing,
    )


def answer_points(capacity: dict[str, Any], probes: list[Point]) -> list[Point]:
    """One point per search that found a rate: the probe at that rate (the verification run
    when there is one), relabelled with the search's parameters and carrying the answer.
    Then every sweep point, which matches across runs by its fraction of the max."""
    by_dir = {p.dir.name: p for p in probes}
    answers = []
    for search in capacity.get("searches") or []:
        if not isinstance(search, dict):
            continue
        answers += [
            by_dir[str(probe.get("dir"))]
            for probe in search.get("sweep") or []
            if isinstance(probe, dict) and str(probe.get("dir")) in by_dir
        ]
        rate = search.get("max_rate_per_s")
        candidates = [
            probe
            for probe in search.get("probes") or []
            if isinstance(probe, dict)
            and probe.get("verdict") == "pass"
            and probe.get("dir") in by_dir
            and (rate is None or probe.get("rate_per_s") == rate)
        ]
        if not candidates:
            continue
        chosen = max(
            candidates,
            key=lambda probe: (probe.get("phase") == "verify", probe.get("rate_per_s") or 0),
        )
        source = by_dir[str(chosen["dir"])]
        summary = {
            **source.summary,
            "params": dict(search.get("params") or {}),
            "capacity": {
                k: search.get(k)
                for k in (
                    "max_rate_per_s",
                    "precision",
                    "upper_rate_per_s",
                    "limited_by",
                    "verified",
                    "status",
                    "saturation_per_s",
                )
            },
        }
        answers.append(
            Point(
                key=point_key(summary),
                label=point_label(summary),
                target=source.target,
                params=dict(summary["params"]),
                summary=summary,
                dir=source.dir,
            )
        )
    return answers


def is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def expand_group(spec: str | Path) -> list[Path]:
    """Run directories named by one command-line argument.

    ``results/run-a`` is one run; ``a,b,c`` is a group of repetitions; a directory whose
    subdirectories are runs (what ``bench run --repeat N`` leaves) is the group of all of them.
    """
    parts = [s for s in str(spec).split(",") if s.strip()]
    if not parts:
        raise ResultsError(f"{spec!r}: no results directory given")
    paths: list[Path] = []
    for part in parts:
        path = Path(part.strip())
        if is_run_dir(path):
            paths.append(path)
        elif path.is_dir():
            runs = sorted(child for child in path.iterdir() if is_run_dir(child))
            if not runs:
                raise ResultsError(
                    f"{path / MANIFEST}: missing, and no subdirectory holds a run",
                    hint="give a results/<run-id> directory",
                )
            paths.extend(runs)
        else:
            raise ResultsError(f"{path}: not a directory", hint="give a results/<run-id> directory")
    return paths


def find_runs(results_dir: Path) -> list[Run]:
    """Every run below ``results_dir`` (one level deep, or ``results_dir`` itself)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: not a directory", hint="give a results directory")
    if is_run_dir(results_dir):
        return [load(results_dir)]
    return [load(child) for child in sorted(results_dir.iterdir()) if is_run_dir(child)]


# --------------------------------------------------------------------------- frames


def slo_text(summary: dict[str, Any]) -> str:
    verdicts = []
    for key, verdict in (summary.get("slo") or {}).items():
        value = verdict.get("value_us")
        state = (
            verdict.get("result")
            or {True: "pass", False: "fail", None: "no data"}[verdict.get("pass")]
        )
        state = "FAIL" if state == "fail" else state
        verdicts.append(
            f"{key} {format_latency_us(value)} <= {format_latency_us(verdict.get('threshold_us'))}"
            f" {state}"
        )
    return "; ".join(verdicts) or "-"


def invariants_text(summary: dict[str, Any]) -> str:
    """Store invariants, when the point ran against an event store; a pipeline's own and its
    store's, as the pipeline table words them."""
    if pipeline_words.is_pipeline(summary):
        found = pipeline_words.violations(summary)
        text = pipeline_words.invariants_text(summary)
        return f"VIOLATED: {'; '.join(found[:3])}" if found else text
    invariants = summary.get("invariants") or (summary.get("store") or {}).get("invariants")
    if not invariants:
        return "-"
    if isinstance(invariants, dict) and "ok" in invariants and "violations" in invariants:
        violations = invariants["violations"]
        return "hold" if invariants["ok"] else f"VIOLATED: {'; '.join(violations[:3])}"
    if isinstance(invariants, dict):
        parts = []
        for name, value in invariants.items():
            if isinstance(value, dict) and "pass" in value:
                parts.append(f"{name} {'ok' if value['pass'] else 'VIOLATED'}")
            elif isinstance(value, bool):
                parts.append(f"{name} {'ok' if value else 'VIOLATED'}")
            else:
                parts.append(f"{name}={value}")
        return "; ".join(parts)
    return str(invariants)


SUMMARY_PIPELINE_NOTE = (
    "For a pipeline point, acked/s counts events committed to the store, received/s events "
    "applied to the read model, lost the committed events that never reached the read model "
    "(a broker's loss among them) and duplicated the events applied more than once; the "
    "pipeline section above breaks them down."
)


def summary_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per point: throughput, correctness, flags and SLO verdicts (formatted). A
    pipeline's row counts its events end to end (``SUMMARY_PIPELINE_NOTE``)."""
    import pandas as pd

    rows = []
    for p in points:
        s = p.summary
        audit = dict(s.get("audit") or {})
        if s.get("kind") == "pipeline" and s.get("pipeline"):
            invariants = s["pipeline"].get("invariants") or {}
            audit["lost"] = invariants.get("never_applied") or 0
            audit["duplicated"] = invariants.get("applied_twice") or 0
        throughput = s.get("throughput") or {}
        flags = [str(s.get("status", "?"))]
        if s.get("client_bound"):
            flags.append("client-bound: " + "; ".join(s.get("client_bound_reasons") or []))
        flags += list(s.get("host_bound_reasons") or [])
        if s.get("closed_loop"):
            flags.append("closed-loop")
        rows.append(
            {
                "target": p.target,
                "point": p.label,
                "mode": s.get("mode", ""),
                "sent/s": format_rate(float(throughput.get("sent_per_s") or 0.0)),
                "acked/s": format_rate(float(throughput.get("acked_per_s") or 0.0)),
                "received/s": format_rate(float(throughput.get("received_per_s") or 0.0)),
                "errors": int((s.get("errors") or {}).get("total") or 0),
                "lost": int(audit.get("lost") or 0),
                "duplicated": int(audit.get("duplicated") or 0),
                "reordered": int(audit.get("reordered") or 0),
                # The order projection's early arrivals ("-": not run, as in a pipeline, whose
                # own checks are in its section).
                "projection failures": (
                    "-"
                    if audit.get("projection_failures") is None
                    else format_count(int(audit["projection_failures"]))
                ),
                "skipped": int(throughput.get("skipped") or 0),
                "invariants": invariants_text(s),
                "client_bound": "yes" if s.get("client_bound") else "no",
                "SLO": slo_text(s),
                "status": ", ".join(flags),
            }
        )
    return pd.DataFrame(rows)


def latency_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per point and latency kind: count and p50/p90/p99/p99.9/max (formatted)."""
    import pandas as pd

    rows = []
    for p in points:
        latency = p.summary.get("latency_us") or {}
        for kind in ALL_LATENCY_KINDS:
            stats = latency.get(kind)
            if not stats or not stats.get("count"):
                continue
            # Formatted as the plots' legends print it (n=15,046).
            count = format_count(int(stats["count"]))
            row: dict[str, Any] = {"point": p.label, "kind": kind, "count": count}
            for stat in ("p50", "p90", "p99", "p999", "max"):
                row[STAT_LABELS[stat]] = format_latency_us(stats.get(stat))
            negatives = int(stats.get("negative") or 0)
            clamped = int(stats.get("clamped") or 0)
            row["negative/clamped"] = f"{negatives}/{clamped}"
            rows.append(row)
    return pd.DataFrame(rows)


def environment_frame(run: Run) -> pd.DataFrame:
    """What ran where: each target's product and version, the host, the harness."""
    import pandas as pd

    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for p in run.points:
        if p.target in seen:
            continue
        seen.add(p.target)
        info = p.summary.get("target_info") or {}
        rows.append(
            {
                "item": f"target {p.target}",
                "value": f"{info.get('product', p.summary.get('driver', '?'))} "
                f"{info.get('version', '')}".strip()
                + f" (driver {p.summary.get('driver', '?')}{_client_text(info)})",
            }
        )
    env = run.environment
    git = env.get("git") or {}
    memory = env.get("memory_bytes")
    rows += [
        {"item": "host", "value": f"{env.get('host', '?')} ({env.get('platform', '?')})"},
        {
            "item": "CPU",
            "value": f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs"
            + (f", {memory / 2**30:.1f} GiB RAM" if isinstance(memory, int | float) else ""),
        },
        {"item": "load average", "value": ", ".join(str(x) for x in env.get("load_average", []))},
        {
            "item": "harness",
            "value": f"eventbench {env.get('eventbench', '?')}, Python {env.get('python', '?')}",
        },
        {
            "item": "git",
            "value": (
                f"{git.get('revision', '?')[:12]}{' (dirty)' if git.get('dirty') else ''}"
                if git
                else "-"
            ),
        },
        {
            "item": "libraries",
            "value": ", ".join(f"{k} {v}" for k, v in (env.get("libraries") or {}).items()) or "-",
        },
    ]
    return pd.DataFrame(rows)


def _client_text(info: dict[str, Any]) -> str:
    """ ", client confluent-kafka 2.16.1, librdkafka 2.16.0": the client library the driver
    ran on, as its describe() names it (two runs of one driver may differ only there)."""
    client = info.get("client")
    if not isinstance(client, dict) or not client.get("library"):
        return ""
    text = f", client {client['library']} {client.get('version', '')}".rstrip()
    if client.get("librdkafka"):
        text += f", librdkafka {client['librdkafka']}"
    return text


def _status_text(run: Run) -> str:
    """The manifest's status, or what it turned out to be ("cut off") and why."""
    if run.manifest.get("status") is None:
        return "?"
    state = run.state
    return f"{state.status} ({state.note})" if state.note else state.status


def run_overview(run: Run) -> dict[str, str]:
    """Headline facts about a run for the top of a report."""
    scenario = run.manifest.get("scenario") or {}
    meta = scenario.get("scenario") or {}
    return {
        "run": run.run_id,
        "scenario": f"{meta.get('name', '?')}: {meta.get('description', '')}".rstrip(": "),
        "status": _status_text(run),
        "measure": (
            "a seeded history, read back (no load)"
            if run.points and all(p.summary.get("kind") == "replay" for p in run.points)
            else f"{meta.get('duration', '?')} after {meta.get('warmup', '?')} warm-up"
        ),
        "overrides": ", ".join(run.manifest.get("overrides") or []) or "-",
        "points": str(len(run.points)),
    }
