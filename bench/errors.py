"""The errors that eventbench shows to users.

Every error a user can cause (a bad scenario file, an unreachable broker, an unwritable
results directory) is one of these. The CLI renders them as one line plus a hint, and
exits with the error's ``exit_code``; tracebacks are only shown with ``--debug``.
"""

from __future__ import annotations

FIELD_MAX_CHARS = 120  # a field path as an error quotes it (a pasted 100 KB key stays short)


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and end around an ellipsis
    that says how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    return f"{text[: keep - 10]}…({len(text) - keep:,} characters)…{text[-10:]}"


class BenchError(Exception):
    """Base class for errors that the CLI renders as one line."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ScenarioError(BenchError):
    """A scenario file (or a ``--set`` override) is invalid.

    The message always names the file, the field (dotted path) and the problem.
    """

    exit_code = 2

    def __init__(
        self, source: str, field: str | None, problem: str, *, hint: str | None = None
    ) -> None:
        field = clip(field, FIELD_MAX_CHARS) if field else field
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}", hint=hint)
        self.source = source
        self.field = field
        self.problem = problem


class DriverError(BenchError):
    """A driver could not reach or use its target (connect, prepare, describe)."""

    exit_code = 3


class ScrapeError(BenchError):
    """A target's own metrics (its monitoring port, statistics views or Prometheus endpoint)
    could not be read. The caller records the figures as not sampled and carries on."""

    exit_code = 3


class DriverNotFound(BenchError):
    """No driver is registered under the requested name, or its client is not installed."""

    exit_code = 2


class ResultsError(BenchError):
    """A results directory is missing, unreadable, unwritable or from a newer schema."""

    exit_code = 2


class InfraError(BenchError):
    """A local service could not be installed, started, stopped or checked."""

    exit_code = 3


class ReportError(BenchError):
    """A report could not be written (a full disk, an unwritable directory). The results it
    reads stand; nothing of the report is left half written."""

    exit_code = 1


class ReportInterrupted(BenchError):
    """Ctrl-C (or SIGTERM) arrived while a report was written: none of it was kept."""

    exit_code = 130
