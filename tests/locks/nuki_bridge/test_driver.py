"""The driver end to end: the fake bridge calls back into the hub's real callback route."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.locks.bridges import nuki_bridge
from gateway.locks.bridges.fake_nuki_bridge import FakeDevice, FakeNukiBridge
from gateway.locks.bridges.nuki_bridge_client import BridgeRefusedError
from gateway.locks.callbacks import CALLBACK_SECRET_KEY, CallbackRegistry
from gateway.locks.driver import (
    DoorState,
    EventKind,
    KeypadCode,
    KeypadUnsupportedError,
    LockJammedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    Trigger,
)

from .conftest import NUKI_ID, Sleeps, context, drained, driver_for, next_events, now, section


async def test_start_registers_one_callback_and_a_restart_adds_none(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    [url] = bridge.callbacks.values()
    parts = urlsplit(url)
    assert url.startswith(f"{hub_api}/v1/callbacks/front-door?secret=")
    assert len(parse_qs(parts.query)["secret"][0]) >= 32
    assert driver.callback_registered
    await driver.stop()
    again = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await again.start()  # same secret from the credential store: the URL is found, not re-added
    assert list(bridge.callbacks.values()) == [url]
    assert again.callback_registered
    await again.stop()


@pytest.mark.parametrize("callback_first", [True, False])
async def test_an_unlock_is_confirmed_once_with_its_request_id(
    *,
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    hub_api: str,
    callback_first: bool,
) -> None:
    bridge.callback_before_reply = callback_first
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    await driver.unlock("req-1")
    [event] = await next_events(driver, 1)
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.REMOTE,
        "req-1",
    )
    assert (event.vendor, event.lock_id, event.battery_percent) == ("nuki", "front-door", 80)
    await bridge.call_back(bridge.device(NUKI_ID))  # the bridge repeats itself: no new event
    assert bridge.actions == [(NUKI_ID, 1)]
    assert await drained(driver) == []
    assert all(status == 204 for _, status in bridge.delivered)


async def test_lock_is_confirmed_too(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    bridge.device(NUKI_ID).state = 3
    driver = driver_for(bridge, tmp_path, registry, sleeps)  # no callbacks at all
    await driver.start()
    await driver.lock("req-2")
    [event] = await next_events(driver, 1)
    assert (event.kind, event.request_id) == (EventKind.LOCKED, "req-2")
    assert bridge.actions == [(NUKI_ID, 2)]
    await driver.stop()


async def test_changes_at_the_lock_become_events(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    await bridge.change(NUKI_ID, state=2)  # unlocking: no event yet
    await bridge.change(NUKI_ID, state=3)
    await bridge.change(NUKI_ID, door_sensor=3)
    await bridge.change(NUKI_ID, door_sensor=4)  # unknown: no event
    await bridge.change(NUKI_ID, door_sensor=2)
    await bridge.change(NUKI_ID, battery_critical=True, battery_charge=9)
    await bridge.change(NUKI_ID, state=254)
    events = await next_events(driver, 5)
    assert [e.kind for e in events] == [
        EventKind.UNLOCKED,
        EventKind.DOOR_OPENED,
        EventKind.DOOR_CLOSED,
        EventKind.BATTERY,
        EventKind.JAMMED,
    ]
    assert events[0].trigger is Trigger.UNKNOWN
    assert events[0].request_id is None
    assert events[3].battery_percent == 9
    assert events[3].details == {"battery_critical": True, "keypad_battery_critical": False}
    assert len({e.vendor_event_id for e in events}) == 5
    assert await drained(driver) == []


async def test_other_devices_on_the_bridge_are_not_ours(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    bridge.devices.append(FakeDevice(2002, name="Back door", device_type=4))
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    await bridge.change(2002, state=3)
    assert bridge.delivered[-1][1] == 204
    assert await drained(driver) == []


async def test_a_callback_without_our_secret_is_rejected(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    [url] = bridge.callbacks.values()
    secret = parse_qs(urlsplit(url).query)["secret"][0]
    body = {"nukiId": NUKI_ID, "deviceType": 0, "state": 3}
    route = f"{hub_api}/v1/callbacks/front-door"
    async with aiohttp.ClientSession() as http:
        for target, headers in [
            (f"{route}?secret={'x' * len(secret)}", {}),
            (route, {}),
            (route, {CALLBACK_SECRET_KEY: secret}),  # a header cannot stand in for the URL's secret
        ]:
            async with http.post(target, json=body, headers=headers) as response:
                assert (response.status, await response.json()) == (400, {"error": "bad_request"})
        async with http.post(f"{route}?secret={secret}", data=b"{oops") as response:
            assert response.status == 400
        async with http.post(f"{route}?secret={secret}", json=body) as response:
            assert response.status == 204
    [event] = await drained(driver)
    assert event.kind is EventKind.UNLOCKED


async def test_all_three_callbacks_taken_by_others(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    others = {
        0: "http://10.0.0.5:8123/api/nuki?token=theirs",
        1: "http://10.0.0.6/a",
        2: "http://x/b",
    }
    bridge.callbacks.update(others)
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()  # works, without push events
    assert not driver.callback_registered
    assert bridge.callbacks == others
    await driver.unlock("req-3")  # the lock action's own report still confirms
    [event] = await next_events(driver, 1)
    assert event.request_id == "req-3"
    await driver.stop()


async def test_a_stale_callback_of_ours_is_replaced(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps, hub_api: str
) -> None:
    bridge.callbacks.update(
        {0: "http://10.0.0.5/x", 1: f"{hub_api}/v1/callbacks/front-door?secret=old"}
    )
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api)
    await driver.start()
    assert len(bridge.callbacks) == 2
    assert bridge.callbacks[0] == "http://10.0.0.5/x"
    assert "secret=old" not in bridge.callbacks[1]
    await driver.stop()


async def test_a_refused_callback_is_reported_not_fatal(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub="http://127.0.0.1:1")
    bridge.status_next = []
    await driver.start()
    assert driver.callback_registered  # the fake takes any http URL
    lengthy = driver_for(bridge, tmp_path, registry, sleeps, hub="http://127.0.0.1:1", lock_id="b")
    lengthy._callback_url = "https://127.0.0.1/no-tls"
    await lengthy.start()
    assert not lengthy.callback_registered
    await driver.stop()
    await lengthy.stop()


async def test_status_reads_the_lock(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    assert await driver.status() == LockStatus(LockState.LOCKED, 80, DoorState.CLOSED)
    bridge.device(NUKI_ID).state = 2  # unlocking: the bolt is still where it was
    assert (await driver.status()).state is LockState.LOCKED
    bridge.device(NUKI_ID).state = 3
    assert (await driver.status()).state is LockState.UNLOCKED
    [event] = await drained(driver)  # a change seen by a status read is an event too
    assert event.kind is EventKind.UNLOCKED


async def test_no_keypad_over_the_bridge(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    assert not driver.has_keypad
    code = KeypadCode("123456", "courier", now(), now())
    with pytest.raises(KeypadUnsupportedError):
        await driver.add_keypad_code(code)
    with pytest.raises(KeypadUnsupportedError):
        await driver.remove_keypad_code(1)


async def test_a_jammed_motor(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    bridge.device(NUKI_ID).jam_next = True
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    with pytest.raises(LockJammedError):
        await driver.unlock("req-4")
    [event] = await drained(driver)
    assert (event.kind, event.request_id) == (EventKind.JAMMED, "req-4")


async def test_a_lock_out_of_the_bridges_range(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    bridge.device(NUKI_ID).in_range = False
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-5")
    assert bridge.actions == []
    await driver.stop()


async def test_start_names_what_the_bridge_has(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    with pytest.raises(BridgeRefusedError, match=r"no device with nukiId 42; it has: 1001"):
        await driver_for(bridge, tmp_path, registry, sleeps, nuki_id=42).start()
    with pytest.raises(BridgeRefusedError, match="set device_type = 0"):
        await driver_for(bridge, tmp_path, registry, sleeps, device_type=4).start()


async def test_an_unpaired_lock_says_how_to_pair(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = nuki_bridge.build(section(bridge), context(tmp_path, registry, sleeps))
    with pytest.raises(BridgeRefusedError, match="lockhub gateway pair"):
        await driver.start()
    await driver.stop()
    assert bridge.requests == []
