"""Faults: busy and failing clouds, timeouts, dropped answers, bad JSON, and no double unlock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.locks.bridges.fake_august import (
    JAMMED,
    UNLOCKED,
    FakeAugustCloud,
    FakeLock,
)
from gateway.locks.bridges.yale_cloud import (
    YaleCloudError,
    YaleCloudLock,
    YaleCloudProtocolError,
    YaleCloudUnreachableError,
)
from gateway.locks.bridges.yale_cloud.cloud import CloudClient
from gateway.locks.bridges.yale_cloud.credentials import load
from gateway.locks.coordinator import LockCoordinator
from gateway.locks.credentials import CredentialStore
from gateway.locks.driver import (
    EventKind,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockUnreachableError,
)
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

from .conftest import drain, make_driver, poller_waiting, until

OPERATE = "/remoteoperate/"
ACTIVITIES = "/activities"


async def quick(seconds: float) -> None:
    """The coordinator's timeouts and backoff, twenty times faster (our HTTP timeouts are real)."""
    await asyncio.sleep(seconds / 20)


@pytest.fixture
async def coordinated(
    cloud: FakeAugustCloud, paired: DriverContext
) -> AsyncIterator[tuple[LockCoordinator, list[LockEvent]]]:
    """A coordinator (on quick real time) over a driver with short HTTP timeouts."""
    seen: list[LockEvent] = []

    async def record(event: LockEvent) -> None:
        seen.append(event)

    driver = make_driver(cloud, paired, request_timeout=0.5, operation_timeout=0.3)
    coordinator = LockCoordinator(driver, on_event=record, sleep=quick)
    await coordinator.start()
    yield coordinator, seen
    await coordinator.stop()


@pytest.mark.parametrize("status", [500, 503, 504, 408, 422, 423])
async def test_failing_cloud_or_bridge_is_unreachable(
    driver: YaleCloudLock, cloud: FakeAugustCloud, status: int
) -> None:
    cloud.fail_next(status=status, path="/status")
    with pytest.raises(YaleCloudUnreachableError):
        await driver.status()


@pytest.mark.parametrize("status", [429, 502])
async def test_rate_limits_fail_fast_instead_of_sleeping_in_yalexs(
    driver: YaleCloudLock, cloud: FakeAugustCloud, status: int
) -> None:
    cloud.fail_next(3, status=status, path="/status")
    started = time.monotonic()
    with pytest.raises(YaleCloudUnreachableError, match=f"HTTP {status}"):
        await driver.status()
    assert time.monotonic() - started < 1.0  # yalexs alone would sleep 2.5 s per retry
    assert cloud.requests[f"/locks/{driver._started()[1].august_lock_id}/status"] == 1


async def test_other_client_errors_are_refusals(
    driver: YaleCloudLock, cloud: FakeAugustCloud
) -> None:
    cloud.fail_next(status=404, path="/status")
    with pytest.raises(LockRefusedError, match="404") as refused:
        await driver.status()
    assert isinstance(refused.value, YaleCloudError)
    assert refused.value.status == 404


async def test_a_storm_of_503_is_ridden_out_by_the_coordinator(
    coordinated: tuple[LockCoordinator, list[LockEvent]], cloud: FakeAugustCloud
) -> None:
    coordinator, _ = coordinated
    cloud.fail_next(2, status=503, path="/status")
    status = await coordinator.status()
    assert status.state is LockState.LOCKED


async def test_a_slow_cloud_times_out_as_unreachable(
    driver: YaleCloudLock, cloud: FakeAugustCloud
) -> None:
    cloud.hang_next(1.0, path="/status")
    with pytest.raises(YaleCloudUnreachableError, match="did not answer in time"):
        await driver.status()


@pytest.mark.parametrize("path", ["/status", ACTIVITIES])
async def test_malformed_json_is_our_protocol_error(
    driver: YaleCloudLock, cloud: FakeAugustCloud, path: str
) -> None:
    cloud.malformed_next(path=path)
    with pytest.raises(YaleCloudProtocolError, match="malformed"):
        await (driver.status() if path == "/status" else driver.poll())


async def test_unlock_retried_after_a_timeout_does_not_unlock_twice(
    coordinated: tuple[LockCoordinator, list[LockEvent]],
    cloud: FakeAugustCloud,
    front: FakeLock,
) -> None:
    coordinator, seen = coordinated
    cloud.hang_next(1.0, path=OPERATE)  # the bridge unlocks, the answer is late
    await coordinator.unlock("req-1")
    await asyncio.sleep(0.05)
    assert cloud.operations == [(front.lock_id, "unlock")]
    assert [(e.kind, e.request_id) for e in seen] == [(EventKind.UNLOCKED, "req-1")]


async def test_unlock_retried_after_a_dropped_connection_does_not_unlock_twice(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.drop_next(path=OPERATE)
    with pytest.raises(YaleCloudUnreachableError, match="may or may not"):
        await driver.unlock("req-1")
    assert len(cloud.operations) == 1  # neither aiohttp nor yalexs resent it
    await driver.unlock("req-1")  # the coordinator's retry
    assert len(cloud.operations) == 1
    [event] = await drain(driver)
    assert event.request_id == "req-1"


async def test_a_lagging_feed_falls_back_to_the_bolt(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.hang_next(1.0, path=OPERATE)
    with pytest.raises(YaleCloudUnreachableError):
        await driver.unlock("req-1")
    cloud.activities[front.house_id].clear()  # the cloud has not logged it yet
    await driver.unlock("req-1")
    assert len(cloud.operations) == 1
    assert front.status == UNLOCKED


async def test_an_unlock_that_failed_outright_is_sent_again(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.fail_next(status=503, path=OPERATE)
    with pytest.raises(YaleCloudUnreachableError):
        await driver.unlock("req-1")
    assert cloud.operations == []
    await driver.unlock("req-1")
    assert cloud.operations == [(front.lock_id, "unlock")]
    [event] = await drain(driver)
    assert event.request_id == "req-1"


async def test_unlock_retry_that_cannot_check_stays_unreachable(
    driver: YaleCloudLock, cloud: FakeAugustCloud
) -> None:
    cloud.drop_next(path=OPERATE)
    with pytest.raises(YaleCloudUnreachableError):
        await driver.unlock("req-1")
    cloud.fail_next(status=503, path=ACTIVITIES)
    with pytest.raises(YaleCloudUnreachableError):
        await driver.unlock("req-1")
    assert len(cloud.operations) == 1


async def test_bridge_offline_exhausts_the_coordinator_without_acting(
    coordinated: tuple[LockCoordinator, list[LockEvent]],
    cloud: FakeAugustCloud,
    front: FakeLock,
) -> None:
    coordinator, _ = coordinated
    front.bridge_online = False
    with pytest.raises(LockUnreachableError, match="bridge"):
        await coordinator.unlock("req-1")
    assert cloud.operations == []
    assert cloud.requests[f"/remoteoperate/{front.lock_id}/unlock"] == 3  # 422: safe to resend
    front.bridge_online = True
    await coordinator.unlock("req-1")
    assert cloud.operations == [(front.lock_id, "unlock")]


async def test_a_jammed_bolt_is_reported(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    front.jam_next = True
    with pytest.raises(LockJammedError):
        await driver.lock("req-1")
    assert front.status == JAMMED
    await driver.poll()
    [event] = await drain(driver)
    assert event.kind is EventKind.JAMMED


async def test_the_poller_backs_off_after_failures(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock, fake_clock: FakeClock
) -> None:
    path = f"/houses/{front.house_id}/activities"
    before = cloud.requests[path]
    cloud.fail_next(status=429, path=ACTIVITIES)
    await poller_waiting(fake_clock)
    fake_clock.advance(15)
    await until(lambda: cloud.requests[path] == before + 1)
    await poller_waiting(fake_clock)  # now for 30 s
    fake_clock.advance(15)
    await asyncio.sleep(0.05)
    assert cloud.requests[path] == before + 1
    fake_clock.advance(15)
    await until(lambda: cloud.requests[path] == before + 2)


async def test_a_failed_refresh_keeps_the_old_token(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext, fake_clock: FakeClock
) -> None:
    assert paired.state_dir is not None
    store = CredentialStore.open(paired.state_dir)
    first = load(store, "front-door")
    lock = make_driver(cloud, paired)
    await lock.start()
    try:
        fake_clock.advance((first.expires_at - fake_clock.now()).total_seconds() - 86_400)
        cloud.fail_next(status=503, path="/users/houses/mine")
        assert (await lock.status()).state is LockState.LOCKED
        assert load(store, "front-door").access_token == first.access_token
    finally:
        await lock.stop()


async def test_start_survives_an_unreachable_cloud(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext, fake_clock: FakeClock
) -> None:
    cloud.fail_next(status=503, path=ACTIVITIES)
    lock = make_driver(cloud, paired)
    await lock.start()  # degraded, polling later
    try:
        cloud.manual(front.lock_id, "manual_unlock")
        await poller_waiting(fake_clock)
        fake_clock.advance(15)
        event = await anext(lock.events())
        assert event.kind is EventKind.UNLOCKED
    finally:
        await lock.stop()


async def test_the_fake_queues_async_operations_like_the_cloud(
    cloud: FakeAugustCloud, front: FakeLock, paired: DriverContext
) -> None:
    assert paired.state_dir is not None
    token = load(CredentialStore.open(paired.state_dir), "front-door").access_token
    client = CloudClient("august", api_base=cloud.base_url)
    try:
        assert await client.api.async_unlock_async(token, front.lock_id) == ""
        assert cloud.operations == []
        await asyncio.sleep(0.2)
        assert cloud.operations == [(front.lock_id, "unlock")]
        [activity] = await client.activities(token, front.house_id, 1)
        assert activity.action == "remote_unlock"
    finally:
        await client.close()


async def test_a_garbled_answer_to_an_unlock_is_checked_not_resent(
    driver: YaleCloudLock, cloud: FakeAugustCloud
) -> None:
    cloud.malformed_next(path=OPERATE)
    with pytest.raises(YaleCloudProtocolError):
        await driver.unlock("req-1")
    await driver.unlock("req-1")
    assert len(cloud.operations) == 1


async def test_a_confirmation_the_feed_lacks_arrives_later_with_its_request_id(
    driver: YaleCloudLock, cloud: FakeAugustCloud, front: FakeLock
) -> None:
    cloud.fail_next(status=503, path=ACTIVITIES)  # the read right after the unlock fails
    await driver.unlock("req-1")
    assert await drain(driver) == []
    assert await driver.poll() == 1
    [event] = await drain(driver)
    assert (event.kind, event.request_id) == (EventKind.UNLOCKED, "req-1")


async def test_a_driver_that_is_not_started_is_unreachable(
    cloud: FakeAugustCloud, paired: DriverContext
) -> None:
    lock = make_driver(cloud, paired)
    with pytest.raises(LockUnreachableError, match="not started"):
        await lock.status()
    await lock.stop()  # harmless


async def test_the_default_endpoint_is_the_brands() -> None:
    client = CloudClient("yale_access")
    try:
        assert client.api.get_brand_url("/session") == "https://api-production.august.com/session"
    finally:
        await client.close()


async def test_an_expired_token_is_a_refusal_not_a_retry(
    coordinated: tuple[LockCoordinator, list[LockEvent]],
    cloud: FakeAugustCloud,
    paired: DriverContext,
    fake_clock: FakeClock,
) -> None:
    coordinator, _ = coordinated
    assert paired.state_dir is not None
    creds = load(CredentialStore.open(paired.state_dir), "front-door")
    fake_clock.advance((creds.expires_at - fake_clock.now()).total_seconds() + 1)
    with pytest.raises(LockRefusedError, match="pair again"):
        await coordinator.unlock("req-1")
    # One refresh try by the unlock (not three: a refusal is not retried), one by the poller.
    assert cloud.requests["/users/houses/mine"] <= 2
    assert cloud.operations == []
