"""workload.topics (issue 20): each topic's topology, how clients spread over topics, the
scenario's rules, and losses sorted per topic."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.drivers.base import (
    Topology,
    member_of,
    subscription_topology,
    topic_of,
    topic_topologies,
    topic_topology,
)
from bench.engine import reread
from bench.errors import ScenarioError
from bench.scenario import Workload, scenario_from_dict, topics_without_consumers

BASE = Topology(
    name="eb-run-0-abc",
    partitions=2,
    producers=8,
    consumers=4,
    consumer_group="eb-run-0-abc-g",
    subscriptions=2,
    topics=4,
)


def test_each_topic_has_its_own_name_group_and_share_of_the_clients() -> None:
    topics = topic_topologies(BASE)
    assert [t.name for t in topics] == [f"eb-run-0-abc-t{i}" for i in range(4)]
    assert [t.topic for t in topics] == [0, 1, 2, 3]
    assert all(t.producers == 2 and t.consumers == 1 and t.partitions == 2 for t in topics)
    assert topics[3].consumer_group == "eb-run-0-abc-t3-g"
    # A subscription of a topic is its own group on that topic.
    second = subscription_topology(topics[3], 1)
    assert second.name == "eb-run-0-abc-t3" and second.consumer_group == "eb-run-0-abc-t3-g-s1"


def test_one_topic_is_what_it_always_was() -> None:
    one = Topology(name="x", partitions=1, producers=1, consumers=1, consumer_group="x-g")
    assert topic_topology(one, 0) is one and topic_topologies(one) == [one]


def test_clients_go_round_the_topics() -> None:
    assert [topic_of(i, 3) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert [member_of(i, 3) for i in range(6)] == [0, 0, 0, 1, 1, 1]


def _scenario(**workload: object) -> dict:
    return {
        "scenario": {"name": "t", "duration": "1s"},
        "targets": {"memory": {"driver": "memory"}},
        "workload": {"rate": 100, **workload},
    }


@pytest.mark.parametrize(
    ("workload", "words"),
    [
        ({"topics": 4, "producers": 6, "consumers": 4}, "give a multiple of 4 (e.g. 8)"),
        ({"topics": 4, "producers": 4, "consumers": 2}, "give 0 or a multiple of 4"),
        ({"topics": 2, "producers": 2, "consumers": 2, "apply": "guarded"}, "apply"),
        ({"topics": 2, "kind": "store", "producers": 2, "consumers": 0}, "for streams"),
        ({"topics": 1001}, "less than or equal to 1000"),
    ],
)
def test_what_topics_cannot_do_is_one_line(workload: dict, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(_scenario(**workload), "t.toml")
    assert words in str(err.value)
    assert "\n" not in err.value.message


def test_faults_with_many_topics_are_refused() -> None:
    raw = _scenario(topics=2, producers=2, consumers=2)
    raw["faults"] = [{"at": "0.5s", "action": "restart"}]
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(raw, "t.toml")
    assert "topics = 1" in str(err.value)


def test_an_in_process_target_needs_each_workers_topics_read_there() -> None:
    # Client i runs in worker i % workers on topic i % topics. 2 topics on 2 workers:
    # producers and consumers land on (0, 0) and (1, 1) alike.
    fine = Workload(rate=100, topics=2, producers=4, consumers=2, workers=2)
    assert topics_without_consumers(fine) == []
    # 2 topics on 3 workers, 6 producers, 4 consumers: consumers on (0,0) (1,1) (2,0) (0,1);
    # producers 4 -> (1, 0) and 5 -> (2, 1) have no consumer of their topic in their worker.
    lonely = Workload(rate=100, topics=2, producers=6, consumers=4, workers=3)
    assert topics_without_consumers(lonely) == [(1, 0), (2, 1)]
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(_scenario(topics=2, producers=6, consumers=4, workers=3), "t.toml")
    assert err.value.field == "workload.topics" and "worker 1" in str(err.value)


def test_losses_are_sorted_per_topic_against_each_topics_own_reread() -> None:
    asyncio.run(_sorted_per_topic())


async def _sorted_per_topic() -> None:
    from bench.drivers.base import DriverContext
    from bench.drivers.memory import MemoryConfig, MemoryDriver

    driver = MemoryDriver(MemoryConfig(driver="memory"), DriverContext())
    topology = Topology(
        name="eb-t", partitions=1, producers=2, consumers=0, consumer_group="eb-t-g", topics=2
    )
    for topic in topic_topologies(topology):
        await driver.prepare(topic)
    # Producer 1 writes topic 1; its seq 0 is stored there, seq 1 never was.
    from bench.workload import EventFactory

    factory = EventFactory(Workload(rate=100, producers=2, consumers=0), 1, seed=1)
    # A group that never reads: the in-process broker keeps what it owes the group.
    await driver.consumer(topic_topology(topology, 1), 0, lambda msg: None)
    producer = await driver.producer(topic_topology(topology, 1), 1)
    await producer.send(factory.next(0))
    lost = {1: np.array([0, 1]), 0: np.array([], dtype=np.int64)}
    result = await reread.classify_topics(driver, topology, lost, 5.0)
    assert result["not_delivered"] == 1 and result["not_stored"] == 1
