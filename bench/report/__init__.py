"""Turning results into tables, reports and verdicts.

The terminal tables (``terminal``, and the ``tables``/``verdicts`` helpers they use) need only
the core install; the reports, comparisons and history need the ``report`` extra (pandas,
matplotlib, scipy), imported where they are used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.errors import BenchError

REPORT_LIBRARIES = ("pandas", "matplotlib", "scipy")
REPORT_INSTALL = "pip install 'eventbench[report]'"


class ReportExtraMissing(BenchError):
    """A command needs the ``report`` extra, which is not installed."""

    exit_code = 2

    def __init__(self, command: str, module: str) -> None:
        super().__init__(f"{command} needs {module}, which is not installed", hint=REPORT_INSTALL)
        self.module = module


@contextlib.contextmanager
def report_extra(command: str) -> Iterator[None]:
    """Turn a report library that does not import into one line naming the extra to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in REPORT_LIBRARIES:
            raise
        raise ReportExtraMissing(command, missing) from None
