"""Replayed, expired, wrong-hub, wrong-kid and tampered commands: rejected, and reported.

Each goes into a real hub through ``POST /v1/admin/commands`` (the same ``CommandIntake`` the
MQTT link feeds). Rejected means: the answer says so, and the window it carried does not
exist (its code is denied). Reported means a signed record in the outbox for the cloud:
``command.result`` ``rejected`` for a command that verified (it can be named), and a
``hub.alert`` ``command_unverified`` for one that did not (nothing in it can be trusted, so it
gets no result; these alerts are limited to ``UNVERIFIED_ALERTS_PER_HOUR``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol import REPLAY_WINDOW
from gateway.access.intake import UNVERIFIED_ALERTS_PER_HOUR
from gateway.hubmetrics import hub_metrics
from tests.access.harness import CLOUD_KID, HUB_ID, HubHarness, running_hub

DENIED = (403, {"error": "denied"})


def of_type(records: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["type"] == type_]


def payload(hub: HubHarness, code: str, *, seq: int, hub_id: str = HUB_ID, **times: Any) -> bytes:
    """A window.upsert for window ``w-<code>`` carrying ``code``."""
    issued = times.get("issued_at", hub.clock.now())
    return p.command_payload(
        type="window.upsert",
        hub_id=hub_id,
        seq=seq,
        issued_at=issued,
        expires_at=times.get("expires_at", issued + timedelta(minutes=10)),
        body=hub.upsert(f"w-{code}", code),
    )


def batch(*envelopes: dict[str, str]) -> bytes:
    return p.encode_batch(list(envelopes))


async def rejected_and_reported(
    hub: HubHarness, data: bytes, code: str, reason: str, *, verified: bool
) -> dict[str, Any]:
    """Send ``data``; assert the rejection and its report; return the report's body."""
    before = await hub.records()
    status, results = await hub.send(data)
    assert status == 422
    assert [(r["result"], r["reason"]) for r in results] == [("rejected", reason)]
    assert await hub.unlock("front-door", code=code) == DENIED
    new = (await hub.records())[len(before) :]
    assert not of_type(new, "window.status")
    if verified:
        (report,) = of_type(new, "command.result")
        assert (report["result"], report["reason"]) == ("rejected", reason)
        assert report["command_id"] == results[0]["command_id"]
        return report
    assert not of_type(new, "command.result")
    (alert,) = [a for a in of_type(new, "hub.alert") if a["kind"] == "command_unverified"]
    assert alert["details"]["reason"] == reason
    assert code not in json.dumps(alert)  # a report never carries a code
    return alert


async def test_a_replayed_command_is_rejected_and_reported(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        envelope = p.sign(payload(hub, "11223344", seq=100), hub.cloud, CLOUD_KID)
        assert (await hub.send(batch(envelope)))[0] == 200
        assert (await hub.unlock("front-door", code="11223344"))[0] == 200
        await hub.advance(5)
        # The same signed bytes again, after the window was used up and revoked...
        revoke = {"window_id": "w-11223344", "version": 2, "reason": "done"}
        assert (await hub.send(hub.command("window.revoke", revoke, seq=101)))[0] == 200
        report = await rejected_and_reported(
            hub, batch(envelope), "11223344", "replayed", verified=True
        )
        assert (report["seq"], report["kid"]) == (100, CLOUD_KID)
        # ...and a never-seen seq older than the replay window.
        old = p.sign(payload(hub, "55667788", seq=101 - REPLAY_WINDOW), hub.cloud, CLOUD_KID)
        await rejected_and_reported(hub, batch(old), "55667788", "replayed", verified=True)


async def test_an_expired_command_is_rejected_and_reported(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        now = hub.clock.now()
        data = payload(hub, "22334455", seq=1, issued_at=now - timedelta(hours=1), expires_at=now)
        envelope = p.sign(data, hub.cloud, CLOUD_KID)
        await rejected_and_reported(hub, batch(envelope), "22334455", "expired", verified=True)


async def test_a_command_for_another_hub_is_rejected_and_reported(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        data = payload(hub, "33445566", seq=1, hub_id="hub-next-door")
        envelope = p.sign(data, hub.cloud, CLOUD_KID)
        await rejected_and_reported(hub, batch(envelope), "33445566", "wrong_hub", verified=True)


@pytest.mark.parametrize(
    ("kid", "signer"),
    [
        pytest.param("cloud-rogue", "rogue", id="unknown-kid"),
        pytest.param(CLOUD_KID, "rogue", id="trusted-kid-other-key"),
        pytest.param(HUB_ID, "hub", id="hub-own-key"),
        pytest.param("cloud-rogue", "cloud", id="trusted-key-other-kid"),
    ],
)
async def test_a_command_under_a_wrong_kid_is_rejected_and_reported(
    tmp_path: Path, kid: str, signer: str
) -> None:
    async with running_hub(tmp_path) as hub:
        key = {
            "rogue": Ed25519PrivateKey.generate(),
            "hub": hub.keys.signing,
            "cloud": hub.cloud,
        }[signer]
        envelope = p.sign(payload(hub, "44556677", seq=1), key, kid)
        alert = await rejected_and_reported(
            hub, batch(envelope), "44556677", "bad_signature", verified=False
        )
        assert alert["severity"] == "warning"


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _flip(text: str, index: int) -> str:
    """``text`` with the base64url character at ``index`` replaced by another."""
    swapped = "B" if text[index] == "A" else "A"
    return text[:index] + swapped + text[index + 1 :]


def _tampered(envelope: dict[str, str], how: str, hub: HubHarness) -> dict[str, str]:
    if how == "payload":
        # The window moved to another lock, the signature kept.
        changed = json.loads(p.b64url_decode(envelope["payload"]))
        changed["body"]["lock_id"] = "parcel-room"
        return {**envelope, "payload": p.b64url_encode(p.jsoncodec.dumps(changed))}
    if how == "signature":
        return {**envelope, "signature": _flip(envelope["signature"], 10)}
    if how == "header":
        header = p.b64url_encode(b'{"alg":"EdDSA","kid":"cloud-test"}')
        return {**envelope, "protected": header}
    if how == "extra-member":
        return {**envelope, "header": "x"}
    signature = p.b64url_decode(envelope["signature"])
    if how == "truncated-signature":
        # Canonical base64url of a 61-byte signature: decodes, then fails Ed25519's length.
        return {**envelope, "signature": p.b64url_encode(signature[:-3])}
    assert how == "non-canonical-signature"
    # 64 bytes end in a character carrying 4 unused bits; setting one is not base64url.
    encoded = envelope["signature"]
    last = B64URL.index(encoded[-1])
    return {**envelope, "signature": encoded[:-1] + B64URL[last | 1]}


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("payload", "bad_signature"),
        ("signature", "bad_signature"),
        ("header", "bad_signature"),
        ("extra-member", "malformed"),
        ("truncated-signature", "bad_signature"),
        ("non-canonical-signature", "malformed"),
    ],
)
async def test_a_tampered_command_is_rejected_and_reported(
    tmp_path: Path, how: str, reason: str
) -> None:
    async with running_hub(tmp_path) as hub:
        envelope = p.sign(payload(hub, "55667711", seq=1), hub.cloud, CLOUD_KID)
        forged = _tampered(envelope, how, hub)
        await rejected_and_reported(hub, batch(forged), "55667711", reason, verified=False)
        # The original still applies: tampering consumed nothing.
        assert (await hub.send(batch(envelope)))[0] == 200


async def test_unverified_reports_stop_at_the_hourly_limit(tmp_path: Path) -> None:
    """Past the limit a forged command raises no more alerts, but every one is counted."""
    async with running_hub(tmp_path) as hub:
        rogue = Ed25519PrivateKey.generate()
        for seq in range(1, UNVERIFIED_ALERTS_PER_HOUR + 4):
            envelope = p.sign(payload(hub, f"{seq:08d}", seq=seq), rogue, CLOUD_KID)
            status, results = await hub.send(batch(envelope))
            assert (status, results[0]["reason"]) == (422, "bad_signature")
        alerts = [
            a
            for a in of_type(await hub.records(), "hub.alert")
            if a["kind"] == "command_unverified"
        ]
        assert len(alerts) == UNVERIFIED_ALERTS_PER_HOUR
        scrape = hub_metrics(hub.hub.engine, intake=hub.hub.intake).render()
        expected = UNVERIFIED_ALERTS_PER_HOUR + 3
        assert f'lockhub_commands_unverified_total{{reason="bad_signature"}} {expected}' in scrape
