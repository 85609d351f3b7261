"""The bad-input and corrupt-results corpora (tests/e2e/test_bad_input.py and
test_corrupt_results.py run them): each case is files to write, a command line, and the words
its one-line error must hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.store import SCHEMA_VERSION

GOOD = """
[scenario]
name = "ok"
duration = "1s"
warmup = "0s"

[workload]
rate = 100
producers = 1
consumers = 1

[targets.mem]
driver = "memory"
"""


def scenario_with(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


@dataclass(frozen=True)
class Case:
    name: str
    # Files to create (relative name -> text or bytes), then the argv; "{tmp}" is tmp_path.
    files: dict[str, str | bytes]
    argv: list[str]
    needles: tuple[str, ...]  # each must appear in the first line of stderr
    code: int = 2


def _file(text: str | bytes) -> dict[str, str | bytes]:
    return {"s.toml": text}


V = ["validate", "{tmp}/s.toml"]

CORPUS = [
    # --------------------------------------------------------------- broken files
    Case("broken TOML", _file("[scenario\nname = 1"), V, ("s.toml", "invalid TOML")),
    Case("duplicate key", _file(GOOD + "\n[scenario]\nname='x'\n"), V, ("s.toml", "invalid TOML")),
    Case("not UTF-8", _file(b"\xff\xfe[scenario]\n"), V, ("s.toml", "not UTF-8")),
    Case("empty file", _file(""), V, ("s.toml", "scenario")),
    Case("a directory", {"s.toml/x": ""}, V, ("s.toml", "is a directory")),
    Case("missing file", {}, V, ("s.toml", "no such file")),
    # --------------------------------------------------------------- unknown fields
    Case("unknown table", _file(GOOD + "\n[extra]\nx=1\n"), V, ("s.toml", "extra")),
    Case(
        "unknown scenario field",
        _file(scenario_with('name = "ok"', 'name = "ok"\nlenght = "1s"')),
        V,
        ("scenario.lenght", "unknown field"),
    ),
    Case(
        "unknown workload field",
        _file(scenario_with("rate = 100", "rate = 100\nburst = 3")),
        V,
        ("workload.burst",),
    ),
    Case(
        "unknown driver option",
        _file(scenario_with('driver = "memory"', 'driver = "memory"\nservice_tim = "1ms"')),
        V,
        ("targets.mem.service_tim", "unknown field"),
    ),
    # --------------------------------------------------------------- wrong types and values
    Case(
        "rate is a word",
        _file(scenario_with("rate = 100", 'rate = "fast"')),
        V,
        ("workload.rate", "not a rate"),
    ),
    Case(
        "negative rate",
        _file(scenario_with("rate = 100", "rate = -5")),
        V,
        ("workload.rate", "more than 0"),
    ),
    Case("zero rate", _file(scenario_with("rate = 100", "rate = 0")), V, ("workload.rate",)),
    Case(
        "producers a string",
        _file(scenario_with("producers = 1", 'producers = "one"')),
        V,
        ("workload.producers",),
    ),
    Case(
        "zero producers",
        _file(scenario_with("producers = 1", "producers = 0")),
        V,
        ("workload.producers",),
    ),
    Case(
        "negative payload",
        _file(scenario_with("rate = 100", "rate = 100\npayload_bytes = -1")),
        V,
        ("workload.payload_bytes",),
    ),
    Case(
        "bad key distribution",
        _file(scenario_with("rate = 100", 'rate = 100\nkeys = "zipf:-1"')),
        V,
        ("workload.keys",),
    ),
    Case(
        "empty event types",
        _file(scenario_with("rate = 100", "rate = 100\nevent_types = {}")),
        V,
        ("workload.event_types",),
    ),
    Case(
        "drop rate above 1",
        _file(scenario_with('driver = "memory"', 'driver = "memory"\ndrop_rate = 2')),
        V,
        ("targets.mem.drop_rate",),
    ),
    Case(
        "name with a slash",
        _file(scenario_with('name = "ok"', 'name = "a/b"')),
        V,
        ("scenario.name",),
    ),
    # --------------------------------------------------------------- durations
    Case(
        "duration without unit",
        _file(scenario_with('duration = "1s"', "duration = 10")),
        V,
        ("scenario.duration", "no unit"),
    ),
    Case(
        "duration string without unit",
        _file(scenario_with('duration = "1s"', 'duration = "10"')),
        V,
        ("scenario.duration", "no unit"),
    ),
    Case(
        "duration unknown unit",
        _file(scenario_with('duration = "1s"', 'duration = "10 parsecs"')),
        V,
        ("scenario.duration", "not a duration"),
    ),
    Case(
        "zero duration",
        _file(scenario_with('duration = "1s"', 'duration = "0s"')),
        V,
        ("scenario.duration", "longer than 0s"),
    ),
    # --------------------------------------------------------------- targets and drivers
    Case(
        "unknown driver",
        _file(scenario_with('driver = "memory"', 'driver = "nosuch"')),
        V,
        ("targets.mem.driver", "unknown driver"),
    ),
    Case(
        "target without driver",
        _file(scenario_with('driver = "memory"', 'service_time = "1ms"')),
        V,
        ("targets", "driver"),
    ),
    Case(
        "no targets",
        _file('[scenario]\nname = "ok"\n'),
        V,
        ("targets", "required"),
    ),
    Case(
        "target is not a table",
        _file(GOOD.split("[targets.mem]")[0] + '[targets]\nmem = "memory"\n'),
        V,
        ("targets",),
    ),
    Case(
        "conflicting options: stall_at alone",
        _file(scenario_with('driver = "memory"', 'driver = "memory"\nstall_at = "1s"')),
        V,
        ("targets.mem", "go together"),
    ),
    Case(
        "conflicting options: a store workload on a broker",
        _file(
            scenario_with(
                '[targets.mem]\ndriver = "memory"', '[targets.k]\ndriver = "kafka"'
            ).replace("rate = 100", 'rate = 100\nkind = "store"')
        ),
        V,
        ("workload.kind",),
    ),
    Case(
        "conflicting options: fewer producers than in-process workers",
        _file(scenario_with("producers = 1", "producers = 1\nworkers = 2")),
        V,
        ("workload.producers",),
    ),
    # --------------------------------------------------------------- matrix and SLOs
    Case(
        "empty matrix",
        _file(GOOD + '\n[matrix]\n"workload.rate" = []\n'),
        V,
        ("matrix.workload.rate", "empty list"),
    ),
    Case(
        "matrix unknown path",
        _file(GOOD + '\n[matrix]\n"bogus.rate" = [1]\n'),
        V,
        ("matrix.bogus.rate", "unknown path"),
    ),
    Case(
        "matrix unknown target",
        _file(GOOD + '\n[matrix]\n"targets.nope.service_time" = ["1ms"]\n'),
        V,
        ("matrix.targets.nope", "no target"),
    ),
    Case(
        "matrix bad value",
        _file(GOOD + '\n[matrix]\n"workload.rate" = [100, -1]\n'),
        V,
        ("workload.rate",),
    ),
    Case(
        "SLO unknown statistic",
        _file(GOOD + '\n[slo]\n"e2e.p98" = "5ms"\n'),
        V,
        ("slo", "not a latency SLO"),
    ),
    Case(
        "SLO without unit",
        _file(GOOD + '\n[slo]\n"e2e.p99" = 5\n'),
        V,
        ("slo", "no unit"),
    ),
    # --------------------------------------------------------------- command-line input
    Case("--set without =", _file(GOOD), [*V, "--set", "workload.rate"], ("--set", "PATH=VALUE")),
    Case(
        "--set unknown path",
        _file(GOOD),
        [*V, "--set", "workload.ratee=5"],
        ("workload.ratee", "unknown field"),
    ),
    Case(
        "--set bad value",
        _file(GOOD),
        [*V, "--set", "workload.rate=fast"],
        ("workload.rate", "not a rate"),
    ),
    Case(
        "run an unknown target",
        _file(GOOD),
        ["run", "{tmp}/s.toml", "--target", "nope", "-o", "{tmp}/r"],
        ("--target", "nope"),
    ),
    Case("an unknown service", {}, ["status", "kafkaa"], ("SERVICE", "unknown service")),
    Case(
        "plan: not a rate",
        {},
        ["plan", "{tmp}", "--load", "lots"],
        ("--load", "not a rate"),
    ),
    Case(
        "find-max: a bad SLO",
        _file(GOOD),
        ["find-max", "{tmp}/s.toml", "--slo", "e2e.p99 < soon"],
        ("--slo",),
    ),
    Case(
        "compare: one run",
        {},
        ["compare", "{tmp}"],
        ("RUNS", "BASELINE"),
    ),
    # --------------------------------------------------------------- faults
    Case(
        "a fault after the load ends",
        _file(GOOD + '\n[[faults]]\nat = "5s"\naction = "kill"\n'),
        V,
        ("s.toml", "faults[0].at", "not inside the load"),
    ),
    Case(
        "overlapping faults",
        _file(
            scenario_with('duration = "1s"', 'duration = "20s"')
            + '\n[[faults]]\nat = "2s"\naction = "pause"\ndown_for = "5s"\n'
            + '\n[[faults]]\nat = "4s"\naction = "kill"\n'
        ),
        V,
        ("s.toml", "faults[1].at", "before the previous fault ends"),
    ),
    Case(
        "an unknown fault action",
        _file(GOOD + '\n[[faults]]\nat = "0.5s"\naction = "explode"\n'),
        V,
        ("s.toml", "faults.0.action"),
    ),
    Case(
        "a fault time without a unit",
        _file(GOOD + '\n[[faults]]\nat = 1\naction = "kill"\n'),
        V,
        ("s.toml", "faults.0.at", "no unit"),
    ),
    Case(
        "disconnect with down_for",
        _file(GOOD + '\n[[faults]]\nat = "0.5s"\naction = "disconnect"\ndown_for = "1s"\n'),
        V,
        ("s.toml", "disconnect takes no down_for"),
    ),
    # --------------------------------------------------------------- results directories
    Case(
        "results directory is a file",
        {"s.toml": GOOD, "r": "not a directory"},
        ["run", "{tmp}/s.toml", "-o", "{tmp}/r", "--no-report"],
        ("r", "cannot create the results directory"),
    ),
    Case(
        "results directory cannot be written",
        _file(GOOD),
        ["run", "{tmp}/s.toml", "-o", "/proc/eventbench", "--no-report"],
        ("/proc/eventbench", "cannot create the results directory"),
    ),
    Case(
        "show: not a results directory",
        {},
        ["show", "{tmp}/nope"],
        ("nope",),
    ),
    Case(
        "show: a results directory from a newer eventbench",
        {"run/manifest.json": json.dumps({"schema_version": SCHEMA_VERSION + 1, "points": []})},
        ["show", "{tmp}/run"],
        ("manifest.json", "schema_version", "newer"),
    ),
    Case(
        "show: a truncated manifest",
        {"run/manifest.json": '{"schema_version": 1, "points": ['},
        ["show", "{tmp}/run"],
        ("manifest.json", "not valid JSON"),
    ),
    Case(
        "report: a truncated .hlog",
        {
            "run/manifest.json": json.dumps(
                {"schema_version": 1, "run_id": "r", "points": [{"dir": "p", "target": "m"}]}
            ),
            "run/p/summary.json": json.dumps(
                {"schema_version": 1, "dir": "p", "target": "m", "workload": {"duration_s": 1}}
            ),
            # A torn last line is what an interrupted run leaves, and is skipped; a damaged
            # line before it is damage.
            "run/p/e2e.hlog": "#[StartTime: 1.0 (seconds since epoch)]\n"
            "0.000,1.000,5.0,HISTFAAAAB\n1.000,1.000,5.0,HIS",
        },
        ["report", "{tmp}/run"],
        ("e2e.hlog:2", "not a valid interval line"),
    ),
]


# --------------------------------------------------------------- corrupt results (issue 14)
# Damaged results files were internal errors (exit 70) in report, compare and check; each is a
# one-line ResultsError naming the file and the field (exit 2).


def results_files(
    manifest: dict | None = None, summary: dict | None = None
) -> dict[str, str | bytes]:
    """A one-point run whose manifest and summary carry ``manifest`` and ``summary`` over
    sound values."""
    return {
        "run/manifest.json": json.dumps(
            {
                "schema_version": 1,
                "run_id": "r",
                "status": "ok",
                "points": [{"dir": "p", "target": "m"}],
                **(manifest or {}),
            }
        ),
        "run/p/summary.json": json.dumps(
            {
                "schema_version": 1,
                "dir": "p",
                "target": "m",
                "status": "ok",
                "workload": {"duration_s": 1},
                "latency_us": {"e2e": {"count": 10, "p50": 100.0, "p99": 200.0}},
                **(summary or {}),
            }
        ),
    }


CORRUPT_RESULTS = [
    (
        "summary schema_version 0",
        results_files(summary={"schema_version": 0}),
        ("p/summary.json", "schema_version: 0", "not a schema eventbench writes"),
    ),
    (
        "manifest schema_version -3",
        results_files(manifest={"schema_version": -3}),
        ("manifest.json", "schema_version: -3"),
    ),
    ("manifest points 5", results_files(manifest={"points": 5}), ("manifest.json", "points: 5")),
    (
        "manifest points of strings",
        results_files(manifest={"points": ["p"]}),
        ("manifest.json", "points[0]", "not an object"),
    ),
    (
        "manifest point dir outside the run",
        results_files(manifest={"points": [{"dir": "../p", "target": "m"}]}),
        ("manifest.json", "points[0].dir"),
    ),
    (
        "latency_us null",
        results_files(summary={"latency_us": None}),
        ("p/summary.json", "latency_us: null is not an object"),
    ),
    (
        "latency_us a string",
        results_files(summary={"latency_us": "fast"}),
        ("p/summary.json", "latency_us", "not an object"),
    ),
    (
        "latency_us percentiles as strings",
        results_files(summary={"latency_us": {"e2e": {"count": 10, "p99": "200us"}}}),
        ("p/summary.json", "latency_us.e2e.p99", "not a number"),
    ),
    (
        "latency_us a kind as a list",
        results_files(summary={"latency_us": {"e2e": [1, 2]}}),
        ("p/summary.json", "latency_us.e2e", "not an object"),
    ),
    (
        "audit.lost a string",
        results_files(summary={"audit": {"lost": "none"}}),
        ("p/summary.json", "audit.lost", "not a number"),
    ),
]
RESULTS_COMMANDS = {
    "report": ["report", "{tmp}/run", "-o", "{tmp}/out"],
    "compare": ["compare", "{tmp}/run", "{tmp}/run"],
    "check": ["check", "{tmp}/run", "--baseline", "{tmp}/run"],
}
CORPUS += [
    Case(f"{command}: {name}", files, argv, needles)
    for name, files, needles in CORRUPT_RESULTS
    for command, argv in RESULTS_COMMANDS.items()
]


# --------------------------------------------------------------- validation holes (issue 14)
# Each passed validate, then crashed the workers or exited 70 at run; each is now refused by
# validate and by run, in one line naming the file and the field, without the password.
PLANTED = "pl4nted-pw"
RMQ_BAD_PORT = GOOD.replace(
    '[targets.mem]\ndriver = "memory"',
    f'[targets.rmq]\ndriver = "rabbitmq"\nurl = "amqp://guest:{PLANTED}@127.0.0.1:abc/"',
)
NATS_BAD_PORT = GOOD.replace(
    '[targets.mem]\ndriver = "memory"',
    f'[targets.n]\ndriver = "nats"\nservers = ["nats://u:{PLANTED}@127.0.0.1:xyz"]',
)
RUN = ["run", "{tmp}/s.toml", "-o", "{tmp}/r", "--no-report"]
CORPUS += [
    Case("a negative seed", _file(GOOD), [*V, "--set", "scenario.seed=-1"], ("scenario.seed",)),
    Case("run: a negative seed", _file(GOOD), [*RUN, "--set", "scenario.seed=-1"], ("seed",)),
    Case(
        "a RabbitMQ URL with a port that is not a number",
        _file(RMQ_BAD_PORT),
        V,
        ("s.toml", "targets.rmq.url", "the port is not a number"),
    ),
    Case(
        "run: a RabbitMQ URL with a port that is not a number",
        _file(RMQ_BAD_PORT),
        RUN,
        ("s.toml", "targets.rmq.url", "the port is not a number"),
    ),
    Case(
        "a RabbitMQ URL with a port out of range",
        _file(RMQ_BAD_PORT.replace(":abc/", ":70000/")),
        V,
        ("targets.rmq.url", "out of range"),
    ),
    Case(
        "a RabbitMQ URL without a host",
        _file(RMQ_BAD_PORT.replace("@127.0.0.1:abc/", "@:5672/")),
        V,
        ("targets.rmq.url", "no host"),
    ),
    Case(
        "a RabbitMQ URL with another scheme",
        _file(RMQ_BAD_PORT.replace("amqp://", "http://").replace(":abc/", ":5672/")),
        V,
        ("targets.rmq.url", "scheme 'http'"),
    ),
    Case(
        "a NATS server with a port that is not a number",
        _file(NATS_BAD_PORT),
        V,
        ("s.toml", "targets.n.servers", "the port is not a number"),
    ),
    Case(
        "run: a NATS server with a port that is not a number",
        _file(NATS_BAD_PORT),
        RUN,
        ("s.toml", "targets.n.servers", "the port is not a number"),
    ),
    Case(
        "a NATS server without a host",
        _file(NATS_BAD_PORT.replace("127.0.0.1:xyz", ":4222")),
        V,
        ("targets.n.servers", "no host"),
    ),
    Case(
        "a duration finer than a microsecond",
        _file(scenario_with('duration = "1s"', 'duration = "1ns"')),
        V,
        ("s.toml", "scenario.duration", "'1ns'", "1us"),
    ),
    Case(
        "a send_timeout of 0",
        _file(GOOD),
        [*V, "--set", 'workload.send_timeout="0s"'],
        ("workload.send_timeout", "longer than 0s"),
    ),
    Case(
        "a publish_timeout of 0",
        _file(RMQ_BAD_PORT.replace(":abc/", ":5672/") + 'publish_timeout = "0s"\n'),
        V,
        ("targets.rmq.publish_timeout", "longer than 0s"),
    ),
    Case(
        "a 100 KB description",
        _file(scenario_with('name = "ok"', f'name = "ok"\ndescription = "{"x" * 100_000}"')),
        V,
        ("s.toml", "scenario.description", "100,000 characters", "at most 4,096"),
    ),
    Case(
        "run: a 100 KB description",
        _file(scenario_with('name = "ok"', f'name = "ok"\ndescription = "{"x" * 100_000}"')),
        RUN,
        ("scenario.description", "100,000 characters"),
    ),
    Case(
        "a 100 KB driver option",
        _file(scenario_with('driver = "memory"', f'driver = "memory"\nx = "{"x" * 100_000}"')),
        V,
        ("targets.mem.x", "100,000 characters"),
    ),
    Case(
        "an event type name with a quote",
        _file(scenario_with("rate = 100", "rate = 100\nevent_types = { 'Placed\"' = 1 }")),
        V,
        ("workload.event_types", "letters, digits"),
    ),
    Case(
        "a key distribution with a trailing newline",
        _file(GOOD),
        [*V, "--set", 'workload.keys="uniform\\n"'],
        ("workload.keys", "not a key distribution"),
    ),
    Case(
        "a 100 KB duration",
        _file(scenario_with('duration = "1s"', f'duration = "{"9" * 100_000}s"')),
        V,
        ("scenario.duration", "not a duration"),
    ),
]


def materialise(case: Case, tmp_path: Path) -> list[str]:
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
