"""Parsing and formatting of the units that appear in scenario files and reports.

Durations are written with a unit ("500ms", "10s", "2m", "1h", "250us"); a bare number is an
error, because a number of what is exactly the kind of mistake that ruins a benchmark.
Internally durations are float seconds (``*_s``) or integer nanoseconds (``*_ns``).
"""

from __future__ import annotations

import math
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


# --------------------------------------------------------------------------- display
# The one place figures are spelled for people: verdicts, banners, tables, notes, legends.
# Every formatter shows None as "-" and a non-finite value (a broken measurement) as "n/a".

MISSING = "-"
NOT_A_NUMBER = "n/a"


def _special(value: float | None) -> str | None:
    if value is None:
        return MISSING
    if isinstance(value, bool) or not math.isfinite(value):
        return NOT_A_NUMBER
    return None


def format_latency_us(value_us: float | None) -> str:
    """Human latency from microseconds: 850us, 2.31ms, 1.20s."""
    if (special := _special(value_us)) is not None:
        return special
    assert value_us is not None
    sign, value_us = ("-", -value_us) if value_us < 0 else ("", value_us)
    if value_us < 1000:
        text = f"{value_us:.0f}us" if value_us >= 10 else f"{value_us:.1f}us"
    elif value_us < 1_000_000:
        text = f"{value_us / 1e3:.2f}ms"
    else:
        text = f"{value_us / 1e6:.2f}s"
    return sign + text


def format_seconds(value_s: float | None) -> str:
    """A measured duration in seconds, spelled as a latency: 12.00ms, 1.83s."""
    if (special := _special(value_s)) is not None:
        return special
    assert value_s is not None
    return format_latency_us(value_s * 1e6)


def format_rate(per_s: float | None) -> str:
    """A rate: 850/s, 1,315/s, 12.3k/s, 1.20M/s (one that rounds to zero is 0/s, never -0/s)."""
    if (special := _special(per_s)) is not None:
        return special
    assert per_s is not None
    sign, per_s = ("-", -per_s) if per_s < 0 else ("", per_s)
    if per_s >= 1e6:
        text = f"{per_s / 1e6:.2f}M/s"
    elif per_s >= 1e4:
        text = f"{per_s / 1e3:.1f}k/s"
    else:
        text = f"{per_s:,.0f}/s"
    return ("" if text == "0/s" else sign) + text


def format_count(value: float | None) -> str:
    """A count with thousands separators: 7,284 (a fractional one, a median: 7,284.5)."""
    if (special := _special(value)) is not None:
        return special
    assert value is not None
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def format_percent(fraction: float | None, signed: bool = False) -> str:
    """A fraction as a percentage: 72.7%, 0.1%, 0.013%; ``signed`` for changes: +4.2%, -0.5%.

    From 1% up one decimal; below it two significant digits (to 0.0001%), so a small threshold
    (0.1%) or error rate (0.013%) never reads as 0.0%. A value that rounds to zero is 0%, never
    -0.0%.
    """
    if (special := _special(fraction)) is not None:
        return special
    assert fraction is not None
    pct = fraction * 100
    magnitude = abs(pct)
    if magnitude >= 1:
        text = f"{magnitude:.1f}"
    else:
        # Two significant digits, down to 0.0001%: below that is rounding noise, shown as 0%.
        decimals = min(1 - math.floor(math.log10(magnitude)), 4) if magnitude > 0 else 0
        text = f"{magnitude:.{decimals}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        if float(text) >= 1:  # 0.999% rounds up into the one-decimal range
            text = f"{magnitude:.1f}"
    if float(text) == 0:
        return "0%"
    sign = "-" if pct < 0 else "+" if signed else ""
    return f"{sign}{text}%"


# A pydantic field type: accepts "10s", serialises back to the same spelling.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration_s),
    PlainSerializer(format_duration, return_type=str),
]
