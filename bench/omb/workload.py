"""An OMB workload YAML as an eventbench scenario (``bench run WORKLOAD.yaml``,
``bench import-omb WORKLOAD.yaml -o scenario.toml``).

Every OMB workload field maps to one eventbench field (``FIELDS`` says which); a field with no
mapping, or a value eventbench cannot honour yet, is a ``ScenarioError`` naming the file and the
field, never dropped. Each mapping that changes a meaning is said in ``notes`` (printed by the
commands): OMB's unkeyed messages cannot be judged for per-key order, so the imported scenario
allows reordering; its ``producerRate = 0`` (find the fastest balanced rate) is ``bench
find-max``; its payload file must be found (next to the workload, in an OMB checkout's
``payload/``, or with ``--payload-dir``) and be ``messageSize`` bytes, as OMB requires.

Targets come from OMB driver files (``bench.omb.drivers``) or eventbench's own drivers by name.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ScenarioError
from bench.scenario import MAX_TOPICS

# OMB's key distributors and what each is here.
KEY_DISTRIBUTORS = ("NO_KEY", "KEY_ROUND_ROBIN", "RANDOM_NANO")
ROUND_ROBIN_KEYS = 10_000  # OMB's KEY_ROUND_ROBIN cycles through this many keys
DEFAULT_WARMUP_MINUTES = 1.0  # OMB warms up for a minute when the file does not say
MAX_YAML_BYTES = 1_000_000


@dataclass
class OmbScenario:
    """An imported workload: the scenario (raw, as a TOML file would hold it), what the import
    decided in words, and whether OMB asked for the fastest rate (``producerRate = 0``)."""

    raw: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    find_max: bool = False


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML file's top-level mapping; ScenarioError naming the file otherwise."""
    import yaml

    source = str(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ScenarioError(source, None, f"is larger than {MAX_YAML_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(source, None, "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(source, None, f"is a directory, not an OMB {what} file") from None
    except UnicodeDecodeError:
        raise ScenarioError(source, None, "is not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(source, None, f"cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ScenarioError(source, None, f"invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(source, None, f"an OMB {what} file is a mapping of fields")
    return data


# --------------------------------------------------------------------------- values


def _int(source: str, name: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ScenarioError(
            source, name, f"expected a whole number of at least {low}, got {value!r}"
        )
    return value


def _number(source: str, name: str, value: Any, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
        raise ScenarioError(source, name, f"expected a number of at least {low:g}, got {value!r}")
    return float(value)


def _bool(source: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(source, name, f"expected true or false, got {value!r}")
    return value


def _text(source: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(source, name, f"expected a text, got {value!r}")
    return value


def _slug(name: str) -> str:
    """A scenario name (letters, digits, '-', '_', '.') from OMB's free-text name."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return (slug or "omb")[:64]


def _minutes(value: float) -> str:
    seconds = value * 60.0
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- the fields

# OMB field -> the eventbench field it becomes (the docs' mapping table; every key is handled
# below, and a key not here is an error).
FIELDS: dict[str, str] = {
    "name": "scenario.name (and description)",
    "topics": "workload.topics",
    "partitionsPerTopic": "workload.partitions",
    "keyDistributor": "workload.partition_key / workload.keys",
    "messageSize": "workload.payload_bytes",
    "useRandomizedPayloads": "workload.payload_random (with randomBytesRatio)",
    "randomBytesRatio": "workload.payload_random",
    "randomizedPayloadPoolSize": "workload.payload_pool",
    "payloadFile": "workload.payload_file",
    "subscriptionsPerTopic": "workload.subscriptions (consumer groups, each gets everything)",
    "producersPerTopic": "workload.producers",
    "consumerPerSubscription": "workload.consumers (per subscription)",
    "producerRate": "workload.rate (0: bench find-max)",
    "consumerBacklogSizeGB": "workload.backlog (GB x 1024 MiB, as OMB sizes it)",
    "backlogDrainRatio": "workload.backlog_drain_ratio",
    "testDurationMinutes": "scenario.duration",
    "warmupDurationMinutes": "scenario.warmup",
}
REQUIRED = ("messageSize", "producersPerTopic", "testDurationMinutes")


def omb_scenario(
    path: Path,
    targets: dict[str, dict[str, Any]],
    payload_dirs: list[Path] | None = None,
) -> OmbScenario:
    """The scenario of the OMB workload file at ``path``, run against ``targets`` (target name
    -> options, as a scenario's ``[targets.NAME]`` table)."""
    source = str(path)
    data = read_yaml(path, "workload")
    unknown = [key for key in data if key not in FIELDS]
    if unknown:
        raise ScenarioError(
            source,
            str(unknown[0]),
            "not an OMB workload field eventbench maps",
            hint=f"the fields it maps: {', '.join(FIELDS)}",
        )
    for key in REQUIRED:
        if key not in data:
            raise ScenarioError(source, key, "missing: OMB needs it, and so does the import")
    if not targets:
        raise ScenarioError(
            source,
            None,
            "no target to run it against",
            hint="give --target memory (an eventbench driver by name) or --omb-driver kafka.yaml",
        )
    notes: list[str] = []
    name = _text(source, "name", data.get("name", path.stem))
    scenario: dict[str, Any] = {
        "name": _slug(name),
        "description": f"OMB workload {name!r}, imported from {path.name}",
    }
    workload: dict[str, Any] = {"kind": "stream", "schedule": "constant"}
    verdict: dict[str, Any] = {}

    topics = _int(source, "topics", data.get("topics", 1), 1)
    if topics > MAX_TOPICS:
        raise ScenarioError(source, "topics", f"at most {MAX_TOPICS} topics (got {topics})")
    if topics > 1:
        workload["topics"] = topics
    subscriptions = _int(source, "subscriptionsPerTopic", data.get("subscriptionsPerTopic", 1), 1)
    if subscriptions > 64:
        raise ScenarioError(source, "subscriptionsPerTopic", "at most 64 subscriptions")
    if subscriptions > 1:
        workload["subscriptions"] = subscriptions
    backlog_gb = _number(source, "consumerBacklogSizeGB", data.get("consumerBacklogSizeGB", 0))
    if backlog_gb:
        # OMB counts its GB as 1024 x 1024 x 1024 bytes.
        mib = backlog_gb * 1024
        workload["backlog"] = f"{mib:g}MiB" if float(mib).is_integer() else round(mib * 2**20)
        if _number(source, "producerRate", data.get("producerRate", 0)) == 0:
            raise ScenarioError(
                source,
                "producerRate",
                "0 (find the fastest rate) with a backlog: the backlog drains while producers "
                "keep sending at a rate; give producerRate",
            )
    if "backlogDrainRatio" in data:
        ratio = _number(source, "backlogDrainRatio", data["backlogDrainRatio"])
        if not backlog_gb:
            notes.append(
                "backlogDrainRatio: no backlog (consumerBacklogSizeGB 0), so it changes nothing"
            )
        elif not 0 < ratio <= 1:
            raise ScenarioError(
                source, "backlogDrainRatio", f"a share above 0 and at most 1, got {ratio:g}"
            )
        else:
            workload["backlog_drain_ratio"] = ratio

    workload["partitions"] = _int(
        source, "partitionsPerTopic", data.get("partitionsPerTopic", 1), 1
    )
    producers = _int(source, "producersPerTopic", data["producersPerTopic"], 1)
    workload["producers"] = producers * topics
    consumers = _int(source, "consumerPerSubscription", data.get("consumerPerSubscription", 1))
    workload["consumers"] = consumers * topics  # per subscription, as OMB counts them
    if consumers == 0:
        notes.append("consumerPerSubscription 0: producers only, nothing is consumed")

    _keys(source, data.get("keyDistributor", "NO_KEY"), workload, verdict, notes)
    _payload(source, path, data, workload, notes, payload_dirs or [])

    rate = _number(source, "producerRate", data.get("producerRate", 0))
    find_max = rate == 0
    if find_max:
        notes.append(
            "producerRate 0 (OMB: find the fastest balanced rate): run with bench find-max, "
            "which searches for the highest rate that holds the verdict and any SLO"
        )
        workload["rate"] = 1000.0  # the search's first probe
    else:
        workload["rate"] = rate
    duration = _number(source, "testDurationMinutes", data["testDurationMinutes"])
    if duration <= 0:
        raise ScenarioError(source, "testDurationMinutes", "must be more than 0")
    scenario["duration"] = _minutes(duration)
    warmup = _number(
        source, "warmupDurationMinutes", data.get("warmupDurationMinutes", DEFAULT_WARMUP_MINUTES)
    )
    if "warmupDurationMinutes" not in data:
        notes.append(f"warmupDurationMinutes not given: OMB's {DEFAULT_WARMUP_MINUTES:g} minute")
    scenario["warmup"] = _minutes(warmup)
    raw: dict[str, Any] = {"scenario": scenario, "workload": workload, "targets": targets}
    if verdict:
        raw["verdict"] = verdict
    return OmbScenario(raw, notes, find_max)


def _keys(
    source: str,
    value: Any,
    workload: dict[str, Any],
    verdict: dict[str, Any],
    notes: list[str],
) -> None:
    """OMB's key distributor: NO_KEY sends no key, RANDOM_NANO a new key per message (both
    spread an aggregate over partitions, so per-key order is not promised and not judged);
    KEY_ROUND_ROBIN cycles through 10,000 keys, each keeping its order."""
    if value not in KEY_DISTRIBUTORS:
        raise ScenarioError(
            source,
            "keyDistributor",
            f"{value!r} is not an OMB key distributor ({', '.join(KEY_DISTRIBUTORS)})",
        )
    if value == "KEY_ROUND_ROBIN":
        workload["keys"] = "round_robin"
        workload["aggregates"] = ROUND_ROBIN_KEYS
        return
    workload["partition_key"] = "none" if value == "NO_KEY" else "event_id"
    verdict["allow_reordering"] = True
    notes.append(
        f"keyDistributor {value}: messages carry no stable key, so no per-key order is "
        "promised; the audit still counts reordering, and the verdict allows it"
    )


def _payload(
    source: str,
    path: Path,
    data: dict[str, Any],
    workload: dict[str, Any],
    notes: list[str],
    payload_dirs: list[Path],
) -> None:
    size = _int(source, "messageSize", data["messageSize"], 1)
    workload["payload_bytes"] = size
    randomized = _bool(source, "useRandomizedPayloads", data.get("useRandomizedPayloads", False))
    if randomized:
        ratio = _number(source, "randomBytesRatio", data.get("randomBytesRatio", 0.0))
        if ratio > 1:
            raise ScenarioError(source, "randomBytesRatio", f"a share from 0 to 1, got {ratio:g}")
        workload["payload_random"] = ratio
        workload["payload_pool"] = _int(
            source, "randomizedPayloadPoolSize", data.get("randomizedPayloadPoolSize", 1000), 1
        )
        if "payloadFile" in data:
            notes.append("payloadFile: not read, as in OMB (useRandomizedPayloads is true)")
        return
    for name in ("randomBytesRatio", "randomizedPayloadPoolSize"):
        if name in data:
            notes.append(f"{name}: changes nothing, as in OMB (useRandomizedPayloads is false)")
    if "payloadFile" not in data:
        notes.append(
            f"no payloadFile: each message is a JSON domain event of {size:,} bytes "
            "(eventbench's own payload)"
        )
        return
    given = Path(_text(source, "payloadFile", data["payloadFile"])).expanduser()
    found = _find_payload(given, path, payload_dirs)
    if found is None:
        raise ScenarioError(
            source,
            "payloadFile",
            f"{str(given)!r} was not found (next to the workload, in its OMB checkout, or in "
            "any --payload-dir)",
            hint="give --payload-dir DIR (the directory OMB's payload/ files are in)",
        )
    actual = found.stat().st_size
    if actual != size:
        raise ScenarioError(
            source,
            "payloadFile",
            f"{found} is {actual:,} bytes and messageSize is {size:,}: OMB requires them equal",
        )
    workload["payload_file"] = str(found.resolve())


def _find_payload(given: Path, workload_path: Path, payload_dirs: list[Path]) -> Path | None:
    """Where an OMB payload file is: as given if absolute; else under each --payload-dir (by
    its path, then by its name), next to the workload, in the OMB checkout the workload sits
    in (``workloads/x.yaml`` next to ``payload/``), or under the current directory."""
    if given.is_absolute():
        return given if given.is_file() else None
    here = workload_path.resolve().parent
    candidates: list[Path] = []
    for directory in payload_dirs:
        candidates += [directory / given, directory / given.name]
    candidates += [here / given, here.parent / given, Path.cwd() / given]
    return next((c for c in candidates if c.is_file()), None)


def is_omb_workload(path: str | Path) -> bool:
    """Whether ``bench run`` was given an OMB workload (a .yaml or .yml file)."""
    return Path(path).suffix.lower() in (".yaml", ".yml")


def wants_find_max(path: Path) -> bool:
    """Whether an OMB workload asks for the fastest rate (``producerRate`` 0 or absent)."""
    data = read_yaml(path, "workload")
    rate = data.get("producerRate", 0)
    return isinstance(rate, int | float) and not isinstance(rate, bool) and rate == 0


@dataclass(frozen=True)
class OmbSources:
    """What an OMB workload runs against and reads, from the command line: OMB driver files
    (``--omb-driver``, one target each) and where its payload files are (``--payload-dir``)."""

    drivers: tuple[Path, ...] = ()
    payload_dirs: tuple[Path, ...] = ()


def load_omb(path: Path, target_names: list[str] | None, sources: OmbSources) -> OmbScenario:
    """An OMB workload file against its targets: one per ``--omb-driver`` file, and one per
    ``--target NAME`` naming an eventbench driver (its defaults). The driver files' unmapped
    keys join the notes."""
    from bench.omb.drivers import omb_target

    targets: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for driver_file in sources.drivers:
        target = omb_target(driver_file)
        name = target.name
        while name in targets:
            name += "-2"
        targets[name] = target.options
        notes += [f"{driver_file.name}: {note}" for note in target.notes]
    for name in target_names or []:
        if name not in targets:
            targets[name] = {"driver": name}
    imported = omb_scenario(path, targets, list(sources.payload_dirs))
    imported.notes[:0] = notes
    return imported


# The command line's OMB sources (--omb-driver, --payload-dir), for every scenario the command
# loads (bench run, find-max and sweep load them deep inside).
NO_SOURCES = OmbSources()
SOURCES: ContextVar[OmbSources] = ContextVar("omb_sources", default=NO_SOURCES)
