"""A worker spec as plain data (msgpack- and JSON-safe), and back.

The driver configuration is not sent resolved: the target's options go as written in the
scenario (``${env:NAME}`` and ``${file:PATH}`` references intact) and the worker validates and
resolves them itself, so credentials never travel between machines.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.drivers.base import Topology
from bench.engine.workers import WorkerSpec
from bench.scenario import Workload, validate_target

WIRE_VERSION = 1


def spec_to_wire(spec: WorkerSpec, target: str, target_options: dict[str, Any]) -> dict[str, Any]:
    fields = {
        f.name: getattr(spec, f.name)
        for f in dataclasses.fields(spec)
        if f.name not in ("driver_config", "workload", "topology")
    }
    fields["producer_ids"] = list(spec.producer_ids)
    fields["consumer_ids"] = list(spec.consumer_ids)
    fields["faults"] = [list(f) for f in spec.faults]
    return {
        "version": WIRE_VERSION,
        "target": target,
        "target_options": target_options,
        "workload": spec.workload.model_dump(mode="json"),
        "topology": dataclasses.asdict(spec.topology),
        "fields": fields,
    }


def spec_from_wire(data: dict[str, Any], source: str = "locust master") -> WorkerSpec:
    """Rebuild the spec; resolves the target's credential references here, on this machine."""
    if data.get("version") != WIRE_VERSION:
        raise ValueError(f"worker spec version {data.get('version')!r}, expected {WIRE_VERSION}")
    fields = dict(data["fields"])
    fields["producer_ids"] = tuple(fields["producer_ids"])
    fields["consumer_ids"] = tuple(fields["consumer_ids"])
    fields["faults"] = tuple(tuple(f) for f in fields["faults"])
    return WorkerSpec(
        driver_config=validate_target(data["target"], data["target_options"], source),
        workload=Workload.model_validate(data["workload"]),
        topology=Topology(**data["topology"]),
        **fields,
    )
