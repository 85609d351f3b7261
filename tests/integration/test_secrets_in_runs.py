"""A password planted in a PostgreSQL DSN's query (``?password=``) through a ``--set`` on a
point that really runs (the local server trusts loopback, so it connects and the workers
write their logs): it reaches no stream and no file, the worker logs included."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from tests.cli_support import bench, only_run

PLANT = "s3cr3tPLANT-live"


def test_a_dsn_password_in_a_running_point_reaches_no_file(tmp_path: Path, postgres_dsn: str):
    parts = urlsplit(postgres_dsn)
    dsn = f"postgresql://{parts.netloc}{parts.path}?password={PLANT}&sslmode=disable"
    path = tmp_path / "s.toml"
    path.write_text(
        """
[scenario]
name = "dsn-secret"
duration = "1s"
warmup = "0s"

[workload]
kind = "store"
rate = 100
aggregates = 50

[targets.pg]
driver = "postgres"
schema = "eb_secrets_test"
pool_size = 2
"""
    )
    results = tmp_path / "results"
    done = bench("run", str(path), "--set", f"targets.pg.dsn={dsn}", "-q", "-o", str(results))
    assert done.returncode == 0, done.stderr
    assert PLANT not in done.stdout + done.stderr
    files = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name.startswith("worker-") and p.suffix == ".log" for p in files), files
    for file in files:
        assert PLANT.encode() not in file.read_bytes(), file
    manifest = json.loads((only_run(results) / "manifest.json").read_text())
    assert manifest["points"][0]["status"] == "ok"
    (override,) = manifest["overrides"]
    assert override.startswith("targets.pg.dsn=postgresql://***@") and "password=***" in override
