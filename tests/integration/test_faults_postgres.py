"""A kill of PostgreSQL under the event-store append load, on a private cluster.

``pg_createcluster`` makes a throw-away cluster on a free port (trust on loopback), ``bench up
postgres`` starts it (so eventbench manages it and may kill it), and a SIGKILL of the
postmaster and its backends mid-load must leave every acknowledged append stored exactly once
(the store's invariants), with the outage and the recovery measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from bench import infra
from tests.cli_support import run_bench
from tests.integration.server_support import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        shutil.which("pg_createcluster") is None or os.geteuid() != 0,
        reason="needs Debian's pg_createcluster and root",
    ),
]


def _version() -> str:
    out = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[0]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    port = free_port()
    version, name = _version(), f"ebfault{port}"
    initdb = ["--auth-host=trust", "--auth-local=trust"]
    subprocess.run(
        ["pg_createcluster", version, name, "-p", str(port), "--", *initdb],
        capture_output=True,
        check=True,
        timeout=120,
    )
    monkeypatch.setattr(infra, "DEFAULT_STATE_DIR", tmp_path / "state")
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    monkeypatch.setenv("BENCH_POSTGRES_DSN", dsn)
    try:
        assert infra.up("postgres").managed
        yield dsn
    finally:
        try:
            infra.down("postgres")
        finally:
            subprocess.run(
                ["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120
            )


def test_a_postgres_kill_keeps_every_acknowledged_append(tmp_path, cluster):
    (tmp_path / "s.toml").write_text(
        f"""
[scenario]
name = "pg-kill"
duration = "7s"
warmup = "1s"
interval = "500ms"

[workload]
kind = "store"
rate = 200
concurrency = 8
aggregates = 500
producers = 2

[targets.pg]
driver = "postgres"
dsn = "{cluster}"
strategy = "streams_cas"
acquire_timeout = "5s"

[[faults]]
at = "3s"
action = "kill"
down_for = "1s"
"""
    )
    code = run_bench(["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "-q"])
    summary = json.loads(next((tmp_path / "r").glob("*/*/summary.json")).read_text())
    (fault,) = summary["faults"]
    assert fault["status"] == "done", fault
    assert "SIGKILL pid" in fault["detail"] and fault["service"] == "postgres"
    assert fault["answering_at_s"] - fault["started_at_s"] >= 1.0
    # Appends failed while it was down, stopped committing, and came back.
    assert fault["errors"] > 0 and fault["time_to_first_error_s"] < 1.0, fault
    assert fault["producer_outage_s"] >= 0.8, fault
    assert fault["recovery_s"] is not None, fault
    assert fault["consumer_outage_s"] is None and fault["audit"] is None  # no stream here
    # The store's invariants: every acknowledged append stored exactly once, nothing forked.
    assert summary["store"]["invariants"]["ok"], summary["store"]["invariants"]
    assert code == 0 and summary["status"] == "ok", summary["problems"]
    assert infra.status("postgres").running


def test_a_pipeline_keeps_its_invariants_through_a_restart_of_its_store(tmp_path, cluster):
    # The store is this private cluster (outbox and read model in it); the broker is the
    # memory target. A fault with on = "store" acts on the store's service.
    (tmp_path / "p.toml").write_text(
        f"""
[scenario]
name = "pl-pg-restart"
duration = "5s"
warmup = "500ms"
interval = "500ms"
drain_timeout = "20s"

[workload]
kind = "pipeline"
rate = 150
aggregates = 200
consumers = 2
partitions = 4

[workload.pipeline]
store = "pg"

[targets.pg]
driver = "postgres"
dsn = "{cluster}"
strategy = "max_then_insert"
acquire_timeout = "5s"

[targets.broker]
driver = "memory"

[[faults]]
at = "2s"
action = "kill"
down_for = "1s"
on = "store"
"""
    )
    code = run_bench(["run", str(tmp_path / "p.toml"), "-o", str(tmp_path / "r"), "-q"])
    summary = json.loads(next((tmp_path / "r").glob("*/*/summary.json")).read_text())
    (fault,) = summary["faults"]
    assert fault["status"] == "done" and fault["service"] == "postgres", fault
    assert "SIGKILL pid" in fault["detail"]
    # Commands failed while the store was down; the read model stopped changing too.
    assert fault["errors"] > 0 and fault["producer_outage_s"] >= 0.8, fault
    assert fault["consumer_outage_s"] >= 0.8, fault
    # Afterwards every committed event reached the read model once, and it equals the store.
    pipeline = summary["pipeline"]
    assert pipeline["invariants"]["ok"], pipeline["invariants"]
    assert pipeline["drained"] and pipeline["invariants"]["outbox_pending"] == 0
    assert summary["store"]["invariants"]["ok"], summary["store"]["invariants"]
    assert code == 0 and summary["status"] == "ok", summary["problems"]
