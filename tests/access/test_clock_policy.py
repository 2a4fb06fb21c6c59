"""Untrusted time: a hub that boots with its clock behind the persisted floor fails closed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cloud_sync import protocol as p
from gateway.clock import SYNC_CHECK_CACHE_SECONDS
from gateway.testing import DEFAULT_START

from .harness import running_hub
from .test_offline_e2e import bodies

# The Pi booted with no RTC: its wall clock says DEFAULT_START, a day behind what it had seen.
FLOOR = DEFAULT_START + timedelta(days=1)
REAL_NOW = FLOOR + timedelta(hours=1)


def window_now(hub_body: dict[str, object]) -> dict[str, object]:
    hub_body["starts_at"] = p.rfc3339(REAL_NOW - timedelta(minutes=10))
    hub_body["ends_at"] = p.rfc3339(REAL_NOW + timedelta(hours=1))
    return hub_body


async def test_behind_the_floor_windows_are_denied_until_time_is_synchronized(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, synced=False, floor=FLOOR) as hub:
        body = window_now(hub.upsert("win-c", "31415926"))
        status, _ = await hub.send(hub.command("window.upsert", body, issued_at=REAL_NOW))
        assert status == 200  # signed cloud time vouches for the command's freshness
        assert hub.hub.clock.status().source == "behind_floor"
        assert await hub.unlock("front-door", code="31415926") == (403, {"error": "denied"})

        hub.clock.set_wall(REAL_NOW)  # NTP steps the clock ...
        hub.synced[0] = True  # ... and timesyncd raises its flag
        await hub.advance(SYNC_CHECK_CACHE_SECONDS + 1)
        assert (await hub.unlock("front-door", code="31415926"))[0] == 200

        records = await hub.records()
        (denied,) = bodies(records, "access.denied")
        assert denied["reason"] == "clock_untrusted"
        assert denied["clock"] == {"synced": False, "source": "behind_floor"}
        (pod,) = bodies(records, "pod.recorded")
        assert pod["clock"] == {"synced": True, "source": "ntp"}
        # An untrusted-clock refusal is not a wrong guess: no lockout builds up.
        assert hub.hub.engine.lockouts.retry_after("front-door", "127.0.0.1") is None


async def test_allow_policy_opens_but_records_say_the_clock_was_untrusted(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, synced=False, policy="allow") as hub:
        # A command issued 6 minutes ago (still valid: commands live 10) is too old to vouch
        # for the current time (the clock accepts 5 minutes between issue and receipt).
        old = hub.clock.now() - timedelta(minutes=6)
        body = hub.upsert("win-a", "27182818")
        await hub.send(hub.command("window.upsert", body, issued_at=old))
        assert (await hub.unlock("front-door", code="27182818"))[0] == 200
        (pod,) = bodies(await hub.records(), "pod.recorded")
        assert pod["clock"] == {"synced": False, "source": "unsynced"}


async def test_a_fresh_signed_command_vouches_for_the_wall_clock(tmp_path: Path) -> None:
    async with running_hub(tmp_path, synced=False) as hub:
        assert not hub.hub.clock.trusted()
        await hub.send(hub.command("window.upsert", hub.upsert("win-v", "16180339")))
        assert hub.hub.clock.status().source == "cloud"
        assert (await hub.unlock("front-door", code="16180339"))[0] == 200
