"""Running the real ``bench`` command: in a process of its own as a user does (``bench``), or
in-process for tests that want its exit code and output (``run_bench``).

``bench.cli.main`` is what the ``bench`` script calls; it always ends in ``SystemExit``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``bench *args`` as a child process (wide terminal) and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def only_run(results: Path) -> Path:
    """The one run directory under ``results``."""
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def run_bench(argv: list[str]) -> int:
    """Run ``bench *argv`` in this process and return its exit code."""
    old_argv = sys.argv
    sys.argv = ["bench", *argv]
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        sys.argv = old_argv
    code = exited.value.code
    return code if isinstance(code, int) else 1


def run_bench_captured(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``run_bench``, then what it wrote: (exit code, stdout, stderr)."""
    code = run_bench(argv)
    out, err = capsys.readouterr()
    return code, out, err
