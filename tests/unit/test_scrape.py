"""bench.engine.scrape without a network: the Prometheus text parser, the metric-name options
every driver shares, the choice of scraper per driver, and errors that name the address but
never its password."""

from __future__ import annotations

import math
import socket

import pytest

from bench.drivers.base import DriverConfig
from bench.engine.scrape import (
    NORMALISED,
    NatsMonitor,
    PostgresStats,
    PrometheusEndpoint,
    metric_problem,
    metric_total,
    parse_prometheus_text,
    scraper_for,
    split_metrics,
)
from bench.errors import ScenarioError, ScrapeError
from bench.scenario import scenario_from_dict, validate_target

SECRET = "Scr4pe-Pl4nted-77"

# What a client_java process (the JMX exporter's) and a RabbitMQ node print, trimmed, with
# the format's awkward corners: escapes, +Inf/NaN, timestamps, histograms, an exemplar.
EXPOSITION = r"""# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 51.27
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.17939456E8
process_open_fds 187.0
# A free-form comment line
rabbitmq_queue_messages{vhost="/",queue="orders.0"} 12
rabbitmq_queue_messages{queue="orders.1",vhost="/"} 30 1712345678000
rabbitmq_queue_messages { queue = "orders.2" , vhost = "/" , } 0
path_info{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
jvm_gc_pause_ratio NaN
unbounded_gauge{kind="up"} +Inf
unbounded_gauge{kind="down"} -Inf
# HELP request_seconds Request latency.
# TYPE request_seconds histogram
request_seconds_bucket{le="0.1"} 8
request_seconds_bucket{le="1"} 11 # {trace_id="abc"} 0.54 1712345678.1
request_seconds_bucket{le="+Inf"} 12
request_seconds_sum 3.5
request_seconds_count 12
{"kafka.server.BytesInPerSec", topic="t"} 7
not a sample line at all
half_open{a="x" 5
# EOF
"""


def test_the_parser_reads_every_sample_of_a_realistic_exposition():
    samples = parse_prometheus_text(EXPOSITION)

    assert samples["process_cpu_seconds_total"] == 51.27
    assert samples["process_resident_memory_bytes"] == 417939456.0
    # Labels sorted by name, however the exporter wrote them (spaces, a trailing comma).
    assert samples['rabbitmq_queue_messages{queue="orders.0",vhost="/"}'] == 12
    assert samples['rabbitmq_queue_messages{queue="orders.1",vhost="/"}'] == 30  # timestamp off
    assert samples['rabbitmq_queue_messages{queue="orders.2",vhost="/"}'] == 0
    # Escaped backslashes, quotes and newlines come back escaped as written.
    key = r'path_info{error="Cannot find file:\n\"FILE.TXT\"",path="C:\\DIR\\FILE.TXT"}'
    assert samples[key] == 1.458255915e9
    assert math.isnan(samples["jvm_gc_pause_ratio"])
    assert samples['unbounded_gauge{kind="up"}'] == math.inf
    assert samples['unbounded_gauge{kind="down"}'] == -math.inf
    assert samples['request_seconds_bucket{le="1"}'] == 11  # the exemplar dropped
    assert samples['request_seconds_bucket{le="+Inf"}'] == 12
    assert samples["request_seconds_sum"] == 3.5
    assert samples["request_seconds_count"] == 12
    assert samples['kafka.server.BytesInPerSec{topic="t"}'] == 7  # a quoted UTF-8 name
    # Comments, HELP/TYPE, "# EOF" and the two broken lines give no samples.
    assert not any(k.startswith(("not", "half_open", "#")) for k in samples)
    assert len(samples) == 16


def test_metric_total_sums_a_name_over_its_label_sets_and_nothing_else():
    samples = parse_prometheus_text(EXPOSITION)

    assert metric_total(samples, "rabbitmq_queue_messages") == 42
    assert metric_total(samples, "process_open_fds") == 187
    # A prefix of another name is not that name; a histogram's parts are names of their own.
    assert metric_total(samples, "rabbitmq_queue") is None
    assert metric_total(samples, "request_seconds") is None
    assert metric_total(samples, "request_seconds_count") == 12
    assert metric_total({}, "anything") is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("process_cpu_seconds_total", None),
        ("varz.in_msgs", None),
        ("cpu_s=process_cpu_seconds_total", None),
        ("broker_lag=jsz.consumers.num_pending+jsz.consumers.num_ack_pending", None),
        ("", "empty or holds spaces"),
        ("two words", "empty or holds spaces"),
        ("cpu_seconds=process_cpu_seconds_total", "is not a normalised name"),
        ("rss_bytes=", "names no source"),
        ("broker_lag=a++b", "names no source"),
    ],
)
def test_a_metrics_entry_is_a_raw_name_or_a_normalised_mapping(entry, problem):
    found = metric_problem(entry)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_split_metrics_separates_raw_names_from_normalised_mappings():
    names, normalised = split_metrics(["a_total", "cpu_s=x_seconds_total", "broker_lag=p+q"])
    assert names == ("a_total",)
    assert normalised == {"cpu_s": ("x_seconds_total",), "broker_lag": ("p", "q")}


@pytest.mark.parametrize(
    "options",
    [
        {"driver": "memory"},
        {"driver": "kafka", "bootstrap_servers": "127.0.0.1:9092"},
        {"driver": "rabbitmq"},
        {"driver": "nats"},
        {"driver": "postgres"},
    ],
)
def test_every_driver_takes_the_shared_metrics_options(options):
    plain = validate_target("t", dict(options), "s.toml")
    assert plain.metrics_url is None and plain.metrics is None
    given = validate_target(
        "t",
        {**options, "metrics_url": "http://127.0.0.1:9100/metrics", "metrics": ["up"]},
        "s.toml",
    )
    assert given.metrics_url == "http://127.0.0.1:9100/metrics"
    assert given.metrics == ["up"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("metrics_url", "ftp://127.0.0.1/metrics", "http:// or https://"),
        ("metrics_url", "127.0.0.1:9100", "http:// or https://"),
        ("metrics_url", "http:///metrics", "has no host"),
        ("metrics_url", "http://127.0.0.1:99999/metrics", "port"),
        ("metrics", ["cpu=process_cpu_seconds_total"], "not a normalised name"),
        ("metrics", "process_open_fds", "valid list"),
    ],
)
def test_a_bad_metrics_option_is_an_error_naming_the_field(field, value, problem):
    raw = {"scenario": {"name": "x"}, "targets": {"t": {"driver": "memory", field: value}}}
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "s.toml")
    assert caught.value.field == f"targets.t.{field}"
    assert problem in caught.value.message


def test_a_rejected_metrics_url_never_shows_its_password():
    url = f"http://bench:{SECRET}@127.0.0.1:notaport/metrics"
    raw = {"scenario": {"name": "x"}, "targets": {"t": {"driver": "nats", "metrics_url": url}}}
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, "s.toml")
    assert caught.value.field == "targets.t.metrics_url"
    assert SECRET not in str(caught.value)


def _config(driver: str, **options: object) -> DriverConfig:
    return validate_target("t", {"driver": driver, **options}, "s.toml")


def test_each_driver_gets_its_default_scraper_from_its_options():
    assert scraper_for("memory", _config("memory")) is None
    assert scraper_for("nats", _config("nats")) is None  # no monitoring address given
    assert scraper_for("rabbitmq", _config("rabbitmq")) is None

    nats = scraper_for("nats", _config("nats", metrics_url="http://127.0.0.1:8222/"))
    assert isinstance(nats, NatsMonitor)
    assert nats.url == "http://127.0.0.1:8222"
    assert "varz.in_msgs" in nats.names and "rss_bytes" in nats.normalised

    rabbit = scraper_for("rabbitmq", _config("rabbitmq", metrics_url="http://h:15692/metrics"))
    assert isinstance(rabbit, PrometheusEndpoint)
    assert rabbit.normalised["rss_bytes"] == ("rabbitmq_process_resident_memory_bytes",)
    assert rabbit.normalised["broker_lag"] == ("rabbitmq_queue_messages",)

    kafka = scraper_for(
        "kafka",
        _config(
            "kafka",
            bootstrap_servers="127.0.0.1:9092",
            metrics_url="http://127.0.0.1:7071/metrics",
            metrics=["kafka_server_brokertopicmetrics_messagesin_total", "cpu_s=jvm_cpu_total"],
        ),
    )
    assert isinstance(kafka, PrometheusEndpoint)
    assert kafka.names == ("kafka_server_brokertopicmetrics_messagesin_total",)
    assert kafka.normalised["cpu_s"] == ("jvm_cpu_total",)  # the entry replaced the default
    assert kafka.normalised["rss_bytes"] == ("process_resident_memory_bytes",)

    pg = scraper_for("postgres", _config("postgres", dsn="postgresql://u@127.0.0.1:5432/test"))
    assert isinstance(pg, PostgresStats)
    assert "pg_stat_wal.wal_bytes" in pg.names
    assert pg.normalised["commits"] == ("pg_stat_database.xact_commit",)
    pg.close()


def test_every_normalised_name_a_default_maps_is_in_the_vocabulary():
    from bench.engine import scrape

    for mapping in (
        scrape.PROCESS_NORMALISED,
        scrape.RABBITMQ_NORMALISED,
        scrape.NATS_NORMALISED,
        scrape.POSTGRES_NORMALISED,
    ):
        assert set(mapping) <= set(NORMALISED)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_scrape_is_one_line_naming_the_url_without_its_password():
    port = _closed_port()
    url = f"http://bench:{SECRET}@127.0.0.1:{port}/metrics?password={SECRET}"
    with pytest.raises(ScrapeError) as caught:
        PrometheusEndpoint(url, timeout_s=1).sample()
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET not in message and SECRET not in (caught.value.hint or "")
    assert f"127.0.0.1:{port}/metrics" in message
    assert "connection refused" in message


def test_a_refused_postgres_scrape_never_shows_the_dsn_password():
    port = _closed_port()
    stats = PostgresStats(f"postgresql://bench:{SECRET}@127.0.0.1:{port}/test", timeout_s=1)
    try:
        with pytest.raises(ScrapeError) as caught:
            stats.sample()
    finally:
        stats.close()
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert f"127.0.0.1:{port}" in message
