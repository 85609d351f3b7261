"""The fault timeline of a point the coordinator runs itself (sagas, engine/saga.py).

The point's clients live in the coordinator process, so the faults act on what they talk to
from here, on the point's own clock (``t0_ns``, the start of its load):

* a target that ``bench up`` manages (a broker; a saga's state store with ``on = "store"``)
  through :class:`~bench.faults.inject.FaultInjector`, a thread, as for a stream point. The
  connections a ``disconnect`` drops are this process's own;
* an in-process target (memory) acts its faults out itself on the event loop
  (``InProcessFaults.inject_fault``), as a stream point's workers do.

``events()`` gives what each fault did, in the scenario's order, in the injector's shape
(``FaultEvent``), for ``bench.faults.figures.coordinator_fault_rows``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from bench.drivers.base import InProcessFaults, load_driver, runs_in_process
from bench.faults.inject import FaultInjector, check_faultable
from bench.scenario import Fault, RunPoint

WAIT_MARGIN_S = 60.0  # beyond the last fault's scheduled end: the time to bring a service back


class CoordinatorFaults:
    """Acts out a coordinator point's ``[[faults]]``. Built before anything connects: a fault
    on a target eventbench cannot fault is a ``BenchError`` then, before the load."""

    def __init__(self, point: RunPoint) -> None:
        self.faults: list[Fault] = list(point.scenario.faults)
        self.target_faults = [f for f in self.faults if f.on == "target"]
        self.store_faults = [f for f in self.faults if f.on == "store"]
        self.in_process = bool(self.target_faults) and runs_in_process(load_driver(point.driver))
        self._target_handle = (
            check_faultable(point.driver) if self.target_faults and not self.in_process else None
        )
        self._store_handle = None
        if self.store_faults:
            assert point.store_driver is not None  # validated: a store fault names saga.store
            self._store_handle = check_faultable(point.store_driver)
        self.t0_ns = 0
        self._injectors: list[tuple[FaultInjector, list[Fault]]] = []
        self._task: asyncio.Task[None] | None = None
        self._in_process_events: list[dict[str, Any]] = []
        self._stopped = False

    def __bool__(self) -> bool:
        return bool(self.faults)

    def start(self, t0_ns: int, driver: Any) -> None:
        """Start the timeline: each fault at ``t0_ns`` + its ``at``; ``driver`` is the point's
        connected target (an in-process one acts its faults out itself)."""
        self.t0_ns = t0_ns
        pids = [os.getpid()]
        for faults, handle in (
            (self.target_faults, self._target_handle),
            (self.store_faults, self._store_handle),
        ):
            if handle is not None:
                injector = FaultInjector(faults, handle, t0_ns, lambda: pids)
                injector.start()
                self._injectors.append((injector, faults))
        if self.in_process:
            if not isinstance(driver, InProcessFaults):
                raise TypeError(f"{type(driver).__name__} cannot act out faults itself")
            driver.arm_faults()  # track publishes in flight from the start, for a kill
            self._task = asyncio.get_running_loop().create_task(self._act_in_process(driver))

    async def _act_in_process(self, driver: InProcessFaults) -> None:
        for fault in self.target_faults:
            due_s = (self.t0_ns + int(float(fault.at) * 1e9) - time.monotonic_ns()) / 1e9
            if due_s > 0:
                await asyncio.sleep(due_s)
            event: dict[str, Any] = {"started_ns": time.monotonic_ns(), "status": "not reached"}
            self._in_process_events.append(event)
            try:
                event["detail"] = await driver.inject_fault(fault.action, fault.down_for_s)
                event["status"] = "done"
            except asyncio.CancelledError:
                # Cut short by the point stopping: the driver brought itself back.
                event["status"] = "done"
                event["detail"] = f"{fault.action}: cut short when the point stopped"
                event["restored_ns"] = time.monotonic_ns()
                raise
            except Exception as exc:
                event["status"] = "failed"
                event["detail"] = f"{fault.action}: {type(exc).__name__}: {exc}"
            event["restored_ns"] = time.monotonic_ns()

    def running(self) -> bool:
        """Whether a fault is still due or still down."""
        if self._task is not None and not self._task.done():
            return True
        return any(injector.running() for injector, _ in self._injectors)

    async def wait(self, stop: Callable[[], bool]) -> None:
        """Until the last fault has been acted out and its target is back, or ``stop()`` (a
        Ctrl-C); bounded by the last fault's scheduled end plus a margin. ``stop`` brings back
        what is still down."""
        end = max((float(f.at) + f.down_for_s for f in self.faults), default=0.0)
        deadline = self.t0_ns + int((end + WAIT_MARGIN_S) * 1e9)
        while self.running() and time.monotonic_ns() < deadline and not stop():
            await asyncio.sleep(0.05)

    async def stop(self) -> list[str]:
        """Stop acting and bring back whatever is down; the problems, as lines."""
        if self._stopped:
            return []
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        problems: list[str] = []
        for injector, _ in self._injectors:
            problems.extend(await asyncio.to_thread(injector.stop))
        for event in self._in_process_events:
            if event["status"] == "failed":
                problems.append(f"fault ({event.get('detail')}) failed")
        return problems

    def events(self) -> list[dict[str, Any]]:
        """What each fault did, in the scenario's order (``FaultEvent`` fields, monotonic ns)."""
        by_fault: dict[int, dict[str, Any]] = {}
        for injector, faults in self._injectors:
            for fault, event in zip(faults, injector.events, strict=True):
                index = next(i for i, f in enumerate(self.faults) if f is fault)
                by_fault[index] = dataclasses.asdict(dataclasses.replace(event, index=index))
        if self.in_process:
            for position, fault in enumerate(self.target_faults):
                index = next(i for i, f in enumerate(self.faults) if f is fault)
                acted = (
                    self._in_process_events[position]
                    if position < len(self._in_process_events)
                    else {}
                )
                by_fault[index] = {
                    "index": index,
                    "action": fault.action,
                    "at_s": float(fault.at),
                    "down_for_s": fault.down_for_s,
                    "service": "memory",
                    "endpoint": "in-process",
                    "status": acted.get("status", "not reached"),
                    "detail": acted.get("detail", ""),
                    "started_ns": acted.get("started_ns"),
                    "down_ns": acted.get("started_ns"),
                    "restored_ns": acted.get("restored_ns"),
                    "answering_ns": acted.get("restored_ns"),
                    "problems": [],
                }
        return [by_fault[i] for i in sorted(by_fault)]
