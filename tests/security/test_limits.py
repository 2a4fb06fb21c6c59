"""Size limits hold: HTTP bodies on the hub and cloud APIs, MQTT batches at the hub and cloud.

HTTP bodies over a limit are 413 whether they declare a Content-Length or arrive chunked
(``gateway.httpbody.read_body`` stops reading at limit + 1), and the handler never sees them;
a body of exactly the limit is read. MQTT batches over ``MAX_BATCH_BYTES`` or
``MAX_BATCH_ENVELOPES`` are refused as a whole by ``decode_batch`` before any envelope is
verified: at the hub (commands: rejected ``malformed`` and reported as a ``hub.alert``; acks:
ignored) and at the cloud worker (nothing stored, nothing acked).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.api import MAX_BODY
from cloud_sync.config import CloudMqttSection
from cloud_sync.ingest import CloudWorker
from cloud_sync.protocol.envelope import MAX_BATCH_BYTES, MAX_BATCH_ENVELOPES
from cloud_sync.protocol.topics import Channel
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, migrate
from gateway.access.intake import IntakeResult
from gateway.api import MAX_ADMIN_BODY, MAX_CALLBACK_BODY, MAX_UNLOCK_BODY
from gateway.sync.client import MAX_PACKET_BYTES, connect_properties
from gateway.sync.link import HubLink
from tests.access.harness import ADMIN_TOKEN, CLOUD_KID, HUB_ID, HubHarness, running_hub
from tests.cloud_api.conftest import WINDOWS, Cloud

TOO_LARGE = 413


def padded_json(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"code":"123456","pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """``data`` in 1 KiB pieces: sent without a Content-Length."""
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


async def post(hub: HubHarness, path: str, data: bytes, *, stream: bool) -> int:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body: Any = chunked(data) if stream else data
    async with hub.client.post(path, data=body, headers=headers) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("stream", [False, True], ids=["content-length", "chunked"])
async def test_hub_bodies_over_their_limit_are_413(tmp_path: Path, stream: bool) -> None:
    async with running_hub(tmp_path) as hub:
        seen: list[bytes] = []

        async def callback(body: bytes, _: Any) -> None:
            seen.append(body)

        hub.hub.callbacks.register("front-door", callback)
        routes = [
            ("/v1/locks/front-door/unlock", MAX_UNLOCK_BODY),
            ("/v1/admin/commands", MAX_ADMIN_BODY),
            ("/v1/callbacks/front-door?secret=s", MAX_CALLBACK_BODY),
        ]
        for path, limit in routes:
            assert await post(hub, path, padded_json(limit + 1), stream=stream) == TOO_LARGE, path
            assert await post(hub, path, padded_json(limit), stream=stream) != TOO_LARGE, path
        # The callback handler saw the body at the limit, never the one over it.
        assert [len(body) for body in seen] == [MAX_CALLBACK_BODY]
        records = await hub.records()
        assert not [r for r in records if r["type"] == "window.status"]


@pytest.mark.parametrize("stream", [False, True], ids=["content-length", "chunked"])
async def test_cloud_bodies_over_the_limit_are_413(cloud: Cloud, stream: bool) -> None:
    for size, expected in ((MAX_BODY + 1, True), (MAX_BODY, False)):
        data = padded_json(size)
        body: Any = chunked(data) if stream else data
        response = await cloud.client.post(WINDOWS, data=body, headers=cloud.auth("acme"))
        await response.read()
        assert (response.status == TOO_LARGE) is expected, size
    assert cloud.published == []


def oversized(batch: bytes) -> list[bytes]:
    """``batch`` padded past the byte limit, and a batch of too many envelopes."""
    return [
        batch[:-1] + b" " * (MAX_BATCH_BYTES + 1 - len(batch)) + b"]",
        p.encode_batch([p.jsoncodec.loads(batch)[0]] * (MAX_BATCH_ENVELOPES + 1)),
    ]


async def test_the_hub_refuses_oversized_command_batches(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        batch = hub.command("window.upsert", hub.upsert("w-big", "24682468"))
        for data in oversized(batch):
            assert await hub.hub.intake.handle(data) == [IntakeResult("rejected", "malformed")]
        assert (await hub.unlock("front-door", code="24682468"))[0] == 403
        alerts = [r["body"] for r in await hub.records() if r["type"] == "hub.alert"]
        assert [a["details"]["reason"] for a in alerts] == ["malformed", "malformed"]
        assert "larger than" in alerts[0]["details"]["detail"]
        # The same command within the limits applies.
        assert (await hub.hub.intake.handle(batch))[0].result == "applied"


async def test_the_hub_ignores_oversized_ack_batches(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        hub_parts = hub.hub
        link = HubLink(
            mqtt=hub_parts.config.mqtt,
            protocol="auto",
            engine=hub_parts.engine,
            intake=hub_parts.intake,
            store=hub_parts.store,
            signer=p.Signer(HUB_ID, hub.keys.signing),
            command_keys={CLOUD_KID: hub.cloud.public_key()},
            settings=hub_parts.config.sync.settings(),
        )
        await hub.send(hub.command("window.upsert", hub.upsert("w-ack", "13571357")))
        depth = await hub_parts.store.outbox_depth()
        assert depth > 0
        ack = p.ack_payload(hub_id=HUB_ID, issued_at=hub.clock.now(), acked=[(1, depth)])
        batch = p.encode_batch([p.sign(ack, hub.cloud, CLOUD_KID)])
        for data in oversized(batch):
            assert await link.on_acks(data) == 0
        assert await hub_parts.store.outbox_depth() == depth
        assert await link.on_acks(batch) == depth


def test_the_hub_asks_the_broker_for_nothing_larger_than_a_batch() -> None:
    """MQTT 5 only: with a 3.1.1 broker there is no such cap (the batch check still holds)."""
    assert getattr(connect_properties(), "MaximumPacketSize") == MAX_PACKET_BYTES  # noqa: B009
    assert MAX_BATCH_BYTES < MAX_PACKET_BYTES <= MAX_BATCH_BYTES + 1024


async def test_the_cloud_ingest_refuses_oversized_record_batches(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    await migrate(url)
    hub_key = Ed25519PrivateKey.generate()
    now: Callable[[], datetime] = lambda: datetime(2026, 3, 1, 12, tzinfo=UTC)  # noqa: E731
    async with await CloudStore.open(url, now=now) as store:
        service = CloudService(store, p.Signer("cloud-1", Ed25519PrivateKey.generate()), now=now)
        sealing = X25519PrivateKey.generate().public_key()
        await service.add_hub(
            HUB_ID, p.public_key_b64(hub_key.public_key()), p.public_key_b64(sealing), ["acme"]
        )
        worker = CloudWorker(
            store,
            service,
            CloudMqttSection.model_validate({"url": "mqtt://127.0.0.1:1"}),
            client_id="cloud-test",
            group=None,
        )
        body = {
            "prev_hash": p.GENESIS_HASH,
            "clock": {"synced": True, "source": "ntp"},
            "kind": "test",
            "severity": "info",
            "message": "m",
            "details": {},
        }
        record = p.build_record(type="hub.alert", hub_id=HUB_ID, seq=1, issued_at=now(), body=body)
        batch = p.encode_batch([p.sign(record, hub_key, HUB_ID)])
        records_topic = p.topic(p.DEFAULT_PREFIX, HUB_ID, Channel.RECORDS)
        for data in oversized(batch):
            await worker._handle(records_topic, data)
        assert await store.records(HUB_ID) == []
        await worker._handle(records_topic, batch)  # within the limits: stored
        assert [r.seq for r in await store.records(HUB_ID)] == [1]
