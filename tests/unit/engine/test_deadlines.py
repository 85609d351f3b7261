"""One watchdog bounds every send by send_timeout (engine/deadlines.py)."""

import asyncio
import time

from bench.engine.deadlines import SendDeadlines


def test_a_send_that_never_completes_expires_and_one_that_completes_does_not():
    async def main():
        deadlines = SendDeadlines(0.2)
        outcomes = {}

        async def slot(name: str, send_s: float | None):
            task = asyncio.current_task()
            start = time.monotonic_ns()
            deadlines.begin(task, start)
            try:
                if send_s is None:
                    await asyncio.get_running_loop().create_future()  # never acknowledged
                else:
                    await asyncio.sleep(send_s)
                deadlines.end(task)
                outcomes[name] = ("ok", time.monotonic_ns() - start)
            except asyncio.CancelledError:
                assert deadlines.expired(task)
                outcomes[name] = ("expired", time.monotonic_ns() - start)
            # The slot is not cancelled any more: it goes on awaiting.
            await asyncio.sleep(0.01)
            outcomes[name + " after"] = "ran"

        watchdog = asyncio.create_task(deadlines.watch())
        await asyncio.gather(slot("stuck", None), slot("quick", 0.05), slot("stuck2", None))
        watchdog.cancel()
        return outcomes

    outcomes = asyncio.run(main())
    assert outcomes["quick"][0] == "ok"
    for name in ("stuck", "stuck2"):
        state, took_ns = outcomes[name]
        assert state == "expired"
        # Never before the deadline, at most a period (20 ms here) and scheduling after it.
        assert 0.2e9 <= took_ns < 1.5e9
        assert outcomes[name + " after"] == "ran"


def test_a_cancellation_that_is_not_the_watchdogs_is_not_swallowed():
    async def main():
        deadlines = SendDeadlines(30.0)
        task_box = {}

        async def slot():
            task_box["task"] = task = asyncio.current_task()
            deadlines.begin(task, time.monotonic_ns())
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                assert not deadlines.expired(task)
                raise

        task = asyncio.create_task(slot())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(main()) == "cancelled"


def test_only_the_overdue_are_expired_oldest_first():
    deadlines = SendDeadlines(1.0)

    class FakeTask:  # the watchdog only asks done() and calls cancel()
        def __init__(self):
            self.cancelled = False

        def done(self):
            return False

        def cancel(self):
            self.cancelled = True

    tasks = [FakeTask() for _ in range(4)]
    for i, task in enumerate(tasks):
        deadlines.begin(task, i * 1_000_000_000)  # deadlines 1 s, 2 s, 3 s, 4 s
    deadlines.end(tasks[1])
    assert deadlines.expire_due(3_000_000_000) == 2  # the first and the third
    assert [t.cancelled for t in tasks] == [True, False, True, False]
    assert deadlines.expire_due(3_000_000_000) == 0
