"""The messages between the coordinator and its workers, typed, for the pipe and the Locust wire.

A worker and its coordinator talk over a pipe (``multiprocessing`` pickles the structs as they
are) or, under ``bench locust``, through Locust's custom messages, which carry msgpack: there a
message travels as a plain list, ``["progress", 0, 120, 118, 118]``, its tag first
(``to_wire``/``from_wire``).

Coordinator → worker: ``Start`` (one absolute start time), ``Stop`` (an interrupt: stop the
load now), ``Resume`` (a backlog is built: start the consumers held back), ``Finish`` (report
the results and leave).

Worker → coordinator: ``Ready`` (connected, set up), ``Interval`` (one interval's figures),
``Produced`` (every producer done), ``Progress`` (counts during the drain), ``Counts`` (live
counts every 50 ms during the load of a backlog point, so the coordinator sees the backlog
build and drain), ``Final`` (the results), ``Failed`` (a setup error or a crash: the point
fails with its text).
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Message(msgspec.Struct, array_like=True, tag_field="kind"):
    pass


# --------------------------------------------------------------------------- to the workers


class Start(_Message, tag="start"):
    """Start the load at ``t0_ns`` on the shared monotonic clock. ``epoch_at_t0`` is the wall
    clock at t0: a worker on another host translates t0 to its own clock through it."""

    t0_ns: int
    epoch_at_t0: float


class Stop(_Message, tag="stop"):
    """Interrupted: stop sending at once."""


class Finish(_Message, tag="finish"):
    """The drain is over: send the results, then leave."""


class Resume(_Message, tag="resume"):
    """The backlog is built (or the load is over): start the consumers held back."""


Control = Start | Stop | Resume | Finish


# --------------------------------------------------------------------------- to the coordinator


class Ready(_Message, tag="ready"):
    worker: int
    described: dict[str, Any] | None  # the target's describe(), from the worker that asks it


class Interval(_Message, tag="interval"):
    worker: int
    figures: dict[str, Any]  # the interval's histograms and counts (Worker._ship_interval)


class Produced(_Message, tag="produced"):
    worker: int


class Progress(_Message, tag="progress"):
    worker: int
    acked: int
    received_unique: int
    delivered: int


class Counts(_Message, tag="counts"):
    """A backlog point's live counts during the load: acknowledged sends, and distinct
    messages received over every subscription."""

    worker: int
    acked: int
    received: int


class Final(_Message, tag="final"):
    worker: int
    results: dict[str, Any]  # totals, ledgers, raw samples (Worker._finish)


class Failed(_Message, tag="error"):
    worker: int
    message: str
    traceback: str | None = None


Report = Ready | Interval | Produced | Progress | Counts | Final | Failed
Message = Control | Report

_decoder_types: Any = Message


def to_wire(message: Message) -> list[Any]:
    """The message as msgpack-safe builtins: a list, its tag first."""
    # Raw samples and ledgers are bytes, which msgpack carries as they are.
    wire: list[Any] = msgspec.to_builtins(message, builtin_types=(bytes, bytearray, memoryview))
    return wire


def from_wire(data: Any) -> Message:
    """The message a wire list carries; ValueError when it is not one."""
    try:
        message: Message = msgspec.convert(list(data), _decoder_types)
    except (msgspec.ValidationError, TypeError) as exc:
        raise ValueError(f"not an engine message: {exc}") from None
    return message
