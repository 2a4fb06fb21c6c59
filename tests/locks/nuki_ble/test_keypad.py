"""Keypad codes with time limits, and keypad unlocks attributed from the lock's log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.locks import (
    DuplicateCodeError,
    EventKind,
    KeypadCode,
    KeypadFullError,
    KeypadUnsupportedError,
    LockEvent,
    LockRefusedError,
    Trigger,
)
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.nuki.driver import NukiBleDriver
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.nuki.messages import LockAction
from gateway.testing import FakeClock

from ..conftest import take
from .conftest import make_driver, paired


def code(clock: FakeClock, digits: str = "482913", hours: float = 2) -> KeypadCode:
    start = clock.now()
    return KeypadCode(digits, "courier 7", start, start + timedelta(hours=hours))


async def next_event(driver: NukiBleDriver) -> LockEvent:
    async with asyncio.timeout(2):
        return await anext(driver.events())


async def test_code_is_set_with_its_window(
    driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock
) -> None:
    wanted = code(clock)
    code_id = await driver.add_keypad_code(wanted)
    entry = lock.codes[code_id]
    assert (entry.spec.code, entry.spec.name) == (482913, "courier 7")
    assert entry.spec.allowed_from == wanted.valid_from.replace(microsecond=0)
    assert entry.spec.allowed_until == wanted.valid_until.replace(microsecond=0)
    await driver.remove_keypad_code(code_id)
    assert lock.codes == {}
    await driver.remove_keypad_code(code_id)  # already gone is not an error


async def test_code_id_found_by_listing_when_the_lock_only_says_complete(
    driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock
) -> None:
    lock.returns_code_id = False
    await driver.add_keypad_code(code(clock, "334455"))
    code_id = await driver.add_keypad_code(code(clock, "556677"))
    assert lock.codes[code_id].spec.code == 556677


async def test_a_retried_add_returns_the_code_the_first_try_set(
    driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock
) -> None:
    wanted = code(clock)
    first = await driver.add_keypad_code(wanted)
    assert await driver.add_keypad_code(wanted) == first
    assert len(lock.codes) == 1


async def test_someone_elses_code_is_a_duplicate(driver: NukiBleDriver, clock: FakeClock) -> None:
    await driver.add_keypad_code(code(clock))
    other = KeypadCode("482913", "neighbour", clock.now(), clock.now() + timedelta(hours=1))
    with pytest.raises(DuplicateCodeError):
        await driver.add_keypad_code(other)


async def test_full_keypad(driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock) -> None:
    lock.keypad_slots = 1
    await driver.add_keypad_code(code(clock, "334455"))
    with pytest.raises(KeypadFullError):
        await driver.add_keypad_code(code(clock, "556677"))


@pytest.mark.parametrize("digits", ["123456", "402913", "48291", "abcdef"])
async def test_codes_the_lock_would_refuse_never_go_out(
    driver: NukiBleDriver, air: FakeAir, clock: FakeClock, digits: str
) -> None:
    writes = sum(len(w) for w in air.writes.values())
    with pytest.raises(LockRefusedError):
        await driver.add_keypad_code(code(clock, digits))
    assert sum(len(w) for w in air.writes.values()) == writes


async def test_wrong_pin_then_too_many_attempts(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    context = await paired(air, lock, clock, tmp_path)
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("1111")
    wrong.chmod(0o600)
    nuki = make_driver(context, security_pin_file=str(wrong))
    await nuki.start()
    for _ in range(3):
        with pytest.raises(LockRefusedError, match="wrong security PIN"):
            await nuki.add_keypad_code(code(clock))
    with pytest.raises(LockRefusedError, match="too many wrong"):
        await nuki.add_keypad_code(code(clock))
    await nuki.stop()
    await context.ble_transport().stop()


async def test_no_pin_no_keypad(driver_without_pin: NukiBleDriver, clock: FakeClock) -> None:
    assert not driver_without_pin.has_keypad
    with pytest.raises(KeypadUnsupportedError):
        await driver_without_pin.add_keypad_code(code(clock))
    with pytest.raises(KeypadUnsupportedError):
        await driver_without_pin.remove_keypad_code(1)


async def test_keypad_unlock_is_attributed_by_code_id(
    driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock
) -> None:
    code_id = await driver.add_keypad_code(code(clock))
    await driver.poll()  # the first read of the log only sets the starting point
    assert lock.press_keypad("482913")  # the beacon flags the change; the driver reads the log
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.keypad_code_id) == (
        EventKind.UNLOCKED,
        Trigger.KEYPAD,
        code_id,
    )
    assert not lock.press_keypad("999999")
    event = await next_event(driver)
    assert (event.kind, event.keypad_code_id) == (EventKind.KEYPAD_DENIED, None)


async def test_keypad_code_outside_its_window_is_denied(
    driver: NukiBleDriver, lock: NukiEmulator, clock: FakeClock
) -> None:
    code_id = await driver.add_keypad_code(code(clock, hours=1))
    await driver.poll()
    clock.advance(2 * 3600)
    assert not lock.press_keypad("482913")
    event = await next_event(driver)
    assert (event.kind, event.keypad_code_id) == (EventKind.KEYPAD_DENIED, code_id)


async def test_others_actions_come_from_the_log_and_ours_are_not_repeated(
    driver: NukiBleDriver, lock: NukiEmulator
) -> None:
    await driver.poll()
    await driver.unlock("req-1")
    assert (await take(driver.events(), 1))[0].request_id == "req-1"
    lock.turn_knob(LockAction.LOCK)
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.LOCKED,
        Trigger.MANUAL,
        None,
    )


async def test_without_pin_changes_come_from_the_state(
    driver_without_pin: NukiBleDriver, lock: NukiEmulator
) -> None:
    await driver_without_pin.status()
    lock.turn_knob(LockAction.UNLOCK)
    event = await next_event(driver_without_pin)
    assert (event.kind, event.trigger) == (EventKind.UNLOCKED, Trigger.MANUAL)
    lock.set_door(opened=True)
    event = await next_event(driver_without_pin)
    assert event.kind is EventKind.DOOR_OPENED
