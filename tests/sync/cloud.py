"""The cloud, played by a test: a real MQTT client that verifies records and signs acks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud_sync import protocol as p
from cloud_sync.protocol import topics

# The cloud's own reconnect pause while a test restarts the broker.
CLOUD_RETRY_SECONDS = 0.05
# Waiting for something to arrive polls this often, up to a test's deadline.
POLL_SECONDS = 0.01
# Long enough for a loaded CI box, short enough that a failure shows fast.
WAIT_SECONDS = 10.0


@dataclass
class Cloud:
    """Subscribes to one hub's up/ topics, keeps records idempotently by seq, and can ack."""

    host: str
    port: int
    prefix: str
    hub_id: str
    hub_key: Ed25519PublicKey
    key: Ed25519PrivateKey
    kid: str
    auto_ack: bool = False
    records: dict[int, bytes] = field(default_factory=dict)
    arrival: list[int] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    duplicates: int = 0
    hellos: list[p.HubHello] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    command_seq: int = 0

    def topic(self, channel: topics.Channel) -> str:
        """The hub's topic for ``channel``."""
        return topics.topic(self.prefix, self.hub_id, channel)

    async def run(self) -> None:
        """Stay connected (persistent session) and handle what the hub publishes."""
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=f"cloud-{self.hub_id}", clean_session=False
                ) as client:
                    self.client = client
                    wanted = [topics.Channel.RECORDS, topics.Channel.HELLO, topics.Channel.STATUS]
                    await client.subscribe([(self.topic(c), 1) for c in wanted])
                    self.connected.set()
                    async for message in client.messages:
                        await self._on(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                self.connected.clear()
                self.client = None
                await asyncio.sleep(CLOUD_RETRY_SECONDS)

    async def _on(self, topic: str, payload: object) -> None:
        assert isinstance(payload, bytes)
        _, channel = topics.parse_topic(self.prefix, topic)
        if channel is topics.Channel.STATUS:
            self.statuses.append(json.loads(payload))
            return
        keys = {self.hub_id: self.hub_key}
        verified = [p.verify(e, keys) for e in p.decode_batch(payload)]
        if channel is topics.Channel.HELLO:
            self.hellos.extend(p.accept_hello(v, hub_id=self.hub_id) for v in verified)
            return
        self.batch_sizes.append(len(verified))
        for v in verified:
            record = p.accept_record(v, hub_id=self.hub_id)
            if record.seq in self.records:
                assert self.records[record.seq] == v.payload, "a seq came back changed"
                self.duplicates += 1
            else:
                self.records[record.seq] = v.payload
                self.arrival.append(record.seq)
        if self.auto_ack:
            await self.ack([(r, r) for r in sorted(self.records)])

    def chain(self) -> list[dict[str, Any]]:
        """Every record held, in seq order, after checking seqs are gap-free and chained."""
        seqs = sorted(self.records)
        assert seqs == list(range(1, len(seqs) + 1)), "a seq is missing"
        payloads = [self.records[s] for s in seqs]
        p.verify_chain(payloads)
        return [json.loads(x) for x in payloads]

    def ack_batch(
        self, ranges: list[tuple[int, int]], *, key: Ed25519PrivateKey | None = None, kid: str = ""
    ) -> bytes:
        """A signed ``records.ack`` message (by this cloud's key unless told otherwise)."""
        payload = p.ack_payload(
            hub_id=self.hub_id, issued_at=datetime.now(UTC), acked=p.ack_ranges(_seqs(ranges))
        )
        return p.encode_batch([p.sign(payload, key or self.key, kid or self.kid)])

    async def ack(self, ranges: list[tuple[int, int]]) -> None:
        """Publish a genuine ack for ``ranges``."""
        await self.publish(topics.Channel.ACKS, self.ack_batch(ranges))

    def command(self, type_: str, body: dict[str, Any]) -> bytes:
        """A signed command batch with the next seq."""
        self.command_seq += 1
        now = datetime.now(UTC)
        payload = p.command_payload(
            type=type_,  # type: ignore[arg-type]
            hub_id=self.hub_id,
            seq=self.command_seq,
            issued_at=now,
            expires_at=now + timedelta(minutes=10),
            body=body,
        )
        return p.encode_batch([p.sign(payload, self.key, self.kid)])

    async def publish(self, channel: topics.Channel, data: bytes) -> None:
        """Publish at QoS 1 to the hub's ``channel``."""
        await asyncio.wait_for(self.connected.wait(), WAIT_SECONDS)
        assert self.client is not None
        await self.client.publish(self.topic(channel), data, qos=1)


def _seqs(ranges: list[tuple[int, int]]) -> list[int]:
    return [s for first, last in ranges for s in range(first, last + 1)]


async def eventually(check: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Wait until ``check()`` holds, failing with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_SECONDS)


async def eventually_depth(hub: Any, depth: int, seconds: float = WAIT_SECONDS) -> None:
    """Wait until the hub's outbox holds ``depth`` records."""
    deadline = time.monotonic() + seconds
    while (now := await hub.depth()) != depth:
        assert time.monotonic() < deadline, f"outbox depth stayed {now}, wanted {depth}"
        await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def running(cloud: Cloud) -> AsyncIterator[Cloud]:
    """Run ``cloud`` in the background until the block ends."""
    task = asyncio.create_task(cloud.run())
    try:
        await asyncio.wait_for(cloud.connected.wait(), WAIT_SECONDS)
        yield cloud
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
