"""The verdict of a point: did the target do what it must?

``status`` says whether a point ran (ok, failed, interrupted). The verdict says whether the
target did what it must, in words: nothing acknowledged was lost, no message was duplicated or
reordered within its key, the store's invariants held, the error rate stayed under its
threshold, and every SLO held on enough samples to judge it. One module owns these rules; the
runner stores the verdict in summary.json, and every reader (terminal, reports, exit code) shows
that stored verdict. Summaries written before verdicts existed are judged here on reading.

Results:

- ``pass``: the point ran to the end and every rule held;
- ``fail``: at least one rule was broken (the reasons say which, with numbers);
- ``inconclusive``: nothing was broken, but something could not be judged (an SLO on too few
  samples, a point that did not run to the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.units import format_count, format_latency_us, format_percent

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"

# An SLO's percentile must rest on this many samples beyond it: a p99 of 1,000 samples has ten
# above it; a p99 of a few dozen is just their maximum, one hiccup of the machine.
SAMPLES_BEYOND = 10
STAT_QUANTILE = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
# SLO results.
SLO_PASS = "pass"
SLO_FAIL = "fail"
SLO_INSUFFICIENT = "insufficient data"
SLO_NO_DATA = "no data"
DEFAULT_MAX_ERROR_RATE = 0.001


def samples_needed(stat: str) -> int:
    """How many samples an SLO on ``stat`` needs before it can pass (max and mean: one)."""
    quantile = STAT_QUANTILE.get(stat)
    if quantile is None:
        return 1
    return math.ceil(SAMPLES_BEYOND / (1.0 - quantile) - 1e-9)


def judge_slo(stat: str, value_us: float | None, samples: int, threshold_us: float) -> str:
    """One SLO's result. A broken SLO fails on any number of samples (the samples seen are
    already over the line); a held one passes only on enough samples to mean it."""
    if value_us is None or samples == 0:
        return SLO_NO_DATA
    if value_us > threshold_us:
        return SLO_FAIL
    if samples < samples_needed(stat):
        return SLO_INSUFFICIENT
    return SLO_PASS


def slo_entry(key: str, threshold_us: float, latency: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary's record of one SLO (``"pass"`` stays for readers of older files)."""
    kind, _, stat = key.partition(".")
    stats = latency.get(kind) or {}
    value = stats.get(stat)
    samples = int(stats.get("count") or 0)
    result = judge_slo(stat, value, samples, threshold_us)
    return {
        "threshold_us": threshold_us,
        "value_us": value,
        "pass": {SLO_PASS: True, SLO_FAIL: False}.get(result),
        "result": result,
        "samples": samples,
        "samples_needed": samples_needed(stat),
    }


@dataclass
class Verdict:
    result: str = PASS
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.result = FAIL
        self.reasons.append(reason)

    def doubt(self, reason: str) -> None:
        if self.result == PASS:
            self.result = INCONCLUSIVE
        self.reasons.append(reason)

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result, "reasons": list(self.reasons)}


def error_rate(summary: dict[str, Any]) -> tuple[float | None, int, int]:
    """(rate, failed, scheduled): a stream's failed and skipped events over every event
    intended in the window; an event store's abandoned and skipped commands over all of its
    commands, the figures its tables show (an append error that a retry overcame is no
    failure)."""
    errors = summary.get("errors") or {}
    skipped = int((summary.get("throughput") or {}).get("skipped") or 0)
    if summary.get("kind") in ("store", "pipeline") and summary.get("store"):
        store = summary["store"]
        failed = int(store.get("abandoned") or 0) + skipped
        scheduled = int(store.get("commands") or 0) + skipped
    elif "failed_in_window" in errors and "scheduled_in_window" in errors:
        failed, scheduled = int(errors["failed_in_window"]), int(errors["scheduled_in_window"])
    else:  # an older summary: whole-run counts are the best there is
        audit = summary.get("audit") or {}
        failed = int(audit.get("failed") or 0) + skipped
        scheduled = int(audit.get("sent") or 0) + skipped
    if scheduled <= 0:
        return None, failed, scheduled
    return failed / scheduled, failed, scheduled


def projection_text(audit: dict[str, Any]) -> str:
    """The order projection's failures in words: how many events arrived before the state they
    need, over how many aggregates, and how many never got it."""
    failures = int(audit.get("projection_failures") or 0)
    keys = int(audit.get("keys_projection_failed") or 0)
    stuck = int(audit.get("projection_stuck") or 0)
    text = format_count(failures)
    if keys:
        text += f" over {format_count(keys)} aggregate{'s' if keys != 1 else ''}"
    if stuck:
        text += f", {format_count(stuck)} never applied (their state never came)"
    return text


def judge(summary: dict[str, Any], rules: dict[str, Any] | None = None) -> Verdict:
    """The verdict of one point's summary, under the scenario's ``[verdict]`` rules."""
    rules = rules or {}
    max_error_rate = float(rules.get("max_error_rate", DEFAULT_MAX_ERROR_RATE))
    verdict = Verdict()
    status = summary.get("status")
    audit = summary.get("audit") or {}
    store = summary.get("store") if summary.get("kind") in ("store", "pipeline") else None
    pipeline = summary.get("pipeline") if summary.get("kind") == "pipeline" else None

    lost = int(audit.get("lost") or 0)
    if lost:
        loss = audit.get("loss") or {}
        detail = _loss_detail(loss)
        verdict.fail(f"lost {format_count(lost)} acknowledged" + (f" ({detail})" if detail else ""))
    duplicated = int(audit.get("duplicated") or 0)
    redelivered = audit.get("redelivered")
    if redelivered is not None:
        # A killed consumer's uncommitted messages coming again is at-least-once delivery
        # doing its job: what it did to the read model is judged below (apply), and only the
        # duplicates the broker made by itself are the broker's.
        duplicated = int(audit.get("broker_duplicates") or 0)
    if duplicated and not rules.get("allow_duplicates", False):
        what = "broker duplicates" if redelivered is not None else "duplicated"
        verdict.fail(f"{what} {format_count(duplicated)}")
    apply = summary.get("apply") if summary.get("kind") == "stream" else None
    if apply and int(apply.get("duplicates_applied") or 0):
        verdict.fail(
            f"applied {format_count(int(apply['duplicates_applied']))} duplicates to the read "
            f"model ({apply.get('mode')} consumers: an event delivered again changed it again)"
        )
    reordered = int(audit.get("reordered") or 0)
    if reordered and not rules.get("allow_reordering", False):
        keys = int(audit.get("keys_reordered") or 0)
        verdict.fail(
            f"reordered {format_count(reordered)}"
            + (f" over {format_count(keys)} keys" if keys else "")
        )
    failures = int(audit.get("projection_failures") or 0)
    if failures and not rules.get("allow_reordering", False):
        verdict.fail(f"projection failures {projection_text(audit)}")
    if audit.get("projection_note") and not rules.get("allow_reordering", False):
        # The order could not be judged: never counted as held.
        verdict.doubt(f"order projection {audit['projection_note']}")
    if store is not None:
        invariants = store.get("invariants") or {}
        for violation in (invariants.get("violations") or [])[:3]:
            verdict.fail(f"invariant: {violation}")
        if invariants.get("ok") is False and not invariants.get("violations"):
            verdict.fail("invariant violated")
        for what in invariants.get("not_checked") or []:
            # A check the driver cannot make is never counted as passed.
            verdict.doubt(f"not checked: {what}")
    if pipeline is not None:
        invariants = pipeline.get("invariants") or {}
        for violation in (invariants.get("violations") or [])[:3]:
            verdict.fail(f"pipeline: {violation}")
        if invariants.get("ok") is False and not invariants.get("violations"):
            if invariants.get("checked"):
                verdict.fail("pipeline invariant violated")
            elif status != "interrupted":
                verdict.doubt("pipeline invariants not checked")
    rate, failed, scheduled = error_rate(summary)
    if rate is not None and rate > max_error_rate:
        over = f"{format_percent(rate)} > {format_percent(max_error_rate)}"
        if store is not None:
            # One figure for a store: its failures are abandoned (and skipped) commands.
            skipped = int((summary.get("throughput") or {}).get("skipped") or 0)
            abandoned = max(0, failed - skipped)
            what = f"abandoned {format_count(abandoned)}"
            if skipped:
                what += f" and skipped {format_count(skipped)}"
            verdict.fail(f"{what} of {format_count(scheduled)} commands ({over})")
        else:
            verdict.fail(
                f"error rate {over} ({format_count(failed)} failed or skipped "
                f"of {format_count(scheduled)})"
            )
    for key, slo in (summary.get("slo") or {}).items():
        result = slo.get("result") or _old_slo_result(slo)
        threshold = format_latency_us(slo.get("threshold_us"))
        if result == SLO_FAIL:
            verdict.fail(f"SLO {key} {format_latency_us(slo.get('value_us'))} > {threshold}")
        elif result == SLO_INSUFFICIENT:
            verdict.doubt(
                f"SLO {key}: insufficient data ({format_count(slo.get('samples') or 0)} samples, "
                f"{format_count(slo.get('samples_needed') or 0)} needed)"
            )
        elif result == SLO_NO_DATA:
            verdict.doubt(f"SLO {key}: no data")
    saga = summary.get("saga") if summary.get("kind") == "saga" else None
    if saga:
        for reason in saga_failures(saga):
            verdict.fail(reason)
    replay = summary.get("replay") if summary.get("kind") == "replay" else None
    if replay:
        for reason in replay_failures(replay):
            verdict.fail(reason)
    if status != "interrupted":  # cut short: the backlog had no chance to build or drain
        for reason in backlog_failures(summary.get("backlog")):
            verdict.fail(reason)
    for row in summary.get("faults") or []:
        name = f"{row.get('action', 'fault')} at {row.get('at_s', 0):g}s"
        if row.get("status") == "failed":
            verdict.doubt(f"fault {name} failed: {row.get('detail') or 'no detail'}")
        elif row.get("status") == "not reached":
            verdict.doubt(f"fault {name} not reached")
        elif row.get("consumers_resumed") is False:
            verdict.fail(f"{name}: deliveries never resumed")
        elif (
            row.get("status") == "done"
            and row.get("recovery_s") is None
            and _rated(summary)
            and status != "interrupted"  # cut short: there was no load left to recover in
        ):
            # The faults table's recovery column says the same words; the threshold
            # (RECOVERED_FRACTION of the rate) is in its caption.
            verdict.fail(f"{name}: not recovered{_outlasted(summary, row)}")
    if status == "interrupted":
        verdict.doubt("interrupted before the end")
    elif status not in (None, "ok"):
        problems = summary.get("problems") or []
        verdict.doubt("the point did not run to the end" + (f": {problems[0]}" if problems else ""))
    return verdict


def _outlasted(summary: dict[str, Any], row: dict[str, Any]) -> str:
    """Why a fault's recovery could not be seen, when it ended after the load did."""
    workload = summary.get("workload") or {}
    load_s = float(workload.get("warmup_s") or 0.0) + float(workload.get("duration_s") or 0.0)
    end_s = float(row.get("at_s") or 0.0) + float(row.get("down_for_s") or 0.0)
    if load_s > 0 and end_s >= load_s:
        return (
            f" (the fault ends at {end_s:g}s, the load at {load_s:g}s: no load was left to "
            "recover; end the fault earlier or lengthen the load)"
        )
    return ""


def saga_failures(saga: dict[str, Any]) -> list[str]:
    """A saga point's failures in words: sagas stuck (not final within stuck_after of the
    load's end, with an example's last step) and the invariants' violations. Compensated and
    dead-lettered sagas are the outcomes the failure knobs ask for, not failures."""
    reasons = []
    stuck = int(saga.get("stuck") or 0)
    # An interrupted run did not wait for its open sagas: they are not stuck, just unfinished.
    if stuck and saga.get("stuck_judged", True):
        sample = (saga.get("stuck_samples") or [{}])[0]
        example = (
            f" (e.g. {sample.get('saga')} {sample.get('status')} at {sample.get('last_step')})"
            if sample
            else ""
        )
        reasons.append(f"{format_count(stuck)} sagas stuck{example}")
    for violation in ((saga.get("invariants") or {}).get("violations") or [])[:3]:
        reasons.append(f"saga invariant: {violation}")
    return reasons


def backlog_failures(backlog: dict[str, Any] | None) -> list[str]:
    """A backlog point's failures in words: the backlog was never built within the load, or
    the consumers never drained it before the drain ended."""
    if not backlog:
        return []
    reasons = []
    messages = format_count(int(backlog.get("backlog_messages") or 0))
    if not backlog.get("built"):
        owed = backlog.get("owed_at_resume")
        reasons.append(
            f"backlog not built: {messages} messages never acknowledged within the load"
            + (f" ({format_count(int(owed))} owed when the consumers resumed)" if owed else "")
        )
    if not backlog.get("drained"):
        threshold = format_count(int(backlog.get("drained_threshold") or 0))
        reasons.append(
            f"backlog not drained: what the consumers owed never fell to {threshold} messages "
            "before the drain ended"
        )
    return reasons


def replay_failures(replay: dict[str, Any]) -> list[str]:
    """A replay's failures in words: the strict reader stopped at an old event (which one,
    and how much was left unread), or a migration changed what a stream means."""
    reasons = []
    read = replay.get("replay") or {}
    first = read.get("first_unreadable")
    if first:
        reasons.append(
            f"the {replay.get('reader', 'strict')} reader stopped at {first['event_type']} "
            f"v{first['schema_version']} (expects v{first['reader_expects']}; stream "
            f"{first['aggregate_id']} version {first['version']}, event "
            f"{format_count(int(first['position']))} of the replay): "
            f"{format_count(int(read.get('unread') or 0))} events left unread"
        )
    elif int(read.get("unread") or 0):
        reasons.append(f"{format_count(int(read['unread']))} events left unread")
    load = replay.get("load") or {}
    for what, check in (
        ("a snapshot plus its tail", (load.get("check") or {})),
        ("the archive plus the live table", ((load.get("archive") or {}).get("check") or {})),
    ):
        if int(check.get("mismatched") or 0):
            reasons.append(
                f"{what} folded differently from the history for "
                f"{format_count(int(check['mismatched']))} of "
                f"{format_count(int(check.get('sampled') or 0))} aggregates checked"
            )
    changed = replay.get("meaning_changed")
    if changed:
        reasons.append(
            f"the migration changed what {format_count(int(changed))} streams mean (their fold "
            "after the rewrite differs from the fold before)"
        )
    return reasons


def _rated(summary: dict[str, Any]) -> bool:
    """Whether the fault figures had a rate to judge recovery against (open loop)."""
    return not summary.get("closed_loop")


def _loss_detail(loss: dict[str, Any]) -> str:
    if not loss.get("checked"):
        return ""
    parts = []
    for name, words in (("not_stored", "not stored"), ("not_delivered", "stored, not delivered")):
        if loss.get(name):
            parts.append(f"{format_count(loss[name])} {words}")
    if loss.get("unclassified"):
        parts.append(f"{format_count(loss['unclassified'])} unclassified")
    return ", ".join(parts)


def _old_slo_result(slo: dict[str, Any]) -> str:
    passed = slo.get("pass")
    if passed is True:
        return SLO_PASS
    if passed is False:
        return SLO_FAIL
    return SLO_NO_DATA


def verdict_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The stored verdict, or (a summary written before verdicts) one judged now."""
    stored = summary.get("verdict")
    if isinstance(stored, dict) and stored.get("result") in (PASS, FAIL, INCONCLUSIVE):
        return stored
    return judge(summary).as_dict()


def verdict_text(summary: dict[str, Any]) -> str:
    """``pass``, or ``FAIL: reason; reason`` / ``inconclusive: reason``: words, never colour."""
    verdict = verdict_of(summary)
    if verdict["result"] == PASS:
        return PASS
    head = "FAIL" if verdict["result"] == FAIL else INCONCLUSIVE
    return f"{head}: " + "; ".join(verdict["reasons"])
