import asyncio
import time

import pytest

from bench.drivers.base import Message, StoredEvent, Topology
from bench.drivers.memory import MemoryConfig, MemoryDriver
from bench.timing import PreciseTimer


def _msg(key, seq, key_seq=1):
    return Message(key, b"v", "T", f"id-{seq}", f"id-{seq}", 0, seq, key_seq, time.monotonic_ns())


TOPO = Topology(name="t", partitions=4, producers=1, consumers=2, consumer_group="g")


async def _setup(config=None, consumers=2):
    driver = MemoryDriver(config or MemoryConfig())
    await driver.prepare(TOPO)
    received = [[] for _ in range(consumers)]
    cons = []
    for i in range(consumers):
        c = await driver.consumer(TOPO, i, received[i].append)
        await c.start()
        cons.append(c)
    return driver, await driver.producer(TOPO, 0), cons, received


async def _settle(received, n, timeout=2.0):
    deadline = time.monotonic() + timeout
    while sum(map(len, received)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


def test_a_consumer_group_shares_partitions_and_keeps_per_key_order():
    async def main():
        driver, producer, consumers, received = await _setup()
        counters: dict[str, int] = {}
        for seq in range(400):
            key = f"k{seq % 13}"
            counters[key] = counters.get(key, 0) + 1
            await producer.send(_msg(key, seq, counters[key]))
        await _settle(received, 400)
        for c in consumers:
            await c.stop()
        await driver.close()
        return received

    received = asyncio.run(main())
    assert sum(map(len, received)) == 400
    assert all(received), "both consumers got partitions"
    keys_by_consumer = [{m.key for m in r} for r in received]
    assert not keys_by_consumer[0] & keys_by_consumer[1], "a key lives in one partition"
    for r in received:
        last: dict[str, int] = {}
        for m in r:
            assert m.key_seq > last.get(m.key, 0)
            last[m.key] = m.key_seq


def test_injected_service_time_delays_the_ack_precisely():
    async def main():
        driver, producer, _consumers, _received = await _setup(MemoryConfig(service_time="2ms"))
        samples, baseline = [], []
        timer = PreciseTimer.acquire()
        for seq in range(50):
            start = time.monotonic_ns()
            await producer.send(_msg("k", seq))
            samples.append(time.monotonic_ns() - start)
            # The platform's own floor: the same exact 2 ms wait and resumption, no driver.
            start = time.monotonic_ns()
            await timer.sleep_until(start + 2_000_000, exact=True)
            baseline.append(time.monotonic_ns() - start)
        timer.release()
        await driver.close()
        return sorted(samples), sorted(baseline)

    samples, baseline = asyncio.run(main())
    median = samples[len(samples) // 2]
    floor = baseline[len(baseline) // 2] - 2_000_000
    # Never early; late by no more than this machine's own wake-up and resumption, plus 5%
    # (the driver's own bookkeeping: tens of µs on this VM).
    assert 2_000_000 <= median < 2_100_000 + floor, (median, floor)


def test_a_partition_is_never_overtaken_even_with_jitter():
    async def main():
        driver, producer, _consumers, received = await _setup(
            MemoryConfig(service_time="500us", jitter="2ms"), consumers=1
        )
        await asyncio.gather(*(producer.send(_msg("same", s, s + 1)) for s in range(100)))
        await _settle(received, 100)
        await driver.close()
        return received[0]

    got = asyncio.run(main())
    assert [m.key_seq for m in got] == list(range(1, 101))


def test_drops_and_duplicates_are_injected_and_counted():
    async def main():
        driver, producer, _consumers, received = await _setup(
            MemoryConfig(drop_rate=0.1, duplicate_rate=0.05, seed=3), consumers=1
        )
        for seq in range(2000):
            await producer.send(_msg(f"k{seq % 7}", seq))
        info = await driver.describe()
        await _settle(received, 2000 - info["injected"]["dropped"] + info["injected"]["duplicated"])
        await driver.close()
        return info, received[0]

    info, got = asyncio.run(main())
    dropped, duplicated = info["injected"]["dropped"], info["injected"]["duplicated"]
    assert 100 < dropped < 300 and 40 < duplicated < 160
    assert len(got) == 2000 - dropped + duplicated
    assert len({m.seq for m in got}) == 2000 - dropped


def test_event_store_appends_with_expected_version_and_detects_conflicts():
    async def main():
        driver = MemoryDriver(MemoryConfig())
        await driver.prepare_store()

        def ev(i):
            return StoredEvent(f"e{i}", "", "Order", "OrderPlaced", 0, b"{}")

        assert (await driver.append("a", [ev(1), ev(2)], 0)).committed
        conflict = await driver.append("a", [ev(3)], 0)
        assert not conflict.committed and conflict.version == 2
        assert (await driver.append("a", [ev(4)], 2)).version == 3
        loaded = await driver.load("a")
        assert [e.version for e in loaded] == [1, 2, 3]
        assert await driver.verify() == []
        return driver.conflicts

    assert asyncio.run(main()) == 1


@pytest.mark.parametrize("field", ["drop_rate", "duplicate_rate"])
def test_rates_out_of_range_are_rejected(field):
    with pytest.raises(ValueError):
        MemoryConfig(**{field: 1.5})


def test_a_group_that_joins_after_publishing_began_gets_what_follows():
    async def main():
        driver, producer, _consumers, received = await _setup(consumers=1)
        for seq in range(50):
            await producer.send(_msg(f"k{seq % 5}", seq))
        late: list[Message] = []
        topo = Topology(name="t", partitions=4, producers=1, consumers=1, consumer_group="late")
        consumer = await driver.consumer(topo, 0, late.append)
        await consumer.start()
        for seq in range(50, 80):
            await producer.send(_msg(f"k{seq % 5}", seq))
        await _settle([received[0], late], 80 + 30)
        await driver.close()
        return received[0], late

    first, late = asyncio.run(main())
    assert sorted(m.seq for m in first) == list(range(80))
    assert sorted(m.seq for m in late) == list(range(50, 80))


def test_a_full_partition_holds_the_publish_until_the_consumer_takes_from_it():
    async def main():
        driver = MemoryDriver(MemoryConfig(max_backlog=3))
        await driver.prepare(TOPO)
        producer = await driver.producer(TOPO, 0)
        received: list[Message] = []
        consumer = await driver.consumer(TOPO, 0, received.append)  # not started yet
        for seq in range(3):
            await producer.send(_msg("k", seq))
        blocked = asyncio.ensure_future(producer.send(_msg("k", 3)))
        await asyncio.sleep(0.01)
        held = not blocked.done()
        await consumer.start()
        await asyncio.wait_for(blocked, 1)
        await _settle([received], 4)
        await consumer.stop()
        return held, [m.seq for m in received]

    held, seqs = asyncio.run(main())
    assert held, "the fourth publish waited for room"
    assert seqs == [0, 1, 2, 3]


def test_a_pause_holds_plain_publishes_and_lets_them_through_in_order():
    async def main():
        driver, producer, _consumers, received = await _setup(consumers=1)
        for seq in range(10):
            await producer.send(_msg("k", seq, seq + 1))
        pause = asyncio.ensure_future(driver.inject_fault("pause", 0.05))
        await asyncio.sleep(0)
        sends = [asyncio.ensure_future(producer.send(_msg("k", s, s + 1))) for s in range(10, 20)]
        await asyncio.sleep(0.02)
        during = len(received[0])
        held = not any(s.done() for s in sends)
        await pause
        await asyncio.gather(*sends)
        await _settle(received, 20)
        await driver.close()
        return during, held, [m.key_seq for m in received[0]]

    during, held, key_seqs = asyncio.run(main())
    assert during == 10 and held
    assert key_seqs == list(range(1, 21))
