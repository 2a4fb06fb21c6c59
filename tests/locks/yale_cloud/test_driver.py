"""The yale_cloud driver against the fake cloud: status, commands, events from the feed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import LockSection
from gateway.errors import ConfigError
from gateway.locks.bridges.fake_august import UNLOCKED, FakeAugustCloud, FakeLock
from gateway.locks.bridges.yale_cloud import (
    YaleCloudAuthError,
    YaleCloudLock,
    YaleCloudRefusedError,
    pair,
)
from gateway.locks.bridges.yale_cloud.credentials import CURSOR_KIND, load
from gateway.locks.credentials import CredentialStore
from gateway.locks.driver import (
    DoorState,
    EventKind,
    KeypadCode,
    KeypadUnsupportedError,
    LockDriver,
    LockRefusedError,
    LockState,
    Trigger,
)
from gateway.locks.registry import DriverContext, build_driver
from gateway.testing import FakeClock

from .conftest import (
    COURIER_SLOT,
    ScriptedUI,
    drain,
    login_answers,
    make_driver,
    poller_waiting,
    section,
)


async def test_build_through_the_registry(cloud: FakeAugustCloud, tmp_path: Path) -> None:
    lock = build_driver(
        section(cloud, poll_interval=30),
        now=FakeClock().now,
        sleep=FakeClock().sleep,
        state_dir=tmp_path,
    )
    assert isinstance(lock, LockDriver)
    assert (lock.lock_id, lock.vendor, lock.has_keypad) == ("front-door", "yale", False)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"poll_interval": 1}, "poll_interval"),
        ({"brand": "yale_global"}, "brand"),
        ({"api_base": "ftp://x"}, "api_base"),
        ({"lock": "x"}, "lock"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], field: str, tmp_path: Path) -> None:
    bad = LockSection(id="front-door", driver="yale_cloud", options=options)
    with pytest.raises(ConfigError, match=rf"locks\[front-door\]\.options\.{field}"):
        build_driver(bad, now=FakeClock().now, sleep=FakeClock().sleep, state_dir=tmp_path)


async def test_start_without_pairing_names_the_pair_command(
    cloud: FakeAugustCloud, fake_clock: FakeClock, tmp_path: Path
) -> None:
    ctx = DriverContext(now=fake_clock.now, sleep=fake_clock.sleep, source="t", state_dir=tmp_path)
    lock = make_driver(cloud, ctx)
    with pytest.raises(
        YaleCloudAuthError, match="lockhub gateway pair yale_cloud --lock front-door"
    ):
        await lock.start()


async def test_start_refuses_options_naming_another_lock(
    cloud: FakeAugustCloud, paired: DriverContext
) -> None:
    assert paired.state_dir is not None
    lock = YaleCloudLock(
        "front-door",
        store=CredentialStore.open(paired.state_dir),
        options=make_driver(cloud, paired)._options.model_copy(update={"august_lock_id": "OTHER"}),
        now=paired.now,
    )
    with pytest.raises(YaleCloudRefusedError, match="pair it again"):
        await lock.start()


async def test_status_reads_bolt_door_and_battery(driver: YaleCloudLock, front: FakeLock) -> None:
    status = await driver.status()
    assert (status.state, status.door, status.battery_percent) == (
        LockState.LOCKED,
        DoorState.CLOSED,
        87,
    )
    front.status, front.battery = UNLOCKED, 0.1
    status = await driver.status()
    assert status.state is LockState.UNLOCKED
    assert status.battery_percent == 87  # the detail is read at most hourly


async def test_battery_is_reread_after_an_hour(
    driver: YaleCloudLock, front: FakeLock, fake_clock: FakeClock
) -> None:
    await driver.status()
    front.battery = 0.1
    fake_clock.advance(3601)
    assert (await driver.status()).battery_low


async def test_unlock_is_confirmed_by_the_feed_with_the_request_id(
    driver: YaleCloudLock, front: FakeLock, cloud: FakeAugustCloud
) -> None:
    await driver.unlock("req-1")
    assert front.status == UNLOCKED
    [event] = await drain(driver)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    assert event.details == {
        "action": "remote_unlock",
        "source": "cloud",
        "vendor_user_id": front.owner,
    }
    await driver.lock("req-2")
    [locked] = await drain(driver)
    assert (locked.kind, locked.request_id) == (EventKind.LOCKED, "req-2")
    assert cloud.operations == [(front.lock_id, "unlock"), (front.lock_id, "lock")]


async def test_keypad_unlock_carries_the_entry_code_slot(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.keypad_unlock(front.lock_id, COURIER_SLOT)
    assert await driver.poll() == 1
    [event] = await drain(driver)
    assert (event.kind, event.trigger, event.keypad_code_id) == (
        EventKind.UNLOCKED,
        Trigger.KEYPAD,
        COURIER_SLOT,
    )
    assert event.details["vendor_user_id"] == "courier-user"
    assert event.request_id is None


async def test_manual_and_auto_relock_triggers(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.manual(front.lock_id, "manual_unlock")
    cloud.manual(front.lock_id, "auto_lock")
    cloud.log(front, "unlocking", {"UserID": "x"})  # a moving state: no event of its own
    cloud.log(front, "dooropen", {})
    await driver.poll()
    events = await drain(driver)
    assert [(e.kind, e.trigger) for e in events] == [
        (EventKind.UNLOCKED, Trigger.MANUAL),
        (EventKind.LOCKED, Trigger.AUTO),
        (EventKind.DOOR_OPENED, Trigger.UNKNOWN),
    ]
    assert events[0].at < events[1].at < events[2].at


async def test_other_locks_in_the_house_are_ignored(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    other = cloud.add_lock(
        "C3", owner=cloud.accounts[front.owner], serial="X", house_id=front.house_id
    )
    cloud.manual(other.lock_id, "manual_unlock")
    assert await driver.poll() == 0


async def test_history_before_pairing_is_not_replayed(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext
) -> None:
    # pair() set the cursor; an activity logged before it and one after.
    cloud.manual(front.lock_id, "manual_lock")
    lock = make_driver(cloud, paired)
    await lock.start()
    try:
        assert [e.kind for e in await drain(lock)] == [EventKind.LOCKED]
    finally:
        await lock.stop()


async def test_no_activity_is_emitted_twice_across_polls_and_restarts(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext
) -> None:
    lock = make_driver(cloud, paired)
    await lock.start()
    cloud.manual(front.lock_id, "manual_unlock")
    assert await lock.poll() == 1
    assert await lock.poll() == 0
    await lock.stop()
    assert len(await drain(lock)) == 1
    # While the hub is down the door is used; after a restart exactly the missed ones arrive.
    cloud.manual(front.lock_id, "auto_lock")
    again = make_driver(cloud, paired)
    await again.start()
    try:
        assert [e.trigger for e in await drain(again)] == [Trigger.AUTO]
        assert await again.poll() == 0
    finally:
        await again.stop()


async def test_a_damaged_cursor_restarts_from_now(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext
) -> None:
    assert paired.state_dir is not None
    CredentialStore.open(paired.state_dir).save("front-door", CURSOR_KIND, {"floor_ms": "x"})
    cloud.manual(front.lock_id, "manual_unlock")
    lock = make_driver(cloud, paired)
    await lock.start()
    try:
        assert await drain(lock) == []
        cloud.manual(front.lock_id, "auto_lock")
        assert await lock.poll() == 1
    finally:
        await lock.stop()


async def test_the_poller_runs_on_the_clock(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock, fake_clock: FakeClock
) -> None:
    cloud.manual(front.lock_id, "manual_unlock")
    await poller_waiting(fake_clock)
    fake_clock.advance(15)
    events = driver.events()
    event = await anext(events)
    assert event.trigger is Trigger.MANUAL


async def test_the_token_is_refreshed_near_expiry(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext, fake_clock: FakeClock
) -> None:
    assert paired.state_dir is not None
    store = CredentialStore.open(paired.state_dir)
    first = load(store, "front-door")
    lock = make_driver(cloud, paired)
    await lock.start()
    try:
        fake_clock.advance(
            (first.expires_at - fake_clock.now() - timedelta(days=6)).total_seconds()
        )
        await lock.status()
        second = load(store, "front-door")
        assert second.access_token != first.access_token
        assert second.expires_at == cloud.token_expiry(second.access_token)
        assert second.expires_at > first.expires_at
        assert cloud.requests["/users/houses/mine"] == 1
        await lock.status()
        assert cloud.requests["/users/houses/mine"] == 1  # not again: fresh for months
    finally:
        await lock.stop()


async def test_a_revoked_token_is_a_refusal_with_pairing_advice(
    driver: YaleCloudLock, cloud: FakeAugustCloud
) -> None:
    cloud.expire_tokens()
    with pytest.raises(LockRefusedError, match="pair again"):
        await driver.unlock("req-1")
    assert cloud.operations == []


async def test_a_token_paired_again_is_picked_up_after_a_refusal(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext
) -> None:
    cloud.expire_tokens()
    await pair(section(cloud), paired, ScriptedUI(*login_answers(cloud)))
    with pytest.raises(YaleCloudAuthError):
        await driver.status()
    assert (await driver.status()).state is LockState.LOCKED


async def test_keypad_codes_are_unsupported(driver: YaleCloudLock, fake_clock: FakeClock) -> None:
    code = KeypadCode("482913", "courier", fake_clock.now(), fake_clock.now() + timedelta(hours=1))
    with pytest.raises(KeypadUnsupportedError):
        await driver.add_keypad_code(code)
    with pytest.raises(KeypadUnsupportedError):
        await driver.remove_keypad_code(3)
