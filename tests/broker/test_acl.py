"""The example ACL on a real mosquitto: hubs own their topics, the cloud reads and commands all."""

from __future__ import annotations

import queue
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest

from cloud_sync.protocol.topics import (
    DEFAULT_PREFIX,
    acks_topic,
    cloud_subscriptions,
    commands_topic,
    hello_topic,
    hub_subscriptions,
    records_topic,
    status_topic,
)
from tests.broker.conftest import CLOUD_WORKERS, HUBS, PeerFactory
from tests.broker.peer import DELIVERY_TIMEOUT, Peer
from tests.infra.services import MosquittoBroker

pytestmark = pytest.mark.mqtt

P = DEFAULT_PREFIX
SUCCESS = 0x00
GRANTED_QOS_1 = 0x01
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5: accepted, nobody listening
UNSPECIFIED_ERROR = 0x80
NOT_AUTHORIZED = 0x87
SHARED_GROUP = "lockhub-cloud"


def test_hub_channels_reach_the_cloud(peer: PeerFactory) -> None:
    cloud = peer("lockhub-cloud")
    assert cloud.subscribe(*cloud_subscriptions(P)) == [GRANTED_QOS_1] * 3
    hub = peer("hub-a")

    assert hub.publish(hello_topic(P, "hub-a"), b"hello") == SUCCESS
    assert hub.publish(records_topic(P, "hub-a"), b"record 1") == SUCCESS
    assert hub.publish(status_topic(P, "hub-a"), b"online", retain=True) == SUCCESS
    assert hub.publish(records_topic(P, "hub-a"), b"fence") == SUCCESS

    assert cloud.receive_until(b"fence") == [
        (hello_topic(P, "hub-a"), b"hello"),
        (records_topic(P, "hub-a"), b"record 1"),
        (status_topic(P, "hub-a"), b"online"),
    ]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt311", "mqtt5"])
def test_hub_cannot_publish_as_another_hub(
    peer: PeerFactory, protocol: mqtt.MQTTProtocolVersion
) -> None:
    cloud = peer("lockhub-cloud")
    cloud.subscribe(*cloud_subscriptions(P))
    hub_a = peer("hub-a", protocol=protocol)

    codes = [
        hub_a.publish(records_topic(P, "hub-b"), b"forged record"),
        hub_a.publish(status_topic(P, "hub-b"), b"forged offline", retain=True),
    ]
    # mosquitto 2.0.11 answers a denied QoS 1 publish with PUBACK "not authorized" under
    # MQTT 5; an MQTT 3.1.1 PUBACK has no reason code, so there the denial is silent.
    assert codes == [NOT_AUTHORIZED if protocol == mqtt.MQTTv5 else SUCCESS] * 2
    hub_a.publish(hello_topic(P, "hub-b"), b"forged hello", qos=0)
    hub_a.publish(records_topic(P, "hub-a"), b"fence")

    assert cloud.receive_until(b"fence") == []


def test_hub_cannot_send_commands_or_acks(peer: PeerFactory) -> None:
    hub_a, hub_b, cloud = peer("hub-a"), peer("hub-b"), peer("lockhub-cloud")
    hub_a.subscribe(*hub_subscriptions(P, "hub-a"))
    hub_b.subscribe(*hub_subscriptions(P, "hub-b"))

    forged = [
        hub_a.publish(commands_topic(P, "hub-b"), b"forged command"),
        hub_a.publish(acks_topic(P, "hub-b"), b"forged ack"),
        hub_a.publish(commands_topic(P, "hub-a"), b"command to itself"),
    ]
    assert forged == [NOT_AUTHORIZED] * 3
    cloud.publish(acks_topic(P, "hub-b"), b"fence")
    cloud.publish(acks_topic(P, "hub-a"), b"fence")

    assert hub_b.receive_until(b"fence") == []
    assert hub_a.receive_until(b"fence") == []


def test_hub_receives_only_its_own_down_channels(peer: PeerFactory) -> None:
    hub_a, hub_b, cloud = peer("hub-a"), peer("hub-b"), peer("lockhub-cloud")
    codes = hub_a.subscribe(
        *hub_subscriptions(P, "hub-a"),
        commands_topic(P, "hub-b"),
        f"{P}/hubs/+/down/#",
        f"{P}/hubs/+/up/#",
        "#",
    )
    assert codes[:2] == [GRANTED_QOS_1] * 2
    # mosquitto 2.0.11 grants all of these: acl_file does not check SUBSCRIBE, only delivery.
    # A broker that refuses at SUBACK (0x80 / 0x87) is just as safe.
    assert set(codes[2:]) <= {GRANTED_QOS_1, UNSPECIFIED_ERROR, NOT_AUTHORIZED}
    hub_b.subscribe(*hub_subscriptions(P, "hub-b"))

    cloud.publish(commands_topic(P, "hub-b"), b"command for b")
    cloud.publish(acks_topic(P, "hub-b"), b"ack for b")
    hub_b.publish(records_topic(P, "hub-b"), b"record of b")
    cloud.publish(commands_topic(P, "hub-a"), b"command for a")
    cloud.publish(acks_topic(P, "hub-a"), b"fence")

    # MQTT 5 delivers one copy per matching subscription, hence a set.
    assert set(hub_a.receive_until(b"fence")) == {(commands_topic(P, "hub-a"), b"command for a")}
    assert hub_b.receive_until(b"ack for b") == [(commands_topic(P, "hub-b"), b"command for b")]


def test_cloud_cannot_write_hub_channels(peer: PeerFactory) -> None:
    cloud = peer("lockhub-cloud")

    assert cloud.publish(records_topic(P, "hub-a"), b"forged record") == NOT_AUTHORIZED
    assert cloud.publish(status_topic(P, "hub-a"), b"forged status") == NOT_AUTHORIZED
    assert cloud.publish(commands_topic(P, "hub-a"), b"command") == NO_MATCHING_SUBSCRIBERS


def _collect(workers: list[Peer], count: int) -> list[list[tuple[str, bytes]]]:
    """Take ``count`` messages from the workers' queues together, wherever they land."""
    got: list[list[tuple[str, bytes]]] = [[] for _ in workers]
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while sum(map(len, got)) < count and time.monotonic() < deadline:
        for inbox, worker in zip(got, workers, strict=True):
            try:
                inbox.append(worker.messages.get(timeout=0.01))
            except queue.Empty:
                continue
    return got


def test_cloud_workers_share_every_hubs_up_channels(peer: PeerFactory) -> None:
    workers = [peer(name) for name in CLOUD_WORKERS]
    for worker in workers:
        # $share/lockhub-cloud/lockhub/v1/hubs/+/up/{records,hello,status}: no ACL entry of
        # its own; mosquitto checks "read" on each delivered message's real topic.
        assert worker.subscribe(*cloud_subscriptions(P, SHARED_GROUP)) == [GRANTED_QOS_1] * 3
    hubs = {hub_id: peer(hub_id) for hub_id in HUBS}

    sent: list[tuple[str, bytes]] = []
    for hub_id, hub in hubs.items():
        for topic in (hello_topic(P, hub_id), *[records_topic(P, hub_id)] * 4):
            payload = f"{hub_id} {len(sent)}".encode()
            assert hub.publish(topic, payload) == SUCCESS
            sent.append((topic, payload))

    per_worker = _collect(workers, len(sent))
    assert Counter(m for inbox in per_worker for m in inbox) == Counter(sent)
    assert all(per_worker), "mosquitto spreads a shared subscription over its members"


def _wait_for_log(broker: MosquittoBroker, text: str) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while text not in broker.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"broker never logged {text!r}"
        time.sleep(0.02)


def test_last_will_only_for_own_status(peer: PeerFactory, broker: MosquittoBroker) -> None:
    cloud = peer("lockhub-cloud")
    cloud.subscribe(*cloud_subscriptions(P))
    forger = peer("hub-a", client_id="hub-a", connect=False).will(
        status_topic(P, "hub-b"), b"forged offline"
    )
    # mosquitto 2.0.11 accepts the CONNECT; the will is checked ("write") when it fires.
    forger.connect().drop()
    _wait_for_log(broker, "Client hub-a closed its connection.")

    honest = peer("hub-a", client_id="hub-a", connect=False)
    honest.will(status_topic(P, "hub-a"), b"hub-a offline").connect().drop()

    assert cloud.receive_until(b"hub-a offline") == []
