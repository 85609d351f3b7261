"""SendTurns: one producer's sends reach the client library in the order their events were
built, however their slots wake, and a chain of waiting slots is released in one go."""

from __future__ import annotations

import asyncio

from bench.engine.workers import SendTurns


async def _slot(turns: SendTurns, seq: int, delay_s: float, sent: list[int]) -> None:
    await asyncio.sleep(delay_s)
    while turns.next_seq != seq:
        await turns.wait(seq)
    turns.taken(seq)
    sent.append(seq)  # stands for the synchronous part of the client library's send


def test_sends_go_in_event_order_whatever_order_the_slots_wake() -> None:
    async def main() -> tuple[list[int], int]:
        turns, sent = SendTurns(), []
        # Event 0's slot wakes last; the others find their predecessor not yet sent.
        delays = [0.03, 0.0, 0.02, 0.0, 0.01, 0.0, 0.0, 0.005]
        await asyncio.gather(*(_slot(turns, i, d, sent) for i, d in enumerate(delays)))
        return sent, turns.waits

    sent, waits = asyncio.run(main())
    assert sent == list(range(8))
    assert waits >= 5


def test_a_chain_of_waiting_slots_is_released_in_one_loop_iteration() -> None:
    async def main() -> int:
        turns, sent = SendTurns(), []
        waiters = [asyncio.create_task(_slot(turns, i, 0.0, sent)) for i in range(1, 65)]
        for _ in range(3):
            await asyncio.sleep(0)  # every waiter parks behind event 0
        assert sent == [] and turns.waits == 64
        iterations = 0
        turns.taken(0)
        while len(sent) < 64:
            await asyncio.sleep(0)
            iterations += 1
        await asyncio.gather(*waiters)
        assert sent == list(range(1, 65))
        return iterations

    # One send per iteration (waking only the next waiter) would take 64 iterations.
    assert asyncio.run(main()) <= 2
