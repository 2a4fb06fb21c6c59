"""Faults: jams, busy locks, silence, dropped links, out of slots, lost authorization."""

from __future__ import annotations

import pytest

from gateway.locks import (
    EventKind,
    LockJammedError,
    LockRefusedError,
    LockUnreachableError,
)
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.nuki.driver import NukiBleDriver
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.nuki.errors import NukiPairingNeededError
from gateway.locks.ble.nuki.messages import LockAction
from gateway.locks.ble.nuki.messages import LockState as NukiLockState

from ..conftest import take
from .conftest import ADDRESS


async def test_motor_blocked_is_jammed(driver: NukiBleDriver, lock: NukiEmulator) -> None:
    lock.jam_next = True
    with pytest.raises(LockJammedError):
        await driver.unlock("req-jam")
    [event] = await take(driver.events(), 1)
    assert (event.kind, event.request_id) == (EventKind.JAMMED, "req-jam")
    assert lock.lock_state == NukiLockState.MOTOR_BLOCKED


async def test_busy_lock_is_unreachable_for_now(driver: NukiBleDriver, lock: NukiEmulator) -> None:
    lock.busy = True
    with pytest.raises(LockUnreachableError, match="busy"):
        await driver.unlock("req-busy")
    assert lock.actions_performed == []


async def test_silent_lock_times_out(driver: NukiBleDriver, lock: NukiEmulator) -> None:
    lock.silent = True
    with pytest.raises(LockUnreachableError, match="did not answer"):
        await driver.status()


async def test_out_of_connection_slots_is_unreachable(driver: NukiBleDriver, air: FakeAir) -> None:
    air.fail_next_connects(ADDRESS, 5, "out_of_slots")
    with pytest.raises(LockUnreachableError):
        await driver.status()


async def test_lost_authorization_says_pair_again(
    driver: NukiBleDriver, lock: NukiEmulator
) -> None:
    lock.authorizations.clear()
    with pytest.raises(NukiPairingNeededError, match="pair the lock again"):
        await driver.status()


async def test_unlock_retried_after_a_drop_runs_once(
    driver: NukiBleDriver, lock: NukiEmulator
) -> None:
    lock.drop_after_accept = True
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-drop")
    assert lock.actions_performed == [LockAction.UNLOCK]  # the motor ran despite the drop
    lock.turn_knob(LockAction.LOCK)  # and someone locked again before the retry
    await driver.unlock("req-drop")  # the coordinator's retry
    assert lock.actions_performed == [LockAction.UNLOCK]
    [event] = await take(driver.events(), 1)
    assert (event.kind, event.request_id) == (EventKind.UNLOCKED, "req-drop")


async def test_retry_after_a_drop_before_the_lock_acted_sends_again(
    driver: NukiBleDriver, lock: NukiEmulator
) -> None:
    lock.silent = True
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-lost")
    lock.silent = False
    await driver.unlock("req-lost")
    assert lock.actions_performed == [LockAction.UNLOCK]


async def test_without_pin_a_retry_trusts_the_reported_last_action(
    driver_without_pin: NukiBleDriver, lock: NukiEmulator
) -> None:
    lock.drop_after_accept = True
    with pytest.raises(LockUnreachableError):
        await driver_without_pin.unlock("req-drop")
    await driver_without_pin.unlock("req-drop")
    assert lock.actions_performed == [LockAction.UNLOCK]
    [event] = await take(driver_without_pin.events(), 1)
    assert event.request_id == "req-drop"


async def test_refusal_is_not_retried(driver: NukiBleDriver, lock: NukiEmulator) -> None:
    # A lock action code the lock does not know: it answers with an Error Report.
    with pytest.raises(LockRefusedError):
        await driver._act("req-bad", 0x7F)
    assert lock.actions_performed == []
    assert driver._pending == {}
