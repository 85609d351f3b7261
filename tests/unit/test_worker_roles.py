"""Split worker roles: ``workers = { producers = P, consumers = C }`` (issue 16)."""

import textwrap

import pytest

from bench.engine.runner import PointRunner
from bench.errors import ScenarioError
from bench.scenario import expand, load_scenario

NATS = """
[scenario]
name = "roles"
duration = "2s"

[workload]
rate = 1000
producers = 3
consumers = 4
{workers}

[targets.nats]
driver = "nats"
servers = ["nats://127.0.0.1:4222"]
"""


def _load(tmp_path, workers: str, target: str = NATS, overrides=None):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(target.format(workers=workers)))
    return path, load_scenario(path, overrides)


def test_the_table_form_sets_the_total_and_the_consuming_workers(tmp_path):
    _, scenario = _load(tmp_path, "workers = { producers = 2, consumers = 2 }")
    assert scenario.workload.workers == 4
    assert scenario.workload.consumer_workers == 2
    assert scenario.workload.producer_workers == 2


def test_the_runner_gives_producers_and_consumers_to_separate_workers(tmp_path):
    path, scenario = _load(tmp_path, "workers = { producers = 2, consumers = 2 }")
    (point,) = expand(scenario, str(path))
    runner = PointRunner(point, "r", tmp_path / "p", lambda: False)
    specs = runner._specs(runner._topology(), in_process=False)
    assert [s.producer_ids for s in specs] == [(0, 2), (1,), (), ()]
    assert [s.consumer_ids for s in specs] == [(), (), (0, 2), (1, 3)]
    # Every producer and consumer is in exactly one worker.
    assert sorted(i for s in specs for i in s.producer_ids) == [0, 1, 2]
    assert sorted(i for s in specs for i in s.consumer_ids) == [0, 1, 2, 3]


def test_without_roles_every_worker_produces_and_consumes(tmp_path):
    path, scenario = _load(tmp_path, "workers = 2")
    (point,) = expand(scenario, str(path))
    runner = PointRunner(point, "r", tmp_path / "p", lambda: False)
    specs = runner._specs(runner._topology(), in_process=False)
    assert [s.producer_ids for s in specs] == [(0, 2), (1,)]
    assert [s.consumer_ids for s in specs] == [(0, 2), (1, 3)]


@pytest.mark.parametrize(
    ("workers", "words"),
    [
        ("workers = { producers = 1, consumers = 5 }", "consumers cannot fill 5"),
        ("workers = { producers = 4, consumers = 1 }", "producers cannot fill 4"),
        ("workers = { producers = 0, consumers = 1 }", "workers.producers"),
        ("workers = { producers = 1 }", "workers.consumers"),
        ("workers = { producers = 1, consumers = 1, readers = 2 }", "unknown role"),
        ("workers = { producers = true, consumers = 1 }", "workers.producers"),
        ("workers = 2\nconsumer_workers = 2", "leaving none to produce"),
    ],
)
def test_roles_that_do_not_fit_are_one_line_naming_the_field(tmp_path, workers, words):
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, workers)
    text = str(info.value)
    assert words in text
    assert "s.toml" in text
    assert "\n" not in text
    assert info.value.exit_code == 2


def test_an_in_process_target_cannot_split_roles(tmp_path):
    memory = NATS.replace('driver = "nats"', 'driver = "memory"').replace(
        'servers = ["nats://127.0.0.1:4222"]', ""
    )
    with pytest.raises(ScenarioError) as info:
        path, scenario = _load(tmp_path, "workers = { producers = 1, consumers = 1 }", memory)
        expand(scenario, str(path))
    assert "workload.consumer_workers" in str(info.value)
    assert "cannot be split" in str(info.value)


def test_a_store_workload_cannot_split_roles(tmp_path):
    store = NATS.replace("[workload]", '[workload]\nkind = "store"')
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, "workers = { producers = 1, consumers = 1 }", store)
    assert "store workload has no consuming-only workers" in str(info.value)
    assert info.value.field == "workload.workers"
