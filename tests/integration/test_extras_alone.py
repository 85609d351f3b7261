"""Each extra alone runs its own driver (issue 15): `pip install 'eventbench[nats]'` and a NATS
run, and the same for kafka, rabbitmq and postgres. The other extras (the report's included)
are refused at import (tests/install_support.py), so a driver that needs another extra's
library, or a run that needs pandas, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.install_support import bench_with_extras

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HEAD = """
[scenario]
name = "alone-{extra}"
duration = "1s"
warmup = "0s"
drain_timeout = "15s"

[workload]
{workload}

[targets.memory]
driver = "memory"

[targets.{extra}]
{target}
"""
STREAM = "rate = 200\nproducers = 1\nconsumers = 1\npartitions = 2"
STORE = 'kind = "store"\nrate = "max"\nconcurrency = 2\naggregates = 100\nproducers = 1'


def run_alone(tmp_path: Path, extra: str, workload: str, target: str) -> None:
    """Run only this extra's target of a scenario that also names memory, with only this
    extra installed: it runs, passes its audit and skips the report with one line."""
    path = tmp_path / "alone.toml"
    path.write_text(HEAD.format(extra=extra, workload=workload, target=target))
    results = tmp_path / "r"
    done = bench_with_extras(
        tmp_path, (extra,), "run", str(path), "--target", extra, "-q", "-o", str(results)
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "internal error" not in output
    assert output.count("pip install 'eventbench[report]'") == 1, output
    [run] = list(results.iterdir())
    [summary_path] = list(run.glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "ok", summary.get("problems")
    assert summary["target"] == extra


def test_nats_alone(tmp_path, nats_url):
    target = f'driver = "nats"\nservers = ["{nats_url}"]\nstorage = "memory"'
    run_alone(tmp_path, "nats", STREAM, target)


def test_rabbitmq_alone(tmp_path, rabbitmq_url):
    run_alone(tmp_path, "rabbitmq", STREAM, f'driver = "rabbitmq"\nurl = "{rabbitmq_url}"')


def test_postgres_alone(tmp_path, postgres_dsn):
    target = f'driver = "postgres"\ndsn = "{postgres_dsn}"\nstrategy = "insert_only"'
    run_alone(tmp_path, "postgres", STORE, target)


def test_kafka_alone(tmp_path, kafka_bootstrap):
    target = f'driver = "kafka"\nbootstrap_servers = "{kafka_bootstrap}"\nfetch_max_wait_ms = 10'
    run_alone(tmp_path, "kafka", STREAM, target)
