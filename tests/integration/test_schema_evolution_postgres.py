"""Schema evolution on PostgreSQL (issue 18, failure 3): a history COPYed in with old event
schemas, read back by the current code with upcasters, then migrated in place (the events'
payload and metadata rewritten as the current version) and replayed strictly."""

import asyncio
from pathlib import Path

import asyncpg
import pytest

from bench.engine.runner import PointRunner
from bench.scenario import expand, scenario_from_dict

pytestmark = pytest.mark.integration


def run(tmp_path: Path, dsn: str, reader: str, cleanup: bool = True) -> dict:
    raw = {
        "scenario": {"name": "se", "seed": 9, "cleanup": cleanup},
        "workload": {
            "kind": "replay",
            "replay": {"streams": 200, "events_per_stream": 15, "reader": reader},
        },
        "targets": {"pg": {"driver": "postgres", "dsn": dsn}},
    }
    point = expand(scenario_from_dict(raw, "se.toml"))[0]
    return PointRunner(point, "se", tmp_path / reader, stop_requested=lambda: False).run()


def test_upcast_on_read_and_a_migration_in_place(tmp_path: Path, postgres_dsn: str) -> None:
    upcasting = run(tmp_path, postgres_dsn, "upcast")
    replay = upcasting["replay"]
    assert upcasting["status"] == "ok" and replay["events"] == 3000
    assert replay["replay"]["events_read"] == 3000
    assert replay["replay"]["upcast_events"] == replay["old_events"] > 0
    assert upcasting["verdict"]["result"] == "pass", upcasting["verdict"]

    migrated = run(tmp_path, postgres_dsn, "upcast_and_rewrite", cleanup=False)
    replay = migrated["replay"]
    assert replay["migration"]["rewritten"] == replay["old_events"]
    assert replay["meaning_changed"] == 0
    assert replay["replay"]["upcast_events"] == 0 and replay["replay"]["events_read"] == 3000
    assert migrated["verdict"]["result"] == "pass", migrated["verdict"]

    # The store itself holds the current version of every event now, ids and versions kept.
    schema = migrated["target_info"]["schema"]

    async def versions() -> list[tuple[str, str, int]]:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            rows = await conn.fetch(
                f"SELECT event_type, metadata->>'schema_version' AS v, count(*) AS n "
                f'FROM "{schema}".events GROUP BY 1, 2 ORDER BY 1, 2'
            )
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
        return [(r["event_type"], r["v"], r["n"]) for r in rows]

    found = asyncio.run(versions())
    assert {(t, v) for t, v, _ in found} <= {
        ("OrderPlaced", "3"),
        ("OrderItemAdded", "2"),
        ("OrderConfirmed", "1"),
        ("OrderShipped", "1"),
        ("OrderCancelled", "1"),
    }
    assert sum(n for _, _, n in found) == 3000


def test_the_strict_reader_stops_at_the_first_old_event(tmp_path: Path, postgres_dsn: str) -> None:
    strict = run(tmp_path, postgres_dsn, "strict")
    first = strict["replay"]["replay"]["first_unreadable"]
    assert first["event_type"] == "OrderPlaced" and first["schema_version"] == 1
    assert strict["verdict"]["result"] == "fail"


def test_snapshots_and_archiving_on_postgres(tmp_path: Path, postgres_dsn: str) -> None:
    def load(snapshots: str) -> dict:
        raw = {
            "scenario": {"name": "snap", "seed": 4},
            "workload": {
                "kind": "replay",
                "replay": {
                    "measure": "load",
                    "streams": 10,
                    "events_per_stream": 1000,
                    "old_fraction": 0.0,
                    "loads": 30,
                    "snapshots": snapshots,
                    "archive": True,
                },
            },
            "targets": {"pg": {"driver": "postgres", "dsn": postgres_dsn}},
        }
        point = expand(scenario_from_dict(raw, "snap.toml"))[0]
        return PointRunner(point, "snap", tmp_path / snapshots, stop_requested=lambda: False).run()

    full, snapped = load("none"), load("every 50")
    for summary in (full, snapped):
        assert summary["verdict"]["result"] == "pass", summary["verdict"]
        assert summary["replay"]["load"]["check"]["mismatched"] == 0
        assert summary["replay"]["load"]["archive"]["check"]["mismatched"] == 0
    assert full["replay"]["load"]["events_folded_per_load"] == 1000
    assert snapped["replay"]["load"]["events_folded_per_load"] == 22.5
    # A load through the snapshot reads and folds ~22 rows instead of 1,000.
    assert snapped["latency_us"]["load"]["p50"] < full["latency_us"]["load"]["p50"] / 3
    archive = snapped["replay"]["load"]["archive"]
    assert archive["moved"] == 10 * 1000 - 225
    # The live table (after VACUUM FULL, indexes included) keeps a few pages of tail.
    assert archive["live_bytes_after"] < archive["live_bytes_before"] / 5
    assert full["replay"]["load"]["archive"]["moved"] == 0
