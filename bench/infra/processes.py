"""The processes of a service eventbench started: spawning, terminating and finding them.

A server eventbench spawns leads its own session, its output in a log under its state
directory; it is found again by its recorded pid (checked against its create time). A system
service started by command is found by the process listening on its port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psutil

from bench.errors import InfraError
from bench.infra.state import PID_FILE, Record, record_alive, save_record

STOP_TIMEOUT_S = 30.0


def spawn(argv: list[str], directory: Path, log: Path) -> tuple[subprocess.Popen[bytes], Record]:
    """Start a server detached from us (own session), its output in a log under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
        )
    record = Record(process.pid, psutil.Process(process.pid).create_time(), (), "")
    save_record(directory, record)
    (directory / PID_FILE).write_text(f"{process.pid}\n")
    return process, record


def terminate(record: Record) -> None:
    if record.pid is None or not record_alive(record):
        return
    # The server leads its own session, so its group holds it and anything it forked.
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
            # A stopped process keeps a SIGTERM pending until it is continued.
            os.killpg(record.pid, signal.SIGCONT)
        with contextlib.suppress(psutil.Error):
            psutil.Process(record.pid).wait(timeout=wait_s)
        if not record_alive(record):
            return
    raise InfraError(f"pid {record.pid} did not exit after SIGKILL")


def service_processes(record: Record | None, port: int) -> list[psutil.Process]:
    """The server eventbench started and everything it forked; [] when none is found.

    A process eventbench spawned is found by its recorded pid; a system service it started
    by command (``record.pid`` is None) by the process listening on its port.
    """
    if record is None:
        return []
    try:
        if record.pid is not None:
            if not record_alive(record):
                return []
            root = psutil.Process(record.pid)
        else:
            root = listener(port)
            if root is None:
                return []
    except psutil.Error:
        return []
    with contextlib.suppress(psutil.Error):
        return [root, *root.children(recursive=True)]
    return [root]


def listener(port: int) -> psutil.Process | None:
    """The process listening on ``port`` on any address, when it is visible to us."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            listens = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid
            if listens and conn.laddr.port == port:
                return psutil.Process(conn.pid)
    return None


def stopped(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` in state T (stopped by a signal)."""
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() == psutil.STATUS_STOPPED:
                found.append(proc)
    return found
