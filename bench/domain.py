"""The order aggregate that the event-store workload drives: commands, decide, and fold.

An order goes PlaceOrder → AddItem* → ConfirmOrder → ShipOrder, or is cancelled before it
ships. A command that does not fit the order's state (shipping an unconfirmed order, adding
items to a shipped one) is a *business rejection*: the aggregate said no, which is neither a
conflict nor an error.

So that contention lasts the whole run on a small key space, an aggregate's stream carries one
order after another: once an order is shipped or cancelled, the next PlaceOrder starts the
next order in the same stream (``order_no`` counts them). Streams therefore grow for as long
as the run lasts, which is what makes snapshots worth measuring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PLACE, ADD, CONFIRM, SHIP, CANCEL = (
    "PlaceOrder",
    "AddItem",
    "ConfirmOrder",
    "ShipOrder",
    "CancelOrder",
)
COMMANDS = (PLACE, ADD, CONFIRM, SHIP, CANCEL)
EVENT_OF = {
    PLACE: "OrderPlaced",
    ADD: "OrderItemAdded",
    CONFIRM: "OrderConfirmed",
    SHIP: "OrderShipped",
    CANCEL: "OrderCancelled",
}
TERMINAL = frozenset({"shipped", "cancelled"})


@dataclass
class OrderState:
    """What a writer knows of an aggregate: its version and the current order's state."""

    version: int = 0
    status: str = "none"  # none, placed, confirmed, shipped, cancelled
    order_no: int = 0
    items: int = 0
    total_cents: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "order_no": self.order_no,
            "items": self.items,
            "total_cents": self.total_cents,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderState:
        return cls(
            version=int(data.get("version", 0)),
            status=str(data.get("status", "none")),
            order_no=int(data.get("order_no", 0)),
            items=int(data.get("items", 0)),
            total_cents=int(data.get("total_cents", 0)),
        )


def fold(state: OrderState, event_type: str, payload: dict[str, Any] | None = None) -> OrderState:
    """Apply one event (in place, and return the state). Unknown event types are skipped."""
    payload = payload or {}
    if event_type == "OrderPlaced":
        state.status, state.items, state.total_cents = "placed", 0, 0
        state.order_no += 1
    elif event_type == "OrderItemAdded":
        state.items += int(payload.get("qty", 1))
        state.total_cents += int(payload.get("price_cents", 0)) * int(payload.get("qty", 1))
    elif event_type == "OrderConfirmed":
        state.status = "confirmed"
    elif event_type == "OrderShipped":
        state.status = "shipped"
    elif event_type == "OrderCancelled":
        state.status = "cancelled"
    state.version += 1
    return state


def fold_all(events: list[tuple[str, bytes | dict[str, Any]]]) -> OrderState:
    state = OrderState()
    for event_type, payload in events:
        data = json.loads(payload) if isinstance(payload, bytes | str) else payload
        fold(state, event_type, data.get("data", data) if isinstance(data, dict) else {})
    return state


def decide(state: OrderState, command: str) -> list[str] | None:
    """The event types a command produces on this state; None: a business rejection.

    A placed order may receive items, confirmation or cancellation; a confirmed one may ship
    or be cancelled; after a terminal state only PlaceOrder (the next order) is valid.
    """
    status = state.status
    if command == PLACE:
        return [EVENT_OF[PLACE]] if status in ("none", *TERMINAL) else None
    if command == ADD:
        return [EVENT_OF[ADD]] if status == "placed" else None
    if command == CONFIRM:
        return [EVENT_OF[CONFIRM]] if status == "placed" else None
    if command == SHIP:
        return [EVENT_OF[SHIP]] if status == "confirmed" else None
    if command == CANCEL:
        return [EVENT_OF[CANCEL]] if status in ("placed", "confirmed") else None
    raise ValueError(f"unknown command {command!r}")


def next_command(state: OrderState, draw: float) -> str:
    """The command a writer issues next for this aggregate, given a uniform draw in [0, 1).

    Mostly the lifecycle's natural next step, sometimes a command the order cannot accept, so
    business rejections happen at a realistic, small rate (about 5%).
    """
    if draw < 0.05:
        return COMMANDS[int(draw * 100) % len(COMMANDS)]  # an arbitrary, often invalid, command
    status = state.status
    if status in ("none", *TERMINAL):
        return PLACE
    if status == "placed":
        return ADD if draw < 0.6 else (CONFIRM if draw < 0.93 else CANCEL)
    return SHIP if draw < 0.9 else CANCEL
