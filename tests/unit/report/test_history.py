"""bench history: a planted step is found once, where it began; flat noise is left alone."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.report.history import build, change_points, noise_scale
from tests.fabricate import make_run, points

DAY = 86_400.0


def test_a_planted_step_is_one_change_point_where_it_began():
    rng = np.random.default_rng(42)
    series = 10 + rng.normal(0, 0.5, 30)
    series[17:] += 3  # six noise sigmas, persisting to the end
    assert change_points(series) == [17]


def test_a_step_that_comes_back_is_two_change_points():
    rng = np.random.default_rng(3)
    series = 10 + rng.normal(0, 0.3, 24)
    series[8:16] += 3
    assert change_points(series) == [8, 16]


@pytest.mark.parametrize("seed", range(20))
def test_a_flat_noisy_series_has_no_change_point(seed):
    rng = np.random.default_rng(seed)
    assert change_points(100 + rng.normal(0, 8, 40)) == []


def test_a_single_outlier_run_is_not_a_step():
    rng = np.random.default_rng(11)
    series = 10 + rng.normal(0, 0.3, 20)
    series[9] = 40
    assert change_points(series) == []


def test_the_penalty_scales_with_the_noise():
    rng = np.random.default_rng(5)
    step = np.r_[np.zeros(10), np.ones(10)]
    quiet = 10 + rng.normal(0, 0.15, 20) + 0.8 * step
    loud = 10 + rng.normal(0, 1.5, 20) + 0.8 * step
    assert noise_scale(loud) > 5 * noise_scale(quiet)
    assert change_points(quiet) == [10]
    assert change_points(loud) == []


def _nightlies(root, scales, seed=0):
    rng = np.random.default_rng(seed)
    for i, scale in enumerate(scales):
        make_run(
            root,
            f"night-{i:02d}",
            points(kafka={"scale": scale * (1 + rng.normal(0, 0.02))}),
            scenario="nightly",
            seed=1000 + i,
            started_at=1_790_000_000 + i * DAY,
        )


def test_history_of_runs_reports_a_persistent_regression_once(tmp_path):
    _nightlies(tmp_path, [1.0] * 5 + [1.4] * 4)
    make_run(tmp_path, "other-0", points(), scenario="other", started_at=1_700_000_000)
    history = build(tmp_path, "e2e.p99", "nightly")
    assert len(history.runs) == 9
    assert [(c.point, c.run_id, c.regression) for c in history.changes] == [
        ("kafka", "night-05", True)
    ]
    assert 30 < history.changes[0].change_pct < 50


def test_the_command_prints_the_trend_and_writes_the_plot(tmp_path):
    _nightlies(tmp_path, [1.0] * 4 + [0.6] * 4, seed=1)
    result = CliRunner().invoke(app, ["history", str(tmp_path), "--metric", "e2e.p50"])
    assert result.exit_code == 0, result.output
    assert "nightly: e2e.p50 over 8 runs" in result.output
    assert "improvement at night-04: kafka e2e.p50" in result.output
    assert (tmp_path / "history.png").stat().st_size > 1000
    flat = tmp_path / "flat"
    _nightlies(flat, [1.0] * 8, seed=2)
    result = CliRunner().invoke(app, ["history", str(flat), "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    assert "no change point" in result.output
    assert (tmp_path / "h.png").exists()
