"""The hub's MQTT link against a real mosquitto, with the test playing the cloud."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.topics import Channel
from gateway.access.windows import tombstone
from gateway.hubmetrics import hub_metrics
from gateway.identity import HubKeys
from gateway.sync.announce import digest_of
from tests.infra.services import MosquittoBroker

from .cloud import eventually, eventually_depth
from .conftest import CLOUD_KID, HUB_ID, CloudFactory, HubFactory
from .proxy import old_broker

pytestmark = pytest.mark.mqtt


async def retained_status(broker: MosquittoBroker, topic: str) -> dict[str, Any]:
    """The retained message on ``topic``, as a fresh subscriber sees it."""
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            assert message.retain
            assert isinstance(message.payload, bytes)
            status: dict[str, Any] = json.loads(message.payload)
            return status
    raise AssertionError("no retained status")


def upsert(keys: HubKeys, window_id: str, code: str) -> dict[str, Any]:
    """A window.upsert body for an hour from now on the front door."""
    now = datetime.now(UTC)
    return {
        "window_id": window_id,
        "tenant_id": "acme",
        "task_id": f"task-{window_id}",
        "lock_id": "front-door",
        "starts_at": p.rfc3339(now),
        "ends_at": p.rfc3339(now + timedelta(hours=1)),
        "version": 1,
        "max_uses": None,
        "enforcement": "hub",
        "code_sealed": p.seal_code(code, window_id, keys.sealing.public_key()),
    }


async def test_connect_announces_hello_and_retained_online_status(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await eventually(lambda: bool(cloud.hellos), "the hello")
        hello = cloud.hellos[0]
        assert hello.hub_id == HUB_ID
        assert hello.body.last_command_seq == {}
        assert hello.body.window_set_digest == p.window_set_digest([])
        assert hello.body.software_version
        status = await retained_status(mosquitto, cloud.topic(Channel.STATUS))
        assert status["state"] == "online"
        assert status["health"]["locks"] == 1
        assert status["health"]["mqtt"] == "5"
        assert "outbox_depth" in status["health"]
        assert hub.link.connected
        text = hub_metrics(hub.hub.engine, hub.link).render()
        assert "lockhub_mqtt_connected 1" in text
        assert "lockhub_mqtt_connects_total 1" in text


async def test_a_cloud_command_is_applied_and_its_result_arrives(
    mosquitto: MosquittoBroker,
    make_hub: HubFactory,
    make_cloud: CloudFactory,
    hub_keys: HubKeys,
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await eventually(lambda: bool(cloud.hellos), "the hello")
        await cloud.publish(
            Channel.COMMANDS, cloud.command("window.upsert", upsert(hub_keys, "w-1", "482913"))
        )
        await eventually(lambda: hub.hub.engine.cache.get("w-1") is not None, "the window")

        def result() -> dict[str, Any] | None:
            found = [r for r in cloud.chain() if r["type"] == "command.result"]
            return found[0] if found else None

        await eventually(lambda: bool(cloud.records) and result() is not None, "command.result")
        answer = result()
        assert answer is not None
        assert answer["body"]["result"] == "applied"
        assert answer["body"]["kid"] == CLOUD_KID
        # Counted once the broker acked the publish, which can trail the cloud's copy.
        await eventually(lambda: hub.link.pump.published_records >= 1, "the publish count")
        # The next hello reports the command seq and the window set.
        assert hub.hub.intake.last_seq() == {CLOUD_KID: 1}


async def test_records_arrive_in_order_in_batches_and_acks_empty_the_outbox(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await hub.add_records(30, together=True)
        await eventually(lambda: len(cloud.records) == 30, "30 records")
        assert await hub.depth() == 30
        await cloud.ack([(1, 30)])
        await eventually_depth(hub, 0)
        assert hub.link.last_ack_at is not None
        assert "lockhub_sync_last_ack_age_seconds" in hub_metrics(hub.hub.engine, hub.link).render()

        # A backlog bigger than the in-flight window flows as the cloud acks it.
        cloud.auto_ack = True
        await hub.add_records(470, start=30, together=True)
        await eventually(lambda: len(cloud.records) == 500, "500 records")
        await eventually_depth(hub, 0)
        assert cloud.arrival == list(range(1, 501))
        assert cloud.duplicates == 0
        assert max(cloud.batch_sizes) == hub.link.settings.batch_size
        assert [r["body"]["details"]["i"] for r in cloud.chain()] == list(range(500))


async def test_forged_acks_are_ignored(
    mosquitto: MosquittoBroker,
    make_hub: HubFactory,
    make_cloud: CloudFactory,
    hub_keys: HubKeys,
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await hub.add_records(5)
        await eventually(lambda: len(cloud.records) == 5, "5 records")
        impostor = Ed25519PrivateKey.generate()
        forged = [
            cloud.ack_batch([(1, 5)], key=impostor),  # right kid, wrong key
            cloud.ack_batch([(1, 5)], key=impostor, kid="cloud-unknown"),
            cloud.ack_batch([(1, 5)], key=hub_keys.signing, kid=HUB_ID),  # the hub's own key
            b"not json",
        ]
        for message in forged:
            await cloud.publish(Channel.ACKS, message)
        # The hub handles messages in order: once this one is in, the forged ones were seen.
        await cloud.ack([(1, 1)])
        await eventually(lambda: hub.link.last_ack_at is not None, "the genuine ack")
        assert await hub.depth() == 4


async def test_unacked_and_offline_records_arrive_exactly_once_across_broker_restarts(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await hub.add_records(20)
        await eventually(lambda: len(cloud.records) == 20, "20 records")
        await cloud.ack([(1, 10)])
        await eventually(lambda: hub.link.last_ack_at is not None, "the ack")
        mosquitto.restart()  # 11..20 unacked: the hub must send them again
        await eventually(lambda: cloud.duplicates >= 10, "the resend after reconnect")

        cloud.auto_ack = True  # from here on the backlog outgrows the in-flight window
        mosquitto.stop()
        await eventually(lambda: not hub.link.connected, "the hub to notice")
        await hub.add_records(200, start=20)  # made while the broker is away
        mosquitto.start()
        await eventually(lambda: len(cloud.records) == 220, "220 records")
        assert cloud.arrival == list(range(1, 221))
        assert [r["body"]["details"]["i"] for r in cloud.chain()] == list(range(220))
        await eventually_depth(hub, 0)
        assert hub.link.connects >= 3


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_commands_sent_while_the_hub_is_away_wait_in_its_session(
    mosquitto: MosquittoBroker,
    make_hub: HubFactory,
    make_cloud: CloudFactory,
    hub_keys: HubKeys,
    protocol: str,
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url, protocol=protocol) as hub:
        await eventually(lambda: bool(cloud.hellos), "the hello")
        await hub.stop_link()
        # A clean disconnect drops the Last Will, so the hub says goodbye itself.
        status = await retained_status(mosquitto, cloud.topic(Channel.STATUS))
        assert (status["state"], status["reason"]) == ("offline", "shutdown")

        command = cloud.command("window.upsert", upsert(hub_keys, "w-away", "739104"))
        await cloud.publish(Channel.COMMANDS, command)
        hub.start_link()
        await eventually(lambda: hub.hub.engine.cache.get("w-away") is not None, "the window")
        await eventually(lambda: len(cloud.hellos) == 2, "the second hello")
        assert hub.link.version == protocol


async def test_a_broker_without_mqtt5_gets_mqtt311(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with (
        old_broker(mosquitto.port) as (broker, port),
        make_cloud() as cloud,
        make_hub(f"mqtt://127.0.0.1:{port}") as hub,
    ):
        await eventually(lambda: bool(cloud.hellos), "the hello")
        assert (broker.refused, broker.relayed) == (1, 1)
        assert hub.link.version == "3.1.1"
        await hub.add_records(3, together=True)
        await eventually(lambda: len(cloud.records) == 3, "3 records")
        status = await retained_status(mosquitto, cloud.topic(Channel.STATUS))
        assert status["health"]["mqtt"] == "3.1.1"


async def test_a_lost_ack_is_made_good_by_a_resend(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url) as hub:
        await hub.add_records(3, together=True)
        await eventually(lambda: len(cloud.records) == 3, "3 records")
        # No ack comes: after resend_after the hub sends them again on the same connection.
        await eventually(lambda: cloud.duplicates >= 3, "the resend")
        assert hub.link.pump.resends >= 1
        assert hub.link.connects == 1
        await cloud.ack([(1, 3)])
        await eventually_depth(hub, 0)


def test_the_hello_digest_covers_the_windows_the_cloud_counts() -> None:
    """The cloud's desired set: not revoked, not ended. Anything else would mean a resync."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    hour = timedelta(hours=1)

    def window(window_id: str, version: int, state: str, ends_at: datetime) -> Any:
        row = tombstone(window_id, version, now)
        return replace(row, state=state, ends_at=ends_at, starts_at=now - hour, origin="push")

    held = [
        window("w-active", 2, "active", now + hour),
        window("w-scheduled", 1, "scheduled", now + 3 * hour),
        window("w-used", 3, "used", now + hour),  # used up, still desired by the cloud
    ]
    gone = [
        window("w-revoked", 4, "revoked", now + hour),
        tombstone("w-never-seen", 2, now),
        window("w-ended", 1, "active", now),
        window("w-expired", 1, "expired", now - hour),
    ]
    expected = p.window_set_digest([(w.window_id, w.version) for w in held])
    assert digest_of([*gone, *held], now) == expected
    assert digest_of(held[:2], now) != expected
