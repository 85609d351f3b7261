"""Corrupt results files in the commands whose loading lives outside bench/report (issue 14):
``bench show`` (bench/cli.py reads the run with bench.store.load_run) and a binary ``.hlog``
in ``bench report`` (bench/metrics/hlog.py reads it as UTF-8 text).

Each must be one line naming the file and field, exit 2. Until the two changes below are made
these are strict expected failures, so a fix that lands turns them into passes that must be
unmarked:
- bench/cli.py ``show``: load with ``bench.report.tables.load_results`` (checks each field)
  instead of ``bench.store.load_run``;
- bench/metrics/hlog.py ``read_all``: ``except UnicodeDecodeError`` beside ``OSError``, raising
  ``ResultsError(f"{path}: not a text file (not UTF-8)")``.
"""

from __future__ import annotations

import pytest

from tests.cli_support import run_bench_captured
from tests.e2e.test_bad_input import CORRUPT_RESULTS, Case, _materialise, _results

CASES = [
    pytest.param(Case(f"show: {name}", files, ["show", "{tmp}/run"], needles))
    for name, files, needles in CORRUPT_RESULTS
] + [
    pytest.param(
        Case(
            "report: a binary .hlog",
            {**_results(), "run/p/e2e.hlog": bytes(range(256)) * 16},
            ["report", "{tmp}/run", "-o", "{tmp}/out"],
            ("p/e2e.hlog", "not a text file"),
        ),
    )
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_corrupt_results_file_is_one_line_exit_2(case, tmp_path, capsys):
    argv = _materialise(case, tmp_path)
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), err
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert len(lines) <= 2
