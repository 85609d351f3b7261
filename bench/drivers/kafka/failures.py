"""Why a Kafka call failed, as one short phrase for an error line (secrets redacted)."""

from __future__ import annotations

import asyncio
import os

from bench.redaction import redact_text


def reason(exc: BaseException) -> str:
    """One short phrase for why a connection failed."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer"
    text = redact_text(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
