"""Parsing and formatting of the units that appear in scenario files and reports.

Durations are written with a unit ("500ms", "10s", "2m", "1h", "250us"); a bare number is an
error, because a number of what is exactly the kind of mistake that ruins a benchmark.
Internally durations are float seconds (``*_s``) or integer nanoseconds (``*_ns``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
# Exact factors: "1234.5678ms" is 1.2345678 s, not the float product 1.2345678000000001.
_UNIT_S = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
# The shortest duration accepted (other than 0): reports and SLOs speak in microseconds, and no
# timer of the event loop wakes finer than that.
DURATION_RESOLUTION = "1us"
_RESOLUTION_S = Decimal("1e-6")


class Seconds(float):
    """A duration in seconds that remembers how it was written ("1.2345678s", "250us"), so it
    is shown back and recorded in the user's own spelling, never rounded."""

    text: str

    def __new__(cls, seconds: float, text: str) -> Seconds:
        value = super().__new__(cls, seconds)
        value.text = text
        return value

    def __reduce__(self) -> tuple[type[Seconds], tuple[float, str]]:
        return (Seconds, (float(self), self.text))


def parse_duration_s(value: object) -> float:
    """Return the duration in seconds; raise ValueError with a hint on anything else.

    The result is a ``Seconds``: a float that keeps the spelling it was parsed from."""
    if isinstance(value, Seconds):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s', '500ms' or '2m'")
    if isinstance(value, int | float):
        if value == 0:
            return Seconds(0.0, "0s")
        raise ValueError(f"duration {value!r} has no unit: write it as '{value}s' or '{value}ms'")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '10s', '500ms' or '2m'")
    if len(value) > 40:
        # Quoted back whole, a pasted file would be the error line.
        raise ValueError(
            f"a text of {len(value):,} characters is not a duration: use a number and a unit "
            "(ns, us, ms, s, m, h)"
        )
    match = _DURATION_RE.match(value)
    if not match and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        number = value.strip()
        raise ValueError(f"duration {value!r} has no unit: write it as '{number}s' or '{number}ms'")
    if not match:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit (ns, us, ms, s, m, h)"
        )
    number, unit = match.group(1), match.group(2)
    exact = Decimal(number) * _UNIT_S[unit]
    if 0 < exact < _RESOLUTION_S:
        raise ValueError(
            f"{value.strip()!r} is shorter than {DURATION_RESOLUTION}, the finest resolution "
            "a duration is accepted at (write 0s for none)"
        )
    seconds = float(exact)
    if not math.isfinite(seconds):
        raise ValueError(f"{value.strip()!r} is too long to be a duration")
    return Seconds(seconds, f"{number}{unit}")


def format_duration(seconds: float) -> str:
    """A duration as parse_duration_s reads it back to the same float: the spelling it was
    written with when it has one, else the largest unit that holds it as a whole number
    (``2m``, ``250us``), else exact seconds (``1.2345678s``)."""
    if isinstance(seconds, Seconds):
        return seconds.text
    if seconds == 0:
        return "0s"
    if not math.isfinite(seconds):
        return f"{seconds}s"
    # repr() is the shortest decimal that reads back as this float; scaling it by the exact
    # unit factors never rounds. The shortest spelling wins (2m, 250us, 1.2345678s).
    exact = Decimal(repr(float(seconds)))
    spellings = [f"{_plain(exact)}s"]
    for unit in ("h", "m", "ms", "us", "ns"):
        scaled = exact / _UNIT_S[unit]
        if scaled * _UNIT_S[unit] == exact:  # a division that did not terminate is inexact
            spellings.append(f"{_plain(scaled)}{unit}")
    return min(spellings, key=len)


def _plain(number: Decimal) -> str:
    """A decimal without an exponent: 0.0000012345, never 1.2345E-6."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


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


# A pydantic field type: accepts "10s", serialises back to the same spelling. A plain
# validator, so the value stays a ``Seconds`` (a float validator would drop the spelling).
Duration = Annotated[
    float,
    PlainValidator(parse_duration_s),
    PlainSerializer(format_duration, return_type=str),
]


# --------------------------------------------------------------------------- byte sizes
# "1GiB" is 2**30 bytes and "1GB" 10**9, as the SI and IEC prefixes say; a bare whole number
# is bytes (a byte count has no other unit to be mistaken for).
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_UNIT_BYTES = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
BYTES_MAX = 2**50  # a PiB: more than any backlog a benchmark builds


class Bytes(int):
    """A byte count that remembers how it was written ("1GiB"), shown back in that spelling."""

    text: str

    def __new__(cls, count: int, text: str) -> Bytes:
        value = super().__new__(cls, count)
        value.text = text
        return value

    def __reduce__(self) -> tuple[type[Bytes], tuple[int, str]]:
        return (Bytes, (int(self), self.text))


def parse_bytes(value: object) -> int:
    """Return a byte count from "1GiB", "1GB", "512MiB", "1024" or an int; raise ValueError
    with a hint on anything else. KB, MB, GB are 1000-based; KiB, MiB, GiB 1024-based."""
    if isinstance(value, Bytes):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a size such as '1GiB', '512MiB' or a number of bytes")
    if isinstance(value, int):
        if not 0 <= value <= BYTES_MAX:
            raise ValueError(f"{value:,} bytes is not a size: give 0 to 1PiB")
        return Bytes(value, str(value))
    if len(value) > 40:
        raise ValueError(
            f"a text of {len(value):,} characters is not a size: use a number and a unit "
            "(B, KB, MB, GB, KiB, MiB, GiB)"
        )
    match = _BYTES_RE.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a size: use a number and a unit (B, KB, MB, GB, KiB, MiB, GiB; "
            "KB is 1000 bytes, KiB 1024)"
        )
    number, unit = match.group(1), match.group(2) or "B"
    exact = Decimal(number) * _UNIT_BYTES[unit]
    if exact != exact.to_integral_value():
        raise ValueError(f"{value.strip()!r} is not a whole number of bytes")
    if exact > BYTES_MAX:
        raise ValueError(f"{value.strip()!r} is more than 1PiB")
    return Bytes(int(exact), f"{number}{unit}" if match.group(2) else number)


def format_bytes(count: float | None) -> str:
    """A byte count for people: 512 B, 1.0 KiB, 2.0 MiB, 1.50 GiB (1024-based)."""
    if (special := _special(count)) is not None:
        return special
    assert count is not None
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= factor:
            scaled = count / factor
            return f"{scaled:.1f} {unit}" if scaled < 100 else f"{scaled:,.0f} {unit}"
    return f"{count:,.0f} B"


def _bytes_text(value: int) -> str:
    return value.text if isinstance(value, Bytes) else str(int(value))


# A pydantic field type, as ``Duration``: accepts "1GiB" or bytes, serialises back to the
# spelling it was given.
ByteSize = Annotated[
    int,
    PlainValidator(parse_bytes),
    PlainSerializer(_bytes_text, return_type=str),
]
