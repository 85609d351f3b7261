"""The Prometheus text exposition format (0.0.4, and OpenMetrics text), read into numbers.

One job: text in, ``{key: value}`` out, with no network and no I/O. ``bench.engine.scrape``
reads endpoints with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def _quoted(line: str, i: int) -> tuple[str, int]:
    """The string that opens with the quote at ``line[i]``, unescaped, and the index after
    its closing quote. ValueError when it never closes."""
    out: list[str] = []
    i += 1
    while i < len(line):
        ch = line[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            out.append(_UNESCAPE.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ValueError("unclosed quote")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _skip_space(line: str, i: int) -> int:
    while i < len(line) and line[i] in " \t":
        i += 1
    return i


def _parse_line(line: str) -> tuple[str, str, float]:
    """(name, key, value) of one sample line; ValueError when it is not one."""
    i = 0
    name = ""
    if line[0] != "{":
        match = _NAME.match(line)
        if not match:
            raise ValueError("no metric name")
        name, i = match.group(), match.end()
        i = _skip_space(line, i)
    labels: dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            i = _skip_space(line, i)
            if i >= len(line):
                raise ValueError("unclosed labels")
            if line[i] == "}":
                i += 1
                break
            if line[i] == '"':  # a quoted (UTF-8) name: of the metric, or of a label
                label, i = _quoted(line, i)
            else:
                match = _LABEL.match(line, i)
                if not match:
                    raise ValueError("bad label name")
                label, i = match.group(), match.end()
            i = _skip_space(line, i)
            if i < len(line) and line[i] == "=":
                i = _skip_space(line, i + 1)
                if i >= len(line) or line[i] != '"':
                    raise ValueError("label value is not quoted")
                labels[label], i = _quoted(line, i)
            elif not name:
                name = label
            else:
                raise ValueError("label without a value")
            i = _skip_space(line, i)
            if i < len(line) and line[i] == ",":
                i += 1
    if not name:
        raise ValueError("no metric name")
    # The value, then an optional timestamp, then an optional OpenMetrics exemplar ("# {…}").
    rest = line[i:].split()
    if not rest:
        raise ValueError("no value")
    value = float(rest[0])  # "NaN", "+Inf" and "-Inf" are floats to Python too
    if not labels:
        return name, name, value
    pairs = ",".join(
        f'{k if _LABEL.fullmatch(k) else chr(34) + _escape(k) + chr(34)}="{_escape(v)}"'
        for k, v in sorted(labels.items())
    )
    return name, f"{name}{{{pairs}}}", value


def _samples(text: str) -> Iterator[tuple[str, str, float]]:
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":  # HELP, TYPE, comments and OpenMetrics' "# EOF"
            continue
        try:
            yield _parse_line(line)
        except ValueError:
            continue  # one malformed line costs that line, not the whole scrape


def parse_prometheus_text(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition (format 0.0.4, or OpenMetrics text).

    Keys are ``name`` for a sample without labels and ``name{a="x",b="y"}`` (label names
    sorted, values escaped as the format writes them) for one with labels; a histogram's
    ``_bucket``, ``_sum`` and ``_count`` lines are samples of their own names. Timestamps and
    exemplars are dropped; a line that does not parse is skipped."""
    return {key: value for _, key, value in _samples(text)}


def metric_total(samples: Mapping[str, float], name: str) -> float | None:
    """The sum of ``name`` over all its label sets in ``samples`` (as ``parse_prometheus_text``
    keys them); None when ``name`` has no sample."""
    prefix = name + "{"
    found = [v for k, v in samples.items() if k == name or k.startswith(prefix)]
    return math.fsum(found) if found else None


def metric_totals(text: str) -> dict[str, float]:
    """Each metric name in a text exposition, summed over its label sets (what a scraper
    wants: one pass, however many names it reads)."""
    totals: dict[str, float] = {}
    for name, _, value in _samples(text):
        totals[name] = totals.get(name, 0.0) + value
    return totals


__all__ = ["metric_total", "metric_totals", "parse_prometheus_text"]
