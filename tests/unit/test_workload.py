import json
import re
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


_TIMESTAMP = re.compile(rb'"timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"')


def _without_timestamp(value: bytes) -> bytes:
    stripped, n = _TIMESTAMP.subn(b'"timestamp":""', value)
    assert n == 1, value[:200]
    return stripped


def test_the_same_seed_gives_the_same_bodies_and_another_seed_other_ones():
    w = Workload(
        keys="zipf:1.1",
        aggregates=50,
        event_types={"OrderPlaced": 0.5, "OrderShipped": 0.3, "X": 0.2},
        payload_bytes=PayloadDistribution(min=300, max=5000),
    )
    n = 9000  # more than one batch of draws and of event ids
    bodies = [[_without_timestamp(m.value) for m in _events(w, n=n, seed=s)[1]] for s in (5, 5, 6)]
    assert bodies[0] == bodies[1]
    assert sum(a != c for a, c in zip(bodies[0], bodies[2], strict=True)) > n * 0.9


def test_bodies_are_exactly_the_field_by_field_json_encoding():
    w = Workload(
        aggregates=7,
        aggregate_type="Cart",
        event_types={"ItemAdded": 0.7, "CartCheckedOut": 0.3},
        payload_bytes=PayloadDistribution(min=400, max=70_000),
    )
    factory, events = _events(w, n=5000, seed=3, producer=70_001)
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for msg in events:
        body = json.loads(msg.value)
        timestamp = body["timestamp"]
        correlation = first.setdefault(msg.key, msg.event_id)
        head = (
            f'{{"event_id":"{msg.event_id}","event_type":"{msg.event_type}",'
            f'"aggregate_id":"{msg.key}","aggregate_type":"Cart","version":{msg.key_seq},'
            f'"timestamp":"{timestamp}","metadata":{{"correlation_id":"{correlation}",'
            f'"causation_id":"{last.get(msg.key, msg.event_id)}","producer":70001}},'
            f'"payload":{{"pad":"'
        )
        pad = len(msg.value) - len(head) - 3
        assert pad >= 0
        assert msg.value == (head + "x" * pad + '"}}').encode()
        assert msg.correlation_id == correlation and msg.producer_id == 70_001
        last[msg.key] = msg.event_id
    assert max(len(m.value) for m in events) > 65_536  # beyond the shared padding
    assert factory.oversize == 0


def test_an_event_too_small_for_its_fields_is_counted_oversize():
    factory, events = _events(Workload(payload_bytes=100), n=300)
    assert factory.oversize == 300
    for msg in events:
        assert json.loads(msg.value)["payload"] == {"pad": ""}


def test_a_pinned_body():
    factory = EventFactory(
        Workload(aggregates=1, event_types={"OrderPlaced": 1}, payload_bytes=400), 2, 9
    )
    factory.next(0)
    msg = factory.next(1)
    head = (
        b'{"event_id":"8ff34739-0002-4000-8000-000000000001","event_type":"OrderPlaced",'
        b'"aggregate_id":"order-00000000","aggregate_type":"Order","version":2,"timestamp":"",'
        b'"metadata":{"correlation_id":"8ff34739-0002-4000-8000-000000000000",'
        b'"causation_id":"8ff34739-0002-4000-8000-000000000000","producer":2},"payload":{"pad":"'
    )
    assert _without_timestamp(msg.value) == head + b"x" * (400 - 24 - len(head) - 3) + b'"}}'


def test_event_ids_stay_unique_and_ordered_across_id_batches():
    _, events = _events(Workload(), n=4096 * 2 + 5)
    ids = [m.event_id for m in events]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    assert [int(i.rsplit("-", 1)[1], 16) for i in ids] == list(range(len(ids)))


def test_the_ledger_keeps_intended_times_when_asked():
    from bench.metrics.audit import ProducerLedger

    ledger = ProducerLedger(0, track_intended=True)
    factory = EventFactory(Workload(), 0, 1, ledger)
    for i in range(10):
        factory.next(1000 + i)
    assert list(ledger.intended) == [1000 + i for i in range(10)]
    assert bytes(ledger.acks) == bytes(10) and len(ledger.keys) == 10


# --- OMB's keys and payloads (issue 20)


def test_round_robin_keys_cycle_through_every_aggregate_from_each_producers_offset():
    workload = Workload(aggregates=50, keys="round_robin")
    _, first = _events(workload, n=150, producer=0)
    _, second = _events(workload, n=150, producer=1)
    keys = [msg.key for msg in first]
    # Each aggregate in turn: 50 distinct keys, each exactly three times, in a fixed cycle.
    assert Counter(keys) == {key: 3 for key in set(keys)} and len(set(keys)) == 50
    assert keys[:50] == keys[50:100] == keys[100:]
    assert second[0].key != first[0].key  # producers do not move in step
    # Per-key versions still count up by one: the audit judges their order.
    versions: dict[str, int] = {}
    for msg in first:
        assert msg.key_seq == versions.get(msg.key, 0) + 1
        versions[msg.key] = msg.key_seq


def test_randomized_payloads_are_random_then_zeros_from_a_pool():
    workload = Workload(payload_bytes=1000, payload_random=0.25, payload_pool=8)
    _, events = _events(workload, n=64)
    bodies = [msg.value for msg in events]
    assert all(len(body) == 1000 for body in bodies)
    assert len(set(bodies)) == 8  # the pool, in turn
    for body in bodies:
        assert body[250:] == bytes(750) and body[:250] != bytes(250)


def test_a_payload_file_is_every_messages_body(tmp_path):
    path = tmp_path / "payload.data"
    path.write_bytes(bytes(range(256)) * 4)
    _, events = _events(Workload(payload_bytes=1024, payload_file=str(path)), n=10)
    assert {msg.value for msg in events} == {path.read_bytes()}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"payload_random": 0.5, "payload_file": "x"}, "not both"),
        ({"payload_random": 0.5, "kind": "store"}, "raw message bodies are for streams"),
        ({"payload_random": 0.5, "apply": "naive"}, "needs JSON events"),
        ({"keys": "round_robin", "kind": "store"}, "is for streams"),
        (
            {
                "payload_random": 0.5,
                "payload_bytes": {"distribution": "uniform", "min": 1, "max": 9},
            },
            "one size",
        ),
        ({"payload_random": 1.0, "payload_bytes": 64 * 2**20}, "MiB per producer"),
    ],
)
def test_raw_payloads_that_cannot_run_are_refused(fields, words):
    with pytest.raises(ValueError, match=words):
        Workload(**fields)


def test_a_relative_payload_file_is_the_scenario_files_directorys(tmp_path):
    from bench.errors import ScenarioError
    from bench.scenario import expand, load_scenario

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.bin").write_bytes(b"x" * 10)
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[scenario]\nname = "p"\n\n[workload]\npayload_bytes = 10\npayload_file = "data/p.bin"\n\n'
        '[targets.memory]\ndriver = "memory"\n'
    )
    loaded = load_scenario(scenario)
    assert loaded.workload.payload_file == str(tmp_path / "data" / "p.bin")
    expand(loaded)
    scenario.write_text(scenario.read_text().replace("data/p.bin", "data/none.bin"))
    with pytest.raises(ScenarioError, match="not a readable file") as caught:
        expand(load_scenario(scenario))
    assert caught.value.field == "workload.payload_file"
