"""A code the lock refused for good loses its sealed copy; the sim lock's failure options
drive the same paths from a config file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

from gateway.access.provisioning import RECHECK_INITIAL_SECONDS
from gateway.locks.driver import KeypadCode
from gateway.testing import FakeClock

from .harness import SIM_LOCKS, HubHarness, running_hub
from .test_provisioning import LOCK, codes_on, drive_until_idle, keypad_window, statuses

FILLERS = ["10203040", "50607080", "90817263"]  # the parcel room's keypad holds three


def sealed_in_db(tmp_path: Path, window_id: str) -> tuple[bool, str]:
    """Whether the stored row still holds a sealed code, and its lock_side (hub stopped)."""
    with closing(sqlite3.connect(tmp_path / "state" / "hub.db")) as db:
        sealed, side = db.execute(
            "SELECT code_sealed, lock_side FROM windows WHERE window_id = ?", (window_id,)
        ).fetchone()
    return sealed is not None, side


async def fill_keypad(hub: HubHarness) -> None:
    for n, code in enumerate(FILLERS):
        await hub.send(keypad_window(hub, f"w-{n}", code))
        await hub.quiet()
    assert codes_on(hub) == sorted(FILLERS)


async def test_a_full_keypad_refusal_drops_the_sealed_copy(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await fill_keypad(hub)
        await hub.send(keypad_window(hub, "w-full", "44556677"))
        await hub.quiet()
        assert statuses(await hub.records(), "w-full")[-1] == ("failed_on_lock", "KeypadFullError")
        window = hub.hub.engine.cache.get("w-full")
        assert window is not None
        assert (window.lock_side, window.code_sealed) == ("failed_on_lock", None)
        stored = await hub.hub.store.get_window("w-full")
        assert stored is not None
        assert stored.code_sealed is None
    assert sealed_in_db(tmp_path, "w-full") == (False, "failed_on_lock")


async def test_a_duplicate_code_refusal_drops_the_sealed_copy(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(keypad_window(hub, "w-a", "11335577"))
        await hub.quiet()
        await hub.send(keypad_window(hub, "w-b", "11335577"))
        await hub.quiet()
        assert statuses(await hub.records(), "w-b")[-1] == (
            "failed_on_lock",
            "DuplicateCodeError",
        )
    assert sealed_in_db(tmp_path, "w-a") == (False, "set_on_lock")
    assert sealed_in_db(tmp_path, "w-b") == (False, "failed_on_lock")


async def test_an_unreachable_lock_keeps_the_seal_until_a_final_refusal(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        sim = hub.sim(LOCK)
        sim.set_reachable(False)
        await hub.send(keypad_window(hub, "w-late", "66778899"))
        await drive_until_idle(hub)
        window = hub.hub.engine.cache.get("w-late")
        assert window is not None
        assert window.code_sealed is not None  # needed for the recheck
        # While it was away, the lock's keypad was filled by hand.
        sim.set_reachable(True)
        now = hub.clock.now()
        for n, code in enumerate(FILLERS):
            slot = KeypadCode(code, f"by hand {n}", now, now + timedelta(days=1))
            await sim.add_keypad_code(slot)
        hub.clock.advance(RECHECK_INITIAL_SECONDS)
        await drive_until_idle(hub)
        assert statuses(await hub.records(), "w-late") == [
            ("applied", None),
            ("failed_on_lock", "LockUnreachableError"),
            ("failed_on_lock", "KeypadFullError"),
        ]
    assert sealed_in_db(tmp_path, "w-late") == (False, "failed_on_lock")


FAILING_LOCKS = (
    SIM_LOCKS.replace('driver = "sim"\n\n', 'driver = "sim"\n[locks.options]\njam_every = 1\n\n', 1)
    + "fail_rate = 1.0\n"
)
# Starting a lock whose radio always fails retries on the fake clock: moved this often.
START_STEP_SECONDS = 1.0
START_POLLS = 1000


@contextlib.asynccontextmanager
async def started_with_failing_locks(tmp_path: Path) -> AsyncIterator[HubHarness]:
    """The harness hub on FAILING_LOCKS, its fake clock moved on while the locks start."""
    clock = FakeClock()
    context = running_hub(tmp_path, locks=FAILING_LOCKS, clock=clock)
    entering = asyncio.create_task(context.__aenter__())
    for _ in range(START_POLLS):
        if entering.done():
            break
        clock.advance(START_STEP_SECONDS)
        await asyncio.sleep(0.002)
    hub = await entering
    try:
        yield hub
    finally:
        await context.__aexit__(None, None, None)


async def test_the_sim_lock_s_failure_options_drive_the_hub_s_failure_paths(
    tmp_path: Path,
) -> None:
    assert "jam_every = 1" in FAILING_LOCKS
    async with started_with_failing_locks(tmp_path) as hub:
        # parcel-room: every radio call fails, so the code is tried four times and reported.
        await hub.send(keypad_window(hub, "w-radio", "12345678"))
        await drive_until_idle(hub)
        (applied, failed) = statuses(await hub.records(), "w-radio")
        assert applied == ("applied", None)
        # Unreachable, or the circuit breaker that the failures at start already opened.
        assert failed in {
            ("failed_on_lock", "LockUnreachableError"),
            ("failed_on_lock", "LockCircuitOpenError"),
        }
        window = hub.hub.engine.cache.get("w-radio")
        assert window is not None
        assert window.code_sealed is not None  # unreachable is not final: kept for a recheck
        locks = {lock["lock_id"]: lock for lock in (await hub.admin("/v1/admin/locks"))["locks"]}
        assert locks["parcel-room"]["state"] == "unreachable"

        # front-door: every bolt movement jams; the courier gets a 503 and the lock is jammed.
        await hub.send(hub.command("window.upsert", hub.upsert("w-jam", "87654321")))
        assert (await hub.unlock("front-door", code="87654321"))[0] == 503
        locks = {lock["lock_id"]: lock for lock in (await hub.admin("/v1/admin/locks"))["locks"]}
        assert locks["front-door"]["state"] == "jammed"
