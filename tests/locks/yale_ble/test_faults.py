"""Faults: drops mid-command, timeouts, out of slots, a jam, a wrong key; nothing runs twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.locks.ble import yale_emulator as wire
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.transport import BleTransport
from gateway.locks.ble.yale import YaleBleDriver, build
from gateway.locks.ble.yale_emulator import YaleLockEmulator
from gateway.locks.coordinator import LockCoordinator
from gateway.locks.driver import (
    EventKind,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockUnreachableError,
    Trigger,
)

from .conftest import context_for, next_event, section_for, store_key
from .test_driver import code


def unlocks(emulator: YaleLockEmulator) -> int:
    return sum(1 for r in emulator.received if r.opcode == wire.UNLOCK)


async def test_drop_before_the_ack_is_resent_and_the_bolt_moves_once(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    emulator.faults.drop_before_ack.add(wire.UNLOCK)
    await driver.unlock("req-1")
    # yalexs-ble reconnected and sent it again: an unlocked bolt does not move again.
    assert unlocks(emulator) == 2
    assert emulator.motor_runs == 1
    event = await next_event(driver)
    assert (event.kind, event.request_id) == (EventKind.UNLOCKED, "req-1")


async def test_drop_after_the_ack_is_not_resent_and_the_retry_reads_the_bolt(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    emulator.faults.drop_after_ack.add(wire.UNLOCK)
    events: list[LockEvent] = []

    async def record(event: LockEvent) -> None:
        events.append(event)

    coordinator = LockCoordinator(driver, on_event=record)
    await coordinator.start()
    # The ack came and then the link dropped: the result is unknown, yalexs-ble does not
    # resend; the coordinator retries, and the driver reads the bolt instead of resending.
    await coordinator.unlock("req-1")
    assert unlocks(emulator) == 1
    assert emulator.motor_runs == 1
    await asyncio.sleep(0.05)
    assert [(e.kind, e.request_id, e.details) for e in events] == [
        (EventKind.UNLOCKED, "req-1", {"confirmed_by": "status"})
    ]
    await coordinator.stop()


async def test_an_unconfirmed_retry_sends_again_when_the_bolt_did_not_move(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    air.drop(emulator.address)
    air.connection_slots = 0  # every connect fails: out of slots
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-1")
    assert unlocks(emulator) == 0
    air.connection_slots = 3
    await driver.unlock("req-1")
    assert unlocks(emulator) == 1
    assert emulator.bolt == wire.UNLOCKED


async def test_out_of_slots_and_timeouts_are_ridden_out(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    air.drop(emulator.address)
    air.fail_next_connects(emulator.address, 2, "out_of_slots")
    air.fail_next_connects(emulator.address, 1, "timeout")
    before = air.connects[emulator.address]
    await driver.unlock("req-1")
    assert air.connects[emulator.address] == before + 4
    assert emulator.bolt == wire.UNLOCKED


async def test_connect_timeouts_make_the_lock_unreachable(
    driver: YaleBleDriver, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    air.drop(emulator.address)
    air.fail_next_connects(emulator.address, 4, "timeout")
    with pytest.raises(LockUnreachableError):
        await driver.lock("req-1")
    assert not [r for r in emulator.received if r.opcode == wire.LOCK]


async def test_a_silent_lock_times_out_under_the_coordinator(
    driver: YaleBleDriver, emulator: YaleLockEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.locks.coordinator.UNLOCK_TIMEOUT", 0.3)
    monkeypatch.setattr("gateway.locks.coordinator.UNREACHABLE_ATTEMPTS", 1)

    async def ignore(_: LockEvent) -> None:
        return None

    coordinator = LockCoordinator(driver, on_event=ignore)
    emulator.faults.silent = True
    with pytest.raises(LockUnreachableError):
        await coordinator.unlock("req-1")
    emulator.faults.silent = False
    await driver.unlock("req-2")  # the driver is usable again
    assert emulator.bolt == wire.UNLOCKED


async def test_a_jam_is_reported(driver: YaleBleDriver, emulator: YaleLockEmulator) -> None:
    emulator.faults.fail_next = wire.MECH_TIMEOUT
    with pytest.raises(LockJammedError):
        await driver.unlock("req-1")
    event = await next_event(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.JAMMED,
        Trigger.REMOTE,
        "req-1",
    )
    assert (await driver.status()).state is LockState.JAMMED


async def test_a_refused_operation_and_a_refused_code(
    driver: YaleBleDriver, emulator: YaleLockEmulator
) -> None:
    emulator.faults.fail_next = 0x38  # NOT_AUTHORIZED: the lock refuses, the bolt stays
    with pytest.raises(LockRefusedError, match="NOT_AUTHORIZED"):
        await driver.unlock("req-1")
    assert emulator.bolt == wire.LOCKED
    emulator.faults.code_result = 0x45  # KEYCODE_SLOT_IN_USE
    with pytest.raises(LockRefusedError, match="SLOT_IN_USE"):
        await driver.add_keypad_code(code("4321"))


async def test_a_wrong_offline_key_asks_for_pairing_again(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    store_key(tmp_path, key="0f" * 16)
    driver = build(section_for(emulator.address), context_for(tmp_path, transport))
    with pytest.raises(LockRefusedError, match="pair it again"):
        await driver.start()
    assert not emulator.connected  # yalexs-ble stopped: it does not keep knocking
    connects = air.connects[emulator.address]
    emulator.turn_thumb(unlock=True)  # an advertisement no longer makes it try
    await asyncio.sleep(0.1)
    assert air.connects[emulator.address] == connects
    await driver.stop()
    assert emulator.motor_runs == 1


async def test_an_unpaired_lock_says_how_to_pair(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator
) -> None:
    driver = build(section_for(emulator.address), context_for(tmp_path, transport))
    with pytest.raises(LockRefusedError, match="lockhub gateway pair yale_ble"):
        await driver.start()
    await driver.stop()


async def test_a_lock_out_of_range_at_start_is_found_later(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator, air: FakeAir
) -> None:
    store_key(tmp_path)
    emulator.model = "SL-103"  # a Linus L2: yalexs-ble does not ask it for the battery
    air.set_in_range(emulator.address, False)
    driver = build(section_for(emulator.address), context_for(tmp_path, transport))
    await driver.start()  # not an error: advertisements will bring it
    with pytest.raises(LockUnreachableError):
        await driver.status()
    air.set_in_range(emulator.address, True)
    emulator.advertise()
    status = await driver.status()
    assert (status.state, status.battery_percent) == (LockState.LOCKED, None)
    await driver.stop()
    with pytest.raises(LockUnreachableError):
        await driver.status()
