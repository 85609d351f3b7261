"""The options of a ``driver = "postgres"`` target, and the DSN hygiene that keeps its secrets
out of errors, results and schema names."""

from __future__ import annotations

import os
import re
import zlib
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from bench.drivers.base import DriverConfig
from bench.redaction import redact_text, secret_values
from bench.units import Duration

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

Strategy = Literal[
    "max_then_insert",
    "insert_only",
    "streams_cas",
    "advisory_lock",
    "serializable",
    "unsafe_max_then_insert",
]
SAFE_STRATEGIES: tuple[Strategy, ...] = (
    "max_then_insert",
    "insert_only",
    "streams_cas",
    "advisory_lock",
    "serializable",
)
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _default_dsn() -> SecretStr:
    return SecretStr(os.environ.get("BENCH_POSTGRES_DSN", DEFAULT_DSN))


class PostgresConfig(DriverConfig):
    """Options of a ``driver = "postgres"`` target."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    driver: Literal["postgres"] = "postgres"
    dsn: SecretStr = Field(default_factory=_default_dsn)
    # "schema" would shadow a BaseModel attribute; scenarios still write `schema = "…"`.
    schema_name: str = Field(default="eventbench", alias="schema", min_length=1, max_length=63)
    strategy: Strategy = "max_then_insert"
    pool_size: int = Field(default=16, ge=1, le=1000)
    snapshot_every: int = Field(default=50, ge=0)
    statement_timeout: Duration = 30.0
    # How long an append waits for a free pool connection (writers > pool_size queue here).
    acquire_timeout: Duration = 30.0
    # libpq's sslmode names; None: whatever the DSN says (asyncpg's default is "prefer").
    ssl: SslMode | None = None

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, value: SecretStr) -> SecretStr:
        # asyncpg reads the port only when it connects, and a bad one raised a bare ValueError
        # there (exit 70). The message names the problem, never the DSN (it may hold a password).
        dsn = value.get_secret_value()
        if "://" in dsn:
            parts = urlsplit(dsn)
            if parts.scheme not in ("postgres", "postgresql"):
                raise ValueError("the scheme must be postgresql:// (or postgres://)")
            for address in parts.netloc.rpartition("@")[2].split(","):
                # "[::1]:5432" keeps its colons inside the brackets.
                tail = address.rpartition("]")[2] if address.startswith("[") else address
                _, colon, port = tail.rpartition(":")
                if colon and (not port.isdigit() or not 1 <= int(port) <= 65535):
                    raise ValueError(
                        "a port is not a number from 1 to 65535: "
                        "write postgresql://host:5432/database"
                    )
        return value

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT_RE.match(value):
            raise ValueError(
                f"{value!r} is not a plain schema name: use lower-case letters, digits and _"
            )
        return value

    def public_settings(self) -> dict[str, Any]:
        """Every option as given or defaulted, the DSN left out (for describe and results)."""
        out = self.model_dump(mode="json", by_alias=True, exclude={"dsn"})
        out["dsn"] = public_dsn(self.dsn.get_secret_value())
        return out


# --------------------------------------------------------------------------- DSN hygiene


def public_dsn(dsn: str) -> str:
    """The DSN without user information and password parameters."""
    if "://" not in dsn:  # libpq's key=value form: "host=... password=..."
        return redact_text(dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k not in ("password", "sslpassword", "user")]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def dsn_address(dsn: str) -> str:
    """``host:port`` of a DSN, for one-line errors."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")[2]
    try:
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:  # several hosts, or a port that is not a number
        return netloc or "localhost:5432"
    return f"{host}:{port}"


def dsn_secrets(dsn: str) -> list[str]:
    """Every secret a DSN carries (password, key=value passwords), longest first."""
    parts = urlsplit(dsn)
    found = secret_values(dsn)
    try:
        if parts.password:
            found += [parts.password, unquote(parts.password)]
    except ValueError:
        pass
    found += [v for k, v in parse_qsl(parts.query) if k in ("password", "sslpassword") and v]
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def schema_for(namespace: str) -> str:
    """A safe PostgreSQL schema name for a run point's namespace (stable, at most 63 bytes)."""
    name = re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    if not name or not _IDENT_RE.match(name):
        name = f"eb_{name}"
    if len(name) > 63:
        # Postgres would truncate silently and two long names could collide.
        name = f"{name[:54]}_{zlib.crc32(namespace.encode()):08x}"
    return name
