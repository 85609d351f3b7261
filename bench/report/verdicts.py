"""The verdicts as a reader sees them: the status and verdict of a point in words, the report's
verdict banner, the table of the figures each verdict judged, and the notes beside it.

``bench.verdict`` judges; this module only presents. The banner quotes the verdict's reasons
as the runner stored them, and the verdict table shows the same figures read from the summary
with the same formatters (``bench.units``), so every number in the banner can be found in a
table (tests/e2e/test_report_browser.py checks it in Chromium).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.report import faults
from bench.report import pipeline as pipeline_words
from bench.report.tables import Point, Run
from bench.units import format_count, format_latency_us, format_percent
from bench.verdict import (
    DEFAULT_MAX_ERROR_RATE,
    FAIL,
    INCONCLUSIVE,
    PASS,
    error_rate,
    projection_text,
    replay_failures,
    saga_failures,
    samples_needed,
    verdict_of,
    verdict_text,
)

# pandas is the report extra: it is imported where a frame is built, so the terminal
# tables (bench run, bench show) work on a core install.
if TYPE_CHECKING:
    import pandas as pd

SEPARATOR = " · "
PASS_BANNER = (
    "Pass. Every point ran, every SLO holds on enough samples, no acknowledged event was lost, "
    "duplicated or reordered, and errors stayed under their threshold."
)
# A run of sagas, or of replays, alone: what their verdicts judged (they have no delivery
# audit, so the stream banner's claims would be about nothing they measured).
SAGA_PASS_BANNER = (
    "Pass. Every point ran, every SLO holds on enough samples, every saga ended in exactly one "
    "final state (none stuck) with the saga invariants held, every fault was recovered from, "
    "and failed publishes stayed under their threshold."
)
REPLAY_PASS_BANNER = (
    "Pass. Every point ran, every reader read its whole history back, and every check of what "
    "it folded held."
)
TABLE_CAPTION = (
    "Each point that did not pass, with the figures its verdict judged, read from the point's "
    "summary: the error rate (failed or skipped events over every event intended in the "
    "measurement window; for an event store, abandoned or skipped commands over all its "
    "commands; for sagas, failed publish attempts over every publish attempt) against its "
    "limit, the audit of acknowledged events, the store's "
    "abandoned commands and invariants (a pipeline's: its own and its store's, with the "
    "committed events never applied and the events applied twice), and each SLO against the "
    "samples it needs."
)

# Columns of the verdict table shown even when every row is 0 or empty.
ALWAYS_SHOWN = ("point", "status", "verdict", "error rate", "max error rate", "failed or skipped")
# Shown with the list of points that did not pass, when some did.
OTHERS_PASSED = "Every other point ran and passed."


def status_text(summary: dict[str, Any]) -> str:
    """``ok · pass``, ``ok · FAIL: lost 4 acknowledged``, ``interrupted · inconclusive: ...``:
    whether the point ran and whether the target did what it must, in words."""
    return f"{summary.get('status', '?')}{SEPARATOR}{verdict_text(summary)}"


def result_of(summary: dict[str, Any]) -> str:
    """pass, fail or inconclusive (the stored verdict, or one judged now for an old file)."""
    return str(verdict_of(summary)["result"])


def passed(summary: dict[str, Any]) -> bool:
    return summary.get("status") == "ok" and result_of(summary) == PASS


# --------------------------------------------------------------------------- banner


@dataclass(frozen=True)
class Banner:
    """The verdict banner of a report: pass, or the points that did not pass and why."""

    result: str  # pass, fail or inconclusive: the worst of the points'
    lines: list[str]  # one per point that did not pass: "label: status · FAIL: reasons"
    others_passed: bool  # some points passed besides the ones listed
    incomplete: bool = False  # the run did not finish (cut off, stopped): never a pass
    # What the passing points had that the scenario's [verdict] rules allow (duplicates,
    # reordering, projection failures), in words: a pass never claims there were none.
    allowed: str = ""
    # The points' kinds: a run of sagas or replays alone gets its own pass banner.
    kinds: frozenset[str] = frozenset()

    @property
    def headline(self) -> str:
        if self.result == PASS:
            if self.kinds == {"saga"}:
                return SAGA_PASS_BANNER
            if self.kinds == {"replay"}:
                return REPLAY_PASS_BANNER
            if self.allowed:
                return (
                    "Pass. Every point ran, every SLO holds on enough samples, no acknowledged "
                    "event was lost, and errors stayed under their threshold. The scenario's "
                    f"[verdict] rules allowed what the audit found: {self.allowed}."
                )
            return PASS_BANNER
        if self.result == FAIL:
            return "FAIL: the target did not do what it must at these points."
        if self.incomplete:
            return "Incomplete: the run did not finish; this report holds what it completed."
        return "Inconclusive: these points could not be judged in full."


def _allowed_text(points: Iterable[Point]) -> str:
    """The duplicates, reordering and projection failures of the given points, summed."""
    totals = {"duplicated": 0, "reordered": 0, "projection failures": 0}
    for p in points:
        audit = p.summary.get("audit") or {}
        totals["duplicated"] += int(audit.get("duplicated") or 0)
        totals["reordered"] += int(audit.get("reordered") or 0)
        totals["projection failures"] += int(audit.get("projection_failures") or 0)
    return ", ".join(f"{name} {format_count(n)}" for name, n in totals.items() if n)


def banner(points: Iterable[Point], incomplete: str | None = None) -> Banner:
    """Pass only when every point ran (status ok) and every verdict is pass, and the run itself
    completed: ``incomplete`` (``Run.completion_note``) says why it did not, and the banner is
    then inconclusive at best, whatever the points that did complete measured."""
    points = list(points)
    lines = []
    results = []
    count = 0
    if incomplete:
        results.append(INCONCLUSIVE)
        lines.append(f"Not the whole run: {incomplete}.")
    for p in points:
        count += 1
        result = result_of(p.summary)
        if passed(p.summary):
            continue
        # A point that did not run to the end is at best inconclusive, whatever it measured.
        results.append(result if result != PASS else INCONCLUSIVE)
        lines.append(f"{p.label}: {status_text(p.summary)}")
    if not lines:
        kinds = frozenset(str(p.summary.get("kind") or "stream") for p in points)
        return Banner(PASS, [], count > 0, allowed=_allowed_text(points), kinds=kinds)
    worst = FAIL if FAIL in results else INCONCLUSIVE
    listed = len(lines) - (1 if incomplete else 0)
    return Banner(worst, lines, listed < count, bool(incomplete))


# --------------------------------------------------------------------------- verdict table


def _errors_cells(summary: dict[str, Any]) -> tuple[str, str]:
    """(the error rate, "failed of scheduled") as the verdict computes them."""
    rate, failed, scheduled = error_rate(summary)
    if rate is None:
        return "-", "-"
    return format_percent(rate), f"{format_count(failed)} of {format_count(scheduled)}"


def _max_error_rate(summary: dict[str, Any]) -> float:
    value = (summary.get("errors") or {}).get("max_rate")
    return float(value) if isinstance(value, int | float) else DEFAULT_MAX_ERROR_RATE


def _lost_cell(audit: dict[str, Any]) -> str:
    lost = int(audit.get("lost") or 0)
    loss = audit.get("loss") or {}
    if not lost:
        return format_count(lost)
    if not loss.get("checked"):
        reason = loss.get("reason") or "not classified"
        return f"{format_count(lost)} ({reason})"
    samples = loss.get("samples") or {}
    parts = []
    for name, words in (
        ("not_stored", "not stored"),
        ("not_delivered", "stored, not delivered"),
        ("unclassified", "unclassified"),
    ):
        if loss.get(name):
            ids = samples.get(name) or []
            shown = (
                f": {', '.join(ids)}" + (", ..." if loss[name] > len(ids) else "") if ids else ""
            )
            parts.append(f"{format_count(loss[name])} {words}{shown}")
    return f"{format_count(lost)} ({'; '.join(parts)})" if parts else format_count(lost)


def loss_lines(summaries: Iterable[dict[str, Any]]) -> list[str]:
    """Per point with a loss: how many were not stored and not delivered, with sample ids
    (producer:seq), and how the target was re-read; for the terminal under its table."""
    lines = []
    for summary in summaries:
        audit = summary.get("audit") or {}
        if not audit.get("lost"):
            continue
        loss = audit.get("loss") or {}
        label = summary.get("label") or summary.get("target") or "?"
        how = f" (re-read: {loss['method']})" if loss.get("checked") and loss.get("method") else ""
        lines.append(f"{label}: lost {_lost_cell(audit)}{how}")
    return lines


def _reordered_cell(audit: dict[str, Any]) -> str:
    reordered = int(audit.get("reordered") or 0)
    keys = int(audit.get("keys_reordered") or 0)
    return format_count(reordered) + (f" over {format_count(keys)} keys" if keys else "")


def slo_cell(key: str, slo: dict[str, Any]) -> str:
    """One SLO as judged: value, threshold, samples against those needed, result in words."""
    result = slo.get("result")
    if result is None:  # an older summary
        passed = slo.get("pass")
        result = "pass" if passed is True else "fail" if passed is False else "no data"
    stat = key.partition(".")[2]
    samples = slo.get("samples")
    needed = slo.get("samples_needed") or samples_needed(stat)
    sample_text = (
        f" on {format_count(samples)} samples ({format_count(needed)} needed)"
        if isinstance(samples, int)
        else ""
    )
    return (
        f"{key} {format_latency_us(slo.get('value_us'))} (limit "
        f"{format_latency_us(slo.get('threshold_us'))}){sample_text}: {result}"
    )


def _store_cells(summary: dict[str, Any]) -> tuple[str, str]:
    """(abandoned commands, invariants): a store's, or a pipeline's command side and its
    invariants (the pipeline's and the store's), as ``bench.verdict.judge`` reads them."""
    store = summary.get("store") if summary.get("kind") in ("store", "pipeline") else None
    if not store:
        return "-", "-"
    commands = int(store.get("commands") or 0)
    abandoned = int(store.get("abandoned") or 0)
    abandoned_text = format_count(abandoned)
    if commands:
        abandoned_text += (
            f" of {format_count(commands)} commands ({format_percent(abandoned / commands)})"
        )
    if pipeline_words.is_pipeline(summary):
        return abandoned_text, pipeline_words.invariants_text(summary)
    invariants = store.get("invariants") or {}
    violations = invariants.get("violations") or []
    if invariants.get("ok", True) and not violations:
        inv_text = "hold"
    else:
        # Quoted one by one in the report's invariant violations table.
        inv_text = f"{format_count(len(violations))} violated" if violations else "violated"
    return abandoned_text, inv_text


def _shown(count: int | None) -> str:
    return "-" if count is None else format_count(count)


def _pipeline_cells(summary: dict[str, Any]) -> dict[str, str]:
    """A pipeline's counts behind its invariants; "-" for any other point."""
    if not pipeline_words.is_pipeline(summary):
        return {"never applied": "-", "applied twice": "-", "read model ≠ fold": "-"}
    invariants = summary["pipeline"].get("invariants") or {}
    differing = invariants.get("aggregates_differing")
    return {
        "never applied": _shown(pipeline_words.checked_count(invariants, "never_applied")),
        "applied twice": _shown(pipeline_words.checked_count(invariants, "applied_twice")),
        # "0 of 200" is no finding: shown only when some aggregate differs.
        "read model ≠ fold": pipeline_words.differing_text(invariants) if differing else "-",
    }


def verdict_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per point that did not pass: its status, its verdict, and the figures the verdict
    judged, read from the summary (not from the verdict's words) with the report's formatters.
    A column that is 0 or empty on every row is left out: the banner names no figure there."""
    import pandas as pd

    rows = []
    for p in points:
        s = p.summary
        if passed(s):
            continue
        audit = s.get("audit") or {}
        abandoned, invariants = _store_cells(s)
        rate, failed = _errors_cells(s)
        slo = s.get("slo") or {}
        rows.append(
            {
                "point": p.label,
                "status": str(s.get("status", "?")),
                "verdict": verdict_word(s),
                "error rate": rate,
                "max error rate": format_percent(_max_error_rate(s)),
                "failed or skipped": failed,
                "lost": _lost_cell(audit),
                # What the verdict judged: the broker's own duplicates where consumers were
                # killed (redeliveries are at-least-once doing its job), and what was applied
                # twice where the consumers apply.
                "duplicated": format_count(
                    int(
                        (
                            audit.get("broker_duplicates")
                            if audit.get("redelivered") is not None
                            else audit.get("duplicated")
                        )
                        or 0
                    )
                ),
                "applied twice": (
                    format_count(int((s.get("apply") or {}).get("duplicates_applied") or 0))
                    if s.get("apply")
                    else "-"
                ),
                "replay": (
                    "; ".join(replay_failures(s["replay"]))
                    if s.get("kind") == "replay" and s.get("replay")
                    else "-"
                )
                or "-",
                "sagas": (
                    "; ".join(saga_failures(s["saga"]))
                    if s.get("kind") == "saga" and s.get("saga")
                    else "-"
                )
                or "-",
                "reordered": _reordered_cell(audit),
                "projection failures": (
                    projection_text(audit) if audit.get("projection_failures") else "-"
                ),
                "abandoned": abandoned,
                "invariants": invariants,
                **_pipeline_cells(s),
                "SLOs": "; ".join(slo_cell(k, v) for k, v in slo.items()) or "-",
                "problems": "; ".join(s.get("problems") or []) or "-",
            }
        )
    frame = pd.DataFrame(rows)
    trivial = [
        c for c in frame.columns if c not in ALWAYS_SHOWN and frame[c].isin(("0", "-")).all()
    ]
    return frame.drop(columns=trivial)


def verdict_word(summary: dict[str, Any]) -> str:
    """pass, FAIL or inconclusive: the verdict without its reasons."""
    result = result_of(summary)
    return {PASS: "pass", FAIL: "FAIL", INCONCLUSIVE: "inconclusive"}.get(result, result)


def with_verdicts(frame: pd.DataFrame, points: Iterable[Point]) -> pd.DataFrame:
    """The summary table with a verdict column beside its status (``ok`` beside ``FAIL``, so a
    failure never reads as ok), unless the table already has one. The reasons are in the
    banner and the verdict table."""
    points = list(points)
    if frame.empty or "verdict" in frame.columns or len(frame) != len(points):
        return frame
    out = frame.copy()
    words = [verdict_word(p.summary) for p in points]
    position = list(out.columns).index("status") + 1 if "status" in out.columns else 0
    out.insert(position, "verdict", words)
    return out


# --------------------------------------------------------------------------- notes


def notes(run: Run) -> list[str]:
    """What a reader must not miss besides the verdicts: client-bound points (the harness was
    the limit), the problems the run recorded, faults that failed, were not reached or never
    recovered, and capacity searches without a clean answer."""
    found = []
    for p in run.points:
        s = p.summary
        if s.get("client_bound"):
            reasons = "; ".join(s.get("client_bound_reasons") or [])
            found.append(f"{p.label}: client-bound (the harness was the limit: {reasons})")
        found += [f"{p.label}: {reason}" for reason in s.get("host_bound_reasons") or []]
        found += [f"{p.label}: {problem}" for problem in s.get("problems") or []]
    found += faults.warnings(run.points)
    if run.capacity is not None:
        from bench.report.capacity import warnings as capacity_warnings

        found += capacity_warnings(run)
    return found
