"""A broker that speaks only MQTT 3.1.1: refuses v5 CONNECTs, relays the rest to mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

MQTT5_LEVEL = 5
# CONNACK, remaining length 2, no session, return code 1 "unacceptable protocol version".
REFUSE_VERSION = b"\x20\x02\x00\x01"
_CHUNK = 65536


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT control packet (fixed header, remaining length, body)."""
    head = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head + raw + await reader.readexactly(length)


def protocol_level(connect: bytes) -> int:
    """The protocol level byte of a CONNECT packet."""
    offset = 1
    while connect[offset] & 0x80:
        offset += 1
    offset += 1
    name_length = int.from_bytes(connect[offset : offset + 2], "big")
    return connect[offset + 2 + name_length]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF, then close the other side."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@dataclass
class OldBroker:
    """Listens on a free port in front of mosquitto on ``upstream_port``."""

    upstream_port: int
    refused: int = 0
    relayed: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Refuse MQTT 5, relay 3.1.1."""
        try:
            connect = await read_packet(reader)
        except (asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        if protocol_level(connect) == MQTT5_LEVEL:
            self.refused += 1
            writer.write(REFUSE_VERSION)
            await writer.drain()
            writer.close()
            return
        self.relayed += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(connect)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def old_broker(upstream_port: int) -> AsyncIterator[tuple[OldBroker, int]]:
    """Run an ``OldBroker``; yields it and its port."""
    broker = OldBroker(upstream_port)
    server = await asyncio.start_server(broker.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield broker, port
    finally:
        server.close()
        await server.wait_closed()
