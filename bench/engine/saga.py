"""Sagas (``workload.kind = "saga"``, issue 19): multi-step transactions with compensation,
over a broker, measured end to end.

Both modes run in one process (the coordinator's), through the point's stream driver.
Choreography (``ChoreographyRun``) is described there. Orchestration (``SagaRun``):

* topics: one command topic per step (``<name>-s<k>``), one reply topic, and a dead-letter
  topic. Each step's participant is a consumer group of its command topic;
* the orchestrator starts sagas on the open-loop schedule (``workload.rate`` sagas/s). For step
  k it publishes the step's command and waits for the reply. ``done``: the next step, or
  COMPLETED. ``failed``: COMPENSATING, the compensations of the completed steps published one
  after the other in reverse order; all ``compensated``: COMPENSATED. A compensation that
  fails sends the saga to the dead-letter topic: FAILED. A reply not here within
  ``saga.timeout`` is retried (the same command id) ``saga.retries`` times, then the step is
  taken as failed, and compensated too, since it may have run (a participant compensating a
  step it never ran does nothing);
* a participant is idempotent on the command id: a redelivered or retried command gets the
  outcome the first one got, and nothing runs twice. It draws its outcome from the step's
  knobs: ``failure`` (it says no), ``no_reply`` (it does the step and its reply is lost),
  ``compensation_failure``; it takes ``step_latency`` first.

Faults (``[[faults]]``, bench/faults/coordinator.py) act on the broker, or on the state's
store, on the same clock as the sagas' schedule; each fault's row says which sagas it caught
and how they ended (``_fault_sagas``). A participant that gets a step's compensation before
its command (a timed-out command still on its way) refuses the command when it comes.

The saga state (STARTED at step n, COMPENSATING step n, COMPLETED, COMPENSATED, FAILED) is
kept in the orchestrator's memory and, with ``saga.store``, written to that store before the
command it leads to goes out. Measured: saga latency from the intended start to the final
state (per final state; a final state's write included), each step's latency (the command
decided, its state write included, -> reply handled), compensation latency
(COMPENSATING -> final), the counts, retries and timeouts per step, sagas/s and messages on
the broker per saga. Checked: every saga that started is final or reported stuck (its id and
last step); no step of a COMPENSATED saga is left done; no compensation undid a step that never
ran; dead-letter entries received equal the sagas whose compensation failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.drivers.base import (
    DriverContext,
    Message,
    Producer,
    Topology,
    as_stream,
    load_driver,
)
from bench.faults.coordinator import CoordinatorFaults
from bench.faults.figures import ErrorTimes, coordinator_fault_rows
from bench.metrics.recorder import new_histogram, record_values, stats_us
from bench.scenario import RunPoint, SagaOptions

STARTED, COMPENSATING = "STARTED", "COMPENSATING"
COMPLETED, COMPENSATED, FAILED = "COMPLETED", "COMPENSATED", "FAILED"
FINAL = (COMPLETED, COMPENSATED, FAILED)
DO, UNDO = "do", "undo"
SAMPLES_KEPT = 10
STATE_RETRY_S = 0.1  # between attempts at a saga state write that failed
SEND_RETRY_S = 0.1  # between attempts at a dead letter's or a choreography event's publish


@dataclass
class Saga:
    """One saga as the orchestrator keeps it."""

    saga_id: str
    intended_ns: int
    status: str = STARTED
    step: int = 0  # the step in hand (running, or being compensated)
    done: list[int] = field(default_factory=list)  # steps that replied done, in order
    attempts: int = 0
    sent_ns: int = 0
    compensating_ns: int = 0
    timer: asyncio.TimerHandle | None = None
    dead_lettered: bool = False
    final_ns: int = 0
    writes: int = 0  # state writes begun (saga.store): each one's version
    # Ended by its own timer (its compensation timed out), with no reply through the broker:
    # such an end tells nothing of whether the broker carries sagas again.
    ended_by_timer: bool = False


@dataclass
class Figures:
    started: int = 0
    messages: int = 0
    publish_attempts: int = 0  # every try at a publish (a retried one counts each time)
    final: Counter[str] = field(default_factory=Counter)
    step_ns: dict[str, list[int]] = field(default_factory=dict)
    compensation_ns: list[int] = field(default_factory=list)
    compensations: Counter[str] = field(default_factory=Counter)  # per saga id
    retries: Counter[str] = field(default_factory=Counter)  # per step
    timeouts: Counter[str] = field(default_factory=Counter)
    failed_steps: Counter[str] = field(default_factory=Counter)
    timeout_at: list[int] = field(default_factory=list)  # when each timeout fired (ns)
    retry_at: list[int] = field(default_factory=list)
    compensation_failed: list[str] = field(default_factory=list)
    dead_letters_received: int = 0  # distinct sagas' dead letters
    dead_letter_ids: set[str] = field(default_factory=set)
    dead_letter_duplicates: int = 0  # the same saga's dead letter again (a resent publish)


class Participant:
    """The service of one step: idempotent on the command id, its outcomes drawn once."""

    def __init__(self, index: int, name: str, options: SagaOptions, seed: int) -> None:
        self.index = index
        self.name = name
        self.failure = options.failure.get(name, 0.0)
        self.no_reply = options.no_reply.get(name, 0.0)
        self.compensation_failure = options.compensation_failure.get(name, 0.0)
        self.latency_s = options.latency_of(name)
        self.rng = random.Random(seed * 1000 + index)
        self.outcomes: dict[str, tuple[str, bool]] = {}  # command id -> (outcome, replied)
        self.pending: set[str] = set()  # command ids being worked on (inside step_latency)
        self.done: set[str] = set()  # saga ids whose step ran (and is not undone)
        self.undone: set[str] = set()  # saga ids whose step a compensation undid
        self.ran: set[str] = set()  # every saga id whose step ever ran
        # Saga ids whose compensation came before the step's command (a timed-out command
        # still on its way): the command, when it comes, is refused, never run.
        self.cancelled: set[str] = set()
        self.refused_late = 0
        self.undo_of_never_ran = 0  # compensations that undid a step that never ran: 0
        self.handled = 0
        self.duplicates = 0

    def decide(self, saga_id: str, action: str) -> tuple[str, bool]:
        """The outcome of a command seen for the first time, and whether its reply goes."""
        if action == DO:
            if saga_id in self.cancelled:
                # Compensated before it came (a late command, after a timeout): running it
                # now would leave the step done in a compensated saga.
                self.refused_late += 1
                return "failed", True
            if self.rng.random() < self.failure:
                return "failed", True
            self.done.add(saga_id)
            self.ran.add(saga_id)
            return "done", self.rng.random() >= self.no_reply
        if saga_id not in self.done:
            # Compensating a step that has not run here (a timed-out command lost, or still
            # on its way): nothing to undo, and the command is refused if it comes.
            self.cancelled.add(saga_id)
            return "nothing_to_undo", True
        if self.rng.random() < self.compensation_failure:
            return "compensation_failed", True
        self.done.discard(saga_id)
        self.undone.add(saga_id)
        if saga_id not in self.ran:
            self.undo_of_never_ran += 1
        return "compensated", True


async def _decide_once(
    participant: Participant, command_id: str, saga_id: str, action: str
) -> tuple[str, bool] | None:
    """A participant's outcome for a command, idempotent on its id: the first time it is
    worked on (``step_latency``, then drawn); again, the first outcome with its reply sent
    this time (a reply lost the first time goes now); None while the first is in hand."""
    participant.handled += 1
    if command_id in participant.pending:
        participant.duplicates += 1  # a retry while the first is being worked on
        return None  # the first one answers
    known = participant.outcomes.get(command_id)
    if known is not None:
        participant.duplicates += 1  # retried or redelivered: nothing runs again
        return known[0], True
    participant.pending.add(command_id)
    try:
        if participant.latency_s > 0:
            await asyncio.sleep(participant.latency_s)
        known = participant.decide(saga_id, action)
        participant.outcomes[command_id] = known
    finally:
        participant.pending.discard(command_id)
    return known


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class SagaRun:
    """The orchestrator, the participants and the dead-letter reader of one point."""

    def __init__(self, point: RunPoint, stream: Any, name: str) -> None:
        self.point = point
        self.options = point.workload.saga
        self.stream = stream
        self.name = name
        steps = self.options.steps

        self.command_topics = [self._topology(f"s{k}") for k in range(len(steps))]
        self.reply_topic = self._topology("replies")
        self.dlq_topic = self._topology("dlq")
        self.topics = [*self.command_topics, self.reply_topic, self.dlq_topic]
        seed = point.scenario.scenario.seed
        self.participants = [Participant(k, s, self.options, seed) for k, s in enumerate(steps)]
        self.sagas: dict[str, Saga] = {}
        self.open = 0  # sagas not final yet
        self.figures = Figures()
        self.consumers: list[Any] = []
        self.command_producers: list[Producer] = []
        self.reply_producer: Producer | None = None
        self.dlq_producer: Producer | None = None
        self._seq: Counter[int] = Counter()
        self._queues: list[asyncio.Queue[Message]] = [asyncio.Queue() for _ in steps]
        self._replies: asyncio.Queue[Message] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self.errors: Counter[str] = Counter()
        self.error_at: dict[str, list[int]] = {}  # kind -> when each was counted (monotonic ns)
        # saga.store: where each state is persisted before the command it leads to goes out
        # (None: the orchestrator's memory only).
        self.state: Any = None
        self.state_writes = 0
        # Latencies are kept for the sagas intended from here on (the measurement window's
        # start; run_saga sets it): the warm-up's are run and counted, not measured.
        self.window_start_ns = 0

    def count_error(self, kind: str) -> None:
        """Count an error, and when (the fault rows split the errors at each fault)."""
        self.errors[kind] += 1
        self.error_at.setdefault(kind, []).append(time.monotonic_ns())

    def _topology(self, suffix: str) -> Topology:
        """One of the point's topics: one producer and one consumer group."""
        topic = f"{self.name}-{suffix}"
        return Topology(
            name=topic,
            partitions=self.point.workload.partitions,
            producers=1,
            consumers=1,
            consumer_group=f"{topic}-g",
        )

    # ------------------------------------------------------------------ wiring
    async def setup(self) -> None:
        for topology in self.topics:
            await self.stream.prepare(topology)
        for k, topology in enumerate(self.command_topics):
            queue = self._queues[k]
            self.consumers.append(await self.stream.consumer(topology, 0, queue.put_nowait))
        self.consumers.append(
            await self.stream.consumer(self.reply_topic, 0, self._replies.put_nowait)
        )
        self.consumers.append(await self.stream.consumer(self.dlq_topic, 0, self._on_dead_letter))
        await asyncio.gather(*(c.start() for c in self.consumers))
        for topology in self.command_topics:
            self.command_producers.append(await self.stream.producer(topology, 0))
        self.reply_producer = await self.stream.producer(self.reply_topic, 1)
        self.dlq_producer = await self.stream.producer(self.dlq_topic, 2)
        loop = asyncio.get_running_loop()
        for k in range(len(self.participants)):
            self._tasks.append(loop.create_task(self._participant(k)))
        self._tasks.append(loop.create_task(self._orchestrator()))

    async def close(self, cleanup: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self.consumers:
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception as exc:
                self.count_error(f"consumer_stop:{type(exc).__name__}")
        for producer in [*self.command_producers, self.reply_producer, self.dlq_producer]:
            if producer is not None:
                try:
                    await asyncio.wait_for(producer.close(), 10)
                except Exception as exc:
                    self.count_error(f"producer_close:{type(exc).__name__}")
        for topology in self.topics if cleanup else []:
            try:
                await asyncio.wait_for(self.stream.cleanup(topology), 30)
            except Exception as exc:
                self.count_error(f"cleanup:{type(exc).__name__}")

    # ------------------------------------------------------------------ messages
    def _message(
        self, producer_id: int, saga: Saga, event_type: str, command_id: str, body: dict[str, Any]
    ) -> Message:
        self._seq[producer_id] += 1
        seq = self._seq[producer_id] - 1
        return Message(
            saga.saga_id,
            _encode(body),
            event_type,
            command_id,
            saga.saga_id,
            producer_id,
            seq,
            seq + 1,
            saga.intended_ns,
        )

    def _send(
        self,
        producer: Producer | None,
        msg: Message | None,
        persist: tuple[Saga, str, int] | None = None,
        until_sent: bool = False,
    ) -> None:
        """Publish without holding up the caller, after persisting ``persist`` (saga, status,
        step) where ``saga.store`` keeps the state: the state is stored before the command it
        leads to goes out. A failed write or publish is counted as an error. A command or a
        reply is then retried by its saga's timeout; a message that nothing would retry
        (``until_sent``: a dead letter, a choreography's event) is published again every
        SEND_RETRY_S, for up to ``saga.stuck_after``, as a service that acknowledges its input
        only once its output is out would. A final state's write sets when the saga ended."""
        if msg is not None:
            self.figures.messages += 1
        if self.state is None and msg is None:
            return

        async def send() -> None:
            if persist is not None and self.state is not None:
                saga, status, step = persist
                # Its place among the saga's writes: a write that lands late (an attempt that
                # hung while the store was down) never overwrites a later state.
                saga.writes += 1
                version = saga.writes
                # A final state has nothing to retry it but this: it gets stuck_after.
                final = status in FINAL
                budget_s = self.options.stuck_after if final else self.options.timeout
                stored = await self._persist(saga, status, step, version, budget_s)
                if final:
                    saga.final_ns = time.monotonic_ns()
                elif not stored:
                    return  # no command without its state: the saga's timer retries it
            if msg is not None:
                assert producer is not None
                deadline = time.monotonic() + (self.options.stuck_after if until_sent else 0.0)
                while True:
                    self.figures.publish_attempts += 1
                    try:
                        await producer.send(msg)
                        return
                    except Exception as exc:
                        self.count_error(f"send:{type(exc).__name__}")
                        if time.monotonic() >= deadline:
                            return
                        await asyncio.sleep(SEND_RETRY_S)

        task = asyncio.get_running_loop().create_task(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _persist(
        self, saga: Saga, status: str, step: int, version: int, budget_s: float
    ) -> bool:
        """Write a saga's state, retrying a failed write (the store restarting, say) every
        STATE_RETRY_S for up to ``budget_s`` (a command's: ``saga.timeout``, after which its
        saga's timer retries it; a final state's: ``saga.stuck_after``); whether it was
        written. Every failed attempt is an error."""
        deadline = time.monotonic() + budget_s
        while True:
            try:
                await self.state.save_saga_state(saga.saga_id, status, step, version)
                self.state_writes += 1
                return True
            except Exception as exc:
                self.count_error(f"state:{type(exc).__name__}")
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(STATE_RETRY_S)

    async def settle(self, timeout_s: float) -> int:
        """Wait for the state writes and publishes still in flight, for up to ``timeout_s``;
        what is still in flight then is cancelled, and its count returned."""
        deadline = time.monotonic() + timeout_s
        while self._sends:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(list(self._sends), timeout=left)
        unsettled = list(self._sends)
        for task in unsettled:
            task.cancel()
        await asyncio.gather(*unsettled, return_exceptions=True)
        return len(unsettled)

    # ------------------------------------------------------------------ orchestrator
    def start_saga(self, index: int, intended_ns: int) -> None:
        saga = Saga(f"saga-{index:09d}", intended_ns)
        self.sagas[saga.saga_id] = saga
        self.figures.started += 1
        self.open += 1
        self._command(saga, saga.step, DO)

    def _command(self, saga: Saga, step: int, action: str) -> None:
        saga.step = step
        saga.sent_ns = time.monotonic_ns()
        name = self.options.steps[step]
        command_id = f"{saga.saga_id}:{step}:{action}"
        msg = self._message(0, saga, name, command_id, {"step": step, "action": action})
        # STARTED at step n (the steps before it done), or COMPENSATING step n.
        self._send(self.command_producers[step], msg, (saga, saga.status, step))
        self._arm_timer(saga, command_id)

    def _arm_timer(self, saga: Saga, command_id: str) -> None:
        if saga.timer is not None:
            saga.timer.cancel()
        saga.timer = asyncio.get_running_loop().call_later(
            self.options.timeout, self._timed_out, saga, command_id
        )

    def _timed_out(self, saga: Saga, command_id: str) -> None:
        saga.timer = None
        if saga.status in FINAL:
            return
        _, step_text, action = command_id.rsplit(":", 2)
        step = int(step_text)
        name = self.options.steps[step]
        self.figures.timeouts[name] += 1
        now = time.monotonic_ns()
        self.figures.timeout_at.append(now)
        if saga.attempts < self.options.retries:
            saga.attempts += 1
            self.figures.retries[name] += 1
            self.figures.retry_at.append(now)
            msg = self._message(0, saga, name, command_id, {"step": step, "action": action})
            # Persisted again: the first write may be the one that failed.
            self._send(self.command_producers[step], msg, (saga, saga.status, step))
            self._arm_timer(saga, command_id)
            return
        saga.attempts = 0
        if action == DO:
            # Not known to have run, nor not to have: compensate it too (a no-op where it
            # did not run), after the steps done before it.
            self.figures.failed_steps[name] += 1
            self._compensate(saga, include=step)
        else:
            self._dead_letter(saga, step, "compensation timed out")

    async def _orchestrator(self) -> None:
        replies = self._replies
        while True:
            msg = await replies.get()
            try:
                self._on_reply(msg)
            except Exception as exc:  # a harness bug: counted, the saga then shows stuck
                self.count_error(f"orchestrator:{type(exc).__name__}")

    def _on_reply(self, msg: Message) -> None:
        saga = self.sagas.get(msg.key)
        if saga is None or saga.status in FINAL:
            return
        body = json.loads(msg.value)
        step, action, outcome = int(body["step"]), body["action"], body["outcome"]
        if step != saga.step or (action == DO) != (saga.status == STARTED):
            return  # a late or duplicate reply for a step already moved past
        if saga.timer is not None:
            saga.timer.cancel()
            saga.timer = None
        saga.attempts = 0
        now = time.monotonic_ns()
        name = self.options.steps[step]
        if action == DO:
            if saga.intended_ns >= self.window_start_ns:
                self.figures.step_ns.setdefault(name, []).append(now - saga.sent_ns)
            if outcome == "done":
                saga.done.append(step)
                if step + 1 < len(self.options.steps):
                    self._command(saga, step + 1, DO)
                else:
                    self._final(saga, COMPLETED, now)
            else:
                self.figures.failed_steps[name] += 1
                self._compensate(saga)
        elif outcome in ("compensated", "nothing_to_undo"):
            if outcome == "compensated":  # a step undone (not one that never ran)
                self.figures.compensations[saga.saga_id] += 1
            self._next_compensation(saga, now)
        else:
            self._dead_letter(saga, step, "compensation failed")

    def _compensate(self, saga: Saga, include: int | None = None) -> None:
        saga.status = COMPENSATING
        saga.compensating_ns = time.monotonic_ns()
        if include is not None:
            saga.done.append(include)
        self._next_compensation(saga, saga.compensating_ns)

    def _next_compensation(self, saga: Saga, now: int) -> None:
        if saga.done:
            self._command(saga, saga.done.pop(), UNDO)  # persisted as COMPENSATING step n
        else:
            if saga.intended_ns >= self.window_start_ns:
                self.figures.compensation_ns.append(now - saga.compensating_ns)
            self._final(saga, COMPENSATED, now)

    def _dead_letter(self, saga: Saga, step: int, reason: str) -> None:
        now = time.monotonic_ns()
        self.figures.compensation_failed.append(saga.saga_id)
        saga.dead_lettered = True
        saga.ended_by_timer = reason == "compensation timed out"
        body = {"saga": saga.saga_id, "step": step, "reason": reason}
        msg = self._message(2, saga, "SagaDeadLettered", f"{saga.saga_id}:dlq", body)
        if saga.intended_ns >= self.window_start_ns:
            self.figures.compensation_ns.append(now - saga.compensating_ns)
        self._final(saga, FAILED, now, (self.dlq_producer, msg))

    def _final(
        self,
        saga: Saga,
        status: str,
        now: int,
        then: tuple[Producer | None, Message] | None = None,
    ) -> None:
        """The saga's final state (persisted first where saga.store says; then ``then``'s
        message, the dead letter, is published)."""
        saga.status = status
        if saga.timer is not None:
            saga.timer.cancel()
            saga.timer = None
        saga.final_ns = now
        self.open -= 1
        self.figures.final[status] += 1
        producer, msg = then if then is not None else (None, None)
        self._send(producer, msg, (saga, status, saga.step), until_sent=True)

    def _on_dead_letter(self, msg: Message) -> None:
        """The dead-letter queue's reader: one entry per saga (a dead letter published again
        after a failed publish that had reached the broker is a duplicate, counted apart)."""
        figures = self.figures
        if msg.key in figures.dead_letter_ids:
            figures.dead_letter_duplicates += 1
            return
        figures.dead_letter_ids.add(msg.key)
        figures.dead_letters_received += 1

    # ------------------------------------------------------------------ participants
    async def _participant(self, k: int) -> None:
        participant = self.participants[k]
        queue = self._queues[k]
        while True:
            msg = await queue.get()
            try:
                await self._handle_command(participant, msg)
            except Exception as exc:
                self.count_error(f"participant:{type(exc).__name__}")

    async def _handle_command(self, participant: Participant, msg: Message) -> None:
        body = json.loads(msg.value)
        action = body["action"]
        command_id = msg.event_id
        known = await _decide_once(participant, command_id, msg.key, action)
        if known is None:
            return
        outcome, replies = known
        if not replies:
            return
        saga = self.sagas[msg.key]
        reply = self._message(
            1,
            saga,
            f"{participant.name}.{outcome}",
            f"{command_id}:reply",
            {"step": participant.index, "action": action, "outcome": outcome},
        )
        self._send(self.reply_producer, reply)

    # ------------------------------------------------------------------ checks
    def invariants(self, stuck: list[Saga], complete: bool = True) -> list[str]:
        """The invariants' violations, in words. ``complete`` False (the run was stopped
        early): only those an early stop cannot cause (a step left done, an undo of a step that
        never ran); the counts and the dead letters are not judged."""
        violations: list[str] = []
        final = sum(self.figures.final.values())
        if complete and final + len(stuck) != self.figures.started:
            violations.append(
                f"{self.figures.started} sagas started, {final} final and {len(stuck)} stuck"
            )
        left_done = [
            s.saga_id
            for s in self.sagas.values()
            if s.status == COMPENSATED and any(s.saga_id in p.done for p in self.participants)
        ]
        if left_done:
            violations.append(
                f"{len(left_done)} COMPENSATED sagas left a step done without its "
                f"compensation (e.g. {left_done[0]})"
            )
        never_ran = sum(p.undo_of_never_ran for p in self.participants)
        if never_ran:
            violations.append(f"{never_ran} compensations undid a step that never ran")
        if complete and self.figures.dead_letters_received != len(self.figures.compensation_failed):
            violations.append(
                f"{self.figures.dead_letters_received} dead-letter entries received for "
                f"{len(self.figures.compensation_failed)} sagas whose compensation failed"
            )
        return violations


class ChoreographyRun(SagaRun):
    """Choreography: no orchestrator. Each participant reacts to the previous step's event
    and publishes its own; a failure flows back as compensation events.

    Topics, each read by one participant (one consumer group): ``f<k>`` carries what starts
    step k (the saga's start for step 0, step k-1 done for the others); ``b<k>`` carries what
    compensates step k (step k+1 failed, or was compensated); ``outcome`` carries each saga's
    final event (the last step done; the first step compensated, or failed with nothing to
    undo; a compensation failed, with its dead letter), read by the service that started the
    saga; ``dlq`` the dead letters. A lost event (``no_reply``) has no owner to time it out:
    the saga is reported stuck."""

    def __init__(self, point: RunPoint, stream: Any, name: str) -> None:
        super().__init__(point, stream, name)
        steps = self.options.steps
        self.forward = [self._topology(f"f{k}") for k in range(len(steps))]
        self.backward = [self._topology(f"b{k}") for k in range(len(steps))]
        self.outcome_topic = self._topology("outcome")
        self.topics = [*self.forward, *self.backward, self.outcome_topic, self.dlq_topic]
        self._inbox: list[asyncio.Queue[Message]] = [asyncio.Queue() for _ in steps]
        self.forward_producers: list[Producer] = []
        self.backward_producers: list[Producer] = []
        self.outcome_producer: Producer | None = None

    async def setup(self) -> None:
        for topology in self.topics:
            await self.stream.prepare(topology)
        for k in range(len(self.participants)):
            inbox = self._inbox[k]
            for topology in (self.forward[k], self.backward[k]):
                self.consumers.append(await self.stream.consumer(topology, 0, inbox.put_nowait))
        self.consumers.append(
            await self.stream.consumer(self.outcome_topic, 0, self._replies.put_nowait)
        )
        self.consumers.append(await self.stream.consumer(self.dlq_topic, 0, self._on_dead_letter))
        await asyncio.gather(*(c.start() for c in self.consumers))
        for topology in self.forward:
            self.forward_producers.append(await self.stream.producer(topology, 0))
        for topology in self.backward:
            self.backward_producers.append(await self.stream.producer(topology, 1))
        self.outcome_producer = await self.stream.producer(self.outcome_topic, 3)
        self.dlq_producer = await self.stream.producer(self.dlq_topic, 2)
        # close() closes these with the orchestration's lists.
        self.command_producers = [*self.forward_producers, *self.backward_producers]
        self.reply_producer = self.outcome_producer
        loop = asyncio.get_running_loop()
        for k in range(len(self.participants)):
            self._tasks.append(loop.create_task(self._react(k)))
        self._tasks.append(loop.create_task(self._outcomes()))

    def _event(
        self, producer: Producer | None, saga: Saga, step: int, what: str, body: dict[str, Any]
    ) -> None:
        event_id = f"{saga.saga_id}:{step}:{what}"
        msg = self._message(0, saga, f"{self.options.steps[step]}.{what}", event_id, body)
        self._send(producer, msg, until_sent=True)

    def start_saga(self, index: int, intended_ns: int) -> None:
        saga = Saga(f"saga-{index:09d}", intended_ns)
        self.sagas[saga.saga_id] = saga
        self.figures.started += 1
        self.open += 1
        saga.sent_ns = time.monotonic_ns()
        self._event(
            self.forward_producers[0],
            saga,
            0,
            DO,
            {"step": 0, "action": DO, "sent_ns": saga.sent_ns},
        )

    async def _react(self, k: int) -> None:
        participant = self.participants[k]
        inbox = self._inbox[k]
        while True:
            msg = await inbox.get()
            try:
                await self._handle_event(participant, msg)
            except Exception as exc:
                self.count_error(f"participant:{type(exc).__name__}")

    async def _handle_event(self, participant: Participant, msg: Message) -> None:
        body = json.loads(msg.value)
        action = body["action"]
        k = participant.index
        saga = self.sagas[msg.key]
        known = await _decide_once(
            participant, f"{saga.saga_id}:{k}:{action}", saga.saga_id, action
        )
        if known is None:
            return
        outcome, publishes = known
        now = time.monotonic_ns()
        saga.step = k  # the harness's bookkeeping: where a stuck saga stopped
        last = len(self.participants) - 1
        if action == DO and saga.intended_ns >= self.window_start_ns:
            self.figures.step_ns.setdefault(participant.name, []).append(
                now - int(body.get("sent_ns") or now)
            )
        if not publishes:
            return  # the event is lost: nobody owns a timeout here
        if action == DO and outcome == "done":
            saga.done.append(k)
            if k == last:
                self._event(self.outcome_producer, saga, k, COMPLETED, {"final": COMPLETED})
            else:
                self._event(
                    self.forward_producers[k + 1],
                    saga,
                    k + 1,
                    DO,
                    {"step": k + 1, "action": DO, "sent_ns": now},
                )
            return
        if action == DO:  # failed: the steps before it compensate, latest first
            self.figures.failed_steps[participant.name] += 1
            saga.status = COMPENSATING
            saga.compensating_ns = now
            body_back = {"action": UNDO, "failed_ns": now}
        elif outcome == "compensation_failed":
            self._dead_letter_event(saga, k)
            return
        else:
            if outcome == "compensated":
                self.figures.compensations[saga.saga_id] += 1
            body_back = {"action": UNDO, "failed_ns": body.get("failed_ns") or now}
        if k == 0:
            self._event(
                self.outcome_producer, saga, 0, COMPENSATED, {"final": COMPENSATED, **body_back}
            )
        else:
            self._event(
                self.backward_producers[k - 1], saga, k - 1, UNDO, {"step": k - 1, **body_back}
            )

    def _dead_letter_event(self, saga: Saga, step: int) -> None:
        body = {"saga": saga.saga_id, "step": step, "reason": "compensation failed"}
        msg = self._message(2, saga, "SagaDeadLettered", f"{saga.saga_id}:dlq", body)
        self._send(self.dlq_producer, msg, until_sent=True)
        self._event(self.outcome_producer, saga, step, FAILED, {"final": FAILED})

    async def _outcomes(self) -> None:
        """The service that started the sagas: each one's final event ends it."""
        outcomes = self._replies
        while True:
            msg = await outcomes.get()
            try:
                saga = self.sagas.get(msg.key)
                body = json.loads(msg.value)
                if saga is None or saga.status in FINAL:
                    continue
                now = time.monotonic_ns()
                final = body["final"]
                if final == FAILED:
                    self.figures.compensation_failed.append(saga.saga_id)
                    saga.dead_lettered = True
                if (
                    final in (COMPENSATED, FAILED)
                    and saga.compensating_ns
                    and saga.intended_ns >= self.window_start_ns
                ):
                    self.figures.compensation_ns.append(now - saga.compensating_ns)
                self._final(saga, final, now)
            except Exception as exc:
                self.count_error(f"outcome:{type(exc).__name__}")


async def _state_matches(state: Any, run: SagaRun, stuck: list[Saga]) -> list[str]:
    """The persisted saga state against the orchestrator's: every saga stored, a final one
    with its final status, a stuck one with none."""
    stored = await state.load_saga_states()
    missing = [s.saga_id for s in run.sagas.values() if s.saga_id not in stored]
    wrong = [
        s.saga_id
        for s in run.sagas.values()
        if s.saga_id in stored
        and (
            stored[s.saga_id][0] != s.status if s.status in FINAL else stored[s.saga_id][0] in FINAL
        )
    ]
    violations = []
    if missing:
        violations.append(f"{len(missing)} sagas have no persisted state (e.g. {missing[0]})")
    if wrong:
        saga = run.sagas[wrong[0]]
        violations.append(
            f"{len(wrong)} sagas' persisted state differs from the orchestrator's (e.g. "
            f"{wrong[0]}: stored {stored[wrong[0]][0]}, orchestrator {saga.status})"
        )
    return violations


def _stats(values: list[int]) -> dict[str, Any]:
    hist = new_histogram()
    if values:
        record_values(hist, np.asarray(values, dtype=np.int64))
    return stats_us(hist).as_dict()


def _fault_sagas(
    rows: list[dict[str, Any]], sagas: list[Saga], figures: Figures, t0_ns: int
) -> set[str]:
    """Add to each fault row the sagas it caught (``sagas``): those in flight at any moment
    from the fault's start until its target answered again, their final states, the stuck
    among them, their latency, and the step timeouts and retries in the fault's span. The
    ids of every saga some fault caught are returned."""
    caught_ids: set[str] = set()
    timeouts = np.sort(np.asarray(figures.timeout_at, dtype=np.int64))
    retries = np.sort(np.asarray(figures.retry_at, dtype=np.int64))
    for i, row in enumerate(rows):
        if row.get("started_at_s") is None:
            row["sagas"] = None
            continue
        start = t0_ns + int(row["started_at_s"] * 1e9)
        back_s = row.get("answering_at_s") or row.get("restored_at_s") or row["started_at_s"]
        back = t0_ns + int(back_s * 1e9)
        later = [float(r["started_at_s"]) for r in rows[i + 1 :] if r.get("started_at_s")]
        span_end = t0_ns + int(later[0] * 1e9) if later else None
        caught = [
            s
            for s in sagas
            if s.intended_ns <= back and (s.status not in FINAL or s.final_ns >= start)
        ]
        caught_ids.update(s.saga_id for s in caught)
        finals = Counter(s.status for s in caught if s.status in FINAL)
        hi = len(timeouts) if span_end is None else int(np.searchsorted(timeouts, span_end))
        hi_r = len(retries) if span_end is None else int(np.searchsorted(retries, span_end))
        row["sagas"] = {
            "caught": len(caught),
            "final": {status: finals.get(status, 0) for status in FINAL},
            "stuck": sum(1 for s in caught if s.status not in FINAL),
            "latency_us": _stats([s.final_ns - s.intended_ns for s in caught if s.status in FINAL]),
            "timeouts": hi - int(np.searchsorted(timeouts, start)),
            "retries": hi_r - int(np.searchsorted(retries, start)),
        }
    return caught_ids


async def run_saga(point: RunPoint, name: str, stop: Any, count_error: Any) -> dict[str, Any]:
    """Run a saga point: start sagas on the schedule for the warm-up and duration, with the
    scenario's faults on the same clock, wait for the open ones (``stuck_after``), check and
    measure."""
    options = point.workload.saga
    meta = point.scenario.scenario
    # Before connecting: refuses what cannot be faulted. Off the loop: a service's checks run
    # event loops of their own.
    faults = await asyncio.to_thread(CoordinatorFaults, point)
    client_error_at: dict[str, list[int]] = {}

    def client_error(kind: str) -> None:
        count_error(kind)
        client_error_at.setdefault(kind, []).append(time.monotonic_ns())

    driver_cls = load_driver(point.driver)
    driver = driver_cls(point.driver_config, DriverContext(count_error=client_error))
    await asyncio.wait_for(driver.connect(), point.driver_config.connect_timeout + 5)
    run: SagaRun | None = None
    state: Any = None
    result: dict[str, Any] = {}
    start_ns = 0
    measured_from = 0
    problems: list[str] = []
    try:
        if point.store_config is not None and point.store_driver is not None:
            # saga.store: the state's own target (validated a SagaStateStore).
            state = load_driver(point.store_driver)(
                point.store_config, DriverContext(count_error=client_error)
            )
            await asyncio.wait_for(state.connect(), point.store_config.connect_timeout + 5)
            await state.prepare_saga_state(name)
        stream = as_stream(driver)
        run = (ChoreographyRun if options.mode == "choreography" else SagaRun)(point, stream, name)
        run.state = state
        await asyncio.wait_for(run.setup(), point.driver_config.connect_timeout + 60)
        described = await driver.describe()
        rate = float(point.workload.rate)  # validated: a number for sagas
        gap_ns = int(1e9 / rate)
        start_ns = time.monotonic_ns() + 50_000_000
        window_start = start_ns + int(meta.warmup * 1e9)
        window_end = window_start + int(meta.duration * 1e9)
        run.window_start_ns = window_start
        if faults:
            faults.start(start_ns, driver)
        index = 0
        while not stop():
            intended = start_ns + index * gap_ns
            if intended >= window_end:
                break
            delay = (intended - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            if intended < window_start:
                measured_from = index + 1
            run.start_saga(index, intended)
            index += 1
        if faults:
            await faults.wait(stop)  # a fault that outlasts the load ends before the wait
            problems += await faults.stop()
        deadline = time.monotonic() + options.stuck_after
        while run.open and time.monotonic() < deadline and not stop():
            await asyncio.sleep(0.02)
        # Stopped (Ctrl-C): no waiting for the open sagas, nor for what is still being sent;
        # what depends on the run's end (stuck, dead letters in, stored final states) is then
        # not judged.
        interrupted = bool(stop())
        if not interrupted:
            await asyncio.sleep(0.2)  # the last dead letters' deliveries
        unsettled = await run.settle(2.0 if interrupted else options.stuck_after + 5.0)
        stuck = [s for s in run.sagas.values() if s.status not in FINAL]
        violations = run.invariants(stuck, complete=not interrupted)
        if state is not None and not interrupted:
            violations += await _state_matches(state, run, stuck)
        figures = run.figures
        seconds = (window_end - window_start) / 1e9
        finished = time.monotonic_ns()
        # The measurement window: sagas intended in it (those of the warm-up are run, counted
        # in the totals and checked, not measured).
        measured = [s for i, s in enumerate(run.sagas.values()) if i >= measured_from]
        finals = Counter(s.status for s in measured if s.status in FINAL)
        latency = {
            status: [s.final_ns - s.intended_ns for s in measured if s.status == status]
            for status in FINAL
        }
        compensations = Counter(
            figures.compensations[s.saga_id] for s in measured if s.status == COMPENSATED
        )
        result = {
            "mode": options.mode,
            "steps": list(options.steps),
            "started": figures.started,
            "final": {status: figures.final.get(status, 0) for status in FINAL},
            "stuck": len(stuck),
            # False when interrupted: the open sagas were not waited for, so not judged stuck.
            "stuck_judged": not interrupted,
            "unsettled_sends": unsettled,
            "stuck_samples": [
                {"saga": s.saga_id, "status": s.status, "last_step": options.steps[s.step]}
                for s in stuck[:SAMPLES_KEPT]
            ],
            "dead_lettered": len(figures.compensation_failed),
            "dead_letters_received": figures.dead_letters_received,
            "dead_letter_duplicates": figures.dead_letter_duplicates,
            "compensations_per_compensated_saga": {
                str(n): c for n, c in sorted(compensations.items())
            },
            "failed_steps": dict(figures.failed_steps),
            "retries": dict(figures.retries),
            "timeouts": dict(figures.timeouts),
            "messages": figures.messages,
            "publish_attempts": figures.publish_attempts,
            "messages_per_saga": figures.messages / figures.started if figures.started else 0.0,
            "measured": {"sagas": len(measured), "final": dict(finals), "seconds": seconds},
            "sagas_per_s": len(measured) / seconds if seconds > 0 else 0.0,
            # Over the run, the wait for the last sagas included.
            "messages_per_s": (
                figures.messages / ((finished - start_ns) / 1e9) if finished > start_ns else 0.0
            ),
            "participants": [
                {
                    "step": p.name,
                    "handled": p.handled,
                    "duplicates": p.duplicates,
                    "refused_late": p.refused_late,
                }
                for p in run.participants
            ],
            # ok None: interrupted, and nothing an early stop cannot cause was found.
            "invariants": {
                "ok": False if violations else (None if interrupted else not stuck),
                "violations": violations,
            },
            "latency_us": {
                "saga": _stats([n for values in latency.values() for n in values]),
                **{f"saga_{status.lower()}": _stats(latency[status]) for status in FINAL},
                "compensation": _stats(figures.compensation_ns),
                **{f"step_{name}": _stats(values) for name, values in figures.step_ns.items()},
            },
            # Where the state was persisted, and how many writes (None: memory only).
            "state": (
                {
                    "target": point.store_target,
                    "driver": point.store_driver,
                    "writes": run.state_writes,
                }
                if state is not None
                else None
            ),
            "target_info": described,
        }
    finally:
        # Whatever a fault took down comes back before anything is closed or cleaned up.
        problems += await faults.stop()
        if run is not None:
            await run.close(cleanup=meta.cleanup)
        await asyncio.wait_for(driver.close(), 10)
        if state is not None:
            if meta.cleanup:
                with contextlib.suppress(Exception):
                    await state.drop_saga_state()
            await asyncio.wait_for(state.close(), 10)
    # After closing: the errors of the shutdown belong to the last fault's row, and the rows'
    # errors add up to the point's.
    assert run is not None
    result["errors"] = dict(run.errors)
    result["problems"] = problems
    if faults:
        error_at = {k: np.asarray(v, dtype=np.int64) for k, v in client_error_at.items()}
        for kind, times in run.error_at.items():
            error_at[kind] = np.concatenate([error_at.get(kind, np.zeros(0, np.int64)), times])
        sagas = list(run.sagas.values())
        rows = coordinator_fault_rows(
            faults.events(),
            start_ns,
            # Recovery counts the sagas that ended through the broker (a reply, an outcome
            # event), not those a timer ended while it was still down.
            np.asarray(
                [s.final_ns for s in sagas if s.status in FINAL and not s.ended_by_timer],
                dtype=np.int64,
            ),
            ErrorTimes.of_kinds(error_at),
            float(point.workload.rate),
            meta.warmup + meta.duration,
        )
        caught = _fault_sagas(rows, sagas, run.figures, start_ns)
        result["faults"] = rows
        # The measured sagas no fault caught: the latency the faults' rows compare with.
        result["latency_us"]["saga_outside_faults"] = _stats(
            [
                s.final_ns - s.intended_ns
                for s in sagas[measured_from:]
                if s.status in FINAL and s.saga_id not in caught
            ]
        )
    return result
