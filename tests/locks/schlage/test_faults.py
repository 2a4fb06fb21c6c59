"""Faults between the hub and Schlage's cloud: storms, stalls, drops, garbage, auth trouble."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.locks import (
    DuplicateCodeError,
    EventKind,
    LockEvent,
    LockRefusedError,
    LockUnreachableError,
)
from gateway.locks.bridges.schlage import (
    LOG_POLL_INTERVAL,
    SchlageAuthError,
    SchlageLock,
    SchlageUnreachableError,
    build,
)
from gateway.locks.coordinator import LockCoordinator
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

from .conftest import USERNAME, MakeDriver, Served, courier_code, drain, section

# The coordinator's delays at a tenth: backoff 50-100 ms, an unlock times out after 1.5 s.
SPEED = 10


async def scaled_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds / SPEED)


def coordinator(driver: SchlageLock) -> tuple[LockCoordinator, list[LockEvent]]:
    seen: list[LockEvent] = []

    async def on_event(event: LockEvent) -> None:
        seen.append(event)

    return LockCoordinator(driver, on_event=on_event, sleep=scaled_sleep), seen


async def test_a_503_storm_is_ridden_out_and_the_unlock_runs_once(
    served: Served, driver: SchlageLock
) -> None:
    coordinated, _ = coordinator(driver)
    served.cloud.api_faults = [503, 503]
    await coordinated.unlock("req-storm")
    assert served.cloud.calls["PUT device"] == 1
    assert [e.request_id for e in await drain(driver)] == ["req-storm"]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_busy_or_failing_cloud_is_unreachable(
    served: Served, driver: SchlageLock, status: int
) -> None:
    served.cloud.api_faults = [status]
    with pytest.raises(SchlageUnreachableError, match=str(status)):
        await driver.status()


async def test_a_timed_out_unlock_that_went_through_is_not_repeated(
    served: Served, make_driver: MakeDriver
) -> None:
    driver = await make_driver(read_timeout=0.3)
    coordinated, _ = coordinator(driver)
    served.cloud.stalls = [1.0]  # the PUT acts, its answer comes too late
    await coordinated.unlock("req-late")
    assert served.lock.lock_state == 0
    assert served.cloud.calls["PUT device"] == 1
    [event] = await drain(driver)
    assert (event.kind, event.request_id) == (EventKind.UNLOCKED, "req-late")
    assert await driver.poll_logs() == 0  # its log entry is not a second unlock


async def test_a_dropped_connection_mid_unlock_is_not_repeated(
    served: Served, driver: SchlageLock
) -> None:
    served.cloud.drops = 1
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-drop")
    await driver.unlock("req-drop")  # the coordinator's retry
    assert served.cloud.calls["PUT device"] == 1
    assert [e.request_id for e in await drain(driver)] == ["req-drop"]


async def test_a_retry_resends_when_the_first_attempt_never_arrived(
    served: Served, driver: SchlageLock
) -> None:
    served.cloud.api_faults = [503]
    with pytest.raises(LockUnreachableError):
        await driver.unlock("req-lost")
    await driver.unlock("req-lost")
    assert served.cloud.calls["PUT device"] == 1
    assert served.lock.lock_state == 0


async def test_a_slow_status_times_out(served: Served, make_driver: MakeDriver) -> None:
    driver = await make_driver(read_timeout=0.2)
    served.cloud.stalls = [0.6]
    started = time.monotonic()
    with pytest.raises(SchlageUnreachableError, match="unreachable"):
        await driver.status()
    assert time.monotonic() - started < 0.6


async def test_malformed_json_is_our_error(served: Served, driver: SchlageLock) -> None:
    served.cloud.malformed = 1
    with pytest.raises(SchlageUnreachableError, match="malformed"):
        await driver.status()
    assert (await driver.status()).battery_percent == 87
    served.lock.logs.append({"createdAt": "yesterday", "logId": "x", "message": {}})
    with pytest.raises(SchlageUnreachableError, match="malformed"):
        await driver.poll_logs()


async def test_wrong_password_is_refused_with_pairing_advice(
    served: Served, make_driver: MakeDriver
) -> None:
    served.cloud.set_password("changed in the app")
    with pytest.raises(SchlageAuthError, match="pair schlage --lock front-door") as refused:
        await make_driver()
    assert isinstance(refused.value, LockRefusedError)
    assert "correct horse" not in str(refused.value)
    assert served.cloud.calls["RespondToAuthChallenge"] == 1  # no second guess


async def outlive_tokens(served: Served) -> None:
    """Wait until the access token issued last has expired (1-2 s with a 1 s lifetime)."""
    await asyncio.sleep(served.cloud.expires_at - time.time() + 0.05)


async def test_an_expired_token_is_refreshed(served: Served, make_driver: MakeDriver) -> None:
    served.cloud.token_lifetime = 1
    driver = await make_driver()
    await outlive_tokens(served)
    await driver.status()
    assert served.cloud.calls["InitiateAuth:REFRESH_TOKEN_AUTH"] == 1
    assert served.cloud.calls["InitiateAuth:USER_SRP_AUTH"] == 1


async def test_an_expired_refresh_token_means_a_new_login(
    served: Served, make_driver: MakeDriver
) -> None:
    served.cloud.token_lifetime = 1
    driver = await make_driver()
    served.cloud.forget_refresh_tokens()  # refresh tokens expire too (30 days at Schlage)
    await outlive_tokens(served)
    await driver.status()
    assert served.cloud.calls["InitiateAuth:REFRESH_TOKEN_AUTH"] == 1
    assert served.cloud.calls["InitiateAuth:USER_SRP_AUTH"] == 2


async def test_a_revoked_session_logs_in_again(served: Served, driver: SchlageLock) -> None:
    served.cloud.revoke_tokens()
    assert (await driver.status()).battery_percent == 87
    assert served.cloud.calls["InitiateAuth:USER_SRP_AUTH"] == 2


async def test_a_password_changed_in_the_app_is_a_refusal(
    served: Served, driver: SchlageLock
) -> None:
    served.cloud.set_password("changed in the app")
    served.cloud.revoke_tokens()
    with pytest.raises(SchlageAuthError, match="pair again"):
        await driver.status()
    assert served.cloud.calls["InitiateAuth:USER_SRP_AUTH"] == 2  # one fresh try, no loop


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (500, "InternalErrorException", SchlageUnreachableError),
        (429, "TooManyRequestsException", SchlageUnreachableError),
        (400, "NotAuthorizedException", SchlageAuthError),
    ],
)
async def test_cognito_faults_at_start(
    served: Served, make_driver: MakeDriver, status: int, kind: str, error: type[Exception]
) -> None:
    served.cloud.cognito_faults = [(status, kind)]
    with pytest.raises(error):
        await make_driver()


async def test_unreachable_cloud_at_start(context: DriverContext, password_file: Path) -> None:
    options = {"device_id": "x", "username": USERNAME, "password_file": str(password_file)}
    options |= {"api_base": "http://127.0.0.1:9/v1", "cognito_endpoint": "http://127.0.0.1:9"}
    driver = build(section(options), context)
    with pytest.raises(SchlageUnreachableError):
        await driver.start()
    with pytest.raises(LockUnreachableError, match="not started"):
        await driver.status()


async def test_unverifiable_tokens_are_our_error(served: Served, make_driver: MakeDriver) -> None:
    served.cloud.jwks_empty = True
    with pytest.raises(SchlageUnreachableError, match=r"malformed|oddly"):
        await make_driver()


async def test_a_refused_unlock_can_be_sent_again(served: Served, driver: SchlageLock) -> None:
    served.cloud.api_faults = [400]
    with pytest.raises(LockRefusedError, match="400"):
        await driver.unlock("req-400")
    assert served.lock.lock_state == 1
    await driver.unlock("req-400")
    assert served.lock.lock_state == 0


async def test_failed_polls_back_off(
    served: Served, driver: SchlageLock, fake_clock: FakeClock
) -> None:
    polls = served.cloud.calls["GET logs"]
    served.cloud.api_faults = [503]
    fake_clock.advance(LOG_POLL_INTERVAL)
    # The failed poll doubles the wait: the driver sleeps until one doubled interval from now.
    backed_off = fake_clock.monotonic() + 2 * LOG_POLL_INTERVAL
    await wait_for(lambda: fake_clock.sleeping_until(backed_off))
    assert not served.cloud.api_faults
    served.cloud.log(served.lock, 72)
    fake_clock.advance(LOG_POLL_INTERVAL)  # backing off: no poll yet
    await asyncio.sleep(0.05)
    assert served.cloud.calls["GET logs"] == polls
    fake_clock.advance(LOG_POLL_INTERVAL)
    event = await anext(driver.events())
    assert event.kind is EventKind.DOOR_CLOSED


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        while not condition():  # noqa: ASYNC110 - a fake's counter, moved by the server task
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("challenge", "message"),
    [("SOFTWARE_TOKEN_MFA", "MFA"), ("SMS_MFA", "MFA"), ("NEW_PASSWORD_REQUIRED", "new password")],
)
async def test_accounts_the_hub_cannot_log_in_to(
    served: Served, make_driver: MakeDriver, challenge: str, message: str
) -> None:
    served.cloud.next_challenge = challenge
    with pytest.raises(SchlageAuthError, match=message):
        await make_driver()


async def test_an_add_whose_answer_was_lost_is_adopted_not_repeated(
    served: Served, make_driver: MakeDriver
) -> None:
    driver = await make_driver(read_timeout=0.3)
    code = courier_code()
    served.cloud.command_stalls = [1.0]
    with pytest.raises(LockUnreachableError):
        await driver.add_keypad_code(code)
    code_id = await driver.add_keypad_code(code)  # the provisioning retry
    assert served.cloud.calls["command:addaccesscode"] == 1
    assert len(served.lock.codes) == 1
    with pytest.raises(DuplicateCodeError):  # same digits, another window: a real duplicate
        await driver.add_keypad_code(courier_code(hours=5))
    await driver.remove_keypad_code(code_id)
    assert served.lock.codes == {}
