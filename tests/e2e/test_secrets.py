"""Secrets never leave the process: a secret planted through every path a user can give one
(``--set`` overrides, each DSN form, URL credentials, a Kafka bootstrap list, a value of the
wrong type) appears in no stream and no file the bench command writes.

The runs are real ``bench`` processes. Brokers are addressed on a closed port of 127.0.0.1
with ``connect_timeout = "1s"``, so each of their points fails at once and still writes its
manifest, summary and report; the memory target runs a real point beside them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenario import DESCRIPTION_MAX_CHARS

ROOT = Path(__file__).resolve().parents[2]
PLANT = "s3cr3tPLANT"
RUN_QUICK = ["--set", "scenario.duration=1s", "--set", "scenario.warmup=0s", "-q"]


def bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_nowhere(result: subprocess.CompletedProcess[str], results_dir: Path) -> list[Path]:
    """No trace of the planted secret in stdout, stderr or any file written; the files."""
    assert PLANT not in result.stdout, result.stdout
    assert PLANT not in result.stderr, result.stderr
    files = [p for p in results_dir.rglob("*") if p.is_file()] if results_dir.exists() else []
    for path in files:
        assert PLANT.encode() not in path.read_bytes(), path
    return files


def stream_scenario(tmp_path: Path, port: int) -> Path:
    # The longest description allowed as well: redaction runs on every manifest write, and a
    # backtracking pattern once took minutes on a long one (100 KB is now refused at
    # validation; tests/unit/test_redaction.py times redaction on 100 KB texts).
    path = tmp_path / "stream.toml"
    path.write_text(
        f"""
[scenario]
name = "secrets-stream"
description = "{"a" * DESCRIPTION_MAX_CHARS}"

[workload]
rate = 200

[targets.mem]
driver = "memory"

[targets.nats]
driver = "nats"
servers = ["nats://127.0.0.1:{port}"]
user = "bench"
connect_timeout = "1s"

[targets.rabbitmq]
driver = "rabbitmq"
connect_timeout = "1s"

[targets.kafka]
driver = "kafka"
bootstrap_servers = "127.0.0.1:{port}"
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "PLAIN"
sasl_username = "bench"
connect_timeout = "1s"
""",
        encoding="utf-8",
    )
    return path


def store_scenario(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "store.toml"
    path.write_text(
        f"""
[scenario]
name = "secrets-store"

[workload]
kind = "store"
rate = 100

[targets.pg_query]
driver = "postgres"
dsn = "postgresql://bench@127.0.0.1:{port}/db?sslmode=disable&password={PLANT}-query"
connect_timeout = "1s"

[targets.pg_userinfo]
driver = "postgres"
dsn = "postgresql://bench:{PLANT}-userinfo@127.0.0.1:{port}/db"
connect_timeout = "1s"

[targets.pg_keyvalue]
driver = "postgres"
dsn = "host=127.0.0.1 port={port} user=bench password={PLANT}-kv dbname=db"
connect_timeout = "1s"

[targets.pg_set]
driver = "postgres"
connect_timeout = "1s"
""",
        encoding="utf-8",
    )
    return path


def test_secrets_in_overrides_and_urls_reach_no_stream_and_no_file(tmp_path):
    port = closed_port()
    path = stream_scenario(tmp_path, port)
    overrides = [
        "--set",
        f"targets.nats.password={PLANT}-nats",
        "--set",
        f"targets.rabbitmq.url=amqp://bench:{PLANT}-amqp@127.0.0.1:{port}/",
        "--set",
        f"targets.kafka.sasl_password={PLANT}-kafka",
    ]
    checked = bench("validate", str(path), *overrides)
    assert checked.returncode == 0, checked.stderr
    assert_nowhere(checked, tmp_path / "none")

    out = tmp_path / "results"
    result = bench("run", str(path), *overrides, *RUN_QUICK, "-o", str(out))
    # The memory point ran; the brokers on a closed port failed, each with a problem.
    assert result.returncode == 1, result.stderr
    files = assert_nowhere(result, out)
    names = {p.name for p in files}
    assert {"manifest.json", "summary.json", "report.md", "report.html"} <= names, names
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # Redacted where it is stored, so every reader (report, show, compare) gets the same.
    assert "targets.nats.password=***" in manifest["overrides"]
    assert "targets.kafka.sasl_password=***" in manifest["overrides"]
    assert f"targets.rabbitmq.url=amqp://***@127.0.0.1:{port}/" in manifest["overrides"]
    assert manifest["scenario"]["targets"]["nats"]["password"] == "***"
    statuses = {p["target"]: p["status"] for p in manifest["points"]}
    assert statuses == {"mem": "ok", "nats": "failed", "rabbitmq": "failed", "kafka": "failed"}
    assert "targets.nats.password=***" in (run_dir / "report.md").read_text()
    for target in ("nats", "rabbitmq", "kafka"):
        (point,) = [p for p in manifest["points"] if p["target"] == target]
        summary = json.loads((run_dir / point["dir"] / "summary.json").read_text())
        assert summary["problems"], summary  # the failure is told, without the secret
    assert "cannot" in result.stderr or "refused" in result.stderr, result.stderr


def test_every_dsn_form_keeps_its_password_out_of_streams_and_files(tmp_path):
    port = closed_port()
    path = store_scenario(tmp_path, port)
    overrides = [
        "--set",
        f"targets.pg_set.dsn=\"host=127.0.0.1 port={port} password='{PLANT} set' dbname=db\"",
    ]
    checked = bench("validate", str(path), *overrides)
    assert checked.returncode == 0, checked.stderr
    assert_nowhere(checked, tmp_path / "none")

    out = tmp_path / "results"
    result = bench("run", str(path), *overrides, *RUN_QUICK, "-o", str(out))
    assert result.returncode == 1, result.stderr
    files = assert_nowhere(result, out)
    assert "manifest.json" in {p.name for p in files}
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    targets = manifest["scenario"]["targets"]
    assert targets["pg_query"]["dsn"].endswith("&password=***")
    assert targets["pg_userinfo"]["dsn"].startswith("postgresql://***@127.0.0.1")
    assert "password=*** dbname=db" in targets["pg_keyvalue"]["dsn"]
    assert "password=***" in targets["pg_set"]["dsn"]
    assert [p["status"] for p in manifest["points"]] == ["failed"] * 4


# Each secret-bearing field given a value of the wrong type: the error names the field and
# the problem, never the value.
BAD_TYPED = [
    ("nats", 'driver = "nats"\nuser = "bench"', "password"),
    ("nats", 'driver = "nats"', "token"),
    (
        "kafka",
        'driver = "kafka"\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "bench"',
        "sasl_password",
    ),
    ("pg", 'driver = "postgres"', "dsn"),
    ("rabbitmq", 'driver = "rabbitmq"', "url"),
]
BAD_VALUE = 99119911


@pytest.mark.parametrize(("target", "table", "field"), BAD_TYPED, ids=[f for *_, f in BAD_TYPED])
def test_a_validation_error_never_echoes_a_secret_value(tmp_path, target, table, field):
    kind = "store" if target == "pg" else "stream"
    path = tmp_path / "s.toml"
    path.write_text(
        f'[scenario]\nname = "bad"\n[workload]\nkind = "{kind}"\n[targets.{target}]\n{table}\n',
        encoding="utf-8",
    )
    out = tmp_path / "results"
    for command in (["validate"], ["run", "-o", str(out)]):
        result = bench(*command, str(path), "--set", f"targets.{target}.{field}={BAD_VALUE}")
        assert result.returncode == 2, result.stderr
        assert f"targets.{target}.{field}" in result.stderr, result.stderr
        assert "valid string" in result.stderr, result.stderr
        assert str(BAD_VALUE) not in result.stderr + result.stdout, result.stderr
    assert not out.exists() or not any(out.rglob("*.json"))


def test_kafka_credentials_in_bootstrap_servers_are_refused_without_echo(tmp_path):
    port = closed_port()
    path = tmp_path / "k.toml"
    path.write_text(
        f'[scenario]\nname = "k"\n[targets.kafka]\ndriver = "kafka"\n'
        f'bootstrap_servers = "bench:{PLANT}@127.0.0.1:{port}"\nconnect_timeout = "1s"\n',
        encoding="utf-8",
    )
    out = tmp_path / "results"
    for command in (["validate"], ["run", *RUN_QUICK, "-o", str(out)]):
        result = bench(*command, str(path))
        assert result.returncode == 2, result.stderr
        assert "targets.kafka.bootstrap_servers" in result.stderr, result.stderr
        assert "sasl_username" in result.stderr, result.stderr  # where credentials go
        assert_nowhere(result, out)


def test_a_report_of_results_written_before_the_fix_shows_no_secret(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "old"\n[workload]\nrate = 200\n[targets.mem]\ndriver = "memory"\n'
    )
    out = tmp_path / "results"
    ran = bench("run", str(path), *RUN_QUICK, "--no-report", "-o", str(out))
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    # As an older eventbench stored it: the override verbatim.
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["overrides"] = [f"targets.nats.password={PLANT}"]
    manifest_path.write_text(json.dumps(manifest))
    reported = bench("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    assert PLANT not in (run_dir / "report.md").read_text()
    assert PLANT not in (run_dir / "report.html").read_text()
