"""``postgres``: the system PostgreSQL cluster at ``BENCH_POSTGRES_DSN``
(``postgresql://postgres@127.0.0.1:5432/postgres``).

It is apt-installed when missing (as root, then trusting loopback logins) and started with
``pg_ctlcluster``, which needs a local cluster on the DSN's port. The probe logs in with
asyncpg: a refused login still proves the server runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bench.errors import InfraError
from bench.infra.commands import COMMAND_TIMEOUT_S, apt_install, find, run, stop_quietly
from bench.infra.service import PROBE_TIMEOUT_S, Address, Probe, Service, ServiceStatus
from bench.infra.state import Record, save_record


class PostgresService(Service):
    name = "postgres"
    product = "PostgreSQL"
    env = "BENCH_POSTGRES_DSN"
    default_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    default_port = 5432

    def probe(self, address: Address) -> Probe:
        try:
            import asyncpg
        except ImportError:
            raise InfraError(
                "checking postgres needs asyncpg", hint="pip install 'eventbench[postgres]'"
            ) from None

        async def check() -> Probe:
            try:
                conn = await asyncpg.connect(address.url, timeout=PROBE_TIMEOUT_S)
            except asyncpg.CannotConnectNowError:
                return Probe(False)  # starting up or shutting down: not serving yet
            except asyncpg.PostgresError as exc:
                # The server answered, so it runs; this login (user, password, database) does not.
                return Probe(True, note=f"login failed: {type(exc).__name__}")
            try:
                version = await conn.fetchval("SHOW server_version", timeout=PROBE_TIMEOUT_S)
            finally:
                await conn.close(timeout=PROBE_TIMEOUT_S)
            return Probe(True, version=str(version).split(" ")[0])

        try:
            return asyncio.run(check())
        except (OSError, asyncpg.InterfaceError):
            return Probe(False)

    def start(self, address: Address, directory: Path, deadline: float) -> ServiceStatus:
        installed_now = False
        if find("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
            apt_install("postgresql")
            installed_now = True
            deadline = max(deadline, time.monotonic() + COMMAND_TIMEOUT_S)
        matching = [c for c in _pg_clusters() if c[2] == address.port]
        if not matching:
            raise InfraError(
                f"no local PostgreSQL cluster uses port {address.port}",
                hint="pg_lsclusters lists them; create one with pg_createcluster, "
                "or point BENCH_POSTGRES_DSN at an existing port",
            )
        version, cluster, _port, state = matching[0]
        ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster]
        if installed_now:
            _trust_loopback(version, cluster)
        if state != "online":
            run([*ctl, "start"], COMMAND_TIMEOUT_S, what="start postgres")
        elif installed_now:
            # The package's post-install script started it before the trust rules existed.
            run([*ctl, "reload"], COMMAND_TIMEOUT_S, what="reload postgres")
        else:
            raise InfraError(
                f"PostgreSQL {version}/{cluster} is online but does not answer at "
                f"{address.endpoint}",
                hint=f"check listen_addresses in /etc/postgresql/{version}/{cluster}/"
                "postgresql.conf",
            )
        save_record(
            directory, Record(None, None, (*ctl, "stop"), f"pg_ctlcluster {version} {cluster}")
        )
        result = self.wait_started(
            address,
            directory,
            deadline,
            lambda: True,  # pg_ctlcluster start waits for the postmaster and fails if it dies
            Path(f"/var/log/postgresql/postgresql-{version}-{cluster}.log"),
            lambda: stop_quietly([*ctl, "stop"]),
        )
        return replace(result, detail=f"started (pg_ctlcluster {version} {cluster})")


def _pg_clusters() -> list[tuple[str, str, int, str]]:
    """(version, cluster, port, status) for every local cluster."""
    out = run(["pg_lsclusters", "--no-header"], COMMAND_TIMEOUT_S, what="list clusters")
    clusters = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2].isdigit():
            clusters.append((fields[0], fields[1], int(fields[2]), fields[3]))
    return clusters


def _trust_loopback(version: str, cluster: str) -> None:
    """Let local benchmarks log in without a password on a cluster that eventbench installed."""
    hba = Path("/etc/postgresql") / version / cluster / "pg_hba.conf"
    rules = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    # pg_hba.conf is read top-down and the first match wins, so the rules go first.
    hba.write_text(rules + hba.read_text())
