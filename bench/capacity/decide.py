"""The decision of ``bench choose``: one column of facts per target, read from the suite's
runs, and the written rules that turn the columns into a ranking and a plain-language answer.

Every fact is read from one run's ``summary.json`` (or, for the max sustainable rate, from the
search in ``capacity.json`` and the probe that passed at that rate), and keeps the directory of
that run, so the decision page links each cell to the run that produced it. The page and the
answer are built from these columns only: nothing on the page is computed anywhere else.

The written rules, R1 to R5, are ``RULES`` below: the decision page prints them, and the
README ("Choosing a broker: bench choose") quotes them. ``decide`` applies them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ResultsError
from bench.units import format_bytes, format_latency_us, format_rate, format_seconds

RULES: tuple[tuple[str, str], ...] = (
    (
        "R1 capacity",
        "A target's max sustainable rate under the SLO is exact when its search found a "
        "failing rate above it (status found, or budget with a failing rate). It is a lower "
        'bound, shown "at least X/s", when the search ended harness-bound (the harness, not '
        "the target, was the limit), ceiling (the target sustained the highest rate "
        "searched), or budget before any rate failed. Targets are ranked on capacity by "
        "exact figures only; a lower bound is never ranked, above or below.",
    ),
    (
        "R2 meets the load",
        "A target meets the SLO at the common load when its point at that load ran, passed "
        "every find-max check (SLOs, keeps up, backlog bounded, errors, not client-bound) and "
        "its verdict passed (no acknowledged loss, duplicate or reordering). A point that "
        "failed only its SLOs runs once more, as a find-max probe does, and the second decides.",
    ),
    (
        "R3 does not",
        "Otherwise, in this order: a point client-bound at the load, or a lower-bound max "
        "below the load, is not established (the harness could not drive the target there); "
        "a point at the load that did not run is not measured; a point at the load that "
        "failed does not meet the SLO at the load (with what failed); an exact max below the "
        "load, with no point at the load, does not reach the load.",
    ),
    (
        "R4 choice",
        "Among the targets that meet the load, the first is the one that, in order: (a) lost "
        "no acknowledged event under the fault (faulted and none lost, then not faulted, then "
        "lost some); (b) has the lowest CPU seconds per million events at the load (measured "
        "before not measured); (c) has the lowest latency p99 at the load. The answer names "
        "the first criterion on which the first target beats the second. An in-process target "
        "(memory) is the harness's own baseline: shown, and never chosen over a target outside "
        "the harness.",
    ),
    (
        "R5 answer",
        '"For this workload at L/s, A meets the SLO with <criterion>", then one clause per '
        'other target, in the scenario\'s order: "B also meets it" or its R3 phrase, and '
        '"lost N acknowledged events under a kill" where it did. Then the capacity sentence '
        "of R1: exact maxima, highest first, each lower bound, not ranked, and each target whose "
        "search established no rate.",
    ),
)

SUMMARY = "summary.json"
LOWER_BOUND = ("harness-bound", "ceiling")
STATUS_WORDS = {
    "found": "found",
    "budget": "the probe budget ran out",
    "budget-lower": "the probe budget ran out before any rate failed",
    "harness-bound": "the harness was the limit",
    "ceiling": "it sustained the highest rate searched",
    "none": "no rate was sustainable",
    "failed": "the search failed",
    "interrupted": "interrupted",
}


@dataclass
class Fact:
    """One cell: the number (None: not measured), its text, and the run it came from."""

    value: float | bool | str | None
    text: str
    dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Column:
    """Everything the page shows about one target, each fact with its run."""

    target: str
    label: str
    driver: str
    server: Fact
    client: Fact
    max_rate: Fact
    max_lower_bound: bool
    max_why: str  # the search's status and what limited it
    load: Fact  # meets the SLO at the load: value True/False, None (not established/measured)
    load_phrase: str  # R2/R3 in words
    p50: Fact
    p99: Fact
    cpu_per_mev: Fact
    rss: Fact
    write_amplification: Fact
    fault_lost: Fact
    fault_recovery: Fact
    order_load: Fact
    order_fault: Fact
    duplicates_load: Fact
    duplicates_fault: Fact
    fault_action: str
    client_bound: list[str] = field(default_factory=list)  # dirs of client-bound points
    host_bound: list[str] = field(default_factory=list)  # dirs of host-bound points
    # An in-process target (memory): the harness's own baseline, shown and never chosen (R4).
    baseline: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    answer: str
    ranking: list[str]  # the targets that meet the load, best first (R4)
    capacity_ranking: list[str]  # exact maxima, highest first (R1)
    unranked_capacity: list[str]  # lower bounds (R1)
    criterion: str | None  # the R4 criterion that put the first target first

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_lower_bound(status: str, upper_rate_per_s: float | None) -> bool:
    """R1: the search's max is a lower bound (nothing above it failed on the target's
    account), not the target's limit."""
    return status in LOWER_BOUND or (status == "budget" and upper_rate_per_s is None)


# --------------------------------------------------------------------------- reading the runs


def read_summary(run_dir: Path, point_dir: str | None) -> dict[str, Any] | None:
    if point_dir is None:
        return None
    path = run_dir / point_dir / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return data


def link(point_dir: str | None) -> str | None:
    """The relative path of a run's summary, from the choose run's directory."""
    return None if point_dir is None else f"{point_dir}/{SUMMARY}"


def columns(run_dir: Path, choose: dict[str, Any], latency_kind: str) -> list[Column]:
    """One column per target of ``choose.json``, each fact read from its run."""
    return [column(run_dir, entry, latency_kind) for entry in choose.get("targets") or []]


def _server(summaries: list[dict[str, Any] | None], where: str | None) -> Fact:
    for summary in summaries:
        info = (summary or {}).get("target_info") or {}
        if info.get("product"):
            text = " ".join(str(v) for v in (info.get("product"), info.get("version")) if v)
            return Fact(text, text, where)
    return Fact(None, "unknown (no run described its server)")


def _client(summary: dict[str, Any] | None, where: str | None) -> Fact:
    info = (summary or {}).get("target_info") or {}
    if info.get("in_process"):
        return Fact("in-process", "none: in-process target", where)
    client = info.get("client") or {}
    if isinstance(client, dict) and client.get("library"):
        text = f"{client['library']} {client.get('version') or ''}".strip()
        return Fact(text, text, where)
    if isinstance(client, str):
        return Fact(client, client, where)
    return Fact(None, "unknown")


def _not_measured_reason(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "not measured: no point at the load"
    if (summary.get("target_info") or {}).get("in_process"):
        return "not measured: in-process target (its work is the harness's)"
    return "not measured: the target's processes were not sampled"


def _resources(summary: dict[str, Any] | None, where: str | None) -> tuple[Fact, Fact, Fact]:
    resources = (summary or {}).get("resources")
    if not isinstance(resources, dict):
        reason = _not_measured_reason(summary)
        return Fact(None, reason, where), Fact(None, reason, where), Fact(None, reason, where)
    source = resources.get("source") or "?"
    cpu = resources.get("cpu_s_per_mev")
    cpu_fact = (
        Fact(None, f"not measured ({source} sampling gave no CPU)", where)
        if cpu is None
        else Fact(float(cpu), f"{float(cpu):,.2f} CPU-s per million events", where)
    )
    mean, peak = resources.get("mem_mean_bytes"), resources.get("mem_peak_bytes")
    kind = str(resources.get("mem_kind") or "rss").upper()
    if mean is None and peak is None:
        rss_fact = Fact(None, f"not measured ({source} sampling gave no memory)", where)
    else:
        rss_fact = Fact(
            None if mean is None else float(mean),
            f"{kind} mean {format_bytes(mean)}, peak {format_bytes(peak)}",
            where,
        )
    amp = resources.get("write_amplification")
    amp_fact = (
        Fact(None, f"not measured ({source} sampling gave no disk writes)", where)
        if amp is None
        else Fact(
            float(amp),
            f"{float(amp):,.2f}x ({format_bytes(resources.get('disk_write_bytes'))} written)",
            where,
        )
    )
    return cpu_fact, rss_fact, amp_fact


def _order(summary: dict[str, Any] | None, where: str | None, why: str) -> Fact:
    if summary is None:
        return Fact(None, why, None)
    reordered = int((summary.get("audit") or {}).get("reordered") or 0)
    if reordered:
        return Fact(False, f"broken ({reordered:,} reordered)", where)
    return Fact(True, "held", where)


def _duplicates(summary: dict[str, Any] | None, where: str | None, why: str) -> Fact:
    if summary is None:
        return Fact(None, why, None)
    duplicated = int((summary.get("audit") or {}).get("duplicated") or 0)
    return Fact(duplicated, f"{duplicated:,}", where)


def _at_the_load(
    load: dict[str, Any],
    summary: dict[str, Any] | None,
    search: dict[str, Any],
    status: str,
    rate: float | None,
    lower: bool,
    why: str,
) -> Fact:
    """R2 and R3: does the target meet the SLO at the load (True, False, None: not
    established or not measured), in words, with the run that shows it. Without a point at
    the load, the search's own runs are the evidence."""
    if summary is not None:
        where = link(load.get("dir"))
        checks = load.get("failed_checks") or []
        verdict = (summary.get("verdict") or {}).get("result")
        if summary.get("client_bound"):
            return Fact(None, "not established: the harness was client-bound at the load", where)
        if summary.get("status") != "ok":
            return Fact(None, f"not measured: the point at the load {summary['status']}", where)
        if checks or verdict != "pass":
            reasons = (summary.get("verdict") or {}).get("reasons") or [str(verdict)]
            failed = ", ".join(checks) or "; ".join(reasons)
            return Fact(False, f"does not meet the SLO at the load ({failed})", where)
        return Fact(True, "meets the SLO at the load", where)
    load_rate = float(load.get("rate_per_s") or 0.0)
    if rate is not None and lower and rate < load_rate:
        return Fact(
            None,
            f"not established: it sustained at least {format_rate(rate)} ({why}), below the load",
            link(search.get("max_dir")),
        )
    if rate is not None and not lower and rate < load_rate:
        return Fact(
            False,
            f"does not reach the load (max {format_rate(rate)})",
            link(search.get("upper_dir")),
        )
    upper = search.get("upper_rate_per_s")
    if rate is None and upper is not None and float(upper) <= load_rate:
        return Fact(
            False,
            f"does not reach the load (no sustainable rate found; failed at {format_rate(upper)})",
            link(search.get("upper_dir")),
        )
    if rate is None and status not in ("failed", "interrupted", "not run"):
        # The search failed only above the load (its probe budget ran out on the way down):
        # that says nothing about the load itself.
        above = "" if upper is None else f", lowest failing rate {format_rate(upper)}"
        return Fact(
            None,
            f"not established: no probed rate passed ({status}{above}) and no point at the "
            "load ran",
            link(search.get("upper_dir")),
        )
    return Fact(None, f"not measured: {load.get('reason') or status}")


def column(run_dir: Path, entry: dict[str, Any], latency_kind: str) -> Column:
    search = entry.get("search") or {}
    load = entry.get("load") or {}
    fault = entry.get("fault") or {}
    load_dir, fault_dir = load.get("dir"), fault.get("dir")
    max_dir = search.get("max_dir")
    load_summary = read_summary(run_dir, load_dir)
    fault_summary = read_summary(run_dir, fault_dir)
    max_summary = read_summary(run_dir, max_dir)
    any_dir = next((d for d in entry.get("points") or []), None)
    first_summary = read_summary(run_dir, any_dir)

    # R1: the max sustainable rate, exact or a lower bound.
    status = str(search.get("status") or "not run")
    rate = search.get("max_rate_per_s")
    lower = is_lower_bound(status, search.get("upper_rate_per_s"))
    limited = ", ".join(search.get("limited_by") or [])
    words = "budget-lower" if status == "budget" and lower else status
    why = STATUS_WORDS.get(words, status) + (f"; limited by {limited}" if limited else "")
    if rate is None:
        max_fact = Fact(None, f"none found ({status})", None)
    elif lower:
        max_fact = Fact(float(rate), f"at least {format_rate(rate)}", link(max_dir))
    else:
        upper = search.get("upper_rate_per_s")
        fails = "" if upper is None else f" (failed at {format_rate(upper)})"
        max_fact = Fact(float(rate), format_rate(rate) + fails, link(max_dir))

    # R2/R3: the point at the load.
    load_fact = _at_the_load(load, load_summary, search, status, rate, lower, why)

    latency = (load_summary or {}).get("latency_us") or {}
    stats = latency.get(latency_kind) or {}
    where = link(load_dir)
    no_load = load.get("reason") or "no point at the load"

    def lat(stat: str) -> Fact:
        if load_summary is None:
            return Fact(None, f"not measured: {no_load}")
        value = stats.get(stat)
        if value is None:
            return Fact(None, f"no {latency_kind} data", where)
        return Fact(float(value), format_latency_us(value), where)

    cpu, rss, amp = _resources(load_summary, where)

    # The fault step.
    fwhere = link(fault_dir)
    action = str(fault.get("action") or "none")
    if fault_summary is None:
        reason = fault.get("reason") or "not run"
        lost = Fact(None, f"not faulted: {reason}")
        recovery = Fact(None, f"not faulted: {reason}")
    else:
        audit = fault_summary.get("audit") or {}
        count = int(audit.get("lost") or 0)
        lost = Fact(count, f"{count:,}", fwhere)
        rows = fault_summary.get("faults") or []
        row = rows[0] if rows else {}
        rec = row.get("recovery_s")
        if row.get("status") == "not reached" or not rows:
            recovery = Fact(None, "the fault was not reached", fwhere)
        elif rec is None:
            recovery = Fact(None, "did not recover to 90% of the rate", fwhere)
        else:
            recovery = Fact(float(rec), format_seconds(float(rec)), fwhere)
    fault_why = f"not faulted: {fault.get('reason') or 'not run'}"

    bound, host = [], []
    for point_dir in entry.get("points") or []:
        summary = read_summary(run_dir, point_dir)
        if summary is None:
            continue
        if summary.get("client_bound"):
            bound.append(point_dir)
        if summary.get("host_bound"):
            host.append(point_dir)

    describing = [load_summary, max_summary, fault_summary, first_summary]
    where_server = next(
        (link(d) for d, s in zip((load_dir, max_dir, fault_dir, any_dir), describing, strict=True)
         if s is not None and (s.get("target_info") or {}).get("product")),
        None,
    )  # fmt: skip
    return Column(
        target=str(entry.get("target")),
        label=str(entry.get("label") or entry.get("target")),
        driver=str(entry.get("driver")),
        server=_server(describing, where_server),
        client=_client(next((s for s in describing if s is not None), None), where_server),
        max_rate=max_fact,
        max_lower_bound=lower and rate is not None,
        max_why=why,
        load=load_fact,
        load_phrase=load_fact.text,
        p50=lat("p50"),
        p99=lat("p99"),
        cpu_per_mev=cpu,
        rss=rss,
        write_amplification=amp,
        fault_lost=lost,
        fault_recovery=recovery,
        order_load=_order(load_summary, where, f"not measured: {no_load}"),
        order_fault=_order(fault_summary, fwhere, fault_why),
        duplicates_load=_duplicates(load_summary, where, f"not measured: {no_load}"),
        duplicates_fault=_duplicates(fault_summary, fwhere, fault_why),
        fault_action=action,
        client_bound=bound,
        host_bound=host,
        baseline=any(
            bool(((x or {}).get("target_info") or {}).get("in_process"))
            for x in (load_summary, first_summary)
        ),
    )


# --------------------------------------------------------------------------- the rules


def _fault_tier(col: Column) -> int:
    """R4 (a): 0 faulted and lost none, 1 not faulted, 2 lost acknowledged events."""
    if col.fault_lost.value is None:
        return 1
    return 0 if col.fault_lost.value == 0 else 2


def _cpu_key(col: Column) -> tuple[int, float]:
    value = col.cpu_per_mev.value
    return (1, 0.0) if value is None else (0, float(value))


def _p99_key(col: Column) -> float:
    value = col.p99.value
    return float("inf") if value is None else float(value)


def _sort_key(col: Column) -> tuple[int, tuple[int, float], float]:
    return (_fault_tier(col), _cpu_key(col), _p99_key(col))


def _criterion(first: Column, second: Column | None) -> str:
    """The R4 criterion on which ``first`` beats ``second``, in words."""
    if second is None:
        return "the only target that meets the SLO at the load"
    if _fault_tier(first) < _fault_tier(second):
        if _fault_tier(first) == 0:
            return f"no acknowledged event lost under a {first.fault_action}"
        return f"no acknowledged event lost ({second.label} lost some under a fault)"
    if _cpu_key(first) < _cpu_key(second):
        return f"the lowest CPU per event ({first.cpu_per_mev.text})"
    return f"the lowest p99 at the load ({first.p99.text})"


def decide(cols: list[Column], load_per_s: float) -> Decision:
    """R1 to R5 over the columns (see the module's docstring)."""
    # R4: an in-process target is the harness's own baseline: never chosen over a target
    # outside the harness (among in-process targets alone, they are ranked as any other).
    outside = any(not c.baseline for c in cols)
    for col in cols:
        col.baseline = col.baseline and outside
    meets = sorted((c for c in cols if c.load.value is True and not c.baseline), key=_sort_key)
    exact = sorted(
        (c for c in cols if c.max_rate.value is not None and not c.max_lower_bound),
        key=lambda c: -float(c.max_rate.value),  # type: ignore[arg-type]
    )
    lower = [c for c in cols if c.max_lower_bound]
    load_text = format_rate(load_per_s)
    sentences: list[str] = []
    criterion = None
    if meets:
        first = meets[0]
        criterion = _criterion(first, meets[1] if len(meets) > 1 else None)
        lead = f"For this workload at {load_text}, {first.label} meets the SLO"
        if len(meets) > 1:
            lead += f" with {criterion}"
        elif any(c.baseline and c.load.value is True for c in cols):
            lead += ", the only target outside the harness that does"
        else:
            lead += ", the only target that does"
    else:
        first = None
        baseline_meets = any(c.load.value is True and c.baseline for c in cols)
        lead = f"For this workload at {load_text}, no target meets the SLO" + (
            " but the in-process baseline" if baseline_meets else ""
        )
    clauses = []
    for col in cols:
        if col is first:
            continue
        if col.load.value is True and col.baseline:
            clause = f"{col.label} (the in-process baseline, not a choice) meets it"
        elif col.load.value is True:
            clause = f"{col.label} also meets it"
        else:
            # "not established", "not measured": "B is not established: ..."
            verb = "is " if col.load_phrase.startswith("not ") else ""
            clause = f"{col.label} {verb}{col.load_phrase}"
        if isinstance(col.fault_lost.value, int) and col.fault_lost.value > 0:
            clause += (
                f", and lost {col.fault_lost.value:,} acknowledged events under a "
                f"{col.fault_action}"
            )
        clauses.append(clause)
    if first is not None and isinstance(first.fault_lost.value, int) and first.fault_lost.value:
        clauses.insert(
            0,
            f"{first.label} lost {first.fault_lost.value:,} acknowledged events under a "
            f"{first.fault_action}",
        )
    sentences.append(lead + ("; " + "; ".join(clauses) if clauses else "") + ".")
    if exact:
        top = exact[0]
        text = f"Highest max sustainable rate under the SLO: {top.label} ({top.max_rate.text})"
        if len(exact) > 1:
            text += ", then " + ", ".join(f"{c.label} ({c.max_rate.text})" for c in exact[1:])
    else:
        text = "No target's max sustainable rate was established exactly"
    if lower:
        text += "; " + ", ".join(
            f"{c.label} sustains {c.max_rate.text} ({c.max_why}): not ranked on that number"
            for c in lower
        )
    unknown = [c for c in cols if c.max_rate.value is None]
    if unknown:
        # R1: a search that established no rate is named, never left out of the sentence.
        text += "; " + ", ".join(
            f"{c.label} has no max sustainable rate established ({c.max_why})" for c in unknown
        )
    sentences.append(text + ".")
    return Decision(
        answer=" ".join(sentences),
        ranking=[c.target for c in meets],
        capacity_ranking=[c.target for c in exact],
        unranked_capacity=[c.target for c in lower],
        criterion=criterion,
    )
