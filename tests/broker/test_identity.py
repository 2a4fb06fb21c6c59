"""Who may connect: only certificates from the lockhub CA, and the CN is the identity."""

from __future__ import annotations

import pytest

from cloud_sync.protocol.topics import DEFAULT_PREFIX, commands_topic, hub_subscriptions
from tests.broker.conftest import PeerFactory, Pki
from tests.infra.services import MosquittoBroker

pytestmark = pytest.mark.mqtt

P = DEFAULT_PREFIX


@pytest.mark.parametrize(
    ("certificate", "broker_says"),
    [
        ("none", "peer did not return a certificate"),
        ("hub-a from another CA", "certificate verify failed"),
    ],
)
def test_client_without_a_certificate_from_the_ca_is_refused(
    peer: PeerFactory, pki: Pki, broker: MosquittoBroker, certificate: str, broker_says: str
) -> None:
    identity = None if certificate == "none" else pki.foreign_hub_a

    outcome = peer(identity, connect=False).try_connect()

    assert outcome != "connected"
    assert broker_says in broker.log_path.read_text(errors="replace")
    # The broker is up and the real hub-a gets in.
    assert peer("hub-a", connect=False).try_connect() == "connected"


def test_hub_cannot_take_over_another_hubs_session(peer: PeerFactory) -> None:
    hub_b = peer("hub-b", client_id="hub-b")  # a hub connects with its hub id as client id
    hub_b.subscribe(*hub_subscriptions(P, "hub-b"))

    # use_username_as_clientid: the broker renames this client "hub-a", so hub-b stays on.
    peer("hub-a", client_id="hub-b")
    peer("lockhub-cloud").publish(commands_topic(P, "hub-b"), b"command for b")
    peer("lockhub-cloud-2").publish(commands_topic(P, "hub-b"), b"fence")

    assert hub_b.receive_until(b"fence") == [(commands_topic(P, "hub-b"), b"command for b")]
    assert hub_b.disconnects == 0
