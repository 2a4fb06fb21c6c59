"""Command, record, hello and ack acceptance after the signature has verified."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud_sync.protocol import (
    ExpiredError,
    MalformedError,
    Signer,
    WrongHubError,
    accept_ack,
    accept_command,
    accept_hello,
    accept_record,
    ack_payload,
    hello_payload,
    verify,
    window_set_digest,
)

from .samples import HUB, NOW, command, record

HUB_KEY = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
HUB_SIGNER = Signer(HUB, HUB_KEY)
HUB_KEYS = {HUB: HUB_KEY.public_key()}


def test_accepts_a_good_command(cloud_signer: Signer, trusted: dict[str, Ed25519PublicKey]) -> None:
    verified = verify(cloud_signer.sign(command()), trusted)
    assert accept_command(verified, hub_id=HUB, now=NOW).seq == 1


def test_rejects_other_hub_and_expired(
    cloud_signer: Signer, trusted: dict[str, Ed25519PublicKey]
) -> None:
    verified = verify(cloud_signer.sign(command(hub_id="hub-0002")), trusted)
    with pytest.raises(WrongHubError) as wrong:
        accept_command(verified, hub_id=HUB, now=NOW)
    assert wrong.value.reason == "wrong_hub"
    verified = verify(cloud_signer.sign(command()), trusted)
    with pytest.raises(ExpiredError) as expired:
        accept_command(verified, hub_id=HUB, now=NOW + timedelta(hours=1))
    assert expired.value.reason == "expired"
    with pytest.raises(ValueError, match="aware"):
        accept_command(verified, hub_id=HUB, now=NOW.replace(tzinfo=None))


def test_hub_key_cannot_sign_commands() -> None:
    verified = verify(HUB_SIGNER.sign(command()), HUB_KEYS)
    with pytest.raises(WrongHubError, match="hub key"):
        accept_command(verified, hub_id=HUB, now=NOW)


def test_record_and_hello_from_hub() -> None:
    assert accept_record(verify(HUB_SIGNER.sign(record()), HUB_KEYS), hub_id=HUB).seq == 1
    body = {
        "last_command_seq": {},
        "window_set_digest": window_set_digest([]),
        "software_version": "0.1.0",
    }
    hello = hello_payload(hub_id=HUB, seq=0, issued_at=NOW, body=body)
    assert accept_hello(verify(HUB_SIGNER.sign(hello), HUB_KEYS), hub_id=HUB).seq == 0
    other = Signer("hub-0002", HUB_KEY)
    verified = verify(other.sign(record()), {"hub-0002": HUB_KEY.public_key()})
    with pytest.raises(WrongHubError):
        accept_record(verified, hub_id="hub-0002")
    with pytest.raises(MalformedError):
        accept_record(verify(HUB_SIGNER.sign(command()), HUB_KEYS), hub_id=HUB)


def test_acks(cloud_signer: Signer, trusted: dict[str, Ed25519PublicKey]) -> None:
    ack = ack_payload(hub_id=HUB, issued_at=NOW, acked=[(1, 4)])
    assert accept_ack(verify(cloud_signer.sign(ack), trusted), hub_id=HUB).seq == 4
    with pytest.raises(WrongHubError):
        accept_ack(verify(cloud_signer.sign(ack), trusted), hub_id="hub-0002")
    with pytest.raises(WrongHubError, match="cloud key"):
        accept_ack(verify(HUB_SIGNER.sign(ack), HUB_KEYS), hub_id=HUB)
