"""The yale_ble driver end to end: yalexs-ble unmodified drives the emulated lock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.locks.ble import yale_emulator as wire
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.transport import BleTransport
from gateway.locks.ble.yale import YaleBleDriver, build
from gateway.locks.ble.yale_emulator import YaleLockEmulator
from gateway.locks.driver import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    KeypadCode,
    KeypadFullError,
    KeypadUnsupportedError,
    LockRefusedError,
    LockState,
    LockStatus,
    Trigger,
)

from .conftest import context_for, next_event, now, section_for, store_key, until


def code(pin: str, *, starts_in: float = 0, hours: float = 1) -> KeypadCode:
    start = now() + timedelta(seconds=starts_in)
    return KeypadCode(pin, "courier", start, start + timedelta(hours=hours))


async def test_status_reads_bolt_door_and_battery(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    assert await driver.status() == LockStatus(LockState.LOCKED, 93, DoorState.CLOSED)
    emulator.battery_mv = 5120  # 1.28 V a cell: nearly flat
    emulator.bolt = wire.UNLOCKED
    air.drop(emulator.address)  # silent changes: only a fresh read on a new link sees them
    status = await driver.status()
    assert status.state is LockState.UNLOCKED
    assert status.battery_low
    event = await next_event(driver)
    assert (event.kind, event.battery_percent) == (EventKind.BATTERY, 15)
    # A move no log record explains: reported unattributed, at the latest on stop.
    await driver.stop()
    event = await next_event(driver)
    assert (event.kind, event.trigger) == (EventKind.UNLOCKED, Trigger.UNKNOWN)


async def test_unlock_and_lock_are_confirmed_by_the_lock(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    await driver.unlock("req-1")
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    assert emulator.bolt == wire.UNLOCKED
    await driver.lock("req-2")
    event = await next_event(driver)
    assert (event.kind, event.request_id) == (EventKind.LOCKED, "req-2")
    assert emulator.bolt == wire.LOCKED
    assert emulator.motor_runs == 2
    # A retry of a confirmed request does not reach the lock again.
    sent = len(emulator.received)
    await driver.unlock("req-1")
    assert len(emulator.received) == sent
    assert emulator.bolt == wire.LOCKED


async def test_keypad_code_set_used_and_cleared(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    emulator.codes[100] = "111111"  # someone else's code in the hub's first slot
    slot = await driver.add_keypad_code(code("482913"))
    assert slot == 101
    assert emulator.codes[101] == "482913"
    assert emulator.keypad("482913")
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.keypad_code_id) == (
        EventKind.UNLOCKED,
        Trigger.KEYPAD,
        101,
    )
    await driver.remove_keypad_code(101)
    await driver.remove_keypad_code(101)  # absent is not an error
    assert 101 not in emulator.codes
    assert not emulator.keypad("482913")


async def test_keypad_refusals(driver: YaleBleDriver, emulator: YaleLockEmulator) -> None:
    await driver.add_keypad_code(code("1234"))
    with pytest.raises(DuplicateCodeError):
        await driver.add_keypad_code(code("1234"))  # seen in the hub's own slot
    emulator.codes[5] = "5555"
    with pytest.raises(DuplicateCodeError):
        await driver.add_keypad_code(code("5555"))  # the lock refuses: held in slot 5
    await driver.add_keypad_code(code("2345"))
    await driver.add_keypad_code(code("3456"))
    with pytest.raises(KeypadFullError):
        await driver.add_keypad_code(code("4567"))  # the hub's 3 slots are used
    await driver.remove_keypad_code(100)
    emulator.keypad_capacity = len(emulator.codes)
    with pytest.raises(KeypadFullError):
        await driver.add_keypad_code(code("4567"))  # the lock has no room left
    for bad in (code("12a4"), code("123"), code("123456789"), code("9876", hours=-2)):
        with pytest.raises(LockRefusedError):
            await driver.add_keypad_code(bad)
    with pytest.raises(LockRefusedError, match="always valid"):
        await driver.add_keypad_code(code("9876", starts_in=3600))
    with pytest.raises(LockRefusedError, match="not the hub's"):
        await driver.remove_keypad_code(5)
    assert emulator.codes[5] == "5555"


async def test_changes_at_the_lock_are_noticed_from_advertisements(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    air.drop(emulator.address)  # yalexs-ble is not connected: only advertisements tell
    await until(lambda: not emulator.connected)
    connects = air.connects[emulator.address]
    emulator.turn_thumb(unlock=True)
    event = await next_event(driver)
    assert (event.kind, event.trigger) == (EventKind.UNLOCKED, Trigger.MANUAL)
    assert air.connects[emulator.address] > connects
    emulator.set_door(open_=True)
    event = await next_event(driver)
    assert event.kind is EventKind.DOOR_OPENED


async def test_a_change_no_record_explains_is_still_reported(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    driver._attribution_wait = 0.2
    emulator.bolt = wire.UNLOCKED  # moved without a log record (as older firmware does)
    emulator.changed()
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.keypad_code_id) == (
        EventKind.UNLOCKED,
        Trigger.UNKNOWN,
        None,
    )


async def test_a_keypad_unlock_the_readings_missed_is_still_reported(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    emulator.codes[100] = "2468"
    air.drop(emulator.address)
    await until(lambda: not emulator.connected)
    assert emulator.keypad("2468")
    emulator.turn_thumb(unlock=False)  # relocked before anyone looked: the bolt reads LOCKED
    await until(lambda: emulator.connected)
    emulator.set_door(open_=True)  # the courier opens the door: the log is read
    events = [await next_event(driver), await next_event(driver)]
    assert [(e.kind, e.trigger, e.keypad_code_id) for e in events] == [
        (EventKind.DOOR_OPENED, Trigger.UNKNOWN, None),
        (EventKind.UNLOCKED, Trigger.KEYPAD, 100),
    ]


async def test_the_master_code_and_a_jam_at_the_lock(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    emulator.codes[0xFFEE] = "13579"  # the keypad's programming code
    assert emulator.keypad("13579")
    event = await next_event(driver)
    assert (event.kind, event.keypad_code_id, event.details) == (
        EventKind.UNLOCKED,
        None,
        {"master_code": True},
    )
    emulator.bolt = wire.JAMMED
    emulator.changed()
    event = await next_event(driver)
    assert (event.kind, event.trigger) == (EventKind.JAMMED, Trigger.UNKNOWN)


async def test_a_late_record_does_not_report_a_change_twice(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    driver._attribution_wait = 0  # the change is reported before the log is read
    emulator.turn_thumb(unlock=True)
    event = await next_event(driver)
    assert (event.kind, event.trigger) == (EventKind.UNLOCKED, Trigger.UNKNOWN)
    with pytest.raises(TimeoutError):
        await next_event(driver, within=0.3)


async def test_our_command_explains_a_change_seen_before_it(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    driver._attribution_wait = 0.3
    emulator.bolt = wire.UNLOCKED  # no log record: only our own command could explain it
    emulator.changed()
    await until(lambda: driver._bolt is LockState.UNLOCKED)
    await driver.unlock("req-1")
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    with pytest.raises(TimeoutError):
        await next_event(driver, within=0.5)


async def test_only_recent_requests_are_remembered(
    driver: YaleBleDriver, emulator: YaleLockEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.locks.ble.yale.driver.REMEMBERED_REQUESTS", 2)
    for request in ("a", "b", "c"):
        await driver.lock(request)
    locks = sum(1 for r in emulator.received if r.opcode == wire.LOCK)
    await driver.lock("c")  # remembered: not sent
    await driver.lock("a")  # forgotten: sent again (the bolt is locked; the motor stays)
    assert sum(1 for r in emulator.received if r.opcode == wire.LOCK) == locks + 1
    assert emulator.motor_runs == 0


async def test_a_lock_without_a_keypad(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator
) -> None:
    store_key(tmp_path)
    driver = build(section_for(emulator.address), context_for(tmp_path, transport))
    assert (driver.vendor, driver.has_keypad, driver.lock_id) == ("yale", False, "front-door")
    await driver.start()
    with pytest.raises(KeypadUnsupportedError):
        await driver.add_keypad_code(code("1234"))
    with pytest.raises(KeypadUnsupportedError):
        await driver.remove_keypad_code(100)
    await driver.stop()
