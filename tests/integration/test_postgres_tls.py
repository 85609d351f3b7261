"""TLS and a SCRAM password against a private PostgreSQL cluster that the test makes itself.

The cluster (initdb in a temporary directory, run as the ``postgres`` OS user when the tests
run as root) listens on a free loopback port and accepts nothing but ``hostssl`` with
``scram-sha-256`` for one ordinary role. Its certificate is signed by a CA the test creates,
and the event-store workload runs through the real ``bench`` CLI with ``sslmode=verify-full``
and that CA; the DSN, password included, comes from ``${file:…}`` or ``${env:…}``. An untrusted
CA, a wrong password and a plain connection each end in one ``error:`` line and exit 1, and the
planted password never reaches the terminal (``--debug`` included) or the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.cli_support import bench, only_run
from tests.integration.server_support import (
    free_port,
    leaks,
    make_ca,
    make_cert,
    one_error,
    stray_lines,
)

SECRET = "Pg-Pl4nted-7e3a"
WRONG = "Wr0ng-Pl4nted-55aa"
USER = "bench"
DATABASE = "bench"


def _pg_bin() -> Path | None:
    """The newest PostgreSQL server installed the Debian way (or on PATH)."""
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            found.append((float(initdb.parent.parent.name), initdb.parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _owner() -> tuple[list[str], int, int] | None:
    """How to run the server: as ourselves, or (as root) through runuser as ``postgres``."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    runuser = shutil.which("runuser")
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return None
    if runuser is None:
        return None
    return [runuser, "-u", "postgres", "--"], entry.pw_uid, entry.pw_gid


PG_BIN = _pg_bin()
OWNER = _owner()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(PG_BIN is None, reason="no PostgreSQL server binaries (initdb) installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
    pytest.mark.skipif(
        OWNER is None, reason="running as root without a postgres OS user or runuser"
    ),
]


@dataclass(frozen=True)
class Cluster:
    port: int
    ca: Path  # signed the server's certificate
    other_ca: Path  # a CA that signed nothing the server has
    directory: Path

    def dsn(self, password: str = SECRET, *, query: str = "") -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{DATABASE}" + (
            f"?{query}" if query else ""
        )


def _run(argv: list[str], *, what: str, timeout: float = 60, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    # The role's password goes in through stdin; keep it out of a failure message as well.
    assert done.returncode == 0, f"{what} failed: {(done.stdout + done.stderr)[-2000:]}".replace(
        SECRET, "***"
    )


def _stop(pg_bin: Path, prefix: list[str], data: Path) -> None:
    """pg_ctl stop (fast, bounded); if that fails, SIGKILL the postmaster from its pid file."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        done = subprocess.run(
            [*prefix, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "20",
             "stop"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode == 0:
            return
    pid_file = data / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A TLS-only cluster on a free loopback port; stopped and removed at the end."""
    assert PG_BIN is not None and OWNER is not None
    prefix, uid, gid = OWNER
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="eb-pg-tls-"))
    directory.chmod(0o755)
    data = directory / "data"
    started = False
    try:
        ca, ca_key = make_ca(directory, "ca")
        other_ca, _ = make_ca(directory, "other-ca")
        cert, key = make_cert(directory, "server", ca, ca_key)
        for path in (cert, key):
            os.chown(path, uid, gid)
        key.chmod(0o600)
        data.mkdir(mode=0o700)
        os.chown(data, uid, gid)
        _run(
            [*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=reject", "-E", "UTF8", "--no-sync"],
            what="initdb",
        )  # fmt: skip
        # An ordinary role (not a superuser) owning its database, made in single-user mode:
        # nothing listens yet, so the password never crosses a connection without TLS.
        _run(
            [*prefix, str(PG_BIN / "postgres"), "--single", "-D", str(data), "postgres"],
            what="creating the role",
            stdin=(
                f"CREATE ROLE {USER} LOGIN PASSWORD '{SECRET}';\n"
                f"CREATE DATABASE {DATABASE} OWNER {USER};\n"
            ),
        )
        port = free_port()
        (data / "pg_hba.conf").write_text(f"hostssl all {USER} 127.0.0.1/32 scram-sha-256\n")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                "unix_socket_directories = ''\n"
                f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = '32MB'\nmax_connections = 50\nlog_connections = on\n"
            )
        started = True
        _run(
            [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
             "-w", "-t", "30", "start"],
            what="pg_ctl start",
            timeout=45,
        )  # fmt: skip
        yield Cluster(port=port, ca=ca, other_ca=other_ca, directory=directory)
    finally:
        if started:
            _stop(PG_BIN, prefix, data)
        shutil.rmtree(directory, ignore_errors=True)


def _scenario(tmp_path: Path, name: str, dsn: str, extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[scenario]
name = "{name}"
duration = "2s"
warmup = "500ms"
cleanup = false

[workload]
kind = "store"
rate = 200
concurrency = 4
producers = 1
aggregates = 40
payload_bytes = 200

[workload.store]
events_per_append = [1, 2]

[targets.pg]
driver = "postgres"
dsn = "{dsn}"
pool_size = 4
connect_timeout = "10s"
{extra}
"""
    )
    return path


def _leaks(done: subprocess.CompletedProcess[str], results: Path, *planted: str) -> list[str]:
    return leaks(done, results, *(planted or (SECRET,)))


def _one_error(done: subprocess.CompletedProcess[str]) -> str:
    error = one_error(done)
    # Nothing else on the terminal's stderr: no library log record, no warning.
    assert stray_lines(done) == [], done.stderr
    return error


async def _stored_events(cluster: Cluster) -> dict[str, int]:
    """Events per schema, read back over TLS with the CA (schemas the driver created)."""
    conn = await asyncpg.connect(
        cluster.dsn(query=f"sslmode=verify-full&sslrootcert={cluster.ca}"), timeout=10
    )
    try:
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'events'"
        )
        counts = {}
        for (schema,) in schemas:
            ident = '"' + schema.replace('"', '""') + '"'
            counts[schema] = int(await conn.fetchval(f"SELECT count(*) FROM {ident}.events"))
        return counts
    finally:
        await conn.close()


def test_verify_full_with_a_password_from_a_file_appends_events_and_never_leaks(tmp_path, cluster):
    secret_file = tmp_path / "pg-dsn"
    secret_file.write_text(cluster.dsn(query=f"sslmode=verify-full&sslrootcert={cluster.ca}"))
    path = _scenario(tmp_path, "pgtls-file", f"${{file:{secret_file}}}")
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run(results)
    summary = json.loads(next(run_dir.glob("*/summary.json")).read_text())
    store = summary["store"]
    assert summary["status"] == "ok", summary["problems"]
    assert summary["errors"]["total"] == 0, summary["errors"]
    assert store["invariants"] == {"ok": True, "violations": [], "not_checked": []}
    assert store["commits"] > 50 and store["events_committed"] >= store["commits"]
    assert summary["target_info"]["product"] == "PostgreSQL"
    # The rows are really there, in the server that accepts nothing but TLS.
    stored = asyncio.run(_stored_events(cluster))
    assert len(stored) == 1, stored
    assert next(iter(stored.values())) == store["events_committed"]
    assert (run_dir / "report.html").exists()
    assert _leaks(done, results) == []
    # The scenario as recorded keeps the reference, not the DSN; the target's public
    # settings keep the address, not the credentials.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["targets"]["pg"]["dsn"] == f"${{file:{secret_file}}}"
    assert f"127.0.0.1:{cluster.port}" in json.dumps(summary["target_info"])


def test_a_dsn_from_the_environment_with_the_ssl_option_works(tmp_path, cluster, monkeypatch):
    # sslmode from the driver's `ssl` option; the CA and the password in the DSN, which
    # carries the password as a query parameter this time (libpq accepts both forms).
    monkeypatch.setenv(
        "EB_TEST_PG_DSN",
        f"postgresql://{USER}@127.0.0.1:{cluster.port}/{DATABASE}"
        f"?password={SECRET}&sslrootcert={cluster.ca}",
    )
    path = _scenario(tmp_path, "pgtls-env", "${env:EB_TEST_PG_DSN}", 'ssl = "verify-full"')
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(next(only_run(results).glob("*/summary.json")).read_text())
    assert summary["status"] == "ok", summary["problems"]
    assert summary["store"]["commits"] > 50
    assert _leaks(done, results) == []


def test_an_untrusted_ca_is_one_line_and_exit_1(tmp_path, cluster, monkeypatch):
    monkeypatch.setenv(
        "EB_TEST_PG_DSN", cluster.dsn(query=f"sslmode=verify-full&sslrootcert={cluster.other_ca}")
    )
    path = _scenario(tmp_path, "pgtls-untrusted", "${env:EB_TEST_PG_DSN}")
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = _one_error(done)
    assert "certificate" in error.lower() and f"127.0.0.1:{cluster.port}" in error, error
    assert _leaks(done, results) == []


def test_a_wrong_password_is_one_line_and_exit_1(tmp_path, cluster, monkeypatch):
    monkeypatch.setenv(
        "EB_TEST_PG_DSN",
        cluster.dsn(WRONG, query=f"sslmode=verify-full&sslrootcert={cluster.ca}"),
    )
    path = _scenario(tmp_path, "pgtls-wrong", "${env:EB_TEST_PG_DSN}")
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = _one_error(done)
    assert re.search(r"password authentication failed", error), error
    assert _leaks(done, results, WRONG, SECRET) == []


def test_a_connection_without_tls_is_refused(tmp_path, cluster, monkeypatch):
    monkeypatch.setenv("EB_TEST_PG_DSN", cluster.dsn(query="sslmode=disable"))
    path = _scenario(tmp_path, "pgtls-plain", "${env:EB_TEST_PG_DSN}")
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), "--no-report", timeout=120)
    error = _one_error(done)
    assert "pg_hba.conf" in error and "no encryption" in error, error
    assert _leaks(done, results) == []


def test_debug_output_of_a_refused_connection_holds_no_password(tmp_path, cluster, monkeypatch):
    # --debug shows the traceback instead of the one line; the password stays out of it.
    monkeypatch.setenv(
        "EB_TEST_PG_DSN", cluster.dsn(query=f"sslmode=verify-full&sslrootcert={cluster.other_ca}")
    )
    path = _scenario(tmp_path, "pgtls-debug", "${env:EB_TEST_PG_DSN}")
    results = tmp_path / "results"
    done = bench("--debug", "run", str(path), "-o", str(results), "--no-report", timeout=120)
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower(), done.stderr
    assert _leaks(done, results) == []
