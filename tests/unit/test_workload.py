import json
from collections import Counter

import numpy as np
import pytest

from bench.scenario import PayloadDistribution, Workload
from bench.workload import EventFactory, key_probabilities


def _events(workload, n=2000, seed=1, producer=0):
    factory = EventFactory(workload, producer, seed)
    return factory, [factory.next(i) for i in range(n)]


def test_events_have_the_domain_event_shape_and_exact_size():
    _, events = _events(Workload(payload_bytes=1024), n=50)
    for msg in events:
        assert len(msg.value) == 1024
        body = json.loads(msg.value)
        assert set(body) == {
            "event_id",
            "event_type",
            "aggregate_id",
            "aggregate_type",
            "version",
            "timestamp",
            "metadata",
            "payload",
        }
        assert body["event_id"] == msg.event_id and body["aggregate_id"] == msg.key
        assert body["version"] == msg.key_seq
        assert set(body["metadata"]) >= {"correlation_id", "causation_id"}


def test_versions_and_causation_chain_per_aggregate():
    _, events = _events(Workload(aggregates=5), n=200)
    last: dict[str, tuple[int, str]] = {}
    for msg in events:
        body = json.loads(msg.value)
        if msg.key in last:
            version, event_id = last[msg.key]
            assert msg.key_seq == version + 1
            assert body["metadata"]["causation_id"] == event_id
        else:
            assert msg.key_seq == 1
        last[msg.key] = (msg.key_seq, msg.event_id)


def test_generation_is_deterministic_for_a_seed():
    w = Workload(keys="zipf:1.2", payload_bytes=PayloadDistribution(min=100, max=900))
    _, a = _events(w, seed=5)
    _, b = _events(w, seed=5)
    _, c = _events(w, seed=6)
    strip = lambda m: (m.key, m.event_type, m.event_id, len(m.value))  # noqa: E731
    assert [strip(m) for m in a] == [strip(m) for m in b]
    assert [strip(m) for m in a] != [strip(m) for m in c]


def test_event_ids_are_unique_across_producers():
    w = Workload()
    ids = {m.event_id for p in range(3) for m in _events(w, n=500, producer=p)[1]}
    assert len(ids) == 1500


def test_event_type_mix_follows_the_weights():
    w = Workload(event_types={"A": 0.7, "B": 0.3})
    _, events = _events(w, n=20000)
    share = Counter(m.event_type for m in events)["A"] / 20000
    assert share == pytest.approx(0.7, abs=0.02)


def test_hot_keys_get_their_share():
    w = Workload(aggregates=1000, keys="hot:0.01:0.9")
    _, events = _events(w, n=20000)
    hot = sum(1 for m in events if int(m.key.rsplit("-", 1)[1]) < 10)
    assert hot / 20000 == pytest.approx(0.9, abs=0.02)


def test_zipf_is_skewed_towards_the_first_keys():
    probs = key_probabilities("zipf:1.0", 100)
    assert probs is not None and probs.sum() == pytest.approx(1.0)
    assert probs[0] / probs[9] == pytest.approx(10.0)


def test_payload_distribution_stays_within_bounds():
    w = Workload(
        payload_bytes=PayloadDistribution(
            distribution="lognormal", mean=800, sigma=0.4, min=400, max=2000
        )
    )
    _, events = _events(w, n=3000)
    sizes = np.array([len(m.value) for m in events])
    assert sizes.min() >= 400 and sizes.max() <= 2000
    assert sizes.mean() == pytest.approx(800, rel=0.1)


def test_the_ledger_records_every_message_built():
    factory, _ = _events(Workload(), n=100)
    assert len(factory.ledger.acks) == 100 and len(factory.ledger.keys) == 100
