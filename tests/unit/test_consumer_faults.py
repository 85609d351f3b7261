"""Consumer faults (kill_consumer, restart_consumer), workload.apply and the redelivery audit:
what a scenario may ask for, what each driver refuses in one line, and the counts."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.drivers.base import Message, Topology
from bench.drivers.memory import MemoryConfig, MemoryDriver
from bench.engine.consumer_apply import StreamReadModel, apply_figures
from bench.errors import ScenarioError
from bench.metrics.audit import redelivered
from bench.scenario import expand, load_scenario
from bench.verdict import judge

STREAM = """
[scenario]
name = "t"
duration = "5s"

[workload]
rate = 1000
consumers = 2
{workload}

[[faults]]
at = "2s"
action = "kill_consumer"

[targets.t]
{target}
"""


def _load(tmp_path: Path, target: str, workload: str = "") -> None:
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(STREAM.format(target=target, workload=workload)))
    expand(load_scenario(path), str(path))


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ('driver = "kafka"', "needs commit = 'explicit'"),
        ('driver = "kafka"\ncommit = "explicit"\nclient = "confluent"', "client = 'aiokafka'"),
        ('driver = "rabbitmq"\nack = "auto"', "needs ack = 'manual'"),
        ('driver = "rabbitmq"\nqueue_type = "stream"', "stream queues"),
        ('driver = "nats"\nack_policy = "all"', "ack_policy = 'explicit'"),
        ('driver = "nats"\nconsumer_type = "push"', "pull consumers"),
    ],
)
def test_a_consumer_kill_a_driver_cannot_act_out_is_one_line(
    tmp_path: Path, target: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        _load(tmp_path, target)
    text = str(caught.value)
    assert "faults.0.action" in text and words in text and "\n" not in text


def test_consumer_kills_the_drivers_can_act_out_are_accepted(tmp_path: Path) -> None:
    _load(tmp_path, 'driver = "memory"\ncommit_every = 100', 'apply = "guarded"')
    _load(tmp_path, 'driver = "kafka"\ncommit = "explicit"\ncommit_every = 100')
    _load(tmp_path, 'driver = "rabbitmq"\nack_every = 100')
    _load(tmp_path, 'driver = "nats"\nack_every = 100')


@pytest.mark.parametrize(
    ("workload", "words"),
    [
        ('kind = "store"', "consumers of a stream workload"),
        ("consumers = 0", "consumers of a stream workload"),
    ],
)
def test_consumer_faults_need_consumers_of_a_stream(
    tmp_path: Path, workload: str, words: str
) -> None:
    text = STREAM.format(target='driver = "memory"', workload="").replace("consumers = 2", workload)
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ScenarioError, match=words):
        load_scenario(path)


def test_consumer_and_target_faults_do_not_share_a_timeline(tmp_path: Path) -> None:
    text = STREAM.format(target='driver = "memory"', workload="") + textwrap.dedent(
        """
        [[faults]]
        at = "4s"
        action = "pause"
        down_for = "0.5s"
        """
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match="cannot share a timeline"):
        load_scenario(path)


def test_apply_needs_stream_consumers(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "t"\n[workload]\nconsumers = 0\napply = "naive"\n'
        '[targets.m]\ndriver = "memory"\n'
    )
    with pytest.raises(ScenarioError, match="apply"):
        load_scenario(path)


def test_broker_options_that_cannot_work_are_refused() -> None:
    from bench.drivers.kafka.config import KafkaConfig
    from bench.drivers.rabbitmq import RabbitMQConfig

    with pytest.raises(ValueError, match="commit = 'explicit'"):
        KafkaConfig(driver="kafka", commit_every=10)
    with pytest.raises(ValueError, match="larger than prefetch"):
        RabbitMQConfig(driver="rabbitmq", prefetch=10, ack_every=20)


def _message(producer: int, seq: int, key: str = "a") -> Message:
    return Message(key, b"", "OrderPlaced", f"e{producer}-{seq}", "", producer, seq, seq + 1, 0)


def test_the_read_model_applies_every_delivery_unless_guarded() -> None:
    deliveries = [_message(0, 0), _message(0, 1), _message(0, 0), _message(0, 1)]
    naive, guarded = StreamReadModel(guarded=False), StreamReadModel(guarded=True)
    applied = [naive.apply(m) for m in deliveries]
    skipped = [guarded.apply(m) for m in deliveries]
    assert applied == [True] * 4 and naive.summaries["a"][0] == 4  # counted twice
    assert skipped == [True, True, False, False] and guarded.summaries["a"][0] == 2
    # Two distinct events received: what was applied beyond one each is applied twice.
    assert apply_figures("naive", [naive.export()], 2)["duplicates_applied"] == 2
    figures = apply_figures("guarded", [guarded.export()], 2)
    assert figures["duplicates_applied"] == 0 and figures["duplicates_skipped"] == 2
    # A guard per worker process: the same event applied in two workers is applied twice.
    one, other = StreamReadModel(guarded=True), StreamReadModel(guarded=True)
    one.apply(_message(0, 0))
    other.apply(_message(0, 0))
    assert apply_figures("guarded", [one.export(), other.export()], 1)["duplicates_applied"] == 1


def _ledger(counts: list[int]) -> tuple[dict[int, bytes], int, dict[str, int]]:
    return {0: np.asarray(counts, dtype=np.uint8).tobytes()}, 0, {}


def test_redelivered_counts_owed_messages_received_again() -> None:
    # seq 0 owed and received twice; seq 1 owed, received once (its ack landed after all);
    # seq 2 not owed, received twice (the broker's duplicate); seq 3 owed by two kills and
    # received three times.
    consumers = [_ledger([2, 1, 2, 3])]
    owed = [(0, 0), (0, 1), (0, 3), (0, 3)]
    assert redelivered(consumers, owed) == 3
    assert redelivered(consumers, []) == 0
    # Received in two workers: the counts add up.
    assert redelivered([_ledger([1]), _ledger([1])], [(0, 0)]) == 1


def test_the_verdict_judges_broker_duplicates_and_duplicates_applied() -> None:
    summary = {
        "status": "ok",
        "kind": "stream",
        "audit": {"duplicated": 10, "redelivered": 10, "broker_duplicates": 0},
        "apply": {"mode": "guarded", "duplicates_applied": 0},
    }
    assert judge(summary).result == "pass"
    summary["audit"]["broker_duplicates"] = 2
    assert judge(summary).reasons == ["broker duplicates 2"]
    summary["audit"]["broker_duplicates"] = 0
    summary["apply"] = {"mode": "naive", "duplicates_applied": 10}
    verdict = judge(summary)
    assert verdict.result == "fail" and "applied 10 duplicates" in verdict.reasons[0]


def test_a_killed_memory_consumer_gives_back_what_it_had_not_committed() -> None:
    async def scenario() -> tuple[list[tuple[int, int]], list[int], list[int]]:
        driver = MemoryDriver(MemoryConfig(driver="memory", commit_every=5, delivery_batch=1))
        await driver.connect()
        topology = Topology(name="t", partitions=1, producers=1, consumers=1, consumer_group="g")
        await driver.prepare(topology)
        first: list[int] = []
        consumer = await driver.consumer(topology, 0, lambda m: first.append(m.seq))
        await consumer.start()
        producer = await driver.producer(topology, 0)
        for seq in range(12):
            await producer.send(_message(0, seq))
        for _ in range(100):
            if len(first) == 12:
                break
            await asyncio.sleep(0.01)
        owed = await consumer.kill()
        again: list[int] = []
        replacement = await driver.consumer(topology, 0, lambda m: again.append(m.seq))
        await replacement.start()
        for _ in range(100):
            if len(again) == len(owed):
                break
            await asyncio.sleep(0.01)
        await replacement.stop()
        await driver.close()
        return owed, first, again

    owed, first, again = asyncio.run(scenario())
    assert first == list(range(12))
    # Committed after 5 and 10 deliveries: 10 and 11 were owed, and come again in order.
    assert owed == [(0, 10), (0, 11)]
    assert again == [10, 11]
