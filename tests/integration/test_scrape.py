"""Reading what a target says about itself, from real sources: a private NATS server's
monitoring port, the local PostgreSQL's statistics views, and a Prometheus text endpoint the
test serves and changes between two scrapes. A closed port gives one line, not a traceback."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest

from bench.engine.scrape import NatsMonitor, PostgresStats, PrometheusEndpoint, Sample
from bench.errors import ScrapeError
from tests.integration.server_support import free_port

SECRET = "Scr4pe-Pl4nted-91"


def _until(check: Callable[[], Sample], done: Callable[[Sample], bool], within_s: float) -> Sample:
    """Samples until ``done`` holds or ``within_s`` passes; the last sample either way (the
    servers publish some counters a moment after the work that moves them)."""
    deadline = time.monotonic() + within_s
    while True:
        sample = check()
        if done(sample) or time.monotonic() > deadline:
            return sample
        time.sleep(0.1)


SENT = 300
FETCHED = 50
ACKED = 20
PAYLOAD = b"x" * 100


async def _publish_and_half_consume(port: int) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name="SCRAPE", subjects=["scrape.>"])
        for i in range(SENT):
            await js.publish(f"scrape.{i % 4}", PAYLOAD)
        sub = await js.pull_subscribe("scrape.>", durable="reader")
        got = []
        while len(got) < FETCHED:
            got += await sub.fetch(FETCHED - len(got), timeout=5)
        for msg in got[:ACKED]:
            await msg.ack_sync(timeout=5)
    finally:
        await asyncio.wait_for(nc.close(), timeout=5)


def test_nats_monitoring_figures_move_with_what_was_sent(private_nats):
    port, monitor_port = private_nats
    with NatsMonitor(f"http://127.0.0.1:{monitor_port}", timeout_s=2) as monitor:
        before = monitor.sample()
        asyncio.run(asyncio.wait_for(_publish_and_half_consume(port), timeout=20))
        owed = SENT - ACKED  # never delivered, plus delivered and not acknowledged
        after = _until(monitor.sample, lambda s: s.values.get("broker_lag") == owed, 3)

    assert after.source == f"nats monitoring http://127.0.0.1:{monitor_port}"
    assert after.at_s > before.at_s
    assert after.missing == ()
    assert after.values["varz.in_msgs"] - before.values["varz.in_msgs"] >= SENT
    assert after.values["varz.in_bytes"] - before.values["varz.in_bytes"] >= SENT * len(PAYLOAD)
    assert after.values["rss_bytes"] > 0
    assert after.values["cpu_pct"] >= 0
    assert before.values["jsz.messages"] == 0 and before.values["broker_lag"] == 0
    assert after.values["jsz.messages"] == SENT
    assert after.values["jsz.bytes"] >= SENT * len(PAYLOAD)
    assert after.values["jsz.storage"] >= SENT * len(PAYLOAD)  # a file stream
    assert after.values["broker_lag"] == owed


def test_nats_names_asked_for_are_read_or_reported_missing(private_nats):
    _, monitor_port = private_nats
    names = ["varz.jetstream.stats.api.total", "varz.no_such_field"]
    with NatsMonitor(f"http://127.0.0.1:{monitor_port}/varz", names, {}) as monitor:
        sample = monitor.sample()
    assert set(sample.values) == {"varz.jetstream.stats.api.total"}
    assert sample.missing == ("varz.no_such_field",)


async def _commit_inserts(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute("CREATE TEMP TABLE scrape_probe (id int, body text)")
        for i in range(n):  # each statement its own committed transaction
            await conn.execute("INSERT INTO scrape_probe VALUES ($1, $2)", i, "event" * 20)
    finally:
        # A backend flushes its counters when it exits: closing makes them visible.
        await conn.close(timeout=5)


@pytest.fixture
def test_database(postgres_dsn: str) -> str:
    """The DSN of the ``test`` database on the local server: quieter than ``postgres``, which
    the other integration tests write to."""
    return urlunsplit(urlsplit(postgres_dsn)._replace(path="/test"))


def test_postgres_commits_and_wal_bytes_grow_with_committed_inserts(test_database):
    postgres_dsn = test_database
    n = 40
    with PostgresStats(postgres_dsn, timeout_s=2) as stats:
        before = stats.sample()
        asyncio.run(_commit_inserts(postgres_dsn, n))

        def grown(s: Sample) -> bool:
            return (
                s.values["commits"] >= before.values["commits"] + n
                and s.values["wal_bytes"] > before.values["wal_bytes"]
            )

        after = _until(stats.sample, grown, 5)

    assert after.source == "postgres pg_stat_* at 127.0.0.1:5432"
    assert after.values["commits"] - before.values["commits"] >= n
    assert after.values["pg_stat_database.xact_commit"] == after.values["commits"]
    assert after.values["wal_bytes"] > before.values["wal_bytes"]
    # A temporary table's rows are not counted in tup_inserted, but the column is read.
    assert "pg_stat_database.tup_inserted" in after.values
    assert "pg_stat_bgwriter.buffers_alloc" in after.values
    assert after.missing == ()  # defaults the server lacks are left out quietly


def test_postgres_names_the_server_lacks_are_reported_missing(test_database):
    names = ["pg_stat_database.xact_commit", "pg_stat_database.no_such_column", "pg_nope.x"]
    with PostgresStats(test_database, names) as stats:
        sample = stats.sample()
    assert sample.values["pg_stat_database.xact_commit"] > 0
    assert sample.missing == ("pg_stat_database.no_such_column", "pg_nope.x")


class _Exposition:
    """What the test's endpoint serves, changed by the test between scrapes."""

    def __init__(self) -> None:
        self.text = ""
        self.status = 200
        self.delay_s = 0.0
        self.auth: list[str | None] = []


@pytest.fixture
def endpoint() -> Iterator[tuple[str, _Exposition]]:
    served = _Exposition()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.auth.append(self.headers.get("Authorization"))
            time.sleep(served.delay_s)
            body = served.text.encode()
            self.send_response(served.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _exposition(cpu_s: float, rss: int, queue_a: int, queue_b: int) -> str:
    return f"""# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu_s}
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
# TYPE queue_depth gauge
queue_depth{{queue="a",vhost="/"}} {queue_a} 1712345678000
queue_depth{{queue="b",vhost="/"}} {queue_b}
# TYPE request_seconds histogram
request_seconds_bucket{{le="0.5"}} 3
request_seconds_bucket{{le="+Inf"}} 4
request_seconds_count 4
"""


def test_a_prometheus_endpoint_gives_exactly_what_it_served_each_time(endpoint):
    address, served = endpoint
    url = f"http://bench:{SECRET}@{address}/metrics"
    scraper = PrometheusEndpoint(
        url,
        ["queue_depth", "request_seconds_count", "not_exported_total"],
        {"cpu_s": ("process_cpu_seconds_total",), "rss_bytes": ("process_resident_memory_bytes",),
         "broker_lag": ("queue_depth",), "open_fds": ("process_open_fds",)},
        timeout_s=2,
    )  # fmt: skip
    with scraper:
        served.text = _exposition(1.25, 1_000_000, 3, 4)
        first = scraper.sample()
        served.text = _exposition(2.5, 2_000_000, 10, 0)
        second = scraper.sample()

    assert first.values == {
        "cpu_s": 1.25,
        "rss_bytes": 1_000_000,
        "broker_lag": 7,
        "queue_depth": 7,
        "request_seconds_count": 4,
    }
    assert second.values == {
        "cpu_s": 2.5,
        "rss_bytes": 2_000_000,
        "broker_lag": 10,
        "queue_depth": 10,
        "request_seconds_count": 4,
    }
    assert first.missing == second.missing == ("not_exported_total",)
    # The URL's user information went as basic auth, and nowhere in what a person sees.
    assert served.auth == [f"Basic {base64.b64encode(f'bench:{SECRET}'.encode()).decode()}"] * 2
    assert second.source == f"prometheus http://***@{address}/metrics"


def test_an_endpoint_that_fails_or_stalls_is_one_line(endpoint):
    address, served = endpoint
    served.text = "oops"
    served.status = 503
    with pytest.raises(ScrapeError) as caught:
        PrometheusEndpoint(f"http://{address}/metrics", timeout_s=2).sample()
    assert str(caught.value) == (
        f"prometheus: cannot read http://{address}/metrics: HTTP 503 Service Unavailable"
    )

    served.status = 200
    served.delay_s = 1.5
    started = time.monotonic()
    with pytest.raises(ScrapeError) as caught:
        PrometheusEndpoint(f"http://{address}/metrics", timeout_s=0.3).sample()
    assert time.monotonic() - started < 1.2
    assert str(caught.value).endswith("no answer within 0.3s")


def test_a_closed_monitoring_port_is_one_line_naming_it():
    port = free_port()
    with pytest.raises(ScrapeError) as caught:
        NatsMonitor(f"http://bench:{SECRET}@127.0.0.1:{port}", timeout_s=1).sample()
    message = str(caught.value)
    assert message == (
        f"nats /varz: cannot read http://***@127.0.0.1:{port}/varz: "
        "connection refused (is the metrics endpoint enabled on that port?)"
    )
    assert SECRET not in (caught.value.hint or "")
