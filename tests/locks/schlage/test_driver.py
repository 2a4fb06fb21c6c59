"""The Schlage driver against the fake cloud: state, commands, keypad codes, log attribution."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.locks import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    KeypadCode,
    KeypadFullError,
    LockJammedError,
    LockRefusedError,
    LockState,
    Trigger,
)
from gateway.locks.bridges.schlage import LOG_POLL_INTERVAL, SchlageLock
from gateway.locks.bridges.schlage.account import _refusal
from gateway.testing import FakeClock

from .conftest import MakeDriver, Served, courier_code, drain


async def test_status_reads_bolt_battery_and_door(served: Served, driver: SchlageLock) -> None:
    served.lock.battery = 14
    status = await driver.status()
    assert (status.state, status.battery_percent, status.door) == (
        LockState.LOCKED,
        14,
        DoorState.CLOSED,
    )
    assert status.battery_low
    served.lock.connected = False
    assert (await driver.status()).state is LockState.UNREACHABLE
    served.lock.connected, served.lock.lock_state, served.lock.door_state = True, 2, 1
    status = await driver.status()
    assert (status.state, status.door) == (LockState.JAMMED, DoorState.OPEN)
    served.lock.lock_state = 0
    assert (await driver.status()).state is LockState.UNLOCKED


async def test_unlock_reports_once_with_request_id(served: Served, driver: SchlageLock) -> None:
    await driver.unlock("req-1")
    assert served.lock.lock_state == 0
    [event] = await drain(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    assert event.vendor == "schlage"
    # The cloud's log entry for this very unlock is recognised, not reported a second time.
    assert await driver.poll_logs() == 0
    await driver.unlock("req-1")  # a repeat of a confirmed request does nothing
    assert served.cloud.calls["PUT device"] == 1
    await driver.lock("req-2")
    assert served.lock.lock_state == 1
    assert [e.request_id for e in await drain(driver)] == ["req-2"]


async def test_app_unlock_is_reported_without_request_id(
    served: Served, driver: SchlageLock
) -> None:
    served.lock.lock_state = 0
    served.cloud.log(served.lock, 7, accessor=served.cloud.user_id)
    assert await driver.poll_logs() == 1
    [event] = await drain(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        None,
    )


async def test_bridge_lock_uses_the_command_endpoint(
    served: Served, make_driver: MakeDriver
) -> None:
    bridged = served.cloud.add_lock("Back Door", device_type="be479")
    driver = await make_driver(device_id=bridged.device_id)
    await driver.unlock("req-b")
    assert served.cloud.calls["command:changelockstate"] == 1
    assert served.cloud.calls["PUT device"] == 0
    assert [e.request_id for e in await drain(driver)] == ["req-b"]


async def test_jammed_bolt_raises_and_reports(served: Served, driver: SchlageLock) -> None:
    served.lock.jam_next = True
    with pytest.raises(LockJammedError):
        await driver.unlock("req-j")
    [event] = await drain(driver)
    assert event.kind is EventKind.JAMMED


async def test_unconfirmed_unlock_is_confirmed_by_the_log(
    served: Served, driver: SchlageLock
) -> None:
    served.lock.jam_next = False
    served.lock.connected = True
    # The cloud accepted the command, but the read-back still shows the bolt thrown (slow lock).
    original = served.cloud._move
    served.cloud._move = lambda lock, target: None  # type: ignore[method-assign]
    await driver.unlock("req-slow")
    assert await drain(driver) == []
    served.cloud._move = original  # type: ignore[method-assign]
    served.cloud.log(served.lock, 7, accessor=served.cloud.user_id)
    assert await driver.poll_logs() == 1
    [event] = await drain(driver)
    assert (event.kind, event.request_id) == (EventKind.UNLOCKED, "req-slow")


async def test_code_is_added_with_a_temporary_schedule(served: Served, driver: SchlageLock) -> None:
    code = courier_code()
    code_id = await driver.add_keypad_code(code)
    [stored] = served.lock.codes.values()
    assert stored["accessCode"] == 482913
    assert stored["activationSecs"] == int(code.valid_from.timestamp())
    assert stored["expirationSecs"] == int(code.valid_until.timestamp())
    assert stored["friendlyName"] == "courier"
    assert code_id == 1
    assert await driver.add_keypad_code(courier_code("551234")) == 2


async def test_keypad_unlock_is_attributed_once(
    served: Served, driver: SchlageLock, make_driver: MakeDriver
) -> None:
    code_id = await driver.add_keypad_code(courier_code())
    await driver.poll_logs()
    await drain(driver)
    assert served.cloud.type_code(served.lock, "482913")
    assert not served.cloud.type_code(served.lock, "000000")
    assert await driver.poll_logs() == 2
    unlocked, denied = await drain(driver)
    assert (unlocked.kind, unlocked.trigger, unlocked.keypad_code_id) == (
        EventKind.UNLOCKED,
        Trigger.KEYPAD,
        code_id,
    )
    assert unlocked.vendor_event_id.startswith("schlage-log-")
    assert denied.kind is EventKind.KEYPAD_DENIED
    assert await driver.poll_logs() == 0  # the same entries again: nothing new
    await driver.stop()
    restarted = await make_driver()  # the cursor and the code ids survive a restart
    assert await restarted.poll_logs() == 0
    await restarted.remove_keypad_code(code_id)
    assert served.lock.codes == {}


async def test_history_before_the_first_start_is_not_replayed(
    served: Served, make_driver: MakeDriver
) -> None:
    served.cloud.log(served.lock, 4)
    driver = await make_driver()
    assert await drain(driver) == []
    served.cloud.log(served.lock, 3)
    assert await driver.poll_logs() == 1
    [event] = await drain(driver)
    assert (event.kind, event.trigger) == (EventKind.LOCKED, Trigger.MANUAL)


async def test_duplicate_full_and_wrong_codes_are_refused(
    served: Served, driver: SchlageLock
) -> None:
    await driver.add_keypad_code(courier_code())
    with pytest.raises(DuplicateCodeError):
        await driver.add_keypad_code(courier_code(hours=3))
    with pytest.raises(LockRefusedError, match="6-digit"):
        await driver.add_keypad_code(courier_code("1234"))
    with pytest.raises(LockRefusedError, match="digits only"):
        await driver.add_keypad_code(courier_code("12a456"))
    with pytest.raises(LockRefusedError, match="4-8"):
        await driver.add_keypad_code(courier_code("123"))
    start = datetime.now(UTC)
    with pytest.raises(LockRefusedError, match="before its end"):
        await driver.add_keypad_code(KeypadCode("123456", "x", start, start))
    served.lock.max_codes = 1
    await driver.status()  # the driver learns the lock's capacity from the device record
    with pytest.raises(KeypadFullError):
        await driver.add_keypad_code(courier_code("551234"))
    assert len(served.lock.codes) == 1


async def test_cloud_side_refusals_are_mapped(served: Served, driver: SchlageLock) -> None:
    served.lock.code_length = 8  # the driver still believes 6 digits: the cloud refuses
    with pytest.raises(LockRefusedError, match="length") as refused:
        await driver.add_keypad_code(courier_code())
    assert not isinstance(refused.value, DuplicateCodeError | KeypadFullError)


async def test_removing_an_absent_code_is_not_an_error(served: Served, driver: SchlageLock) -> None:
    await driver.remove_keypad_code(99)
    code_id = await driver.add_keypad_code(courier_code())
    served.lock.codes.clear()  # removed in the app meanwhile
    await driver.remove_keypad_code(code_id)
    assert served.cloud.calls["command:deleteaccesscode"] == 0


async def test_the_log_is_polled_on_the_clock(
    served: Served, driver: SchlageLock, fake_clock: FakeClock
) -> None:
    served.cloud.log(served.lock, 71)
    polls = served.cloud.calls["GET logs"]
    fake_clock.advance(LOG_POLL_INTERVAL)
    events = driver.events()
    event = await anext(events)
    assert event.kind is EventKind.DOOR_OPENED
    assert served.cloud.calls["GET logs"] == polls + 1


async def test_a_failed_app_notification_does_not_lose_the_code(
    served: Served, driver: SchlageLock
) -> None:
    served.cloud.notification_faults = 1
    code_id = await driver.add_keypad_code(courier_code())
    assert len(served.lock.codes) == 1
    await driver.remove_keypad_code(code_id)
    assert served.lock.codes == {}


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (409, "Conflict", DuplicateCodeError),
        (400, "Access code already exists", DuplicateCodeError),
        (400, "Maximum number of access codes reached", KeypadFullError),
        (400, "Bad schedule", LockRefusedError),
    ],
)
def test_cloud_refusals_by_message(status: int, message: str, error: type[Exception]) -> None:
    refusal = _refusal(message, status)
    assert type(refusal) is error
    assert message in str(refusal)
