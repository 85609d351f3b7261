import pytest

from bench.domain import ADD, CANCEL, CONFIRM, PLACE, SHIP, OrderState, decide, fold, next_command


def apply(state, command):
    types = decide(state, command)
    assert types is not None, (state.status, command)
    for event_type in types:
        fold(state, event_type, {"qty": 2, "price_cents": 150})
    return state


def test_an_order_goes_through_its_lifecycle_and_the_next_one_starts():
    state = OrderState()
    for command in (PLACE, ADD, ADD, CONFIRM, SHIP):
        apply(state, command)
    assert (state.status, state.items, state.total_cents, state.version) == ("shipped", 4, 600, 5)
    apply(state, PLACE)
    assert (state.status, state.order_no, state.items) == ("placed", 2, 0)


@pytest.mark.parametrize(
    ("status", "command"),
    [
        ("none", ADD),
        ("none", SHIP),
        ("placed", SHIP),
        ("placed", PLACE),
        ("confirmed", ADD),
        ("shipped", CANCEL),
        ("cancelled", SHIP),
    ],
)
def test_invalid_transitions_are_business_rejections(status, command):
    assert decide(OrderState(status=status), command) is None


def test_commands_mostly_follow_the_lifecycle():
    import random

    rng = random.Random(1)
    rejected = 0
    state = OrderState()
    for _ in range(5000):
        types = decide(state, next_command(state, rng.random()))
        if types is None:
            rejected += 1
            continue
        for event_type in types:
            fold(state, event_type)
    assert 0.01 < rejected / 5000 < 0.06
    assert state.order_no > 100
