"""Terminal tables (rich) for summaries: what `bench run` prints at the end and `bench show`."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from bench.report import faults
from bench.report import pipeline as pipeline_words
from bench.report.store import strategy_of
from bench.report.verdicts import SEPARATOR, passed, result_of, verdict_word
from bench.units import format_count, format_latency_us, format_percent, format_rate
from bench.verdict import FAIL, INCONCLUSIVE, PASS, verdict_text


def _lat(summary: dict[str, Any], kind: str, stat: str) -> str:
    return format_latency_us(summary.get("latency_us", {}).get(kind, {}).get(stat))


_STATUS_COLOUR = {"ok": "green", "failed": "red"}
_VERDICT_COLOUR = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow"}


def _flags(summary: dict[str, Any], reasons: bool = True) -> str:
    """The status and the verdict in words (``ok · FAIL: lost 4 acknowledged``, or without
    its reasons ``ok · FAIL`` when the table quotes them under it), then the harness's flags;
    colour only adds to the words."""
    status = str(summary.get("status", "?"))
    result = result_of(summary)
    words = verdict_text(summary) if reasons else verdict_word(summary)
    text = (
        f"[{_STATUS_COLOUR.get(status, 'yellow')}]{escape(status)}[/]{SEPARATOR}"
        f"[{_VERDICT_COLOUR.get(result, 'yellow')}]{escape(words)}[/]"
    )
    flags = []
    if summary.get("client_bound"):
        flags.append("[yellow]client-bound[/]")
    if summary.get("host_bound"):
        flags.append("[yellow]host-bound[/]")
    if summary.get("closed_loop"):
        flags.append("closed-loop")
    return text + (f" ({', '.join(flags)})" if flags else "")


def _projection_shown(summary: dict[str, Any]) -> bool:
    audit = summary.get("audit") or {}
    workload = summary.get("workload") or {}
    return bool(audit.get("projection_failures")) or (
        audit.get("projection_failures") is not None
        and workload.get("partition_key", "aggregate") != "aggregate"
    )


def _projection_cell(audit: dict[str, Any]) -> str:
    failures = audit.get("projection_failures")
    if failures is None:
        return "-"
    if not failures:
        return "0"
    keys = int(audit.get("keys_projection_failed") or 0)
    return f"[red]{format_count(failures)}[/] ({format_count(keys)} aggs)"


def _redelivered_cell(audit: dict[str, Any]) -> str:
    """Redelivered (of what killed consumers owed), and the broker's own duplicates apart."""
    if audit.get("redelivered") is None:
        return "-"
    owed = format_count(int(audit.get("redelivery_owed") or 0))
    text = f"{format_count(int(audit['redelivered']))} of {owed}"
    broker = int(audit.get("broker_duplicates") or 0)
    if broker:
        text += f" +{format_count(broker)} by broker"
    return text


def _apply_cell(apply: dict[str, Any] | None) -> str:
    if not apply:
        return "-"
    twice = int(apply.get("duplicates_applied") or 0)
    skipped = format_count(int(apply.get("duplicates_skipped") or 0))
    return f"[red]{format_count(twice)}[/]/{skipped}" if twice else f"0/{skipped}"


def cpu_per_mev_text(resources: dict[str, Any] | None) -> str:
    """The target's CPU-seconds per million acknowledged events: ``-`` where it was not
    read (an in-process or remote target)."""
    value = (resources or {}).get("cpu_s_per_mev")
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def summary_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("target")
    table.add_column("point")
    table.add_column("acked/s", justify="right")
    table.add_column("recv/s", justify="right")
    table.add_column("resp p50", justify="right")
    table.add_column("resp p99", justify="right")
    table.add_column("resp p99.9", justify="right")
    table.add_column("svc p99", justify="right")
    table.add_column("e2e p50", justify="right")
    table.add_column("e2e p99", justify="right")
    table.add_column("e2e max", justify="right")
    table.add_column("lost/dup/reord", justify="right")
    # The order projection's failures: shown where a point ran it off the aggregate key, or
    # where it failed (a 0 on every ordinary point is no finding).
    projection = any(_projection_shown(s) for s in summaries)
    if projection:
        table.add_column("proj. failures", justify="right")
    # Consumer faults and workload.apply: what came again, and what the read model did with it.
    redelivery = any((s.get("audit") or {}).get("redelivered") is not None for s in summaries)
    if redelivery:
        table.add_column("redelivered", justify="right")
    applying = any(s.get("apply") for s in summaries)
    if applying:
        table.add_column("applied twice/skipped", justify="right")
        table.add_column("apply p99", justify="right")
    # What the target spent per million acknowledged events (a target on this host).
    costed = any(s.get("resources") for s in summaries)
    if costed:
        table.add_column("cpu/Mev", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("status")
    for s in summaries:
        throughput = s.get("throughput", {})
        audit = s.get("audit", {})
        lost, dup, reord = (
            audit.get("lost", 0),
            audit.get("duplicated", 0),
            audit.get("reordered", 0),
        )
        audit_text = f"{format_count(lost)}/{format_count(dup)}/{format_count(reord)}"
        if lost or dup or reord:
            audit_text = f"[red]{audit_text}[/]"
        params = s.get("params") or {}
        point = " ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items()) or s.get("mode", "")
        errors = s.get("errors", {}).get("total", 0)
        extra = [_projection_cell(audit)] if projection else []
        if redelivery:
            extra.append(_redelivered_cell(audit))
        if applying:
            extra.extend([_apply_cell(s.get("apply")), _lat(s, "apply", "p99")])
        if costed:
            extra.append(cpu_per_mev_text(s.get("resources")))
        table.add_row(
            s.get("target", "?"),
            point,
            format_rate(throughput.get("acked_per_s", 0.0)),
            format_rate(throughput.get("received_per_s", 0.0)),
            _lat(s, "response", "p50"),
            _lat(s, "response", "p99"),
            _lat(s, "response", "p999"),
            _lat(s, "service", "p99"),
            _lat(s, "e2e", "p50"),
            _lat(s, "e2e", "p99"),
            _lat(s, "e2e", "max"),
            audit_text,
            *extra,
            f"[red]{format_count(errors)}[/]" if errors else "0",
            _flags(s),
        )
    return table


def store_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Event-store points: goodput, conflicts, retries, latency, projection lag, invariants."""
    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("target", "left"),
        ("point", "left"),
        ("strategy", "left"),
        ("goodput", "right"),
        ("conflict rate", "right"),
        ("retries/cmd", "right"),
        ("abandoned", "right"),
        ("rejected", "right"),
        ("resp p50", "right"),
        ("resp p99", "right"),
        ("svc p99", "right"),
        ("proj lag p99", "right"),
        ("cpu/Mev", "right"),
        ("invariants", "left"),
        ("status", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        store = s.get("store") or {}
        params = s.get("params") or {}
        point = " ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items()) or s.get("mode", "")
        invariants = store.get("invariants") or {}
        inv_text = (
            "[green]hold[/]"
            if invariants.get("ok")
            else f"[red]{len(invariants.get('violations', []))} violated[/]"
        )
        table.add_row(
            s.get("target", "?"),
            point,
            strategy_of(s) or "-",
            format_rate(store.get("goodput_per_s", 0.0)),
            format_percent(store.get("conflict_rate", 0.0)),
            f"{store.get('retries_per_command', 0.0):.2f}",
            format_count(store.get("abandoned", 0)),
            format_count(store.get("rejections", 0)),
            _lat(s, "response", "p50"),
            _lat(s, "response", "p99"),
            _lat(s, "service", "p99"),
            _lat(s, "e2e", "p99"),
            cpu_per_mev_text(s.get("resources")),
            inv_text,
            _flags(s),
        )
    return table


def saga_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Saga points (issue 19): the report's saga rows (``bench.report.saga``), the verdict
    with its reasons in its cell."""
    from bench.report.saga import saga_row

    rows = [saga_row(s, str(s.get("label") or s.get("target") or "?")) for s in summaries]
    table = Table(title=title, header_style="bold")
    for name in rows[0] if rows else ():
        table.add_column(
            name, justify="left" if name in ("point", "mode", "verdict", "invariants") else "right"
        )
    for s, row in zip(summaries, rows, strict=True):
        cells = [escape(v) for v in row.values()]
        cells[list(row).index("verdict")] = (
            f"{escape(str(s.get('status', '?')))}{SEPARATOR}{escape(verdict_text(s))}"
        )
        table.add_row(*cells)
    return table


def saga_faults_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """The faults on saga points' timelines (``bench.report.saga.saga_fault_rows``): the
    sagas each caught and how they ended."""
    from bench.report.saga import FAULT_COLUMNS, saga_fault_rows

    table = Table(title=title, header_style="bold")
    for name in FAULT_COLUMNS:
        text = name in ("point", "fault", "status", "detail")
        table.add_column(name, justify="left" if text else "right")
    for s in summaries:
        label = str(s.get("label") or s.get("target") or "?")
        for row in saga_fault_rows(s, label, f"{s.get('dir', '?')}/summary.json"):
            cells = {name: escape(value) for name, value in row.items()}
            if cells["status"] == faults.FAILED:
                cells["status"] = f"[red]{cells['status']}[/]"
            elif cells["status"] == faults.NOT_REACHED:
                cells["status"] = f"[yellow]{cells['status']}[/]"
            elif cells["status"] == faults.DONE:
                cells["status"] = f"[green]{cells['status']}[/]"
            if cells["stuck"] not in ("-", "0"):
                cells["stuck"] = f"[red]{cells['stuck']}[/]"
            if cells["recovery"] == faults.NOT_RECOVERED:
                cells["recovery"] = f"[red]{faults.NOT_RECOVERED}[/]"
            table.add_row(*(cells[name] for name in FAULT_COLUMNS))
    return table


def replay_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Replay points (issue 18's schema evolution and snapshots): the report's rows
    (``bench.report.replay``: a replay's, or a load measurement's), the verdict with its
    reasons in its cell. One kind of row per table."""
    from bench.report.replay import replay_row, snapshot_row

    loads = bool(summaries) and bool((summaries[0].get("replay") or {}).get("load"))
    row_of = snapshot_row if loads else replay_row
    rows = [row_of(s, str(s.get("label") or s.get("target") or "?")) for s in summaries]
    table = Table(title=title, header_style="bold")
    for name in rows[0] if rows else ():
        table.add_column(
            name,
            justify="left"
            if name in ("point", "reader", "snapshots", "verdict", "stopped at")
            else "right",
        )
    for s, row in zip(summaries, rows, strict=True):
        cells = [escape(v) for v in row.values()]
        verdict_at = list(row).index("verdict")
        cells[verdict_at] = (
            f"{escape(str(s.get('status', '?')))}{SEPARATOR}{escape(verdict_text(s))}"
        )
        table.add_row(*cells)
    return table


def pipeline_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Pipeline points, led by the ``visible`` window (command intended -> the read model
    reflects it) and the invariants (every committed event applied once, the read model equal
    to the fold of the store, the outbox empty); then the stages' p99 and what the invariants
    counted. The words and figures are the report's pipeline table's (``bench.report.pipeline``).

    The status column says ``ok · FAIL``; the verdicts' reasons (the invariant violations, as
    the check wrote them) are quoted under the table, one line per point that did not pass,
    because fifteen columns leave none of them the room to be read."""
    failing = [
        f"{escape(str(s.get('label') or s.get('target') or '?'))}: "
        f"{escape(str(s.get('status', '?')))}{SEPARATOR}{escape(verdict_text(s))}"
        for s in summaries
        if not passed(s)
    ]
    table = Table(
        title=title,
        header_style="bold",
        caption="\n".join(failing) or None,
        caption_justify="left",
    )
    for name, justify in (
        ("store → broker", "left"),
        ("point", "left"),
        ("mode", "left"),
        ("visible p50", "right"),
        ("visible p99", "right"),
        ("invariants", "left"),
        ("append p99", "right"),
        ("relay p99", "right"),
        ("broker p99", "right"),
        ("apply p99", "right"),
        ("applied/s", "right"),
        ("never applied", "right"),
        ("dup applied / skipped", "right"),
        ("not published", "right"),
        ("status", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        pipeline = s.get("pipeline") or {}
        params = s.get("params") or {}
        point = " ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items()) or s.get("mode", "")
        invariants = pipeline.get("invariants") or {}
        totals = pipeline.get("totals") or {}
        words = pipeline_words.invariants_text(s)
        colour = "green" if words == "hold" else "yellow" if words == "not checked" else "red"

        def red(count: int | None) -> str:
            if count is None:
                return "-"  # not checked (an interrupted point): never a clean 0
            return f"[red]{format_count(count)}[/]" if count else "0"

        dup_applied = int(totals.get("duplicates_applied") or 0)
        dup_text = f"{red(dup_applied)}/{format_count(int(totals.get('duplicates_skipped') or 0))}"
        deduplicated = int(totals.get("broker_deduplicated") or 0)
        if deduplicated:
            # Republished events the broker itself dropped (JetStream's Nats-Msg-Id window).
            dup_text += f" +{format_count(deduplicated)} by broker"
        table.add_row(
            f"{pipeline.get('store_target') or '?'} → {s.get('target', '?')}",
            point,
            pipeline_words.mode_text(pipeline),
            _lat(s, "visible", "p50"),
            _lat(s, "visible", "p99"),
            f"[{colour}]{escape(words)}[/]",
            *(_lat(s, stage, "p99") for stage in pipeline_words.HOPS),
            format_rate(pipeline.get("applied_per_s") or 0.0),
            red(pipeline_words.checked_count(invariants, "never_applied")),
            dup_text,
            red(int(totals.get("not_published") or 0)),
            _flags(s, reasons=False),
        )
    return table


def subscriptions_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Fan-out points: each subscription's own audit (``bench.report.subscriptions``)."""
    from bench.report.subscriptions import COLUMNS, subscription_rows

    table = Table(title=title, header_style="bold")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "point" else "right")
    for s in summaries:
        for row in subscription_rows(s, str(s.get("label") or s.get("target") or "?")):
            cells = {name: escape(value) for name, value in row.items()}
            for name in ("lost", "duplicated", "reordered"):
                if cells[name] != "0":
                    cells[name] = f"[red]{cells[name]}[/]"
            table.add_row(*(cells[name] for name in COLUMNS))
    return table


def topics_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Points with several topics: the spread and the create/remove times
    (``bench.report.topology``)."""
    from bench.report.topology import COLUMNS, topic_rows

    table = Table(title=title, header_style="bold")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "point" else "right")
    for s in summaries:
        for row in topic_rows(s, str(s.get("label") or s.get("target") or "?")):
            table.add_row(*(escape(row[name]) for name in COLUMNS))
    return table


def backlog_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """Backlog points: build, resume, drain and catch-up (``bench.report.backlog``)."""
    from bench.report.backlog import COLUMNS, backlog_row, has_backlog

    table = Table(title=title, header_style="bold")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "point" else "right")
    for s in summaries:
        if not has_backlog(s):
            continue
        row = backlog_row(s, str(s.get("label") or s.get("target") or "?"))
        cells = {name: escape(value) for name, value in row.items()}
        for name in ("built in", "drain"):
            if cells[name].startswith("not "):
                cells[name] = f"[red]{cells[name]}[/]"
        table.add_row(*(cells[name] for name in COLUMNS))
    return table


def faults_table(summaries: list[dict[str, Any]], title: str | None = None) -> Table:
    """One row per injected fault of every point: what it did to the producers and consumers,
    how long recovery took, and the exact audit of its window. No rows when no point had a
    fault; print it only when ``any(s.get("faults") for s in summaries)``."""
    table = Table(title=title, header_style="bold")
    for name in faults.FAULT_COLUMNS:
        text = name in ("point", "fault", "status", "detail")
        table.add_column(name, justify="left" if text else "right")
    for row in faults.fault_rows(summaries):
        # Details quote error messages, and "[Errno 111]" is markup to rich.
        cells = {name: escape(value) for name, value in row.items()}
        status = cells["status"]
        if status == faults.FAILED:
            cells["status"] = f"[red]{status}[/]"
        elif status == faults.NOT_REACHED:
            cells["status"] = f"[yellow]{status}[/]"
        elif status == faults.DONE:
            cells["status"] = f"[green]{status}[/]"
        if cells["recovery"] == faults.NOT_RECOVERED:
            cells["recovery"] = f"[red]{faults.NOT_RECOVERED}[/]"
        for name in ("lost", "duplicated", "reordered"):
            if cells[name] not in ("-", "0"):
                cells[name] = f"[red]{cells[name]}[/]"
        table.add_row(*(cells[name] for name in faults.FAULT_COLUMNS))
    return table
