"""Which services ``bench up`` manages: service name -> :class:`Service`, in display order.

Adding a broker is a module under ``bench/infra/services/`` and one line here.
"""

from __future__ import annotations

from bench.errors import InfraError
from bench.infra.service import Service
from bench.infra.services.kafka import KafkaService
from bench.infra.services.nats import NatsService
from bench.infra.services.postgres import PostgresService
from bench.infra.services.rabbitmq import RabbitMQService

REGISTRY: dict[str, Service] = {
    service.name: service
    for service in (
        KafkaService(),
        RabbitMQService(),
        NatsService(),
        PostgresService(),
    )
}
SERVICES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Service:
    """The service called ``name``; an :class:`InfraError` naming the choices otherwise."""
    service = REGISTRY.get(name)
    if service is None:
        raise InfraError(f"unknown service {name!r}", hint=f"one of: {', '.join(SERVICES)}")
    return service
