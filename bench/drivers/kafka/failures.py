"""Why a Kafka call failed, as one short phrase for an error line (secrets redacted)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bench.errors import DriverError
from bench.redaction import redact_text
from bench.units import format_duration


def reason(exc: BaseException) -> str:
    """One short phrase for why a connection failed."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer"
    # confluent-kafka raises KafkaException(KafkaError): name librdkafka's error, not the
    # wrapper (duck-typed: confluent-kafka is an optional extra).
    error: Any = exc.args[0] if len(exc.args) == 1 else None
    if callable(getattr(error, "name", None)) and callable(getattr(error, "str", None)):
        text = redact_text(str(error.str()).strip())
        return f"{error.name()}: {text}" if text else str(error.name())
    text = redact_text(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def no_assignment(topic: str, timeout_s: float) -> DriverError:
    """A consumer that was not given its partitions in time (either client)."""
    return DriverError(
        f"kafka: consumer did not get its assignment of {topic!r} within "
        f"{format_duration(timeout_s)}",
        hint="is the group coordinator available? raise setup_timeout if the "
        "cluster is slow to rebalance",
    )
