"""The bad-input corpus: every malformed input a user can hand the bench command gives one
clear line (what file or option, which field, what is wrong), a non-zero exit code, and no
traceback; and nothing already written is lost.

The cases run the real CLI entry point in-process (``bench.cli.main``), which is what the
``bench`` script calls, so the corpus stays fast enough to run with the quick tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.store import SCHEMA_VERSION
from tests.cli_support import run_bench_captured

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


def _results(manifest: dict | None = None, summary: dict | None = None) -> dict[str, str | bytes]:
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
        _results(summary={"schema_version": 0}),
        ("p/summary.json", "schema_version: 0", "not a schema eventbench writes"),
    ),
    (
        "manifest schema_version -3",
        _results(manifest={"schema_version": -3}),
        ("manifest.json", "schema_version: -3"),
    ),
    ("manifest points 5", _results(manifest={"points": 5}), ("manifest.json", "points: 5")),
    (
        "manifest points of strings",
        _results(manifest={"points": ["p"]}),
        ("manifest.json", "points[0]", "not an object"),
    ),
    (
        "manifest point dir outside the run",
        _results(manifest={"points": [{"dir": "../p", "target": "m"}]}),
        ("manifest.json", "points[0].dir"),
    ),
    (
        "latency_us null",
        _results(summary={"latency_us": None}),
        ("p/summary.json", "latency_us: null is not an object"),
    ),
    (
        "latency_us a string",
        _results(summary={"latency_us": "fast"}),
        ("p/summary.json", "latency_us", "not an object"),
    ),
    (
        "latency_us percentiles as strings",
        _results(summary={"latency_us": {"e2e": {"count": 10, "p99": "200us"}}}),
        ("p/summary.json", "latency_us.e2e.p99", "not a number"),
    ),
    (
        "latency_us a kind as a list",
        _results(summary={"latency_us": {"e2e": [1, 2]}}),
        ("p/summary.json", "latency_us.e2e", "not an object"),
    ),
    (
        "audit.lost a string",
        _results(summary={"audit": {"lost": "none"}}),
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


def _materialise(case: Case, tmp_path: Path) -> list[str]:
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]


def test_the_corpus_has_at_least_forty_inputs():
    assert len(CORPUS) >= 40
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(case, tmp_path, capsys):
    argv = _materialise(case, tmp_path)
    code, out, err = run_bench_captured(argv, capsys)
    assert code == case.code, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, out
    first = lines[0]
    assert first.startswith("error:"), err
    for needle in case.needles:
        assert needle in first, (needle, first)
    # One line of error, at most one line of hint.
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].lstrip().startswith("hint:")), err


def test_bad_input_never_loses_results_already_written(tmp_path, capsys):
    # A good run first, then a bad one into the same results directory.
    (tmp_path / "s.toml").write_text(GOOD)
    code, _, _ = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "-q"], capsys
    )
    assert code == 0
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "r").rglob("*"))
    (tmp_path / "bad.toml").write_text(scenario_with("rate = 100", "rate = -1"))
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "workload.rate" in err
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "r").rglob("*"))
    assert after == before
    run_dir = next((tmp_path / "r").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "ok"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_results_directory_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    (tmp_path / "s.toml").write_text(GOOD)
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(locked / "r")], capsys
    )
    assert code == 2 and "cannot create the results directory" in err


def _matrix_scenario(tmp_path: Path, rates: int, aggregates: int) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(
        GOOD
        + f'\n[matrix]\n"workload.rate" = {list(range(1, rates + 1))}\n'
        + f'"workload.aggregates" = {list(range(1, aggregates + 1))}\n'
    )
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["validate", "run", "find-max", "sweep"])
def test_a_matrix_over_the_point_limit_is_refused_at_once_in_one_line(command, tmp_path, capsys):
    # Issue 14: a 10^6-point matrix never answered (each point was validated, at 12 ms a point).
    path = _matrix_scenario(tmp_path, 1000, 1000)
    argv = [command, str(path)] + ([] if command == "validate" else ["-o", str(tmp_path / "r")])
    code, _, err = run_bench_captured(argv, capsys)
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {path}: matrix: 1,000,000 points (1 target(s) x 1000 x 1000 values) is more "
        "than the limit of 10,000: pass --allow-large-matrix (or --max-points N) to expand it"
    )
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_matrix_point_limit_is_an_option_of_validate(tmp_path, capsys):
    path = _matrix_scenario(tmp_path, 10, 30)  # 300 points
    code, _, err = run_bench_captured(["validate", str(path), "--max-points", "299"], capsys)
    assert code == 2 and "matrix: 300 points" in err and "limit of 299" in err
    for extra in (["--max-points", "300"], ["--max-points", "5", "--allow-large-matrix"], []):
        code, out, err = run_bench_captured(["validate", str(path), *extra], capsys)
        assert code == 0, err
        assert f"ok {path}: 1 target(s), 300 point(s)" in out.splitlines()[0]


@pytest.mark.parametrize("text", [RMQ_BAD_PORT, NATS_BAD_PORT], ids=["rabbitmq", "nats"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_malformed_broker_url_never_shows_its_password(text, command, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(text)
    argv = [command, str(tmp_path / "s.toml")]
    argv += ["-o", str(tmp_path / "r"), "--no-report"] if command == "run" else []
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 2, (out, err)  # was 0 for validate, and 70 (an internal error) for run
    assert PLANTED not in out + err
    assert not (tmp_path / "r").exists()


def test_durations_are_shown_back_as_written(tmp_path, capsys):
    # "1.2345678s" was recorded as "1234.57ms" in manifest.json.
    (tmp_path / "s.toml").write_text(scenario_with('duration = "1s"', 'duration = "1.2345678s"'))
    code, _, err = run_bench_captured(
        ["run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "r"), "--no-report", "-q"], capsys
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "r").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["scenario"]["duration"] == "1.2345678s"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_rate_whose_window_holds_no_event_is_a_warning_not_an_error(command, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(scenario_with("rate = 100", "rate = 0.5"))
    argv = [command, str(tmp_path / "s.toml")]
    argv += ["-o", str(tmp_path / "r"), "--no-report", "-q"] if command == "run" else []
    code, out, err = run_bench_captured(argv, capsys)
    assert code == 0, (out, err)
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "workload.rate = 0.5/s" in warnings[0] and "1s" in warnings[0], warnings
    assert "no event" in warnings[0]
