"""Golden results directories for the report tests, fabricated once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fabricate import PointSpec, make_run, points

# Run-level noise of repetitions: each run's latencies scaled by one of these.
NOISY_BASELINE = (1.0, 1.3, 0.8, 1.2, 0.9)
NOISY_CANDIDATE = (1.25, 0.85, 1.3, 0.95, 1.15)  # median +15%, but within the spread
QUIET_BASELINE = (1.0, 1.02, 0.98, 1.01, 0.99)


@dataclass
class Golden:
    root: Path
    base: Path
    regress: Path  # kafka 1.5x slower
    improve: Path  # kafka 0.7x
    noise: Path  # the same distributions, other seeds
    slo_broken: Path  # same latency, kafka's SLO tightened to 10 ms
    lost: Path  # kafka lost 4 events
    sweep: Path  # memory and kafka at three rates
    base_group: list[Path]
    noisy_base_group: list[Path]
    noisy_cand_group: list[Path]
    regress_group: list[Path]


def _group(root: Path, name: str, scales: tuple[float, ...], seed: int) -> list[Path]:
    return [
        make_run(root, f"{name}-{i}", points(kafka={"scale": s}), seed=seed + i)
        for i, s in enumerate(scales)
    ]


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    root = tmp_path_factory.mktemp("golden")
    sweep_points = [
        PointSpec(
            target,
            params={"workload.rate": rate},
            rate_per_s=float(rate),
            e2e_median_us=median * (1 + rate / 4000),
            client_bound=(target == "memory" and rate == 8000),
        )
        for target, median in (("memory", 500.0), ("kafka", 5000.0))
        for rate in (500, 2000, 8000)
    ]
    return Golden(
        root=root,
        base=make_run(root, "base", points(), seed=1),
        regress=make_run(root, "regress", points(kafka={"scale": 1.5}), seed=2),
        improve=make_run(root, "improve", points(kafka={"scale": 0.7}), seed=3),
        noise=make_run(root, "noise", points(), seed=4),
        slo_broken=make_run(root, "slo-broken", points(kafka={"slo_e2e_p99_us": 10_000.0}), seed=5),
        lost=make_run(root, "lost", points(kafka={"lost": 4}), seed=6),
        sweep=make_run(root, "sweep", sweep_points, seed=7),
        base_group=_group(root, "qbase", QUIET_BASELINE, 100),
        noisy_base_group=_group(root, "nbase", NOISY_BASELINE, 200),
        noisy_cand_group=_group(root, "ncand", NOISY_CANDIDATE, 300),
        regress_group=_group(root, "qregress", tuple(1.5 * s for s in QUIET_BASELINE), 400),
    )
