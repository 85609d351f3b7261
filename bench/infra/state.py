"""The state directory: one subdirectory per service holding what eventbench started.

Each service's subdirectory holds its record (``service.json``: the pid it spawned, or the
command that stops a system service), its pid file, its log and data, and the note a pause
fault leaves (``paused.json``). ``bench up`` and ``bench down`` serialise on the state
directory with a file lock, so parallel runs never race for one service.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.errors import InfraError

RECORD = "service.json"
PID_FILE = "server.pid"
PAUSED = "paused.json"  # written by ServiceFaults.pause: which process paused the server
POLL_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Record:
    """What eventbench started: a process it owns, or a system service it must stop by command."""

    pid: int | None
    create_time: float | None
    stop: tuple[str, ...]
    how: str


def service_dir(state_dir: Path | None, name: str) -> Path:
    """The service's subdirectory; ``None`` means ``bench.infra.DEFAULT_STATE_DIR``."""
    if state_dir is None:
        # Read from the package at call time: callers (and tests) replace it there.
        from bench import infra

        state_dir = infra.DEFAULT_STATE_DIR
    return state_dir.resolve() / name


def load_record(directory: Path) -> Record | None:
    try:
        raw = json.loads((directory / RECORD).read_text())
        return Record(raw["pid"], raw["create_time"], tuple(raw["stop"]), raw["how"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_record(directory: Path, record: Record) -> None:
    write_json(
        directory / RECORD,
        {
            "pid": record.pid,
            "create_time": record.create_time,
            "stop": list(record.stop),
            "how": record.how,
        },
    )


def write_json(path: Path, value: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def record_alive(record: Record) -> bool:
    if record.pid is None:
        return True  # a system service: whether it answers is the probe's business
    try:
        process = psutil.Process(record.pid)
        # The create time tells our process from a later one that reused its pid.
        same = record.create_time is None or abs(process.create_time() - record.create_time) < 1
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def how(record: Record | None) -> str:
    if record is None:
        return "unknown"
    return f"pid {record.pid}" if record.pid is not None else record.how


def remove_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def forget(directory: Path) -> None:
    """Drop the record of a failed start but keep its log for the user to read."""
    for leftover in (RECORD, PID_FILE):
        (directory / leftover).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(state_dir: Path, deadline: float) -> Iterator[None]:
    """Serialise up/down on one state directory across processes (e.g. parallel test runs)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InfraError(
                        f"another bench up/down holds {state_dir}",
                        hint="wait for it to finish, or use another BENCH_STATE_DIR",
                    ) from None
                time.sleep(POLL_INTERVAL_S)
        yield
    finally:
        os.close(fd)
