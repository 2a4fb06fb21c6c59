"""Signed commands in: expiry, wrong hub, untrusted keys, rate-limited alerts, durable replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from cloud_sync import protocol as p
from gateway.access.intake import UNVERIFIED_ALERTS_PER_HOUR

from .harness import CLOUD_KID, HubHarness, running_hub

DENIED = (403, {"error": "denied"})


def of_type(records: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["type"] == type_]


def unverified_reasons(records: list[dict[str, Any]]) -> list[str]:
    return [
        b["details"]["reason"]
        for b in of_type(records, "hub.alert")
        if b["kind"] == "command_unverified"
    ]


def signed_for(hub: HubHarness, hub_id: str, body: dict[str, Any], seq: int) -> bytes:
    now = hub.clock.now()
    payload = p.command_payload(
        type="window.upsert",
        hub_id=hub_id,
        seq=seq,
        issued_at=now,
        expires_at=now + timedelta(minutes=10),
        body=body,
    )
    return p.encode_batch([p.sign(payload, hub.cloud, CLOUD_KID)])


async def test_an_expired_command_is_answered_rejected_expired(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        old = hub.clock.now() - timedelta(minutes=30)  # expired 20 minutes ago
        batch = hub.command("window.upsert", hub.upsert("w-exp", "12312312"), issued_at=old)
        status, results = await hub.send(batch)
        assert (status, results[0]["result"], results[0]["reason"]) == (422, "rejected", "expired")
        assert await hub.unlock("front-door", code="12312312") == DENIED
        (result,) = of_type(await hub.records(), "command.result")
        assert (result["result"], result["reason"], result["kid"]) == (
            "rejected",
            "expired",
            CLOUD_KID,
        )


async def test_a_command_for_another_hub_is_rejected_wrong_hub(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        batch = signed_for(hub, "hub-elsewhere", hub.upsert("w-other", "45645645"), seq=1)
        status, results = await hub.send(batch)
        assert (status, results[0]["reason"]) == (422, "wrong_hub")
        assert await hub.unlock("front-door", code="45645645") == DENIED
        (result,) = of_type(await hub.records(), "command.result")
        assert (result["result"], result["reason"]) == ("rejected", "wrong_hub")
        # The refused seq stays free: this hub's own command with seq 1 still applies.
        ours = hub.command("window.upsert", hub.upsert("w-ok", "78978978"), seq=1)
        assert (await hub.send(ours))[1][0]["result"] == "applied"


async def test_a_command_signed_with_the_hubs_own_key_is_a_bad_signature(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        now = hub.clock.now()
        payload = p.command_payload(
            type="window.upsert",
            hub_id="hub-test",
            seq=1,
            issued_at=now,
            expires_at=now + timedelta(minutes=10),
            body=hub.upsert("w-self", "98798798"),
        )
        forged = p.encode_batch([p.sign(payload, hub.keys.signing, "hub-test")])
        status, results = await hub.send(forged)
        assert (status, results[0]) == (
            422,
            {"result": "rejected", "reason": "bad_signature", "command_id": None},
        )
        assert await hub.unlock("front-door", code="98798798") == DENIED
        records = await hub.records()
        assert of_type(records, "command.result") == []  # unverified: no answer to anyone
        assert unverified_reasons(records) == ["bad_signature"]


async def test_a_batch_that_is_not_json_is_rejected_malformed(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        for garbage in (b"not json at all", b"[]", b'{"protected": 1}', b"[1, 2]"):
            status, results = await hub.send(garbage)
            assert (status, results) == (
                422,
                [{"result": "rejected", "reason": "malformed", "command_id": None}],
            )
        assert unverified_reasons(await hub.records()) == ["malformed"] * 4


async def test_unverified_alerts_are_limited_per_hour(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        for _ in range(UNVERIFIED_ALERTS_PER_HOUR + 5):
            assert (await hub.send(b"garbage"))[0] == 422
        assert len(unverified_reasons(await hub.records())) == UNVERIFIED_ALERTS_PER_HOUR

        await hub.advance(3600)
        assert (await hub.send(b"garbage"))[0] == 422
        assert len(unverified_reasons(await hub.records())) == UNVERIFIED_ALERTS_PER_HOUR + 1


async def test_the_replay_window_survives_a_restart(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        batch = hub.command("window.upsert", hub.upsert("w-once", "65465465"), seq=7)
        assert (await hub.send(batch))[0] == 200
        assert hub.hub.intake.last_seq() == {CLOUD_KID: 7}
        stopped_at = hub.clock.now()

    async with running_hub(tmp_path, start=stopped_at) as hub:
        assert hub.hub.intake.last_seq() == {CLOUD_KID: 7}
        again = hub.command("window.upsert", hub.upsert("w-again", "32132132"), seq=7)
        status, results = await hub.send(again)
        assert (status, results[0]["reason"]) == (422, "replayed")
        assert await hub.unlock("front-door", code="32132132") == DENIED
        newer = hub.command("window.upsert", hub.upsert("w-new", "78978978"), seq=8)
        assert (await hub.send(newer))[0] == 200
