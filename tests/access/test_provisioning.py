"""Lock-enforced windows: codes set on the lock's keypad, replaced, removed, retried, resumed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync import protocol as p
from gateway.access.provisioning import (
    PROVISION_ATTEMPTS,
    RECHECK_INITIAL_SECONDS,
    RECHECK_MAX_SECONDS,
)
from gateway.locks.driver import KeypadFullError

from .harness import HubHarness, running_hub, settle

LOCK = "parcel-room"  # three keypad slots
# Driving retries: fake seconds per step and a bound on the steps.
STEP_SECONDS = 1.0
MAX_STEPS = 600


def keypad_window(hub: HubHarness, window_id: str, code: str, **changes: Any) -> bytes:
    body = hub.upsert(window_id, code, lock_id=LOCK, enforcement="lock", **changes)
    return hub.command("window.upsert", body)


def statuses(records: list[dict[str, Any]], window_id: str) -> list[tuple[str, str | None]]:
    return [
        (r["body"]["status"], r["body"].get("detail"))
        for r in records
        if r["type"] == "window.status" and r["body"]["window_id"] == window_id
    ]


def codes_on(hub: HubHarness) -> list[str]:
    return sorted(code.code for code in hub.sim(LOCK).keypad_codes().values())


async def drive_until_idle(hub: HubHarness) -> float:
    """Advance fake time until provisioning is idle (retries sleep on the fake clock)."""
    began = hub.clock.monotonic()
    for _ in range(MAX_STEPS):
        await settle()
        await asyncio.sleep(0.002)  # aiosqlite works in its own thread
        if not hub.hub.engine.provisioner.busy:
            await hub.quiet()
            return hub.clock.monotonic() - began
        hub.clock.advance(STEP_SECONDS)
    raise AssertionError("provisioning never went idle")


@contextlib.asynccontextmanager
async def restarted(tmp_path: Path, at: datetime) -> AsyncIterator[HubHarness]:
    """A new hub process on the same state dir and keys, its clock continuing from ``at``."""
    async with running_hub(tmp_path, start=at) as hub:
        await hub.quiet()
        yield hub


async def test_an_active_window_sets_its_code_and_drops_the_sealed_copy(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-1", "11335577"))
        await hub.quiet()
        assert codes_on(hub) == ["11335577"]
        window = hub.hub.engine.cache.get("w-1")
        assert window is not None
        assert (window.lock_side, window.code_sealed) == ("set_on_lock", None)
        assert statuses(await hub.records(), "w-1") == [("applied", None), ("set_on_lock", None)]


async def test_a_full_keypad_marks_the_window_failed_on_lock_with_the_reason(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        for n, code in enumerate(["10203040", "50607080", "90817263"]):
            await hub.send(keypad_window(hub, f"w-{n}", code))
            await hub.quiet()
        await hub.send(keypad_window(hub, "w-full", "44556677"))
        await hub.quiet()

        assert codes_on(hub) == ["10203040", "50607080", "90817263"]
        assert statuses(await hub.records(), "w-full") == [
            ("applied", None),
            ("failed_on_lock", KeypadFullError.__name__),
        ]
        views = (await hub.admin("/v1/admin/windows?lock_id=parcel-room"))["windows"]
        sides = {view["window_id"]: view["lock_side"] for view in views}
        assert sides["w-full"] == "failed_on_lock"


async def test_a_lock_that_fails_a_few_times_gets_the_code_on_a_retry(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).fail_next(PROVISION_ATTEMPTS - 1)
        await hub.send(keypad_window(hub, "w-r", "24681357"))
        await drive_until_idle(hub)
        assert codes_on(hub) == ["24681357"]
        assert statuses(await hub.records(), "w-r")[-1] == ("set_on_lock", None)


async def test_an_unreachable_lock_is_retried_then_the_window_fails_on_lock(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).set_reachable(False)
        await hub.send(keypad_window(hub, "w-u", "97531864"))
        waited = await drive_until_idle(hub)
        assert waited >= 1 + 2 + 4  # the back-off between the four tries
        assert statuses(await hub.records(), "w-u") == [
            ("applied", None),
            ("failed_on_lock", "LockUnreachableError"),
        ]
        assert codes_on(hub) == []


async def test_a_window_failed_on_an_unreachable_lock_gets_its_code_once_the_lock_is_back(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).set_reachable(False)
        await hub.send(keypad_window(hub, "w-back", "97531864"))
        await drive_until_idle(hub)
        # Still away at the first recheck: quietly retried later, not reported twice.
        hub.clock.advance(RECHECK_INITIAL_SECONDS)
        await drive_until_idle(hub)
        assert codes_on(hub) == []
        hub.sim(LOCK).set_reachable(True)
        hub.clock.advance(2 * RECHECK_INITIAL_SECONDS)
        await drive_until_idle(hub)
        assert codes_on(hub) == ["97531864"]
        assert statuses(await hub.records(), "w-back") == [
            ("applied", None),
            ("failed_on_lock", "LockUnreachableError"),
            ("set_on_lock", None),
        ]


async def test_a_refused_code_is_not_retried(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        for n, code in enumerate(["10203040", "50607080", "90817263"]):
            await hub.send(keypad_window(hub, f"w-{n}", code))
            await hub.quiet()
        await hub.send(keypad_window(hub, "w-full", "44556677"))
        await hub.quiet()
        revoke = {"window_id": "w-0", "version": 1, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", revoke))
        await drive_until_idle(hub)
        hub.clock.advance(RECHECK_MAX_SECONDS)
        await drive_until_idle(hub)
        assert "44556677" not in codes_on(hub)
        assert statuses(await hub.records(), "w-full")[-1] == ("failed_on_lock", "KeypadFullError")


async def test_a_code_that_cannot_be_removed_raises_a_critical_alert(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-stuck", "86420975"))
        await hub.quiet()
        hub.sim(LOCK).set_reachable(False)
        revoke = {"window_id": "w-stuck", "version": 1, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", revoke))
        await drive_until_idle(hub)

        records = await hub.records()
        alerts = [r["body"] for r in records if r["type"] == "hub.alert"]
        assert [(a["kind"], a["severity"]) for a in alerts] == [
            ("keypad_code_not_removed", "critical")
        ]
        assert alerts[0]["details"]["window_id"] == "w-stuck"
        assert statuses(records, "w-stuck")[-1] == ("revoked", "cancelled")
        assert codes_on(hub) == ["86420975"]  # still there: the alert is the truth

        # The hub keeps trying; once the lock answers the stale code goes, with one alert only.
        hub.clock.advance(RECHECK_INITIAL_SECONDS)
        await drive_until_idle(hub)
        hub.sim(LOCK).set_reachable(True)
        hub.clock.advance(2 * RECHECK_INITIAL_SECONDS)
        await drive_until_idle(hub)
        assert codes_on(hub) == []
        records = await hub.records()
        assert len([r for r in records if r["type"] == "hub.alert"]) == 1
        assert statuses(records, "w-stuck")[-1] == ("removed_from_lock", None)


async def test_a_newer_version_replaces_the_code_on_the_lock(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-v", "12341234"))
        await hub.quiet()
        await hub.send(keypad_window(hub, "w-v", "56785678", version=2))
        await hub.quiet()

        assert codes_on(hub) == ["56785678"]
        assert not hub.sim(LOCK).press("12341234")
        assert hub.sim(LOCK).press("56785678")
        assert [s for s, _ in statuses(await hub.records(), "w-v")] == [
            "applied",
            "set_on_lock",
            "applied",
            "removed_from_lock",
            "set_on_lock",
        ]


async def test_revoking_a_window_removes_its_code(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-rv", "31313131"))
        await hub.quiet()
        revoke = {"window_id": "w-rv", "version": 1, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", revoke))
        await hub.quiet()
        assert codes_on(hub) == []
        assert [s for s, _ in statuses(await hub.records(), "w-rv")][-2:] == [
            "revoked",
            "removed_from_lock",
        ]


async def test_a_used_up_window_removes_its_code_after_the_keypad_opened(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-once", "70707070", max_uses=1))
        await hub.quiet()
        assert hub.sim(LOCK).press("70707070")
        await hub.quiet()

        assert codes_on(hub) == []
        records = await hub.records()
        pods = [r["body"] for r in records if r["type"] == "pod.recorded"]
        assert [(b["window_id"], b["method"]) for b in pods] == [("w-once", "lock_keypad")]
        assert [s for s, _ in statuses(records, "w-once")] == [
            "applied",
            "set_on_lock",
            "used",
            "removed_from_lock",
        ]


async def test_a_revoke_during_lock_io_is_not_undone_by_the_provisioner(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).fail_next(1)  # the first try fails: the provisioner waits 1 s to retry
        await hub.send(keypad_window(hub, "w-race", "64646464"))
        await settle()
        revoke = {"window_id": "w-race", "version": 1, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", revoke))
        await drive_until_idle(hub)

        window = hub.hub.engine.cache.get("w-race")
        assert window is not None
        assert window.state == "revoked"
        assert (await hub.admin("/v1/admin/windows?state=revoked"))["windows"][0][
            "window_id"
        ] == "w-race"
        assert codes_on(hub) == []  # set by the retry, then removed for the revoke


async def test_provisioning_resumes_from_the_store_after_a_restart(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        hub.sim(LOCK).set_reachable(False)
        start = hub.clock.now() + timedelta(minutes=1)
        body = {"starts_at": p.rfc3339(start), "ends_at": p.rfc3339(start + timedelta(hours=1))}
        await hub.send(keypad_window(hub, "w-resume", "58585858", **body))
        await hub.quiet()
        stopped_at = hub.clock.now()
        # Stopped before the window opened: the lock never got the code.
        assert codes_on(hub) == []

    async with restarted(tmp_path, stopped_at + timedelta(minutes=5)) as hub:
        assert codes_on(hub) == ["58585858"]
        records = await hub.records()
        assert [s for s, _ in statuses(records, "w-resume")] == ["applied", "set_on_lock"]
        window = hub.hub.engine.cache.get("w-resume")
        assert window is not None
        assert window.code_sealed is None
        stopped_at = hub.clock.now()

    # The window ended while the hub was down: the code comes off at the next start.
    async with restarted(tmp_path, stopped_at + timedelta(hours=2)) as hub:
        records = await hub.records()
        assert [s for s, _ in statuses(records, "w-resume")][-2:] == [
            "expired",
            "removed_from_lock",
        ]
        window = hub.hub.engine.cache.get("w-resume")
        assert window is not None
        assert (window.state, window.keypad_code_id) == ("expired", None)
