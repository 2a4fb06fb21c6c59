"""Untrusted time decides nothing permanent: no keypad code set (deny policy), no window
expired, no clock floor persisted. Once trust returns, all of it follows."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync import protocol as p
from gateway.clock import FLOOR_KV_KEY, SYNC_CHECK_CACHE_SECONDS, parse_floor

from .harness import HubHarness, running_hub
from .test_offline_e2e import bodies
from .test_provisioning import codes_on, drive_until_idle, statuses

LOCK = "parcel-room"
# Commands issued this long ago are still valid (they live 10 minutes) but too old to vouch
# for the wall clock (the clock accepts 5 minutes): the hub's trust is the sync flag's alone.
STALE = timedelta(minutes=6)
TRUST_RETURNS = SYNC_CHECK_CACHE_SECONDS + 1


def stale_command(hub: HubHarness, type_: str, body: dict[str, Any]) -> bytes:
    return hub.command(type_, body, issued_at=hub.clock.now() - STALE)


def keypad_body(hub: HubHarness, window_id: str, code: str, **changes: Any) -> dict[str, Any]:
    return hub.upsert(window_id, code, lock_id=LOCK, enforcement="both", **changes)


async def lose_trust(hub: HubHarness) -> None:
    hub.synced[0] = False
    await hub.advance(TRUST_RETURNS)
    assert not hub.hub.clock.trusted()


async def regain_trust(hub: HubHarness) -> None:
    hub.synced[0] = True
    await hub.advance(TRUST_RETURNS)
    assert hub.hub.clock.trusted()


def clock_of(records: list[dict[str, Any]], window_id: str, status: str) -> object:
    (body,) = [
        b
        for b in bodies(records, "window.status")
        if b["window_id"] == window_id and b["status"] == status
    ]
    return body["clock"]


# --- keypad codes (deny policy)


async def test_no_code_is_set_on_untrusted_time_until_trust_returns(tmp_path: Path) -> None:
    async with running_hub(tmp_path, synced=False) as hub:
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-u", "13572468")))
        await hub.quiet()
        assert hub.hub.clock.status().source == "unsynced"
        assert codes_on(hub) == []
        assert [s for s, _ in statuses(await hub.records(), "w-u")] == ["applied"]

        await regain_trust(hub)
        assert codes_on(hub) == ["13572468"]
        records = await hub.records()
        assert [s for s, _ in statuses(records, "w-u")] == ["applied", "set_on_lock"]
        assert clock_of(records, "w-u", "set_on_lock") == {"synced": True, "source": "ntp"}


async def test_a_code_retried_after_an_unreachable_lock_waits_for_trust(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).set_reachable(False)
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-r", "24682468")))
        await drive_until_idle(hub)  # four tries, then failed_on_lock and a recheck in 60 s
        assert [s for s, _ in statuses(await hub.records(), "w-r")] == [
            "applied",
            "failed_on_lock",
        ]
        await lose_trust(hub)
        hub.sim(LOCK).set_reachable(True)
        await hub.advance(60)  # the recheck runs on untrusted time: it sets nothing
        assert codes_on(hub) == []
        row = hub.hub.engine.cache.get("w-r")
        assert row is not None
        assert row.state == "active"

        await regain_trust(hub)
        assert codes_on(hub) == ["24682468"]
        assert statuses(await hub.records(), "w-r")[-1] == ("set_on_lock", None)


async def test_a_revoke_takes_the_code_off_even_on_untrusted_time(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-x", "35793579")))
        await hub.quiet()
        assert codes_on(hub) == ["35793579"]
        await lose_trust(hub)
        revoke = {"window_id": "w-x", "version": 1, "reason": "cancelled"}
        await hub.send(stale_command(hub, "window.revoke", revoke))
        await hub.quiet()
        assert codes_on(hub) == []  # removing a code early only refuses: it goes at once
        records = await hub.records()
        assert clock_of(records, "w-x", "removed_from_lock") == {
            "synced": False,
            "source": "unsynced",
        }


async def test_a_replaced_code_comes_off_on_untrusted_time_and_the_new_waits(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-v", "11112222")))
        await hub.quiet()
        assert codes_on(hub) == ["11112222"]
        await lose_trust(hub)
        newer = keypad_body(hub, "w-v", "33334444", version=2)
        await hub.send(stale_command(hub, "window.upsert", newer))
        await hub.quiet()
        assert codes_on(hub) == []  # the old code is off; the new one waits for trust
        await regain_trust(hub)
        assert codes_on(hub) == ["33334444"]
        assert [s for s, _ in statuses(await hub.records(), "w-v")] == [
            "applied",
            "set_on_lock",
            "applied",
            "removed_from_lock",
            "set_on_lock",
        ]


async def test_the_allow_policy_sets_codes_on_untrusted_time(tmp_path: Path) -> None:
    async with running_hub(tmp_path, synced=False, policy="allow") as hub:
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-a", "46804680")))
        await hub.quiet()
        assert codes_on(hub) == ["46804680"]
        clock = clock_of(await hub.records(), "w-a", "set_on_lock")
        assert clock == {"synced": False, "source": "unsynced"}


# --- expiry


async def test_a_wall_clock_jumping_ahead_untrusted_expires_nothing(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        real = hub.clock.now()
        body = keypad_body(hub, "w-f", "11223344", ends_at=p.rfc3339(real + timedelta(days=3)))
        await hub.send(stale_command(hub, "window.upsert", body))
        await hub.quiet()
        assert codes_on(hub) == ["11223344"]
        await lose_trust(hub)
        hub.clock.set_wall(real + timedelta(days=5))  # a bad RTC, a wrong manual date
        await hub.advance(61)
        window = hub.hub.engine.cache.get("w-f")
        assert window is not None
        assert window.state == "active"  # not committed expired on untrusted time
        assert codes_on(hub) == ["11223344"]  # the code stays on the lock
        assert await hub.unlock(LOCK, code="11223344") == (403, {"error": "denied"})
        assert bodies(await hub.records(), "access.denied")[-1]["reason"] == "clock_untrusted"

        # NTP steps the clock back to the true time: the window was never over.
        hub.clock.set_wall(real + timedelta(minutes=10))
        await regain_trust(hub)
        assert hub.hub.clock.status().source == "ntp"  # not behind a floor it never reached
        assert (await hub.unlock(LOCK, code="11223344"))[0] == 200

        # Its true end comes on trusted time: expired, and the code comes off.
        await hub.advance((real + timedelta(days=3) - hub.clock.now()).total_seconds())
        assert codes_on(hub) == []
        records = await hub.records()
        assert [s for s, _ in statuses(records, "w-f")] == [
            "applied",
            "set_on_lock",
            "expired",
            "removed_from_lock",
        ]
        assert clock_of(records, "w-f", "expired") == {"synced": True, "source": "ntp"}


async def test_an_expiry_held_on_untrusted_time_lands_when_trust_returns(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(stale_command(hub, "window.upsert", keypad_body(hub, "w-e", "97531975")))
        await hub.quiet()
        await lose_trust(hub)
        await hub.advance(2 * 3600)  # past its end, on untrusted time
        window = hub.hub.engine.cache.get("w-e")
        assert window is not None
        assert window.state == "active"
        assert codes_on(hub) == ["97531975"]
        assert hub.hub.engine.caught_up()  # held, not stuck: the hub waits for trust

        await regain_trust(hub)
        window = hub.hub.engine.cache.get("w-e")
        assert window is not None
        assert window.state == "expired"
        assert codes_on(hub) == []
        records = await hub.records()
        assert clock_of(records, "w-e", "expired") == {"synced": True, "source": "ntp"}


async def test_an_upsert_on_untrusted_time_ahead_is_not_stored_expired(tmp_path: Path) -> None:
    async with running_hub(tmp_path, synced=False) as hub:
        real = hub.clock.now()
        body = hub.upsert(
            "w-late",
            "86428642",
            starts_at=p.rfc3339(real - timedelta(hours=1)),
            ends_at=p.rfc3339(real + timedelta(minutes=5)),
        )
        hub.clock.set_wall(real + timedelta(minutes=7))  # ahead, unsynchronized
        # Issued at the true time: valid (10 minutes), too old to vouch for this wall clock.
        status, results = await hub.send(hub.command("window.upsert", body, issued_at=real))
        assert status == 200
        assert results[0]["result"] == "applied"
        await hub.quiet()
        window = hub.hub.engine.cache.get("w-late")
        assert window is not None
        assert window.state == "scheduled"  # what untrusted time decided is not stored
        assert [b["status"] for b in bodies(await hub.records(), "window.status")] == ["applied"]

        hub.clock.set_wall(real)
        await regain_trust(hub)
        assert (await hub.unlock("front-door", code="86428642"))[0] == 200


# --- the persisted floor


def floor_in(tmp_path: Path) -> datetime | None:
    with closing(sqlite3.connect(tmp_path / "state" / "hub.db")) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (FLOOR_KV_KEY,)).fetchone()
    return None if row is None else parse_floor(row[0])


async def test_an_untrusted_jump_ahead_never_becomes_the_persisted_floor(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        real = hub.clock.now()
        await hub.send(stale_command(hub, "window.upsert", hub.upsert("w-p", "12121212")))
        cloud = hub.cloud
        await lose_trust(hub)
        hub.clock.set_wall(real + timedelta(days=5))
        await hub.advance(1)
        assert hub.hub.clock.now() >= real + timedelta(days=5)  # untrusted time is the wall's
    floor = floor_in(tmp_path)
    assert floor is not None
    assert floor < real + timedelta(minutes=1)  # the last trusted time, not the jump

    # The next start, with NTP's true time: trusted at once, not behind a floor days ahead.
    async with running_hub(tmp_path, start=real + timedelta(minutes=2), cloud=cloud) as hub:
        assert hub.hub.clock.status().source == "ntp"
        assert (await hub.unlock("front-door", code="12121212"))[0] == 200
