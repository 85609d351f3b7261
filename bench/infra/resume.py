"""A server eventbench started that was left SIGSTOPped: who paused it, and resuming it.

A pause fault notes its own process in ``paused.json`` while it holds the server stopped.
``bench status`` and ``bench up`` leave a pause alone while that process lives, and resume a
server that is stopped otherwise (e.g. its pause fault's coordinator was killed), saying so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.infra.processes import stopped
from bench.infra.state import PAUSED


def live_pauser(directory: Path) -> int | None:
    """The pid of the process whose pause fault stopped the server, if it still runs."""
    try:
        raw = json.loads((directory / PAUSED).read_text())
        process = psutil.Process(int(raw["pid"]))
        if abs(process.create_time() - float(raw["create_time"])) < 1 and (
            process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        ):
            return process.pid
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        pass
    return None


def resume_stopped(
    name: str, directory: Path, processes: Callable[[], list[psutil.Process]]
) -> tuple[str | None, int | None]:
    """SIGCONT a stopped server eventbench started, unless a running pause fault holds it.

    ``processes`` finds the server's processes (asked only when no pause fault holds them).
    Returns (the line saying what was resumed, or None; the pid of the live pauser, or None).
    """
    pauser = live_pauser(directory)
    if pauser is not None:
        return None, pauser
    found = stopped(processes())
    if not found:
        (directory / PAUSED).unlink(missing_ok=True)  # its pauser is gone: a stale note
        return None, None
    left_by = (
        "left by an interrupted pause fault"
        if (directory / PAUSED).exists()
        else "not by a running pause fault"
    )
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.resume()
    (directory / PAUSED).unlink(missing_ok=True)
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{name}: was stopped (SIGSTOP, {left_by}; pid {found[0].pid}{more}); resumed", None


def resume_all(processes: list[psutil.Process]) -> None:
    """Continue those of the server's processes that are stopped (one would hold a SIGTERM)."""
    for proc in stopped(processes):
        with contextlib.suppress(psutil.Error):
            proc.resume()
