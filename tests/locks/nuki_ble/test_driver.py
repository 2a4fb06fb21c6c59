"""The nuki_ble driver against the emulator over the fake bleak backend and BleTransport."""

from __future__ import annotations

import asyncio

from gateway.locks import EventKind, LockState, Trigger
from gateway.locks.ble.nuki.driver import NukiBleDriver
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.nuki.messages import LockAction
from gateway.locks.ble.nuki.messages import LockState as NukiLockState

from ..conftest import take


async def test_unlock_and_lock_are_confirmed_by_the_lock(
    driver: NukiBleDriver, lock: NukiEmulator
) -> None:
    await driver.unlock("req-1")
    assert lock.lock_state == NukiLockState.UNLOCKED
    [event] = await take(driver.events(), 1)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    assert (await driver.status()).state is LockState.UNLOCKED
    await driver.lock("req-2")
    [event] = await take(driver.events(), 1)
    assert (event.kind, event.request_id) == (EventKind.LOCKED, "req-2")
    assert lock.actions_performed == [LockAction.UNLOCK, LockAction.LOCK]
    await asyncio.sleep(0)


async def test_status_reports_battery_and_door(driver: NukiBleDriver, lock: NukiEmulator) -> None:
    lock.set_battery(64)
    status = await driver.status()
    assert (status.state, status.battery_percent, status.door.value) == (
        LockState.LOCKED,
        64,
        "closed",
    )
