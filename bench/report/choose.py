"""The decision page of ``bench choose``: ``choose.html`` and ``choose.md`` in the run's directory.

At the top, the plain-language answer (``bench.capacity.decide.decide``); then one column per
target with the facts the decision rests on, every cell a link to the summary of the run that
produced it; the machine, the client libraries and any client-bound point; the cost and
latency of every point of each target's sweep; the fault step; and the rules themselves.
Everything on the page comes from ``bench.capacity.decide.columns``; it needs only the core
install (the page shares the reports' stylesheet, bench/report/page.py).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.capacity.decide import (
    RULES,
    Column,
    Decision,
    Fact,
    columns,
    decide,
    link,
    read_summary,
)
from bench.errors import ResultsError
from bench.report.page import page
from bench.store import MANIFEST, atomic_write_text
from bench.units import format_bytes, format_latency_us, format_rate

CHOOSE = "choose.json"
NONE_BOUND = "No point of the suite was client-bound or host-bound: every figure is the targets'."
HTML_NAME = "choose.html"
MD_NAME = "choose.md"

# The decision table: (row name, the column's fact).
ROWS: tuple[tuple[str, Callable[[Column], Fact]], ...] = (
    ("max sustainable rate under the SLO", lambda c: c.max_rate),
    ("at the common load", lambda c: c.load),
    ("latency p50 at the load", lambda c: c.p50),
    ("latency p99 at the load", lambda c: c.p99),
    ("CPU per million events (target)", lambda c: c.cpu_per_mev),
    ("memory at the load (target PSS, or RSS where not given)", lambda c: c.rss),
    ("disk amplification (bytes written / payload)", lambda c: c.write_amplification),
    ("acknowledged events lost under the fault", lambda c: c.fault_lost),
    ("recovery time after the fault", lambda c: c.fault_recovery),
    ("per-key order at the load", lambda c: c.order_load),
    ("per-key order under the fault", lambda c: c.order_fault),
    ("duplicates at the load", lambda c: c.duplicates_load),
    ("duplicates under the fault", lambda c: c.duplicates_fault),
    ("product and version that served", lambda c: c.server),
    ("client library", lambda c: c.client),
)


def _rows(kind: str) -> list[tuple[str, Callable[[Column], Fact]]]:
    """The decision table's rows, the latency ones naming the kind compared."""
    return [(name.replace("latency", f"{kind} latency"), get) for name, get in ROWS]


def _full_report(run_dir: Path) -> str:
    return "report.html" if (run_dir / "report.html").exists() else ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing", hint="a bench choose results directory") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return data


def latency_kind(choose: dict[str, Any]) -> str:
    """The latency the page compares: the SLO's kind (the first SLO's), else end-to-end."""
    slo = choose.get("slo_us") or {}
    return next((str(key).split(".")[0] for key in slo), "e2e")


def decision_of(run_dir: Path) -> tuple[dict[str, Any], list[Column], Decision]:
    """``choose.json``, the columns read from the runs, and the decision (R1 to R5)."""
    choose = _read_json(run_dir / CHOOSE)
    cols = columns(run_dir, choose, latency_kind(choose))
    return choose, cols, decide(cols, float(choose.get("load_per_s") or 0.0))


# --------------------------------------------------------------------------- the facts around


def _setting(choose: dict[str, Any], manifest: dict[str, Any]) -> dict[str, str]:
    env = manifest.get("environment") or {}
    scenario = manifest.get("scenario") or {}
    workload = scenario.get("workload") or {}
    suite = choose.get("suite") or {}
    slo = ", ".join(
        f"{key} <= {format_latency_us(us)}" for key, us in (choose.get("slo_us") or {}).items()
    )
    memory = env.get("memory_bytes")
    machine = (
        f"{env.get('host') or '?'}: {env.get('cpu_model') or '?'}, {env.get('cpu_count') or '?'} "
        f"CPUs, {format_bytes(memory) if memory else '? memory'}; {env.get('platform') or ''}"
    )
    fault = suite.get("fault")
    fault_text = (
        "none"
        if fault == "none"
        else f"{fault} under {float(suite.get('fault_fraction') or 0):.0%} of each max, "
        f"down for {suite.get('fault_down_for')}"
    )
    return {
        "scenario": f"{scenario.get('scenario', {}).get('name', '?')} "
        f"({manifest.get('scenario_file', '?')})",
        "workload": f"{workload.get('payload_bytes')} B payloads, {workload.get('producers')} "
        f"producers, {workload.get('consumers')} consumers, {workload.get('partitions')} "
        f"partitions, keys {workload.get('keys')}, {workload.get('schedule')} schedule",
        "SLO": slo or "none",
        "common load": f"{format_rate(choose.get('load_per_s'))} ({choose.get('load_source')})",
        "machine": machine,
        "harness": f"eventbench {env.get('eventbench', '?')}, Python {env.get('python', '?')}",
        "suite": f"find-max probes of {suite.get('probe_duration')} (precision "
        f"{float(suite.get('precision') or 0):.0%}, at most {suite.get('max_probes')}); sweep "
        f"at {', '.join(f'{float(f):.0%}' for f in suite.get('fractions') or [])} of each max; "
        f"fault: {fault_text}",
    }


def _bound_lines(cols: list[Column]) -> list[tuple[str, list[str]]]:
    """Per target, the points on which the harness (or the host) was the limit."""
    out = []
    for col in cols:
        if col.client_bound:
            out.append((f"{col.label}: client-bound points (the harness was the limit)",
                        col.client_bound))  # fmt: skip
        if col.host_bound:
            out.append((f"{col.label}: host-bound points (the machine was the limit)",
                        col.host_bound))  # fmt: skip
    return out


def _point_rows(run_dir: Path, entry: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Each sweep, load and fault point of a target: its rate, latency and cost."""
    rows = []
    parts = [(f"sweep {float(s['fraction']):.0%}", s.get("dir")) for s in entry.get("sweep") or []]
    parts.append(("load", (entry.get("load") or {}).get("dir")))
    parts.append((f"fault ({(entry.get('fault') or {}).get('action')})",
                  (entry.get("fault") or {}).get("dir")))  # fmt: skip
    for name, point_dir in parts:
        summary = read_summary(run_dir, point_dir)
        if summary is None:
            continue
        lat = (summary.get("latency_us") or {}).get(kind) or {}
        res = summary.get("resources") if isinstance(summary.get("resources"), dict) else None
        cpu = (res or {}).get("cpu_s_per_mev")
        amp = (res or {}).get("write_amplification")
        rows.append(
            {
                "point": name,
                "dir": link(point_dir),
                "rate": format_rate((summary.get("workload") or {}).get("rate_per_s")),
                "acked": format_rate((summary.get("throughput") or {}).get("acked_per_s")),
                "p50": format_latency_us(lat.get("p50")),
                "p99": format_latency_us(lat.get("p99")),
                "CPU-s / M events": "not measured" if cpu is None else f"{float(cpu):,.2f}",
                "memory mean / peak": "not measured"
                if res is None or res.get("mem_peak_bytes") is None
                else f"{format_bytes(res.get('mem_mean_bytes'))} / "
                f"{format_bytes(res.get('mem_peak_bytes'))} ({res.get('mem_kind') or 'rss'})",
                "disk amp.": "not measured" if amp is None else f"{float(amp):,.2f}x",
                "client-bound": "yes" if summary.get("client_bound") else "no",
                "verdict": str((summary.get("verdict") or {}).get("result")),
            }
        )
    return rows


# --------------------------------------------------------------------------- HTML


def _a(fact_or_text: Fact | str, href: str | None = None) -> str:
    if isinstance(fact_or_text, Fact):
        text, href = fact_or_text.text, fact_or_text.dir
    else:
        text = fact_or_text
    body = html.escape(text)
    return f'<a href="{html.escape(href)}">{body}</a>' if href else body


def render_html(
    run_dir: Path,
    choose: dict[str, Any],
    manifest: dict[str, Any],
    cols: list[Column],
    decision: Decision,
    failures: list[str],
) -> str:
    name = (manifest.get("scenario") or {}).get("scenario", {}).get("name", "")
    parts = [
        f"<h1>Which target? {html.escape(name)} ({html.escape(manifest.get('run_id', ''))})</h1>"
    ]
    klass = "pass" if decision.ranking else "fail"
    parts.append(
        f'<div class="banner {klass}" id="answer"><p>{html.escape(decision.answer)}</p></div>'
    )
    status = manifest.get("status")
    if failures or status != "ok":
        items = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
        parts.append(
            f'<div class="banner fail" id="failures"><p>The suite ended {html.escape(str(status))}'
            f": the page shows what finished.</p><ul>{items}</ul></div>"
        )
    head = "".join(f"<th>{html.escape(c.label)}</th>" for c in cols)
    body = "".join(
        f"<tr><th>{html.escape(row)}</th>"
        + "".join(f'<td class="num">{_a(get(c))}</td>' for c in cols)
        + "</tr>"
        for row, get in _rows(latency_kind(choose))
    )
    parts.append("<h2>Side by side</h2>")
    parts.append(
        "<p>Every cell links to the summary of the run that produced it. A rate shown "
        "\u201cat least\u201d is a lower bound (R1): it is never ranked.</p>"
    )
    parts.append(
        f'<div class="scroll"><table id="decision"><tr><th></th>{head}</tr>{body}</table></div>'
    )
    parts.append("<h2>Setting</h2>")
    setting = _setting(choose, manifest)
    parts.append(
        '<table id="setting">'
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in setting.items()
        )
        + "</table>"
    )
    bound = _bound_lines(cols)
    parts.append('<h2 id="client-bound">Client-bound points</h2>')
    if not bound:
        parts.append(f"<p>{html.escape(NONE_BOUND)}</p>")
    for title, dirs in bound:
        links = ", ".join(_a(d, link(d)) for d in dirs)
        parts.append(f"<p>{html.escape(title)}: {links}</p>")
    kind = latency_kind(choose)
    parts.append("<h2>Every point: rate, latency and cost</h2>")
    for entry in choose.get("targets") or []:
        rows = _point_rows(run_dir, entry, kind)
        parts.append(f"<h3>{html.escape(str(entry.get('label')))}</h3>")
        if not rows:
            parts.append("<p><em>(no sweep, load or fault point ran)</em></p>")
            continue
        cols_names = [k for k in rows[0] if k != "dir"]
        table = "<tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in cols_names) + "</tr>"
        for row in rows:
            table += (
                "<tr>"
                + "".join(
                    f"<td>{_a(str(row[k]), row['dir'] if k == 'point' else None)}</td>"
                    for k in cols_names
                )
                + "</tr>"
            )
        parts.append(f'<div class="scroll"><table>{table}</table></div>')
        notes = (entry.get("search") or {}).get("notes") or []
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append('<h2 id="rules">How the answer is derived</h2><ol>')
    parts.extend(f"<li><strong>{html.escape(t)}</strong>: {html.escape(r)}</li>" for t, r in RULES)
    parts.append("</ol>")
    full = (
        '<a href="report.html">report.html</a>'
        if _full_report(run_dir)
        else f"not written (bench report {html.escape(str(run_dir))} writes it)"
    )
    parts.append(
        f'<p>The full report of every point: {full}; the searches: <a href="capacity.json">'
        f'capacity.json</a>; the suite: <a href="{CHOOSE}">{CHOOSE}</a>.</p>'
    )
    return page(f"bench choose: {name}", "\n".join(parts))


# --------------------------------------------------------------------------- Markdown


def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md(fact_or_text: Fact | str, href: str | None = None) -> str:
    if isinstance(fact_or_text, Fact):
        text, href = fact_or_text.text, fact_or_text.dir
    else:
        text = fact_or_text
    text = _md_text(text)
    return f"[{text}]({href})" if href else text


def render_markdown(
    run_dir: Path,
    choose: dict[str, Any],
    manifest: dict[str, Any],
    cols: list[Column],
    decision: Decision,
    failures: list[str],
) -> str:
    name = (manifest.get("scenario") or {}).get("scenario", {}).get("name", "")
    lines = [
        f"# Which target? {name} ({manifest.get('run_id', '')})",
        "",
        f"**{decision.answer}**",
        "",
    ]
    status = manifest.get("status")
    if failures or status != "ok":
        lines += [f"The suite ended {status}: the page shows what finished.", ""]
        lines += [f"- {_md_text(f)}" for f in failures] + [""]
    lines += [
        "## Side by side",
        "",
        "Every cell links to the summary of the run that produced it. A rate shown "
        '"at least" is a lower bound (R1): it is never ranked.',
        "",
        "| | " + " | ".join(_md_text(c.label) for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row, get in _rows(latency_kind(choose)):
        lines.append(f"| {row} | " + " | ".join(_md(get(c)) for c in cols) + " |")
    lines += ["", "## Setting", ""]
    lines += [f"- **{k}**: {_md_text(v)}" for k, v in _setting(choose, manifest).items()]
    lines += ["", "## Client-bound points", ""]
    bound = _bound_lines(cols)
    if not bound:
        lines.append(NONE_BOUND)
    for title, dirs in bound:
        lines.append(f"- {_md_text(title)}: " + ", ".join(_md(d, link(d)) for d in dirs))
    kind = latency_kind(choose)
    lines += ["", "## Every point: rate, latency and cost", ""]
    for entry in choose.get("targets") or []:
        rows = _point_rows(run_dir, entry, kind)
        lines += [f"### {entry.get('label')}", ""]
        if not rows:
            lines += ["(no sweep, load or fault point ran)", ""]
            continue
        names = [k for k in rows[0] if k != "dir"]
        lines.append("| " + " | ".join(names) + " |")
        lines.append("|" + "---|" * len(names))
        for point in rows:
            cells = (_md(str(point[k]), point["dir"] if k == "point" else None) for k in names)
            lines.append("| " + " | ".join(cells) + " |")
        lines += [""] + [f"- {_md_text(n)}" for n in (entry.get("search") or {}).get("notes") or []]
        lines.append("")
    lines += ["## How the answer is derived", ""]
    lines += [f"{i}. **{t}**: {_md_text(r)}" for i, (t, r) in enumerate(RULES, 1)]
    full = (
        "[report.html](report.html)"
        if _full_report(run_dir)
        else f"not written (bench report {run_dir} writes it)"
    )
    lines += ["", f"The full report of every point: {full}; the searches: "
              f"[capacity.json](capacity.json); the suite: [{CHOOSE}]({CHOOSE}).", ""]  # fmt: skip
    return "\n".join(lines)


def write_choose_page(run_dir: Path) -> tuple[list[Column], Decision, Path, Path]:
    """Write choose.html and choose.md from the run's choose.json and its points' summaries."""
    choose, cols, decision = decision_of(run_dir)
    manifest = _read_json(run_dir / MANIFEST)
    failures = [str(f) for f in choose.get("failures") or []]
    html_path, md_path = run_dir / HTML_NAME, run_dir / MD_NAME
    atomic_write_text(html_path, render_html(run_dir, choose, manifest, cols, decision, failures))
    atomic_write_text(md_path, render_markdown(run_dir, choose, manifest, cols, decision, failures))
    return cols, decision, html_path, md_path
