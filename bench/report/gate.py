"""The regression gate (``bench check``): a verdict and an exit code for CI.

A check fails when

- a gated metric of a point got worse by more than its threshold (``--max-regression``, or a
  per-metric ``--threshold METRIC=PCT``). With repetitions on both sides the change must also be
  significant (Mann-Whitney U, p < 0.05), asv's scheme; with single runs the threshold alone
  decides, and the output says so. A count that was zero in the baseline (lost, duplicated,
  reordered events, errors) fails on any increase. Latency changes smaller than
  ``min_latency_diff_us`` never count: at that size they are timer and scheduler noise;
- an SLO of the scenario is broken in a candidate run;
- a point of the baseline is missing from the candidate, or a candidate point failed;
- a gated metric is not a number (NaN or an infinity) on either side: a broken measurement is
  never a pass;
- the candidate run did not complete (its manifest is not "ok", or points have no summary);
- nothing could be compared: no gated metric of any point has a value on both sides. A gate
  that checked nothing has not passed.

A baseline that did not complete is no reference at all: ``check`` refuses it as a usage error
(``ResultsError``, exit 2) naming its manifest and status, before judging anything.

Every failure names the point, the metric, the values, the change and the rule it broke. The
result renders as text, JUnit XML (one testcase per point x metric, and per SLO) and Markdown
for a CI job summary.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bench.errors import ResultsError
from bench.report.compare import ALPHA, NOT_A_NUMBER, Group, Row, compare_row, min_p_value
from bench.report.tables import Metric, metric
from bench.store import MANIFEST
from bench.units import format_latency_us, parse_duration_s
from bench.verdict import verdict_of

DEFAULT_MAX_REGRESSION_PCT = 10.0
# Per-metric defaults (--threshold overrides them): the target's CPU per event, from process
# accounting on a shared host, moved 127 to 160 CPU-s/Mev over three identical 4 s NATS runs.
DEFAULT_THRESHOLDS = {"resources.cpu_s_per_mev": 25.0}
DEFAULT_MIN_LATENCY_DIFF_US = 50.0
# Gated unless told otherwise: what a user of the numbers acts on. Tails beyond p99 of short
# runs are too noisy to gate by default; add them with --threshold e2e.p999=25%.
GATE_METRICS = (
    "throughput.acked_per_s",
    "throughput.received_per_s",
    "response.p50",
    "response.p99",
    "e2e.p50",
    "e2e.p99",
    "errors.total",
    "audit.lost",
    # Not audit.duplicated: a killed consumer's redeliveries are no regression of the target.
    "audit.judged_duplicates",
    "audit.reordered",
    "audit.projection_failures",
    "apply.duplicates_applied",
    # What the target spent per event: a costlier event is a regression too.
    "resources.cpu_s_per_mev",
    # A saga point's and a replay's (a stream point has none of these).
    "throughput.sagas_per_s",
    "saga.p99",
    "saga.stuck",
    # More sagas compensated or dead-lettered under the same knobs: more of them failing.
    "saga.compensated",
    "saga.dead_lettered",
    "load.p99",
    "replay.events_per_s",
    "replay.unread",
    "replay.checks_failed",
    # A pipeline's projection and invariants (its visible latency is gated as e2e, which is
    # the same histogram; a stream point has none of these, and a metric neither side has is
    # not compared).
    "pipeline.applied_per_s",
    "pipeline.never_applied",
    "pipeline.applied_twice",
)

PASS = "pass"
FAIL = "fail"
IMPROVED = "improved"


@dataclass
class Finding:
    """One testcase: a point x metric comparison, an SLO, or a point's presence."""

    point: str
    name: str  # metric key, "slo e2e.p99", or "point"
    status: str
    message: str
    row: Row | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class GateResult:
    baseline: Group
    candidate: Group
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.failed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


# --------------------------------------------------------------------------- parsing

_PCT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def parse_percent(text: str) -> float:
    """``"10%"`` or ``"10"`` -> 10.0 (percent)."""
    match = _PCT_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a percentage: write it as 10% or 10")
    return float(match.group(1))


def parse_threshold(text: str) -> tuple[str, float]:
    """``"e2e.p99=15%"`` -> ("e2e.p99", 15.0); the metric must be known."""
    name, sep, pct = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r}: write a threshold as METRIC=PCT, for example e2e.p99=15%")
    try:
        key = metric(name.strip()).key
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return key, parse_percent(pct)


def parse_latency_us(text: str) -> float:
    """A duration with a unit (``50us``, ``1ms``) in microseconds."""
    return parse_duration_s(text) * 1e6


# --------------------------------------------------------------------------- the check


def _worse_pct(m: Metric, row: Row) -> float:
    """How much worse the candidate is, in percent of the baseline (negative: better)."""
    assert row.diff_pct is not None
    return -row.diff_pct if m.higher_is_better else row.diff_pct


def _values(m: Metric, row: Row) -> str:
    text = f"{m.format(row.base_value)} -> {m.format(row.cand_value)}"
    if row.diff_pct is not None and not math.isinf(row.diff_pct):
        text += f" ({row.diff_pct:+.1f}%)"
    if len(row.baseline) > 1 or len(row.candidate) > 1:
        text += f", medians of {len(row.baseline)} vs {len(row.candidate)} runs"
    return text


def _raw(values: list[float]) -> str:
    """Values as stored, NaN and infinities included (formatting would hide them)."""
    return ", ".join(f"{v:g}" for v in values) or "none"


def _judge(row: Row, threshold_pct: float, grouped: bool, min_latency_diff_us: float) -> Finding:
    m = row.metric
    direction = "higher is better" if m.higher_is_better else "lower is better"
    broken = [
        side
        for side, values in (("baseline", row.baseline), ("candidate", row.candidate))
        if not all(math.isfinite(v) for v in values)
    ]
    if broken or row.verdict == NOT_A_NUMBER:
        return Finding(
            row.point,
            m.key,
            FAIL,
            f"not a number in the {' and the '.join(broken)} (baseline {_raw(row.baseline)}, "
            f"candidate {_raw(row.candidate)}): a broken measurement, never a pass",
            row,
        )
    if row.base_value is None:
        return Finding(row.point, m.key, PASS, "new in the candidate: nothing to compare", row)
    if row.cand_value is None:
        return Finding(
            row.point,
            m.key,
            FAIL,
            f"{m.key} is missing in the candidate (baseline {m.format(row.base_value)})",
            row,
        )
    worse = _worse_pct(m, row)
    values = _values(m, row)
    if worse <= 0:
        improved = -worse > threshold_pct and not (
            m.unit == "us" and abs(row.diff or 0.0) < min_latency_diff_us
        )
        if improved and grouped and (row.p_value is None or row.p_value >= ALPHA):
            improved = False
        word = IMPROVED if improved else "not worse"
        return Finding(row.point, m.key, PASS, f"{word}: {values}", row)
    if m.unit == "us" and abs(row.diff or 0.0) < min_latency_diff_us:
        return Finding(
            row.point,
            m.key,
            PASS,
            f"worse by {format_latency_us(abs(row.diff or 0.0))} only, under the "
            f"{format_latency_us(min_latency_diff_us)} that counts: {values}",
            row,
        )
    if math.isinf(worse):
        why = f"{m.key} was 0 in the baseline, and any increase from zero counts"
    elif worse > threshold_pct:
        why = f"{worse:.1f}% worse ({direction}), beyond the {threshold_pct:g}% threshold"
    else:
        return Finding(
            row.point,
            m.key,
            PASS,
            f"{worse:.1f}% worse, within the {threshold_pct:g}% threshold: {values}",
            row,
        )
    if grouped:
        if row.p_value is not None and row.p_value >= ALPHA:
            return Finding(
                row.point,
                m.key,
                PASS,
                f"within noise (Mann-Whitney p={row.p_value:.3f} >= "
                f"{ALPHA}), although {why}: {values}",
                row,
            )
        why += f", and significant (Mann-Whitney p={row.p_value:.3f} < {ALPHA})"
    return Finding(row.point, m.key, FAIL, f"regressed: {values}; {why}", row)


def check(
    candidate: Group,
    baseline: Group,
    max_regression_pct: float = DEFAULT_MAX_REGRESSION_PCT,
    thresholds: Mapping[str, float] | None = None,
    metrics: Iterable[str] = GATE_METRICS,
    min_latency_diff_us: float = DEFAULT_MIN_LATENCY_DIFF_US,
) -> GateResult:
    """Judge ``candidate`` against ``baseline``; see the module docstring for the rules.

    ResultsError when a baseline run did not complete: there is nothing to judge against."""
    for run in baseline.runs:
        why = run.incomplete()
        if why is not None:
            raise ResultsError(
                f"{run.path / MANIFEST}: status: the baseline run did not complete ({why}); "
                "a gate needs a finished baseline",
                hint="check against a run whose manifest says ok",
            )
    thresholds = {**DEFAULT_THRESHOLDS, **dict(thresholds or {})}
    keys = [metric(k).key for k in metrics]
    keys += [k for k in thresholds if k not in keys]
    n1, n2 = len(baseline.runs), len(candidate.runs)
    grouped = n1 > 1 and n2 > 1
    notes = []
    if grouped:
        notes.append(
            f"{n1} baseline vs {n2} candidate runs: a regression must be significant "
            f"(Mann-Whitney U, p < {ALPHA}) and beyond its threshold"
        )
        if min_p_value(n1, n2) >= ALPHA:
            notes.append(
                f"warning: with {n1} vs {n2} runs Mann-Whitney U cannot reach p < {ALPHA}, so "
                "no metric regression can fail this check; use at least 4 runs a side"
            )
    else:
        notes.append(
            "single runs (no repetitions): the threshold alone decides, without a significance "
            "test; repeat runs (bench run --repeat 5) to tell noise from change"
        )
    custom = ", ".join(f"{k} {v:g}%" for k, v in thresholds.items())
    notes.append(
        f"thresholds: {max_regression_pct:g}% worse"
        + (f"; {custom}" if custom else "")
        + f"; latency changes under {format_latency_us(min_latency_diff_us)} never count"
    )

    findings: list[Finding] = []
    base_keys = baseline.point_keys()
    cand_keys = candidate.point_keys()
    for key in base_keys:
        if key not in cand_keys:
            findings.append(
                Finding(key, "point", FAIL, "in the baseline but missing from the candidate")
            )
            continue
        for metric_key in keys:
            m = metric(metric_key)
            base_values = baseline.values(key, m)
            cand_values = candidate.values(key, m)
            if not base_values and not cand_values:
                continue
            row = compare_row(key, m, base_values, cand_values)
            threshold = thresholds.get(metric_key, max_regression_pct)
            findings.append(_judge(row, threshold, grouped, min_latency_diff_us))
    for key in cand_keys:
        if key not in base_keys:
            notes.append(f"{key}: new in the candidate, no baseline to compare with")
    compared = [f for f in findings if f.row is not None and f.row.base_value is not None]
    if not compared:
        findings.append(
            Finding(
                "run",
                "comparable checks",
                FAIL,
                f"nothing to compare: no gated metric of any point has a value in both the "
                f"baseline ({len(base_keys)} points) and the candidate ({len(cand_keys)} points)",
            )
        )
    for run in candidate.runs:
        why = run.incomplete()
        if why is not None:
            findings.append(
                Finding(
                    run.run_id,
                    "run",
                    FAIL,
                    f"the candidate run did not complete ({why}): {run.path / MANIFEST}",
                )
            )
        for point in run.points:
            where = point.key if len(candidate.runs) == 1 else f"{point.key} [{run.run_id}]"
            status = point.summary.get("status")
            if status not in ("ok", None):
                problems = "; ".join(point.summary.get("problems") or [])
                findings.append(
                    Finding(where, "status", FAIL, f"the point {status}: {problems}".rstrip(": "))
                )
            for slo_key, verdict in (point.summary.get("slo") or {}).items():
                value = verdict.get("value_us")
                limit = verdict.get("threshold_us")
                text = f"{format_latency_us(value)} against {format_latency_us(limit)}"
                if isinstance(value, float) and not math.isfinite(value):
                    # Whatever the stored "pass" says, a broken measurement holds nothing.
                    findings.append(
                        Finding(
                            where,
                            f"slo {slo_key}",
                            FAIL,
                            f"not a number: measured {value:g} against {format_latency_us(limit)}",
                        )
                    )
                elif verdict.get("pass"):
                    findings.append(Finding(where, f"slo {slo_key}", PASS, f"holds: {text}"))
                elif verdict.get("pass") is None:
                    # Declared but unverifiable (nothing measured, or too few samples for the
                    # percentile): not a pass.
                    why = (
                        f"insufficient data: {text} on {verdict.get('samples')} samples, "
                        f"{verdict.get('samples_needed')} needed"
                        if verdict.get("result") == "insufficient data"
                        else "no measurements for this SLO"
                    )
                    findings.append(Finding(where, f"slo {slo_key}", FAIL, why))
                else:
                    findings.append(Finding(where, f"slo {slo_key}", FAIL, f"SLO broken: {text}"))
            # The point's verdict: loss, duplicates, reordering, invariants, the error rate.
            judged = verdict_of(point.summary)
            if judged["result"] == "pass":
                findings.append(Finding(where, "verdict", PASS, "pass"))
            else:
                findings.append(
                    Finding(
                        where,
                        "verdict",
                        FAIL,
                        f"{judged['result']}: " + "; ".join(judged["reasons"]),
                    )
                )
    return GateResult(baseline, candidate, findings, notes)


# --------------------------------------------------------------------------- rendering


def headline(result: GateResult) -> str:
    failures = result.failures
    if not failures:
        return (
            f"PASS: candidate {result.candidate.name} against baseline {result.baseline.name}: "
            f"{len(result.findings)} checks, no regression, every SLO holds"
        )
    return (
        f"FAIL: candidate {result.candidate.name} against baseline {result.baseline.name}: "
        f"{len(failures)} of {len(result.findings)} checks failed"
    )


def to_text(result: GateResult) -> str:
    lines = [headline(result), *(f"  note: {n}" for n in result.notes)]
    for f in result.failures:
        lines.append(f"  FAIL  {f.point}  {f.name}: {f.message}")
    for f in result.findings:
        if not f.failed and f.message.startswith(IMPROVED):
            lines.append(
                f"  improved  {f.point}  {f.name}: {f.message.removeprefix(IMPROVED + ': ')}"
            )
    noise = [f for f in result.findings if not f.failed and f.message.startswith("within noise")]
    for f in noise:
        lines.append(f"  noise  {f.point}  {f.name}: {f.message}")
    return "\n".join(lines)


def to_junit(result: GateResult) -> str:
    suite = ET.Element(
        "testsuite",
        name="bench check",
        tests=str(len(result.findings)),
        failures=str(len(result.failures)),
        errors="0",
        skipped="0",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="baseline", value=result.baseline.name)
    ET.SubElement(properties, "property", name="candidate", value=result.candidate.name)
    for f in result.findings:
        case = ET.SubElement(
            suite, "testcase", classname=f"bench.check.{f.point}", name=f.name, time="0"
        )
        if f.failed:
            failure = ET.SubElement(case, "failure", message=f.message, type="regression")
            failure.text = f"{f.point} {f.name}: {f.message}"
        else:
            ET.SubElement(case, "system-out").text = f.message
    ET.SubElement(suite, "system-out").text = "\n".join(result.notes)
    root = ET.Element(
        "testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0")
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_markdown(result: GateResult) -> str:
    from bench.report.markdown import cell

    title = "✅ bench check passed" if result.passed else "❌ bench check failed"
    out = [f"## {title}\n", headline(result) + "\n", *(f"- {n}" for n in result.notes), ""]
    if result.failures:
        out += ["### What failed\n", "| point | check | why |", "|---|---|---|"]
        out += [
            f"| {cell(f.point)} | {cell(f.name)} | {cell(f.message)} |" for f in result.failures
        ]
        out.append("")
    out += [
        "<details><summary>Every check</summary>\n",
        "| | point | check | result |",
        "|---|---|---|---|",
    ]
    for f in result.findings:
        mark = "❌" if f.failed else "✅"
        out.append(f"| {mark} | {cell(f.point)} | {cell(f.name)} | {cell(f.message)} |")
    out.append("\n</details>\n")
    return "\n".join(out)
