"""The pipeline part of a report (``workload.kind = "pipeline"``, issue 17): what a team that
builds command -> event store -> outbox -> broker -> projection -> read model chooses a design
by, and whether an event was ever lost or applied twice on the way.

- the pipeline table: mode (relay and idempotency guard), ``visible`` p50/p99 (the headline:
  command intended -> the read model reflects it), each stage's p99, applied/s, what the
  invariants counted (never applied, duplicates applied and skipped, republished, not
  published, the read model against the fold of the store), read-your-writes, and the
  invariants' result; the violations table quotes each violation as the check wrote it;
- the waterfall: each stage's p50 and p99 stacked per point, with the measured ``visible``
  beside the stack (percentiles do not add: the stack is not the ``visible`` figure);
- the backlog over time: the outbox rows not yet published and the deliveries waiting to be
  applied, from ``pipeline.outbox_backlog.samples``, with the warm-up and the crash window.

Every figure comes from ``summary["pipeline"]`` and ``summary["latency_us"]`` (the stages'
histograms), formatted with ``bench.units`` as in the other tables; the terminal's table
(``bench.report.terminal.pipeline_table``) takes its words from here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bench.scenario import PIPELINE_STAGES as STAGES
from bench.units import format_count, format_latency_us, format_percent, format_rate

# pandas and matplotlib are the report extra: imported where a frame or a figure is built, so
# the terminal table works on a core install.
if TYPE_CHECKING:
    import pandas as pd

    from bench.report.plots import Plot
    from bench.report.tables import Point

# The stages that add up to an event's way (visible is the whole, measured on its own).
HOPS = tuple(stage for stage in STAGES if stage != "visible")
VISIBLE = "visible"
WATERFALL = "pipeline-waterfall"
BACKLOG = "pipeline-backlog"
# Plots drawn inside the pipeline section rather than with the other plots.
SECTION_PLOTS = (WATERFALL, BACKLOG)
CAPTION = (
    "visible is the time from a command's intended start to the read model reflecting its "
    "event (the eventual-consistency window); append is intended -> committed, relay committed "
    "-> acknowledged by the broker, broker published -> consumed, apply consumed -> read model "
    "committed. Mode is the relay (outbox: written in the append's transaction, relayed after; "
    "dual write: published after the commit, outside it) and the idempotency guard "
    "(processed events, or none). Never applied counts committed events that never reached "
    "the read model; duplicates applied changed the read model a second time, duplicates "
    "skipped were stopped by the guard; republished are events a relay published again after "
    "a crash, and deduplicated by the broker those of them the broker acknowledged and never "
    "delivered again (JetStream's Nats-Msg-Id window), so no guard was needed; not published "
    "are events committed inside a dual write's crash window. "
    "Read-your-writes is the fraction of queries that saw the aggregate's latest write."
)
# Optional columns, left out when they are 0 or empty on every row.
OPTIONAL = (
    "out of order",
    "applied twice",
    "applied not committed",
    "outbox peak",
    "outbox left",
    "deduplicated by the broker",
)


def pipeline_points(points: Iterable[Point]) -> list[Point]:
    """The points of a pipeline workload that measured pipeline figures."""
    return [p for p in points if is_pipeline(p.summary)]


def is_pipeline(summary: dict[str, Any]) -> bool:
    return summary.get("kind") == "pipeline" and isinstance(summary.get("pipeline"), dict)


def mode_text(pipeline: dict[str, Any]) -> str:
    """``outbox + guard``, ``dual write + no guard``: the relay and the idempotency guard."""
    relay = pipeline.get("relay")
    relay_text = "dual write" if relay == "dual_write" else str(relay or "?")
    guard = pipeline.get("idempotency")
    guard_text = "no guard" if guard == "none" else "guard" if guard else "guard ?"
    return f"{relay_text} + {guard_text}"


def violations(summary: dict[str, Any]) -> list[str]:
    """The pipeline's invariant violations and the event store's (a pipeline's command side
    is an event store, and the verdict judges both)."""
    pipeline = summary.get("pipeline") or {}
    store = summary.get("store") or {}
    found = [f"pipeline: {v}" for v in (pipeline.get("invariants") or {}).get("violations") or []]
    found += [f"store: {v}" for v in (store.get("invariants") or {}).get("violations") or []]
    return found


def invariants_text(summary: dict[str, Any]) -> str:
    """hold, ``N violated`` (the violations table quotes them), or not checked: the verdict's
    reading of ``pipeline.invariants`` (and the store's), never a pass on a check not made."""
    pipeline = summary.get("pipeline") or {}
    invariants = pipeline.get("invariants") or {}
    store_invariants = (summary.get("store") or {}).get("invariants") or {}
    found = violations(summary)
    if found:
        return f"{format_count(len(found))} violated"
    if invariants.get("ok") is False and invariants.get("checked"):
        return "violated"
    if store_invariants.get("ok") is False:
        return "violated"
    if not invariants.get("checked") or not invariants.get("ok"):
        return "not checked"
    return "hold"


def read_your_writes_text(pipeline: dict[str, Any]) -> str:
    """The fraction of queries that saw their aggregate's latest write, and of how many."""
    queries = pipeline.get("queries") or {}
    fraction = queries.get("read_your_writes")
    count = int(queries.get("count") or 0)
    if not isinstance(fraction, int | float) or not count:
        return "-"
    return f"{format_percent(float(fraction))} of {format_count(count)}"


def _lat(summary: dict[str, Any], kind: str, stat: str) -> str:
    return format_latency_us(((summary.get("latency_us") or {}).get(kind) or {}).get(stat))


def _count(value: Any) -> str:
    return format_count(int(value)) if isinstance(value, int | float) else "-"


def checked_count(invariants: dict[str, Any], key: str) -> int | None:
    """A count the invariant check made (never applied, applied twice, ...); None when the
    check was not made (an interrupted point): shown as "-", never as a clean 0."""
    value = invariants.get(key)
    if not invariants.get("checked") or not isinstance(value, int | float):
        return None
    return int(value)


def differing_text(invariants: dict[str, Any]) -> str:
    """Aggregates whose read-model row differs from the fold of the store, of those checked."""
    checked = invariants.get("aggregates_checked")
    differing = invariants.get("aggregates_differing")
    if not isinstance(checked, int | float) or not isinstance(differing, int | float):
        return "-"
    return f"{format_count(int(differing))} of {format_count(int(checked))}"


def pipeline_frame(points: Iterable[Point]) -> pd.DataFrame:
    """One row per pipeline point: visible, the stages, what was applied and the invariants."""
    import pandas as pd

    # verdicts reads this module's invariant words: imported here, not at the top.
    from bench.report.verdicts import verdict_word

    rows = []
    for p in pipeline_points(points):
        s = p.summary
        pipeline = s["pipeline"]
        totals = pipeline.get("totals") or {}
        invariants = pipeline.get("invariants") or {}
        row: dict[str, str] = {
            "point": p.label,
            "store": str(pipeline.get("store_target") or "?"),
            "mode": mode_text(pipeline),
            "verdict": verdict_word(s),
            "visible p50": _lat(s, VISIBLE, "p50"),
            "visible p99": _lat(s, VISIBLE, "p99"),
        }
        row.update({f"{stage} p99": _lat(s, stage, "p99") for stage in HOPS})
        row.update(
            {
                "applied/s": format_rate(float(pipeline.get("applied_per_s") or 0.0)),
                "never applied": _count(checked_count(invariants, "never_applied")),
                "dup applied/skipped": (
                    f"{_count(totals.get('duplicates_applied', 0))}/"
                    f"{_count(totals.get('duplicates_skipped', 0))}"
                ),
                "applied twice": _count(checked_count(invariants, "applied_twice")),
                "republished": _count(totals.get("republished", 0)),
                "deduplicated by the broker": _count(totals.get("broker_deduplicated", 0)),
                "not published": _count(totals.get("not_published", 0)),
                "out of order": _count(totals.get("out_of_order", 0)),
                "applied not committed": _count(checked_count(invariants, "applied_not_committed")),
                "read model ≠ fold": differing_text(invariants),
                "outbox peak": _count((pipeline.get("outbox_backlog") or {}).get("peak")),
                "outbox left": _count(checked_count(invariants, "outbox_pending")),
                "read-your-writes": read_your_writes_text(pipeline),
                "drained": "yes" if pipeline.get("drained") else "NO",
                "invariants": invariants_text(s),
            }
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    trivial = [c for c in OPTIONAL if c in frame.columns and frame[c].isin(("0", "-")).all()]
    return frame.drop(columns=trivial)


def violations_frame(points: Iterable[Point]) -> pd.DataFrame:
    """Every invariant violation the pipeline check (and the store's) found, one row each,
    as the check wrote it (the summary keeps the first 20 of a point)."""
    import pandas as pd

    rows = [
        {"point": p.label, "violation": violation}
        for p in pipeline_points(points)
        for violation in violations(p.summary)
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- waterfall


def _stat_ms(summary: dict[str, Any], kind: str, stat: str) -> float | None:
    value = ((summary.get("latency_us") or {}).get(kind) or {}).get(stat)
    return float(value) / 1e3 if isinstance(value, int | float) else None


def waterfall_plot(points: Iterable[Point]) -> Plot | None:
    """Each point's stages stacked (append, relay, broker, apply), p50 in one panel and p99 in
    the other, with the measured ``visible`` at that percentile beside each stack."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from bench.report.plots import Plot, figure_png

    chosen = [
        p
        for p in pipeline_points(points)
        if any(_stat_ms(p.summary, k, "p50") is not None for k in STAGES)
    ]
    if not chosen:
        return None
    labels = [p.label for p in chosen]
    fig = Figure(figsize=(12, 2.2 + 0.6 * len(chosen)))
    axes = fig.subplots(1, 2, sharey=True)
    colours = {stage: f"C{i}" for i, stage in enumerate(HOPS)}
    ys = list(range(len(chosen)))
    for ax, stat in zip(axes, ("p50", "p99"), strict=True):
        lefts = [0.0] * len(chosen)
        for stage in HOPS:
            widths = [_stat_ms(p.summary, stage, stat) or 0.0 for p in chosen]
            ax.barh(ys, widths, left=lefts, height=0.6, color=colours[stage], edgecolor="white")
            lefts = [a + b for a, b in zip(lefts, widths, strict=True)]
        visible = [_stat_ms(p.summary, VISIBLE, stat) for p in chosen]
        top = max([*lefts, *(v for v in visible if v is not None), 1e-3])
        for y, total, value in zip(ys, lefts, visible, strict=True):
            if value is not None:
                ax.plot([value, value], [y - 0.4, y + 0.4], color="black", linewidth=2.2)
            text = f"stages {format_latency_us(total * 1e3)}" + (
                f"\nvisible {format_latency_us(value * 1e3)}" if value is not None else ""
            )
            ax.text(top * 1.03, y, text, va="center", fontsize=7)
        ax.set_xlim(0, top * 1.45)
        ax.set_title(f"{stat} of each stage, stacked", fontsize=10)
        ax.set_xlabel("latency (ms)")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    handles = [Patch(color=colours[s], label=s) for s in HOPS]
    handles.append(Patch(color="black", label=f"{VISIBLE} (measured)"))
    fig.suptitle("Where the time goes: each stage's latency, stacked, per point")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    caption = (
        "Each bar stacks the stages' own percentiles from their histograms (append: intended "
        "-> committed, relay: committed -> acknowledged by the broker, broker: published -> "
        "consumed, apply: consumed -> read model committed), left p50 and right p99; the "
        "black tick is the visible latency measured end to end at that percentile (the "
        "latency table's figure). Percentiles do not add up: the stacked p99s are each "
        "stage's own tail, not the tail of one event's way, and a stage counts the events "
        "that reached it (the latency table gives each count)."
    )
    counts = {
        p.label: int(((p.summary.get("latency_us") or {}).get(VISIBLE) or {}).get("count") or 0)
        for p in chosen
    }
    return Plot(WATERFALL, "Pipeline: stage latency waterfall", caption, figure_png(fig), counts)


# --------------------------------------------------------------------------- backlog


def _samples(point: Point) -> list[tuple[float, float | None, float | None, float | None]]:
    """(t, outbox pending, deliveries waiting, held by the broker) per sample; the broker's
    figure is None between its (1 s) samples, where it cannot tell, and in older summaries."""
    backlog = point.summary["pipeline"].get("outbox_backlog") or {}
    out = []
    for sample in backlog.get("samples") or []:
        if not isinstance(sample, list | tuple) or len(sample) < 3:
            continue
        t, pending, waiting = sample[0], sample[1], sample[2]
        held = sample[3] if len(sample) > 3 else None
        if not isinstance(t, int | float):
            continue
        out.append(
            (
                float(t),
                float(pending) if isinstance(pending, int | float) else None,
                float(waiting) if isinstance(waiting, int | float) else None,
                float(held) if isinstance(held, int | float) else None,
            )
        )
    return sorted(out)


def backlog_plot(points: Iterable[Point]) -> Plot | None:
    """The outbox rows not yet published (top) and the deliveries waiting to be applied
    (bottom) over time, one line per point, with the warm-up, the end of the measurement and
    each point's relay crash window."""
    from matplotlib.figure import Figure

    from bench.report.plots import Plot, figure_png

    series = [(p, s) for p in pipeline_points(points) if (s := _samples(p))]
    if not series:
        return None
    # A third panel when a broker said what it holds for the consumers (ConsumerLag).
    with_broker = any(s[3] is not None for _, samples in series for s in samples)
    fig = Figure(figsize=(9, 9.0 if with_broker else 6.4))
    axes = fig.subplots(3 if with_broker else 2, 1, sharex=True)
    ax_outbox, ax_waiting = axes[0], axes[1]
    ax_broker = axes[2] if with_broker else None
    no_outbox = []
    crashed = False
    for index, (point, samples) in enumerate(series):
        t = [s[0] for s in samples]
        # One colour per point on both panels, whether it has an outbox line or not.
        colour = f"C{index % 10}"
        if any(s[1] is not None for s in samples):
            ax_outbox.plot(
                t,
                [float("nan") if s[1] is None else s[1] for s in samples],
                label=point.label,
                linewidth=1.4,
                color=colour,
            )
        else:
            no_outbox.append(point.label)
        ax_waiting.plot(
            t,
            [float("nan") if s[2] is None else s[2] for s in samples],
            label=point.label,
            linewidth=1.4,
            color=colour,
        )
        held = [(s[0], s[3]) for s in samples if s[3] is not None]
        if ax_broker is not None and held:
            ax_broker.plot(
                [h[0] for h in held],
                [h[1] for h in held],
                label=point.label,
                linewidth=1.4,
                marker=".",
                color=colour,
            )
        crash = point.summary["pipeline"].get("crash") or {}
        at, length = crash.get("at_s"), crash.get("for_s")
        if isinstance(at, int | float) and isinstance(length, int | float):
            crashed = True
            for ax in axes:
                ax.axvspan(at, at + length, color=colour, alpha=0.12, linewidth=0)
    first = series[0][0]
    warmup, end = first.warmup_s, first.warmup_s + first.duration_s
    for ax in axes:
        if warmup > 0:
            ax.axvspan(0, warmup, color="grey", alpha=0.12, linewidth=0)
        ax.axvline(end, color="grey", linestyle=":", linewidth=1)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    ax_outbox.set_ylabel("outbox rows not yet published")
    ax_waiting.set_ylabel("deliveries waiting to be applied")
    if ax_broker is not None:
        ax_broker.set_ylabel("held by the broker for the consumers")
        if ax_broker.get_lines():
            ax_broker.legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("time since the load's start (s)")
    legend = "grey: warm-up; dotted: end" + ("; coloured: relay crash" if crashed else "")
    ax_outbox.set_title(f"outbox backlog and projection lag ({legend})")
    if ax_outbox.get_lines():
        ax_outbox.legend(fontsize=8, loc="upper left")
    else:
        ax_outbox.text(
            0.5, 0.5, "no outbox (dual write)", ha="center", transform=ax_outbox.transAxes
        )
    ax_waiting.legend(fontsize=8, loc="upper left")
    caption = (
        "Sampled every 100 ms from the load's start: the outbox rows committed and not yet "
        "published (top) and the deliveries consumed from the broker and waiting for an "
        "applier. A backlog that keeps growing is a relay or a projection that "
        "cannot keep up. The peak of the outbox is the pipeline table's."
    )
    if with_broker:
        caption += (
            " Bottom: the messages the broker itself reports holding for the consumer group "
            "(stored and not yet delivered, or delivered and not yet acknowledged), asked once "
            "a second; a broker that cannot tell has no line."
        )
    if crashed:
        caption += " Shaded in a point's colour: its relay crash window (crash_at, crash_for)."
    if no_outbox:
        caption += f" {', '.join(no_outbox)}: no outbox (dual write), so no outbox line."
    return Plot(
        BACKLOG,
        "Pipeline: outbox backlog and deliveries waiting over time",
        caption,
        figure_png(fig),
        {p.label: len(s) for p, s in series},
    )


def section_plots(points: Iterable[Point]) -> list[Plot]:
    """The pipeline section's plots that the points' data supports, in report order."""
    points = list(points)
    return [p for p in (waterfall_plot(points), backlog_plot(points)) if p is not None]
