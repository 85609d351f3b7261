"""The RabbitMQ driver's socket writer: every frame written in one turn of the loop goes out in
one ``send``.

aiormq writes each publish, ack and heartbeat with its own ``transport.write``, i.e. its own
send syscall, and on this kind of host (2 cores, broker on loopback) the syscall was about a
third of the client's CPU per message. ``CoalescingTransportFactory`` is aiormq's documented
``transport_factory`` hook: it opens the same TCP or TLS stream and hands aiormq a writer that
buffers what is written and sends it all at the end of the current loop turn
(``loop.call_soon``). Frame order is kept (one buffer, in write order), nothing waits longer
than that turn, and a close or EOF sends what is buffered first. Back-pressure is unchanged:
``drain()`` still waits on the real transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from yarl import URL


class CoalescingWriter:
    """A ``StreamWriter`` stand-in that batches ``write()`` calls into one per loop turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop()
        self._buffer: list[bytes] = []
        self._scheduled = False
        self.writes = 0  # socket writes issued (for measurements)
        self.frames = 0  # write() calls from aiormq

    def write(self, data: bytes) -> None:
        self.frames += 1
        self._buffer.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        buffer = self._buffer
        if not buffer:
            return
        self._buffer = []
        if self._transport.is_closing():
            return
        self.writes += 1
        self._transport.write(buffer[0] if len(buffer) == 1 else b"".join(buffer))

    async def drain(self) -> None:
        await self._writer.drain()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __getattr__(self, name: str) -> Any:
        # is_closing, can_write_eof, wait_closed, transport, get_extra_info: the real writer's.
        return getattr(self._writer, name)


class CoalescingTransportFactory(TransportFactory):
    """aiormq's TCP (or TLS) transport with a ``CoalescingWriter``."""

    def __init__(self, tls: bool) -> None:
        self._inner: TransportFactory = TLSTransportFactory() if tls else TCPTransportFactory()
        self.writers: list[CoalescingWriter] = []

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._inner.create(url, **kwargs)
        coalescing = CoalescingWriter(writer)
        # Only the latest connection's writer matters (a reconnect makes a new one).
        self.writers[:] = [coalescing]
        return reader, coalescing  # type: ignore[return-value]
