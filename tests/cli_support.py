"""Running the real ``bench`` entry point in-process, for tests that want its exit code.

``bench.cli.main`` is what the ``bench`` script calls; it always ends in ``SystemExit``.
"""

from __future__ import annotations

import sys

import pytest

from bench import cli


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
