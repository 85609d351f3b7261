"""bench history says one thing about a short series (issue 13).

The defect: for 2 runs it said both "at least 4 are needed to find a step" and "no change point:
the series stayed within its noise". A series too short to search was never searched, so it
cannot have stayed within its noise.
"""

from __future__ import annotations

from typer.testing import CliRunner

from bench.cli import app
from bench.report.history import build
from tests.fabricate import PointSpec, make_run, points

DAY = 86_400.0


def _nightly(root, index: int, specs: list[PointSpec]) -> None:
    make_run(
        root,
        f"night-{index:02d}",
        specs,
        scenario="nightly",
        seed=2000 + index,
        started_at=1_790_000_000 + index * DAY,
    )


def test_two_runs_are_too_few_to_search_and_nothing_else_is_claimed(tmp_path):
    for i in range(2):
        _nightly(tmp_path, i, points())
    history = build(tmp_path, "e2e.p99", "nightly")
    assert history.changes == []
    assert history.conclusion == (
        "2 runs: too few to look for a change point (at least 4 are needed)"
    )
    assert not any("step" in note or "noise" in note for note in history.notes)


def test_a_long_flat_series_stayed_within_its_noise(tmp_path):
    for i in range(6):
        _nightly(tmp_path, i, points())
    history = build(tmp_path, "e2e.p99", "nightly")
    assert history.conclusion == "no change point: the series stayed within its noise"


def test_a_target_with_too_few_runs_is_named_as_not_searched(tmp_path):
    for i in range(6):
        extra = [PointSpec("nats", e2e_median_us=5000.0)] if i >= 4 else []
        _nightly(tmp_path, i, [*points(), *extra])
    history = build(tmp_path, "e2e.p99", "nightly")
    assert history.too_short == ["nats"]
    assert history.conclusion == (
        "no change point in the series long enough to search; not searched, fewer than 4 runs: nats"
    )


# Without a change point the command prints ``History.conclusion``, the one statement.
def test_the_command_says_one_thing_about_a_short_series(tmp_path):
    for i in range(2):
        _nightly(tmp_path, i, points())
    result = CliRunner().invoke(app, ["history", str(tmp_path), "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    assert result.output.count("too few to look for a change point") == 1
    assert "stayed within its noise" not in result.output
    assert "needed to find a step" not in result.output
