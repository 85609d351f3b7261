"""Parsing and formatting of the units that appear in scenario files and reports.

Durations are written with a unit ("500ms", "10s", "2m", "1h", "250us"); a bare number is an
error, because a number of what is exactly the kind of mistake that ruins a benchmark.
Internally durations are float seconds (``*_s``) or integer nanoseconds (``*_ns``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: object) -> float:
    """Return the duration in seconds; raise ValueError with a hint on anything else."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s', '500ms' or '2m'")
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise ValueError(f"duration {value!r} has no unit: write it as '{value}s' or '{value}ms'")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '10s', '500ms' or '2m'")
    match = _DURATION_RE.match(value)
    if not match and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        number = value.strip()
        raise ValueError(f"duration {value!r} has no unit: write it as '{number}s' or '{number}ms'")
    if not match:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit (ns, us, ms, s, m, h)"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact-enough spelling of a duration, as accepted by parse_duration_s."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        scaled = seconds / factor
        if scaled >= 1 and abs(scaled - round(scaled)) < 1e-9:
            return f"{round(scaled)}{unit}"
    return f"{seconds * 1e3:g}ms"


def format_latency_us(value_us: float | None) -> str:
    """Human latency from microseconds: 850us, 2.31ms, 1.20s."""
    if value_us is None:
        return "-"
    if value_us < 1000:
        return f"{value_us:.0f}us" if value_us >= 10 else f"{value_us:.1f}us"
    if value_us < 1_000_000:
        return f"{value_us / 1e3:.2f}ms"
    return f"{value_us / 1e6:.2f}s"


def format_rate(per_s: float) -> str:
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f}M/s"
    if per_s >= 1e4:
        return f"{per_s / 1e3:.1f}k/s"
    return f"{per_s:.0f}/s"


def format_count(count: float) -> str:
    """A count with thousands separators: 18,000."""
    return f"{int(count):,}"


def format_percent(fraction: float) -> str:
    """A fraction as a percentage, with enough digits to tell small rates apart: 72.7%,
    0.1%, 0.012%."""
    pct = fraction * 100.0
    if pct == 0:
        return "0%"
    if abs(pct) >= 10:
        return f"{pct:.1f}%"
    if abs(pct) >= 0.1:
        return f"{pct:.2g}%" if abs(pct) < 1 else f"{pct:.1f}%"
    return f"{pct:.2g}%"


# A pydantic field type: accepts "10s", serialises back to the same spelling.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration_s),
    PlainSerializer(format_duration, return_type=str),
]
