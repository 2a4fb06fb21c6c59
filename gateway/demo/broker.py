"""The demo's broker side: an embedded amqtt broker, or a relay in front of an existing one.

Either way the demo gets an ``Uplink`` it can cut and restore: the embedded broker is stopped
and started again on the same port (sessions and all are gone, as after a broker crash); in
front of an existing broker (``--mqtt-url``) the hub dials through a TCP relay that the demo
cuts, as a site's uplink going down, while the cloud stays connected.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

# amqtt's default plugin set includes a $SYS publisher and a packet logger; the demo needs
# only anonymous logins on loopback. Naming plugins here (not through entry points) is also
# what amqtt 0.12 asks for: entry-point loading is deprecated and warns.
BROKER_PLUGINS: dict[str, dict[str, Any]] = {
    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
}
# A relay copies in chunks of this size; MQTT packets of any size pass through in pieces.
RELAY_CHUNK_BYTES = 64 * 1024
LOOPBACK = "127.0.0.1"


class Uplink(Protocol):
    """What the outage step needs: cut the hub off from the broker, then restore the link."""

    hub_url: str
    cloud_url: str
    what: str
    # The [mqtt] protocol the hub and the cloud speak to this broker.
    protocol: str

    async def cut(self) -> None:
        """Cut the hub's link to the broker."""

    async def restore(self) -> None:
        """Restore it."""

    async def close(self) -> None:
        """Stop everything this uplink started."""


class EmbeddedBroker:
    """amqtt in this process on a loopback port; ``cut`` stops it, ``restore`` starts a new one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hub_url = self.cloud_url = f"mqtt://{LOOPBACK}:{port}"
        self.what = f"embedded amqtt broker on {LOOPBACK}:{port} (MQTT 3.1.1)"
        # amqtt 0.12 speaks 3.1.1 only, and an MQTT 5 CONNECT with properties makes it wait
        # for bytes that never come instead of refusing the version: `auto` would time out
        # (10 s) and try 5 again, so the hub is told to speak 3.1.1.
        self.protocol = "3.1.1"
        self._broker: Any = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
            "plugins": BROKER_PLUGINS,
        }

    async def start(self) -> None:
        """Start a fresh broker (no sessions, no retained messages)."""
        # Only the demo needs amqtt, and amqtt ships no py.typed marker.
        from amqtt.broker import Broker  # type: ignore[import-untyped]  # noqa: PLC0415

        broker = Broker(self._config())
        await broker.start()
        self._broker = broker

    async def cut(self) -> None:
        """Stop the broker: every client is disconnected and new connections are refused."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def restore(self) -> None:
        """Start a new broker on the same port."""
        await self.start()

    async def close(self) -> None:
        """Stop the broker if it runs."""
        await self.cut()


class Relay:
    """A TCP relay on loopback in front of an existing broker, for the hub only."""

    def __init__(self, url: str, host: str, port: int) -> None:
        self.cloud_url = url
        self.what = f"existing broker at {url}, the hub through a relay the demo can cut"
        self.protocol = "auto"
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.hub_url = ""

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: any free one) and relay each connection to the broker."""
        self._server = await asyncio.start_server(self._accept, LOOPBACK, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.hub_url = f"mqtt://{LOOPBACK}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)
        for end in (writer, up_writer):
            end.close()
            self._writers.discard(end)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(RELAY_CHUNK_BYTES):
                writer.write(chunk)
                await writer.drain()

    async def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()

    async def restore(self) -> None:
        """Listen again on the same port."""
        await self.start(self.port)

    async def close(self) -> None:
        """Drop everything."""
        await self.cut()
