"""The cloud's MQTT worker on a real mosquitto: no message stops it, it acks only what it stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.config import CloudMqttSection
from cloud_sync.ingest import CloudWorker
from cloud_sync.protocol.envelope import Envelope, Signer, decode_batch, encode_batch, verify
from cloud_sync.protocol.messages import HubHello, hello_payload, window_set_digest
from cloud_sync.protocol.policy import accept_ack
from cloud_sync.protocol.topics import DEFAULT_PREFIX, Channel, commands_topic, topic
from cloud_sync.service import CloudService, Outgoing
from gateway.sync.client import Version
from tests.infra.services import MosquittoBroker
from tests.sync.cloud import eventually

from .conftest import HUB_ID, START, HubChain, HubKeys

pytestmark = pytest.mark.mqtt

Ranges = list[tuple[int, int]]


@dataclass
class Peer:
    """Publishes as a hub would and collects what the cloud sends that hub."""

    client: aiomqtt.Client
    cloud: Signer
    hub_id: str = HUB_ID
    acks: list[Ranges] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)

    async def publish(self, channel: Channel, payload: bytes) -> None:
        await self.client.publish(topic(DEFAULT_PREFIX, self.hub_id, channel), payload, qos=1)

    async def records(self, envelopes: list[Envelope]) -> None:
        await self.publish(Channel.RECORDS, encode_batch(envelopes))

    def acked(self) -> Ranges:
        return [pair for ack in self.acks for pair in ack]

    async def collect(self) -> None:
        keys = {self.cloud.kid: self.cloud.key.public_key()}
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            if message.topic.value.endswith("/down/acks"):
                for envelope in decode_batch(message.payload):
                    ack = accept_ack(verify(envelope, keys), hub_id=self.hub_id)
                    self.acks.append([(a, b) for a, b in ack.body.acked])
            else:
                self.commands.append(message.payload)


@contextlib.asynccontextmanager
async def peer(broker: MosquittoBroker, cloud: Signer, hub_id: str = HUB_ID) -> AsyncIterator[Peer]:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"peer-{hub_id}") as client:
        await client.subscribe(f"{DEFAULT_PREFIX}/hubs/{hub_id}/down/#", qos=1)
        found = Peer(client, cloud, hub_id)
        task = asyncio.create_task(found.collect())
        try:
            yield found
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def make_worker(
    service: CloudService, broker: MosquittoBroker, kind: type[CloudWorker] = CloudWorker
) -> CloudWorker:
    mqtt = CloudMqttSection.model_validate({"url": broker.url, "keepalive": 5})
    return kind(service.store, service, mqtt, client_id="cloud-test", group=None, backoff_cap=0.1)


@contextlib.asynccontextmanager
async def running(worker: CloudWorker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.connected, "the worker to connect")
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def hello(keys: HubKeys, digest: str = window_set_digest([])) -> Envelope:
    body = {"last_command_seq": {}, "window_set_digest": digest, "software_version": "0.1.0"}
    return Signer(HUB_ID, keys.signing).sign(
        hello_payload(hub_id=HUB_ID, seq=0, issued_at=START, body=body)
    )


async def answered(the_peer: Peer, count: int) -> None:
    await eventually(lambda: len(the_peer.commands) >= count, f"{count} command messages")


async def test_malformed_hellos_are_refused_and_the_worker_goes_on(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, hub_keys: HubKeys,
    chain: HubChain,
) -> None:  # fmt: skip
    worker = make_worker(service, mosquitto)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        for bad in (
            b"[{}]",
            b"[{}, {}]",
            encode_batch([hello(hub_keys), hello(hub_keys)]),  # two genuine ones in one message
            b"\xff\xfe garbage, not JSON",
            b"[]",
        ):
            await hub.publish(Channel.HELLO, bad)
        await hub.publish(Channel.HELLO, encode_batch([hello(hub_keys, "0" * 64)]))
        await hub.records(chain.events(2))
        await eventually(lambda: hub.acked() == [(1, 2)], "the records' ack")
        await answered(hub, 1)
        # Only the good hello was answered (a digest that differs: a windows.sync).
        assert len(hub.commands) == 1
        assert not task.done()
        assert (worker.crashes, worker.failed_messages) == (0, 0)


async def test_malformed_record_batches_are_refused_and_nothing_is_acked(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, chain: HubChain
) -> None:
    worker = make_worker(service, mosquitto)
    stranger = HubChain(Signer(HUB_ID, Ed25519PrivateKey.generate()))
    good = chain.events(3)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        for bad in (b"not json at all", b"[]", b"[1, 2]", b'{"a": 1}', b"[{}, {}]"):
            await hub.publish(Channel.RECORDS, bad)
        await hub.records(stranger.events(2))  # signed by a key that is not the hub's
        await hub.records(good[:1])
        await eventually(lambda: hub.acked() == [(1, 1)], "the good record's ack")
        await hub.records(good[1:])
        await eventually(lambda: hub.acked() == [(1, 1), (2, 3)], "the next ack")
        assert [r.seq for r in await service.store.records(HUB_ID)] == [1, 2, 3]
        assert not task.done()
        assert worker.ingested == 3


async def test_an_unknown_hub_is_refused(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, chain: HubChain
) -> None:
    worker = make_worker(service, mosquitto)
    other = HubChain(Signer("hub-9999", Ed25519PrivateKey.generate()))
    stranger = HubKeys(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    async with (
        running(worker),
        peer(mosquitto, cloud_signer, "hub-9999") as unknown,
        peer(mosquitto, cloud_signer) as hub,
    ):
        await unknown.records(other.events(2))
        await unknown.publish(Channel.HELLO, encode_batch([hello(stranger)]))
        await hub.records(chain.events(1))
        await eventually(lambda: hub.acked() == [(1, 1)], "the registered hub's ack")
        assert unknown.acks == []
        assert unknown.commands == []
        assert await service.store.records("hub-9999") == []


async def refuse_inserts(service: CloudService) -> Callable[[], Awaitable[None]]:
    """Make the database refuse every new record (a real failure), and return the undo."""
    db = service.store.database
    if db.dialect == "sqlite":
        breaks = (
            "CREATE TRIGGER refuse BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
        mends = "DROP TRIGGER refuse"
    else:
        breaks = "ALTER TABLE records ADD CONSTRAINT refuse CHECK (seq < 0) NOT VALID"
        mends = "ALTER TABLE records DROP CONSTRAINT refuse"
    await db.write(lambda conn: conn.execute(sa.text(breaks)))

    async def undo() -> None:
        await db.write(lambda conn: conn.execute(sa.text(mends)))

    return undo


async def test_a_store_failure_is_not_acked_and_the_resend_is_ingested(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, hub_keys: HubKeys,
    chain: HubChain,
) -> None:  # fmt: skip
    worker = make_worker(service, mosquitto)
    first, second = chain.events(2), chain.events(2)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        await hub.records(first)
        await eventually(lambda: hub.acked() == [(1, 2)], "the first ack")
        undo = await refuse_inserts(service)
        await hub.records(second)
        await eventually(lambda: worker.store_failures == 1, "the store to fail")
        # The worker goes on (a hello is answered) and acked nothing it did not store.
        await hub.publish(Channel.HELLO, encode_batch([hello(hub_keys, "0" * 64)]))
        await answered(hub, 1)
        assert hub.acked() == [(1, 2)]
        assert [r.seq for r in await service.store.records(HUB_ID)] == [1, 2]
        await undo()
        await hub.records(second)  # the hub resends what was never acked
        await eventually(lambda: hub.acked() == [(1, 2), (3, 4)], "the resend's ack")
        stored = await service.store.records(HUB_ID)
        assert [(r.seq, r.chained) for r in stored] == [(s, True) for s in (1, 2, 3, 4)]
        assert not task.done()


class BuggyService(CloudService):
    """Fault injection: the first resync trips over a bug (nothing real raises one)."""

    tripped = False

    async def resync(self, hub_id: str, hello: HubHello | None = None) -> list[Outgoing]:
        if not self.tripped:
            self.tripped = True
            raise RuntimeError("injected bug")
        return await super().resync(hub_id, hello)


async def test_a_bug_in_one_message_does_not_stop_the_worker(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, hub_keys: HubKeys,
    chain: HubChain,
) -> None:  # fmt: skip
    buggy = BuggyService(service.store, cloud_signer, now=lambda: START)
    worker = make_worker(buggy, mosquitto)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        await hub.publish(Channel.HELLO, encode_batch([hello(hub_keys, "0" * 64)]))
        await hub.records(chain.events(1))
        await eventually(lambda: hub.acked() == [(1, 1)], "the ack after the bug")
        await hub.publish(Channel.HELLO, encode_batch([hello(hub_keys, "0" * 64)]))
        await answered(hub, 1)
        assert (worker.failed_messages, worker.crashes, task.done()) == (1, 0, False)


class CrashOnce(CloudWorker):
    """Fault injection: the first session fails with a bug after connecting."""

    async def _serve(self, client: aiomqtt.Client) -> None:
        if self.crashes == 0:
            raise RuntimeError("injected bug")
        await super()._serve(client)


async def test_a_session_that_fails_unexpectedly_is_started_again(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer, chain: HubChain
) -> None:
    worker = make_worker(service, mosquitto, CrashOnce)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        await hub.records(chain.events(2))
        await eventually(lambda: hub.acked() == [(1, 2)], "the ack after the restart")
        assert (worker.crashes, task.done(), worker.version) == (1, False, Version.V5)


async def test_a_message_paho_refuses_does_not_block_the_ones_behind_it(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer
) -> None:
    worker = make_worker(service, mosquitto)
    good = await service.resync(HUB_ID)
    assert good[0].topic == commands_topic(DEFAULT_PREFIX, HUB_ID)
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        worker.publish_later([Outgoing(f"{DEFAULT_PREFIX}/hubs/#", b"[]"), *good])
        await answered(hub, 1)
        assert hub.commands == [good[0].payload]
        assert not task.done()


async def test_queued_commands_go_out_in_order(
    mosquitto: MosquittoBroker, service: CloudService, cloud_signer: Signer
) -> None:
    worker = make_worker(service, mosquitto)
    topic = commands_topic(DEFAULT_PREFIX, HUB_ID)
    queued = [Outgoing(topic, str(n).encode()) for n in range(30)]
    async with running(worker) as task, peer(mosquitto, cloud_signer) as hub:
        worker.publish_later(queued)
        await answered(hub, len(queued))
        assert hub.commands == [message.payload for message in queued]
        assert not task.done()
