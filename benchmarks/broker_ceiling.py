"""The harness against the fastest plain raw loop on the same client library, per broker.

For each broker (kafka = Tansu on 127.0.0.1:9092, rabbitmq on 5672, nats on 4222), and each
of ``--repeat`` repetitions, it runs interleaved (raw, harness, raw, harness, ...):

- the raw loops of ``raw_<broker>.py``: ``publish`` (publish-only), ``consume`` (read back a
  pre-filled topic) and ``pubsub`` (produce + consume in one process);
- the harness through its command line, ``bench run <generated scenario>``: closed loop
  (``rate = "max"``), concurrency 64, 1 KiB, 4 partitions, 1 producer + 1 consumer on 1
  worker ("full"), the same with no consumer ("producer-only"), and 2 workers (2 producers +
  2 consumers, 64 in flight each). It reads ``results/<run>/<point>/summary.json``, so any
  version of the harness with that command and those fields can be measured.

``--harness-root PATH`` (repeatable) runs the harness from that checkout (``PYTHONPATH=PATH
python -m bench.cli``; its worker processes inherit the path), each as its own column, so old
and new harness code are measured in one sitting: ``git worktree add /tmp/eb-old <commit>``.

It prints, per broker, the medians of the raw loops and of each harness figure, and per goal
the median of the paired ratios (each harness run divided by the raw run next to it):

- full, 1 worker / raw publish-only >= 0.9 (the fastest plain loop: the issue's goal)
- full, 1 worker / raw produce+consume >= 0.9
- producer-only / raw publish-only >= 0.9
- 2 workers / full, 1 worker >= 1.7, where the broker is not the limit: a shortfall in runs
  whose summary says ``host_bound`` (client and broker saturate this host's cores) shows
  as "host", not FAIL
- received by the harness / raw consume-only (shown, no goal: the consumer can only read what
  the producer sends)

A harness figure is acked/s for producer-only and min(acked/s, received/s) otherwise, in the
measurement window. Hold /tmp/bench.lock while it runs (other people measure on this host),
or pass ``--lock /tmp/bench.lock``; it restarts Tansu before every Kafka measurement (memory
storage keeps every record) unless ``--no-restart-tansu``.

``--kafka-client confluent`` measures Kafka on confluent-kafka: the raw loops run with
``--client confluent`` and the harness's target with ``client = "confluent"``.

    flock /tmp/bench.lock .venv/bin/python benchmarks/broker_ceiling.py --seconds 5 --repeat 3
    flock /tmp/bench.lock .venv/bin/python benchmarks/broker_ceiling.py --brokers kafka \
        --kafka-client confluent
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BROKERS = ("kafka", "rabbitmq", "nats")
IN_FLIGHT = 64
PARTITIONS = 4
PAYLOAD_BYTES = 1024
RATIO_GOAL = 0.9
WORKERS_GOAL = 1.7

TARGETS = {
    "kafka": (
        'driver = "kafka"\nbootstrap_servers = "127.0.0.1:9092"\nacks = "all"\n'
        "linger_ms = 0\nfetch_max_wait_ms = 10\n"
    ),
    "rabbitmq": (
        'driver = "rabbitmq"\nurl = "amqp://guest:guest@127.0.0.1:5672/"\nconfirms = true\n'
        f"persistent = true\nconfirm_window = {IN_FLIGHT}\n"
    ),
    "nats": (
        'driver = "nats"\nservers = ["nats://127.0.0.1:4222"]\npublish = "pipelined"\n'
        f"publish_window = {IN_FLIGHT}\n"
    ),
}
# The harness shapes: (worker processes, consumers on?, roles split?). Unsplit, every worker has
# one producer and one consumer; split (workers = { producers = 1, consumers = 1 }, a harness
# newer than 3f17098), one process produces and the other consumes the same load as "full".
SHAPES = {
    "full": (1, True, False),
    "producer_only": (1, False, False),
    "workers_2": (2, True, False),
    "split_2": (2, True, True),
}
RAW_MODES = ("publish", "consume", "pubsub")


@dataclass
class Root:
    path: Path
    label: str


@dataclass
class Sample:
    """One measurement: a rate (None when it failed) and what else it said."""

    rate: float | None
    detail: dict[str, object] = field(default_factory=dict)


def label_of(path: Path) -> str:
    def git(*argv: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(path), *argv], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or path.name
    dirty = "+dirty" if git("status", "--porcelain", "--", "bench") else ""
    return f"{commit}{dirty}"


def harness_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The checkout's bench shadows the installed one: PathFinder runs before the editable
    # install's finder, and spawned workers inherit the variable.
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def check_root(root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import bench.cli, bench; print(bench.__file__)"],
        env=harness_env(root),
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    found = Path(out.stdout.strip() or "?").resolve()
    if out.returncode != 0 or not found.is_relative_to(root.resolve()):
        raise SystemExit(
            f"--harness-root {root}: bench does not load from it "
            f"(got {found}; {out.stderr.strip()[-300:]})"
        )


def scenario_toml(broker: str, shape: str, args: argparse.Namespace) -> str:
    workers, consuming, split = SHAPES[shape]
    clients = 1 if split else workers
    placement = "{ producers = 1, consumers = 1 }" if split else str(workers)
    return (
        f'[scenario]\nname = "ceiling-{broker}-{shape}"\nduration = "{args.seconds:g}s"\n'
        f'warmup = "{args.warmup:g}s"\ndrain_timeout = "30s"\nseed = 1\n\n'
        f'[workload]\nrate = "max"\nconcurrency = {IN_FLIGHT * clients}\n'
        f"producers = {clients}\nconsumers = {clients if consuming else 0}\n"
        f"workers = {placement}\npartitions = {PARTITIONS}\npayload_bytes = {PAYLOAD_BYTES}\n"
        f"aggregates = 1000\nevent_types = {{ OrderPlaced = 1.0 }}\n\n[targets.{broker}]\n"
        f"{TARGETS[broker]}"
        # Only when asked: a harness older than the option would refuse the field.
        + (
            f'client = "{args.kafka_client}"\n'
            if broker == "kafka" and args.kafka_client != "aiokafka"
            else ""
        )
    )


def run_harness(root: Root, broker: str, shape: str, args: argparse.Namespace) -> Sample:
    with tempfile.TemporaryDirectory(prefix="eb-ceiling-") as tmp:
        scenario = Path(tmp) / "scenario.toml"
        scenario.write_text(scenario_toml(broker, shape, args))
        argv = [sys.executable, "-m", "bench.cli", "run", str(scenario)]
        argv += ["-o", str(Path(tmp) / "results"), "-q", "--no-report"]
        for override in args.set:
            argv += ["--set", override]
        try:
            out = subprocess.run(
                argv,
                env=harness_env(root.path),
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=args.seconds * 4 + args.warmup + 180,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Sample(None, {"error": "bench run timed out"})
        summaries = sorted((Path(tmp) / "results").glob("*/*/summary.json"))
        if not summaries:
            tail = (out.stderr.strip() or out.stdout.strip())[-400:]
            return Sample(None, {"error": f"exit {out.returncode}: {tail}"})
        summary = json.loads(summaries[0].read_text())
    throughput = summary.get("throughput", {})
    acked = float(throughput.get("acked_per_s") or 0)
    received = float(throughput.get("received_per_s") or 0)
    cpu_pct = (summary.get("harness") or {}).get("cpu_pct_max_worker")
    audit = summary.get("audit") or {}
    rate = acked if shape == "producer_only" else min(acked, received)
    detail: dict[str, object] = {
        # A checkout others commit to can change between repetitions: say which code ran.
        "harness": label_of(root.path),
        "status": summary.get("status"),
        "verdict": summary.get("verdict"),
        "acked_per_s": round(acked, 1),
        "received_per_s": round(received, 1),
        "lost": audit.get("lost"),
        "cpu_pct_max_worker": cpu_pct,
        "client_bound": summary.get("client_bound"),
        # The client and a local broker share this host's cores: when they are saturated,
        # a second worker cannot add throughput, whatever the harness's own cost.
        "host_bound": summary.get("host_bound"),
        "host_busy_pct": (summary.get("host") or {}).get("busy_pct"),
        "target_pct": (summary.get("host") or {}).get("target_pct"),
    }
    if cpu_pct and rate and SHAPES[shape][0] == 1:
        # One worker: its CPU per message, comparable with the raw loops' figure.
        detail["cpu_us_per_msg"] = round(float(cpu_pct) * 1e4 / rate, 1)
    if summary.get("status") != "ok":
        detail["error"] = "; ".join(map(str, summary.get("problems") or [])) or "status not ok"
        return Sample(None, detail)
    return Sample(rate, detail)


def run_raw(broker: str, mode: str, args: argparse.Namespace) -> Sample:
    argv = [sys.executable, str(HERE / f"raw_{broker}.py"), mode, "--seconds", f"{args.seconds}"]
    argv += ["--in-flight", str(IN_FLIGHT), "--partitions", str(PARTITIONS)]
    argv += ["--size", str(PAYLOAD_BYTES)]
    if broker == "kafka":
        argv += ["--client", args.kafka_client]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=args.seconds * 4 + 120, check=False
        )
    except subprocess.TimeoutExpired:
        return Sample(None, {"error": "raw loop timed out"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return Sample(None, {"error": f"exit {out.returncode}: {out.stderr.strip()[-400:]}"})
    result = json.loads(lines[-1])
    return Sample(float(result["msgs_per_s"]), result)


def restart_tansu() -> None:
    env = harness_env(ROOT)
    for command in ("down", "up"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.cli", command, "kafka"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if command == "up" and out.returncode != 0:
            raise SystemExit(f"bench up kafka failed: {out.stderr.strip()[-400:]}")


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def paired_ratio(num: list[Sample], den: list[Sample]) -> float | None:
    return median(
        [
            n.rate / d.rate if n.rate is not None and d.rate else None
            for n, d in zip(num, den, strict=True)
        ]
    )


def measure(
    brokers: list[str], roots: list[Root], args: argparse.Namespace
) -> dict[str, dict[str, list[Sample]]]:
    samples: dict[str, dict[str, list[Sample]]] = {
        b: {key: [] for key in keys_of(roots)} for b in brokers
    }
    steps: list[tuple[str, str | None]] = []
    for mode, shape in itertools.zip_longest(RAW_MODES, SHAPES):
        if mode is not None:
            steps.append((mode, None))
        steps += [(shape, f"{i}") for i in range(len(roots))]
    for rep in range(args.repeat):
        for broker in brokers:
            for what, index in steps:
                if broker == "kafka" and args.restart_tansu:
                    restart_tansu()
                started = time.monotonic()
                if index is None:
                    key = f"raw:{what}"
                    sample = run_raw(broker, what, args)
                else:
                    root = roots[int(index)]
                    key = f"{what}:{index}"
                    sample = run_harness(root, broker, what, args)
                samples[broker][key].append(sample)
                rate = f"{sample.rate:,.0f}/s" if sample.rate is not None else "failed"
                who = "raw" if index is None else roots[int(index)].label
                print(
                    f"  [{rep + 1}/{args.repeat}] {broker:8s} {who:>14s} {what:14s} {rate:>10s}"
                    f"  ({time.monotonic() - started:.0f}s)"
                    + (f"  {sample.detail.get('error')}" if "error" in sample.detail else ""),
                    file=sys.stderr,
                    flush=True,
                )
    return samples


def keys_of(roots: list[Root]) -> list[str]:
    return [f"raw:{m}" for m in RAW_MODES] + [
        f"{shape}:{i}" for shape in SHAPES for i in range(len(roots))
    ]


# (figure, numerator key, denominator key, goal): a key "raw:..." is a raw loop; "{r}" stands
# for the harness column's index.
GOALS = [
    ("full 1w / raw publish-only", "full:{r}", "raw:publish", RATIO_GOAL),
    ("full 1w / raw produce+consume", "full:{r}", "raw:pubsub", RATIO_GOAL),
    ("producer-only / raw publish-only", "producer_only:{r}", "raw:publish", RATIO_GOAL),
    ("2 workers / full 1w", "workers_2:{r}", "full:{r}", WORKERS_GOAL),
    ("producing + consuming worker / full 1w", "split_2:{r}", "full:{r}", None),
    ("full 1w received / raw consume-only", "full:{r}", "raw:consume", None),
]


def tabulate(
    samples: dict[str, dict[str, list[Sample]]], roots: list[Root]
) -> tuple[str, list[dict[str, object]]]:
    lines: list[str] = []
    rows: list[dict[str, object]] = []

    def fmt(value: float | None, spec: str = ",.0f") -> str:
        return "-" if value is None else format(value, spec)

    head = f"{'broker':8s}  {'figure':38s}  {'reference':>10s}"
    for root in roots:
        head += f"  {root.label[:14]:>14s}  {'ratio':>6s}  {'':4s}"
    head += f"  {'goal':>6s}"
    lines += [head, "-" * len(head)]
    for broker, by_key in samples.items():
        raw = {m: median([s.rate for s in by_key[f"raw:{m}"]]) for m in RAW_MODES}
        cpu = {m: median([_cpu(s) for s in by_key[f"raw:{m}"]]) for m in RAW_MODES}
        lines.append(
            f"{broker:8s}  raw loops: publish {fmt(raw['publish'])}/s "
            f"({fmt(cpu['publish'], '.1f')} us/msg), consume {fmt(raw['consume'])}/s "
            f"({fmt(cpu['consume'], '.1f')} us/msg), produce+consume {fmt(raw['pubsub'])}/s "
            f"({fmt(cpu['pubsub'], '.1f')} us/msg)"
        )
        # A worker that also consumes cannot beat a raw loop that also consumes: this is the
        # ceiling of the first goal on this host, from the same raw runs.
        ceiling = paired_ratio(by_key["raw:pubsub"], by_key["raw:publish"])
        lines.append(
            f"{'':8s}  raw produce+consume / raw publish-only: {fmt(ceiling, '.2f')} "
            "(the most a producing-and-consuming worker can reach of publish-only)"
        )
        for figure, num, den, goal in GOALS:
            ref_key = den.format(r=0)
            reference = median([s.rate for s in by_key[ref_key]]) if den.startswith("raw") else None
            line = f"{'':8s}  {figure:38s}  {fmt(reference):>10s}"
            row: dict[str, object] = {
                "broker": broker,
                "figure": figure,
                "reference_per_s": reference,
                "goal": goal,
                "columns": {},
            }
            for r, root in enumerate(roots):
                num_samples = by_key[num.format(r=r)]
                den_samples = by_key[den.format(r=r)]
                value = median([s.rate for s in num_samples])
                ratio = paired_ratio(num_samples, den_samples)
                if goal is None or ratio is None:
                    verdict = "" if goal is None else "FAIL"
                elif ratio >= goal:
                    verdict = "pass"
                elif goal == WORKERS_GOAL and _host_bound(num_samples):
                    # The goal holds "where the broker is not the limit": on a saturated
                    # shared host it cannot be met, and the table says so instead of FAIL.
                    verdict = "host"
                else:
                    verdict = "FAIL"
                line += f"  {fmt(value):>14s}  {fmt(ratio, '.2f'):>6s}  {verdict:4s}"
                row["columns"][root.label] = {  # type: ignore[index]
                    "harness_per_s": value,
                    "ratio": ratio,
                    "pass": None if goal is None else verdict == "pass",
                    "lost": [s.detail.get("lost") for s in num_samples],
                    "cpu_us_per_msg": median([_cpu(s) for s in num_samples]),
                    "host_bound": [s.detail.get("host_bound") for s in num_samples],
                    "host_busy_pct": [s.detail.get("host_busy_pct") for s in num_samples],
                }
            line += f"  {'>= ' + format(goal, '.1f') if goal else '-':>6s}"
            lines.append(line)
            rows.append(row)
        for r, root in enumerate(roots):
            cpu_full = median([_cpu(s) for s in by_key[f"full:{r}"]])
            cpu_prod = median([_cpu(s) for s in by_key[f"producer_only:{r}"]])
            # Producer-only runs have no consumer: every message counts as lost there.
            lost = [
                s.detail["lost"]
                for key in (f"full:{r}", f"workers_2:{r}")
                for s in by_key[key]
                if s.detail.get("lost")
            ]
            errors = [
                s.detail["error"]
                for key in by_key
                if key.endswith(f":{r}")
                for s in by_key[key]
                if "error" in s.detail
            ]
            note = (
                f"{'':8s}  {root.label}: worker CPU {fmt(cpu_full, '.1f')} us/msg full, "
                f"{fmt(cpu_prod, '.1f')} producer-only"
            )
            ran = sorted(
                {
                    str(s.detail["harness"])
                    for key in by_key
                    if key.endswith(f":{r}")
                    for s in by_key[key]
                    if "harness" in s.detail
                }
            )
            if len(ran) > 1:
                note += f"; the code changed during the run: {', '.join(ran)}"
            if lost:
                note += f"; lost {lost}"
            if errors:
                note += f"; {len(errors)} failed: {str(errors[0])[:160]}"
            lines.append(note)
    return "\n".join(lines), rows


def _host_bound(samples: list[Sample]) -> bool:
    """Most of these runs reported the shared host's CPU saturated."""
    flags = [s.detail.get("host_bound") for s in samples]
    return sum(1 for f in flags if f) * 2 > len(flags) > 0


def _cpu(sample: Sample) -> float | None:
    value = sample.detail.get("cpu_us_per_msg")
    return float(value) if isinstance(value, int | float) else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--seconds", type=float, default=5.0, help="load per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="the harness's warm-up")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--harness-root",
        type=Path,
        action="append",
        default=[],
        help="a checkout of eventbench to run the harness from (repeatable; default: this one)",
    )
    parser.add_argument(
        "--set", action="append", default=[], help="passed to bench run (repeatable)"
    )
    parser.add_argument(
        "--kafka-client",
        choices=["aiokafka", "confluent"],
        default="aiokafka",
        help="the Kafka client library of the raw loops and of the harness's target",
    )
    parser.add_argument("--restart-tansu", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--lock", type=Path, help="hold this lock file while measuring")
    parser.add_argument("--json", type=Path, help="write every sample and the table here")
    args = parser.parse_args()
    brokers = [b for b in args.brokers.split(",") if b]
    for broker in brokers:
        if broker not in BROKERS:
            parser.error(f"unknown broker {broker!r}: choose from {', '.join(BROKERS)}")
    roots = [Root(p.resolve(), label_of(p.resolve())) for p in args.harness_root or [ROOT]]
    for i, root in enumerate(roots):
        check_root(root.path)
        if [r.label for r in roots].count(root.label) > 1:
            root.label = f"{root.label}#{i}"
    lock = contextlib.ExitStack()
    if args.lock:
        handle = lock.enter_context(args.lock.open("a"))
        fcntl.flock(handle, fcntl.LOCK_EX)
    with lock:
        print(
            f"{len(brokers)} brokers x {args.repeat} repetitions, {args.seconds:g}s each; "
            f"kafka client {args.kafka_client}; "
            f"harness: {', '.join(f'{r.label} ({r.path})' for r in roots)}",
            file=sys.stderr,
            flush=True,
        )
        samples = measure(brokers, roots, args)
    table, rows = tabulate(samples, roots)
    print(table)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "config": {
                        "seconds": args.seconds,
                        "warmup": args.warmup,
                        "repeat": args.repeat,
                        "in_flight": IN_FLIGHT,
                        "partitions": PARTITIONS,
                        "payload_bytes": PAYLOAD_BYTES,
                        "kafka_client": args.kafka_client,
                        "harness": {r.label: str(r.path) for r in roots},
                    },
                    "rows": rows,
                    "samples": {
                        b: {k: [{"rate": s.rate, **s.detail} for s in v] for k, v in by.items()}
                        for b, by in samples.items()
                    },
                    "table": table,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
