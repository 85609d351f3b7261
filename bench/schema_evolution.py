"""The order events' schema over time, and the three ways a current reader meets old events
(issue 18's schema-evolution failure; ``workload.kind = "replay"`` runs it).

Versions, as a team that shipped three releases would have them:

* ``OrderPlaced`` v1 ``{order_no, customer}``; v2 adds ``currency`` and ``shippingMethod``
  (old orders were all euro, standard shipping: the upcaster fills those in); v3 renames
  ``customer`` to ``customerId``. Current: v3.
* ``OrderItemAdded`` v1 ``{order_no, sku, qty, price}`` with ``price`` a decimal text in whole
  currency units ("12.34"); v2 carries ``price_cents`` (an int) instead. Current: v2.
* ``OrderConfirmed``, ``OrderShipped``, ``OrderCancelled``: v1, unchanged.

An event's schema version travels in its metadata (``schema_version``; none means 1). The
reader is the current code:

* ``strict``: reads only current events; anything else is ``Unreadable`` (the projection stops);
* ``upcast``: runs the registered chain, one step per version (v1 -> v2 -> v3), on read;
* ``upcast_and_rewrite``: the same chain once, and the store keeps the result (a migration).

``fold`` folds current events into the order view a v3 read model keeps: status, items, total,
and the customer, currency and shipping method of the current order. Two histories mean the
same when they fold to the same view.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from bench.drivers.base import StoredEvent

SCHEMA_VERSION_KEY = "schema_version"
CURRENT = {"OrderPlaced": 3, "OrderItemAdded": 2}
EVOLVED = tuple(CURRENT)  # the event types that have older versions
DEFAULT_CURRENCY = "EUR"
DEFAULT_SHIPPING = "standard"


class Unreadable(Exception):
    """The current reader cannot read this event (an older schema, or a field missing)."""

    def __init__(self, event: StoredEvent, version: int, why: str) -> None:
        super().__init__(f"{event.event_type} v{version}: {why}")
        self.event = event
        self.version = version
        self.why = why


def schema_version(event: StoredEvent) -> int:
    raw = (event.metadata or {}).get(SCHEMA_VERSION_KEY, "1")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


def current_version(event_type: str) -> int:
    return CURRENT.get(event_type, 1)


# ---------------------------------------------------------------------------- upcasters


def _placed_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": DEFAULT_CURRENCY, "shippingMethod": DEFAULT_SHIPPING}


def _placed_2_to_3(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "customer"}
    out["customerId"] = data["customer"]
    return out


def _item_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "price"}
    out["price_cents"] = int(Decimal(str(data["price"])) * 100)
    return out


# (event type, from version) -> the step to the next version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("OrderPlaced", 1): _placed_1_to_2,
    ("OrderPlaced", 2): _placed_2_to_3,
    ("OrderItemAdded", 1): _item_1_to_2,
}


def upcast(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` of ``version`` as the current version: one registered step per version."""
    target = current_version(event_type)
    while version < target:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return data


# ---------------------------------------------------------------------------- reading

REQUIRED = {
    "OrderPlaced": ("order_no", "customerId", "currency", "shippingMethod"),
    "OrderItemAdded": ("order_no", "sku", "qty", "price_cents"),
}


def decode(event: StoredEvent) -> dict[str, Any]:
    body = json.loads(event.payload)
    data = body.get("data", body) if isinstance(body, dict) else {}
    return data if isinstance(data, dict) else {}


def read_strict(event: StoredEvent) -> dict[str, Any]:
    """The event's data for the current reader; ``Unreadable`` if it is not current."""
    version = schema_version(event)
    if version != current_version(event.event_type):
        raise Unreadable(event, version, f"expected v{current_version(event.event_type)}")
    data = decode(event)
    missing = [f for f in REQUIRED.get(event.event_type, ()) if f not in data]
    if missing:
        raise Unreadable(event, version, f"no {', '.join(missing)}")
    return data


def new_view() -> dict[str, Any]:
    return {
        "version": 0,
        "status": "none",
        "order_no": 0,
        "items": 0,
        "total_cents": 0,
        "customer": None,
        "currency": None,
        "shipping": None,
    }


def fold(view: dict[str, Any], event_type: str, data: dict[str, Any]) -> None:
    """Apply one current event to the order view (in place)."""
    if event_type == "OrderPlaced":
        view.update(
            status="placed",
            order_no=view["order_no"] + 1,
            items=0,
            total_cents=0,
            customer=data["customerId"],
            currency=data["currency"],
            shipping=data["shippingMethod"],
        )
    elif event_type == "OrderItemAdded":
        view["items"] += int(data["qty"])
        view["total_cents"] += int(data["qty"]) * int(data["price_cents"])
    elif event_type == "OrderConfirmed":
        view["status"] = "confirmed"
    elif event_type == "OrderShipped":
        view["status"] = "shipped"
    elif event_type == "OrderCancelled":
        view["status"] = "cancelled"
    view["version"] += 1


def rewritten(event: StoredEvent, data: dict[str, Any]) -> StoredEvent:
    """The event as the current version stores it: same id, stream and version."""
    return StoredEvent(
        event.event_id,
        event.aggregate_id,
        event.aggregate_type,
        event.event_type,
        event.version,
        json.dumps({"data": data}).encode(),
        {**event.metadata, SCHEMA_VERSION_KEY: str(current_version(event.event_type))},
    )


# ---------------------------------------------------------------------------- the history


def _data_at(event_type: str, version: int, order_no: int, rng: random.Random) -> dict[str, Any]:
    """An event's data as the release writing ``version`` wrote it."""
    if event_type == "OrderPlaced":
        data: dict[str, Any] = {"order_no": order_no, "customer": f"c-{rng.randrange(100_000)}"}
        if version >= 2:
            data["currency"] = rng.choice(("EUR", "USD", "GBP"))
            data["shippingMethod"] = rng.choice(("standard", "express"))
        if version >= 3:
            data["customerId"] = data.pop("customer")
        return data
    if event_type == "OrderItemAdded":
        cents = 100 + rng.randrange(10_000)
        data = {
            "order_no": order_no,
            "sku": f"sku-{rng.randrange(1000)}",
            "qty": 1 + rng.randrange(3),
        }
        if version >= 2:
            data["price_cents"] = cents
        else:
            data["price"] = f"{cents // 100}.{cents % 100:02d}"
        return data
    return {"order_no": order_no}


def history(
    streams: int, events_per_stream: int, old_fraction: float, seed: int, aggregate_type: str
) -> Iterator[list[StoredEvent]]:
    """The seeded history, one stream at a time: orders placed, filled, confirmed and shipped
    (or cancelled) one after the other. The first ``old_fraction`` of each stream was written
    before the schema changed: of an evolved type, its first half at v1 and its second half at
    v2 (OrderItemAdded at v1 throughout); the rest at the current version."""
    rng = random.Random(seed)
    ids = random.Random(seed + 1)
    old_until = round(events_per_stream * old_fraction)
    for index in range(streams):
        aggregate = f"{aggregate_type}-{index:08d}"
        events: list[StoredEvent] = []
        status, order_no = "none", 0
        for position in range(events_per_stream):
            if status in ("none", "shipped", "cancelled"):
                event_type, order_no, status = "OrderPlaced", order_no + 1, "placed"
            elif status == "placed":
                draw = rng.random()
                if draw < 0.6:
                    event_type = "OrderItemAdded"
                elif draw < 0.93:
                    event_type, status = "OrderConfirmed", "confirmed"
                else:
                    event_type, status = "OrderCancelled", "cancelled"
            else:
                event_type, status = (
                    ("OrderShipped", "shipped")
                    if rng.random() < 0.9
                    else ("OrderCancelled", "cancelled")
                )
            version = current_version(event_type)
            if position < old_until and event_type in EVOLVED:
                version = 1 if event_type == "OrderItemAdded" or position < old_until / 2 else 2
            data = _data_at(event_type, version, order_no, rng)
            events.append(
                StoredEvent(
                    str(uuid.UUID(int=ids.getrandbits(128), version=4)),
                    aggregate,
                    aggregate_type,
                    event_type,
                    position + 1,
                    json.dumps({"data": data}).encode(),
                    {SCHEMA_VERSION_KEY: str(version)},
                )
            )
        yield events
