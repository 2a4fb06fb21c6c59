"""Faults under the real coordinator: whatever happens, the bolt moves once per request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.locks.bridges.fake_nuki_bridge import FakeNukiBridge
from gateway.locks.bridges.nuki_bridge import NukiBridgeLock
from gateway.locks.callbacks import CallbackRegistry
from gateway.locks.coordinator import LockCoordinator
from gateway.locks.driver import EventKind, LockEvent, LockState, LockUnreachableError

from .conftest import NUKI_ID, Sleeps, driver_for


class Recorder:
    """Collects what the coordinator delivers."""

    def __init__(self) -> None:
        self.events: list[LockEvent] = []

    async def __call__(self, event: LockEvent) -> None:
        self.events.append(event)


async def run(driver: NukiBridgeLock, sleeps: Sleeps, work: str = "unlock") -> Recorder:
    """Start a coordinator over ``driver``, run ``work`` once, stop; return what it delivered."""
    recorder = Recorder()
    coordinator = LockCoordinator(driver, on_event=recorder, sleep=sleeps)
    await coordinator.start()
    try:
        await getattr(coordinator, work)("req-1")
        await asyncio.sleep(0.05)  # a late callback still arrives
        assert coordinator.state.state is LockState.UNLOCKED
    finally:
        await coordinator.stop()
    return recorder


def unlocked(recorder: Recorder) -> list[LockEvent]:
    return [e for e in recorder.events if e.kind is EventKind.UNLOCKED]


@pytest.mark.parametrize("hub", [True, False], ids=["callbacks", "no-callbacks"])
async def test_a_storm_of_503s_unlocks_exactly_once(
    *,
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    hub_api: str,
    hub: bool,
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps, hub=hub_api if hub else None)
    await driver.start()
    bridge.busy_next = 8  # more than one client's patience: the coordinator retries too
    recorder = await run(driver, sleeps)
    assert bridge.actions == [(NUKI_ID, 1)]
    [event] = unlocked(recorder)
    assert event.request_id == "req-1"
    assert bridge.busy_answers == 8


@pytest.mark.parametrize("hub", [True, False], ids=["callbacks", "no-callbacks"])
async def test_a_connection_dropped_after_the_unlock_does_not_unlock_twice(
    *,
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    hub_api: str,
    hub: bool,
) -> None:
    driver = driver_for(
        bridge, tmp_path, registry, sleeps, hub=hub_api if hub else None, auth="plain"
    )
    await driver.start()
    bridge.drop_next = "lockAction"  # plain tokens: a resent GET would run again on the bridge
    recorder = await run(driver, sleeps)
    assert bridge.actions == [(NUKI_ID, 1)]
    [event] = unlocked(recorder)
    assert event.request_id == "req-1"


async def test_a_garbled_answer_after_the_unlock_does_not_unlock_twice(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    bridge.garble_next = 1
    recorder = await run(driver, sleeps)
    assert bridge.actions == [(NUKI_ID, 1)]
    assert [e.request_id for e in unlocked(recorder)] == ["req-1"]


async def test_a_timed_out_unlock_that_went_through_is_not_sent_again(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    driver._client._timeouts = (0.2, 0.1, 0.2)
    await driver.start()
    bridge.delay_next = 0.3  # the bridge answers late; the lock moved meanwhile
    recorder = await run(driver, sleeps)
    assert bridge.actions == [(NUKI_ID, 1)]
    assert [e.request_id for e in unlocked(recorder)] == ["req-1"]


async def test_an_unreachable_bridge_fails_after_the_coordinators_retries(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    bridge.busy_next = 1000
    with pytest.raises(LockUnreachableError):
        await run(driver, sleeps)
    assert bridge.actions == []


async def test_a_retry_while_the_lock_still_moves_waits(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    driver = driver_for(bridge, tmp_path, registry, sleeps)
    await driver.start()
    bridge.drop_next = "lockAction"
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-9")  # the answer was lost; the bridge says "unlocking" now
    bridge.device(NUKI_ID).state = 2
    with pytest.raises(LockUnreachableError, match="still moving"):
        await driver.unlock("req-9")
    bridge.device(NUKI_ID).state = 1  # it did not move after all: the retry sends again
    await driver.unlock("req-9")
    assert bridge.actions == [(NUKI_ID, 1), (NUKI_ID, 1)]
    await driver.stop()
