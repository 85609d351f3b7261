"""Reading a target's own metrics over the network: what the broker says it spent.

A ``Scraper`` reads one source per call (``sample()``) and returns a ``Sample``: the moment it
was read (``time.monotonic()``), and values under two kinds of name:

* the *normalised* names of ``NORMALISED`` (``cpu_s``, ``rss_bytes``, ``commits``, …), where
  the source offers them, so that the coordinator compares targets without knowing them;
* the *raw* names the target's ``metrics`` option asked for (or the driver's defaults), in
  the source's own vocabulary: a Prometheus metric name (summed over its label sets),
  ``varz.in_msgs`` / ``jsz.storage`` for NATS, ``pg_stat_wal.wal_bytes`` for PostgreSQL.

Counters are cumulative as the source keeps them: the caller takes differences between two
samples. The sources are NATS monitoring (``/varz``, ``/jsz``), PostgreSQL's statistics
views, and any Prometheus text endpoint (RabbitMQ's ``rabbitmq_prometheus``, Kafka's JMX
exporter, Redpanda), the last parsed by ``bench.engine.prometheus_text`` (whose
``parse_prometheus_text`` and ``metric_total`` this module re-exports). Local process
sampling (psutil) is not here: see ``bench.engine.host``.

Calls are synchronous, each bounded by ``timeout_s`` as a whole, and meant for the
coordinator between its own event loops (or ``asyncio.to_thread``). A scrape that fails raises
``ScrapeError``: one line naming the source and its address, credentials removed.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import math
import socket
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from bench.engine.prometheus_text import metric_total, metric_totals, parse_prometheus_text
from bench.errors import ScrapeError
from bench.redaction import redact_text, without_user_info

if TYPE_CHECKING:
    from bench.drivers.base import DriverConfig

DEFAULT_TIMEOUT_S: Final = 2.0
# A per-object RabbitMQ endpoint with thousands of queues runs to a few MB; more than this is
# not a metrics endpoint (or is one that would cost the broker more than it measures).
MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024

# The normalised names, and what each means. The one place that owns this vocabulary.
NORMALISED: Final[Mapping[str, str]] = {
    "cpu_s": "CPU seconds the broker's process has used (cumulative)",
    "cpu_pct": "the broker's recent CPU use, percent of one core (gauge; NATS /varz)",
    "rss_bytes": "resident memory of the broker's process (gauge)",
    "disk_write_bytes": "bytes the broker wrote to its files (cumulative)",
    "disk_read_bytes": "bytes the broker read from its files (cumulative)",
    "wal_bytes": "write-ahead log bytes generated (cumulative; PostgreSQL)",
    "commits": "transactions committed in the database (cumulative; PostgreSQL)",
    "open_fds": "open file descriptors of the broker's process (gauge)",
    "broker_lag": "messages the broker says consumers still owe: not yet delivered or "
    "not yet acknowledged (gauge)",
}

# Normalised name -> the raw names whose sum it is.
Normalised = Mapping[str, tuple[str, ...]]

# What a standard Prometheus process collector exports (client_java's, which the JMX exporter
# uses; client_golang's; prometheus_client's).
PROCESS_NORMALISED: Final[Normalised] = {
    "cpu_s": ("process_cpu_seconds_total",),
    "rss_bytes": ("process_resident_memory_bytes",),
    "open_fds": ("process_open_fds",),
}
# The rabbitmq_prometheus plugin (port 15692, /metrics): its node collector prefixes the
# process figures with rabbitmq_ and reports no CPU time. rabbitmq_queue_messages is ready +
# unacknowledged, per queue or aggregated.
RABBITMQ_NORMALISED: Final[Normalised] = {
    "rss_bytes": ("rabbitmq_process_resident_memory_bytes",),
    "open_fds": ("rabbitmq_process_open_fds",),
    "disk_write_bytes": ("rabbitmq_io_write_bytes_total",),
    "disk_read_bytes": ("rabbitmq_io_read_bytes_total",),
    "broker_lag": ("rabbitmq_queue_messages",),
}
RABBITMQ_NAMES: Final = (
    "rabbitmq_channel_messages_published_total",
    "rabbitmq_channel_messages_delivered_ack_total",
    "rabbitmq_channel_messages_acked_total",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
)
NATS_NORMALISED: Final[Normalised] = {
    "cpu_pct": ("varz.cpu",),
    "rss_bytes": ("varz.mem",),
    "broker_lag": ("jsz.consumers.num_pending", "jsz.consumers.num_ack_pending"),
}
NATS_NAMES: Final = (
    "varz.in_msgs",
    "varz.out_msgs",
    "varz.in_bytes",
    "varz.out_bytes",
    "varz.slow_consumers",
    "jsz.memory",
    "jsz.storage",
    "jsz.messages",
    "jsz.bytes",
)
POSTGRES_NORMALISED: Final[Normalised] = {
    "commits": ("pg_stat_database.xact_commit",),
    "wal_bytes": ("pg_stat_wal.wal_bytes",),
}
POSTGRES_NAMES: Final = (
    "pg_stat_database.xact_commit",
    "pg_stat_database.xact_rollback",
    "pg_stat_database.blks_read",
    "pg_stat_database.blks_hit",
    "pg_stat_database.tup_inserted",
    "pg_stat_wal.wal_records",
    "pg_stat_wal.wal_bytes",
    # pg_stat_bgwriter lost buffers_checkpoint and buffers_backend in PostgreSQL 17, which
    # moved the checkpointer's writes to pg_stat_checkpointer: a default the server lacks is
    # left out quietly.
    "pg_stat_bgwriter.buffers_clean",
    "pg_stat_bgwriter.buffers_alloc",
    "pg_stat_bgwriter.buffers_checkpoint",
    "pg_stat_bgwriter.buffers_backend",
    "pg_stat_checkpointer.buffers_written",
)
POSTGRES_VIEWS: Final = (
    "pg_stat_database",
    "pg_stat_wal",
    "pg_stat_bgwriter",
    "pg_stat_checkpointer",
)


# --------------------------------------------------------------------------- metric names


def metric_problem(entry: str) -> str | None:
    """What is wrong with one ``metrics`` entry (None when it is sound): ``NAME`` (a raw name
    in the source's vocabulary) or ``NORMALISED=NAME[+NAME…]``."""
    if not entry or any(ch.isspace() for ch in entry):
        return f"{entry!r} is empty or holds spaces: write a metric name"
    target, eq, sources = entry.partition("=")
    if not eq:
        return None
    if target not in NORMALISED:
        return (
            f"{target!r} is not a normalised name: use one of {', '.join(NORMALISED)} "
            "(or write the raw name alone)"
        )
    if not all(sources.split("+")):
        return f"{entry!r} names no source: write {target}=NAME or {target}=NAME+NAME"
    return None


def split_metrics(entries: Sequence[str]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The raw names and the normalised mapping that ``metrics`` entries ask for (entries
    already checked with ``metric_problem``)."""
    names: list[str] = []
    normalised: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        target, eq, sources = entry.partition("=")
        if eq:
            normalised[target] = tuple(sources.split("+"))
        else:
            names.append(entry)
    return tuple(names), normalised


# --------------------------------------------------------------------------- the scrapers


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a source.

    ``at_s`` is ``time.monotonic()`` halfway through the read. ``values`` holds normalised
    names (where the source offers them) and the raw names asked for; ``missing`` the raw
    names asked for explicitly that the source did not report."""

    at_s: float
    values: Mapping[str, float]
    source: str
    missing: tuple[str, ...] = field(default=())


class Scraper(ABC):
    """One source of a target's own metrics. ``sample()`` per interval, ``close()`` at the end
    (also a context manager)."""

    def __init__(
        self,
        names: Sequence[str] | None,
        normalised: Normalised,
        default_names: Sequence[str],
        timeout_s: float,
    ) -> None:
        # Defaults are "where the source offers them"; names the user asked for and the
        # source lacks are reported as missing.
        self._explicit = names is not None
        self.names: tuple[str, ...] = tuple(default_names if names is None else names)
        self.normalised: dict[str, tuple[str, ...]] = dict(normalised)
        self.timeout_s = timeout_s

    @property
    @abstractmethod
    def source(self) -> str:
        """What is read, for a person: ``"nats monitoring http://127.0.0.1:8222"``."""

    @abstractmethod
    def _read(self, wanted: frozenset[str]) -> dict[str, float]:
        """Every raw value the source offers (at least those in ``wanted``), within
        ``timeout_s``; ScrapeError when it cannot."""

    def wanted(self) -> frozenset[str]:
        """The raw names this scraper reads: those asked for and those normalised from."""
        return frozenset(self.names).union(*self.normalised.values())

    def sample(self) -> Sample:
        started = time.monotonic()
        raw = self._read(self.wanted())
        at_s = (started + time.monotonic()) / 2
        values: dict[str, float] = {}
        for target, sources in self.normalised.items():
            found = [raw[s] for s in sources if s in raw]
            if found:
                values[target] = math.fsum(found)
        for name in self.names:
            if name in raw:
                values[name] = raw[name]
        missing = tuple(n for n in self.names if n not in raw) if self._explicit else ()
        return Sample(at_s, values, self.source, missing)

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release what the scraper holds open (nothing, for HTTP sources)."""

    def __enter__(self) -> Scraper:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- HTTP


def public_url(url: str) -> str:
    """``url`` as it may be shown: no user information, no password parameter."""
    return redact_text(url)


def _reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the metrics endpoint enabled on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc).strip() or type(exc).__name__


def fetch_text(url: str, timeout_s: float, *, what: str, accept: str = "*/*") -> str:
    """The body of GET ``url``, read within ``timeout_s`` in all (not per socket read).

    User information in the URL (``http://user:pass@host/``) is sent as HTTP basic auth, never
    on to a host a redirect names. ScrapeError, one line without credentials, on any failure.
    """
    shown = public_url(url)

    def fail(reason: str) -> ScrapeError:
        line = " ".join(without_user_info(reason, url).split())
        return ScrapeError(
            f"{what}: cannot read {shown}: {line}",
            hint="check the target's metrics_url and that the endpoint answers from here",
        )

    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail("not an http:// or https:// URL with a host")
        host = parts.netloc.rpartition("@")[2]
        request = urllib.request.Request(
            urlunsplit((parts.scheme, host, parts.path or "/", parts.query, "")),
            headers={"Accept": accept, "User-Agent": "eventbench"},
        )
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(user_pass.encode()).decode()
            request.add_unredirected_header("Authorization", f"Basic {token}")
    except ValueError as exc:  # a port that is not a number
        raise fail(str(exc)) from None
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise fail(f"the answer is larger than {MAX_RESPONSE_BYTES // 2**20} MiB")
                if time.monotonic() > deadline:
                    raise fail(f"the answer took longer than {timeout_s:g}s")
            charset = response.headers.get_content_charset() or "utf-8"
    except ScrapeError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise fail(_reason(exc, timeout_s)) from None
    return b"".join(chunks).decode(charset, errors="replace")


class PrometheusEndpoint(Scraper):
    """A Prometheus text endpoint: each name asked for is summed over its label sets."""

    ACCEPT: Final = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

    def __init__(
        self,
        url: str,
        names: Sequence[str] | None = None,
        normalised: Normalised = PROCESS_NORMALISED,
        *,
        default_names: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        label: str = "prometheus",
    ) -> None:
        super().__init__(names, normalised, default_names, timeout_s)
        self.url = url
        self._label = label

    @property
    def source(self) -> str:
        return f"{self._label} {public_url(self.url)}"

    def _read(self, wanted: frozenset[str]) -> dict[str, float]:
        text = fetch_text(self.url, self.timeout_s, what=self._label, accept=self.ACCEPT)
        totals = metric_totals(text)
        if not totals and text.strip():
            raise ScrapeError(
                f"{self._label}: {public_url(self.url)} answered, but not in the Prometheus "
                "text format",
                hint="metrics_url must name the endpoint itself (RabbitMQ: :15692/metrics)",
            )
        return totals


def _numbers(prefix: str, obj: Mapping[str, Any], out: dict[str, float]) -> None:
    """Every number in a JSON object, under its dotted path (lists are left out)."""
    for key, value in obj.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[f"{prefix}.{key}"] = float(value)
        elif isinstance(value, dict):
            _numbers(f"{prefix}.{key}", value, out)


class NatsMonitor(Scraper):
    """NATS server monitoring (``-m PORT``): ``/varz`` and, when a name needs it, ``/jsz``.

    Raw names are dotted paths into the JSON: ``varz.in_msgs``, ``varz.jetstream.stats.api.total``,
    ``jsz.storage``. ``jsz.consumers.num_pending`` and ``jsz.consumers.num_ack_pending`` sum
    every consumer of every stream (``/jsz`` is then asked for its consumers).
    ``varz.cpu`` is the server's recent CPU use in percent (it keeps no cumulative CPU time),
    hence ``cpu_pct`` and no ``cpu_s``; ``varz.mem`` is its resident memory.
    """

    def __init__(
        self,
        url: str,
        names: Sequence[str] | None = None,
        normalised: Normalised = NATS_NORMALISED,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(names, normalised, NATS_NAMES, timeout_s)
        base = url.rstrip("/")
        for page in ("/varz", "/jsz"):
            base = base.removesuffix(page)
        self.url = base

    @property
    def source(self) -> str:
        return f"nats monitoring {public_url(self.url)}"

    def _json(self, path: str, page: str) -> dict[str, Any]:
        text = fetch_text(f"{self.url}{path}", self.timeout_s, what=f"nats {page}")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ScrapeError(
                f"nats {page}: {public_url(self.url)}{page} did not answer with a JSON object",
                hint="metrics_url must be the server's monitoring address (nats-server -m 8222)",
            )
        return body

    def _read(self, wanted: frozenset[str]) -> dict[str, float]:
        raw: dict[str, float] = {}
        if any(n.startswith("varz.") for n in wanted):
            _numbers("varz", self._json("/varz", "/varz"), raw)
        if any(n.startswith("jsz.") for n in wanted):
            consumers = any(n.startswith("jsz.consumers.") for n in wanted)
            query = "?accounts=true&streams=true&consumers=true" if consumers else ""
            jsz = self._json(f"/jsz{query}", "/jsz")
            _numbers("jsz", {k: v for k, v in jsz.items() if k != "account_details"}, raw)
            if consumers and "account_details" in jsz:
                sums = dict.fromkeys(("num_pending", "num_ack_pending", "num_redelivered"), 0.0)
                for account in jsz.get("account_details") or ():
                    for stream in account.get("stream_detail") or ():
                        for consumer in stream.get("consumer_detail") or ():
                            for key in sums:
                                sums[key] += float(consumer.get(key) or 0)
                raw.update({f"jsz.consumers.{k}": v for k, v in sums.items()})
        return raw


class PostgresStats(Scraper):
    """PostgreSQL's statistics views, over one connection kept open between samples.

    Raw names are ``view.column``: ``pg_stat_database.xact_commit`` (the connected database's
    row), ``pg_stat_wal.wal_bytes`` (PostgreSQL 14+), ``pg_stat_bgwriter.buffers_clean``,
    ``pg_stat_checkpointer.buffers_written`` (17+). A view or column the server lacks is
    missing, not an error. Each sample is one read-only transaction, so it adds one to
    ``xact_commit`` itself. The server's backends flush their counters at the end of a
    transaction at most once a second (PostgreSQL 15+), so a figure can trail by that much.

    The connection lives on a private event loop: call ``sample()`` from synchronous code
    (or ``asyncio.to_thread``), never from a coroutine.
    """

    def __init__(
        self,
        dsn: str,
        names: Sequence[str] | None = None,
        normalised: Normalised = POSTGRES_NORMALISED,
        *,
        ssl: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(names, normalised, POSTGRES_NAMES, timeout_s)
        self._dsn = dsn
        self._ssl = ssl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None  # asyncpg.Connection, imported when first used
        self._query: str | None = None

    @property
    def source(self) -> str:
        return f"postgres pg_stat_* at {self._address()}"

    def _address(self) -> str:
        from bench.drivers.postgres.config import dsn_address

        return dsn_address(self._dsn)

    def _fail(self, what: str, exc: BaseException) -> ScrapeError:
        from bench.drivers.postgres.config import dsn_secrets

        if isinstance(exc, TimeoutError):
            reason = f"no answer within {self.timeout_s:g}s"
        else:
            reason = str(exc).strip() or type(exc).__name__
        for secret in dsn_secrets(self._dsn):
            reason = reason.replace(secret, "***")
        reason = " ".join(redact_text(reason).split())
        return ScrapeError(
            f"postgres pg_stat_*: {what} {self._address()}: {reason}",
            hint="check the target's dsn and that the server accepts connections",
        )

    async def _connect(self) -> Any:
        import asyncpg

        kwargs: dict[str, Any] = {"ssl": self._ssl} if self._ssl is not None else {}
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self.timeout_s,
            server_settings={"application_name": "eventbench-stats"},
            **kwargs,
        )
        try:
            present = await conn.fetch(
                "SELECT v FROM unnest($1::text[]) AS v WHERE to_regclass('pg_catalog.' || v) "
                "IS NOT NULL",
                list(POSTGRES_VIEWS),
            )
        except BaseException:
            await conn.close(timeout=self.timeout_s)
            raise
        views = {row["v"] for row in present}
        # One statement, so one transaction per sample; the view names come from our own
        # fixed list, never from the scenario.
        columns = []
        for view in POSTGRES_VIEWS:
            if view not in views:
                continue
            where = " WHERE datname = current_database()" if view == "pg_stat_database" else ""
            columns.append(f"(SELECT row_to_json(s) FROM pg_catalog.{view} s{where}) AS {view}")
        self._query = "SELECT " + ", ".join(columns) if columns else "SELECT"
        return conn

    async def _fetch(self) -> dict[str, float]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        assert self._query is not None
        row = await self._conn.fetchrow(self._query, timeout=self.timeout_s)
        raw: dict[str, float] = {}
        for view, text in row.items() if row is not None else ():
            if text:
                _numbers(view, json.loads(text), raw)
        return raw

    def _read(self, wanted: frozenset[str]) -> dict[str, float]:
        import asyncpg

        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        connecting = self._conn is None
        try:
            return self._loop.run_until_complete(
                asyncio.wait_for(self._fetch(), timeout=self.timeout_s * 2)
            )
        except (
            OSError,
            TimeoutError,
            ValueError,  # a DSN asyncpg cannot parse
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            # Drop the connection: the next sample connects anew (the server may be back).
            self._drop()
            raise self._fail("cannot connect to" if connecting else "cannot read", exc) from None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.run_until_complete(conn.close(timeout=self.timeout_s))
            except Exception:
                conn.terminate()

    def close(self) -> None:
        self._drop()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        self._loop = None


# --------------------------------------------------------------------------- per driver


def scraper_for(
    driver_name: str, options: DriverConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Scraper | None:
    """The scraper of a target's own metrics, from its options; None when it has none.

    ``metrics_url`` wins when given: NATS reads its monitoring pages there, RabbitMQ its
    ``rabbitmq_prometheus`` endpoint, any other driver a Prometheus text endpoint with the
    process collector's names. A PostgreSQL target without it reads ``pg_stat_*`` over its
    own ``dsn``. ``metrics`` replaces the driver's default raw names; its ``NORMALISED=NAME``
    entries add to (or replace) the default normalised mapping."""
    names: tuple[str, ...] | None = None
    extra: dict[str, tuple[str, ...]] = {}
    if options.metrics is not None:
        names, extra = split_metrics(options.metrics)
        if options.metrics and not names:
            names = None  # only NORMALISED=NAME entries: keep the default raw names
    url = options.metrics_url
    if url is not None:
        if driver_name == "nats":
            return NatsMonitor(url, names, {**NATS_NORMALISED, **extra}, timeout_s=timeout_s)
        if driver_name == "rabbitmq":
            return PrometheusEndpoint(
                url,
                names,
                {**RABBITMQ_NORMALISED, **extra},
                default_names=RABBITMQ_NAMES,
                timeout_s=timeout_s,
                label="rabbitmq",
            )
        return PrometheusEndpoint(
            url, names, {**PROCESS_NORMALISED, **extra}, timeout_s=timeout_s, label=driver_name
        )
    if driver_name == "postgres":
        from bench.drivers.postgres.config import PostgresConfig

        if isinstance(options, PostgresConfig):
            return PostgresStats(
                options.dsn.get_secret_value(),
                names,
                {**POSTGRES_NORMALISED, **extra},
                ssl=options.ssl,
                timeout_s=timeout_s,
            )
    return None


__all__ = [
    "NORMALISED",
    "NatsMonitor",
    "PostgresStats",
    "PrometheusEndpoint",
    "Sample",
    "Scraper",
    "fetch_text",
    "metric_problem",
    "metric_total",
    "parse_prometheus_text",
    "scraper_for",
    "split_metrics",
]
