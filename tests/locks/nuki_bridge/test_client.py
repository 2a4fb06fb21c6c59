"""The bridge client against the fake bridge: token modes, 503 backoff, faults as our errors."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.locks.bridges.fake_nuki_bridge import FakeDevice, FakeNukiBridge
from gateway.locks.bridges.nuki_bridge_api import AuthMode, BridgeFormatError
from gateway.locks.bridges.nuki_bridge_client import (
    BUSY_BACKOFF_INITIAL,
    BUSY_BACKOFF_MAX,
    BUSY_RETRIES,
    BridgeClient,
    BridgeRefusedError,
    BridgeUnreachableError,
)
from gateway.locks.driver import LockRefusedError, LockState, LockUnreachableError

from .conftest import NUKI_ID, TOKEN, Sleeps, client_for, now


@pytest.mark.parametrize("mode", list(AuthMode))
async def test_every_token_mode_is_accepted(
    bridge: FakeNukiBridge, sleeps: Sleeps, mode: AuthMode
) -> None:
    async with client_for(bridge, sleeps, auth=mode) as client:
        [device] = await client.devices()
        assert device.nuki_id == NUKI_ID
        # Hashed and encrypted tokens are single use: a second request needs fresh ones.
        assert (await client.lock_state(NUKI_ID, 0)).bolt is LockState.LOCKED
        assert (await client.info()).firmware_version == "2.14.0"


async def test_a_replayed_token_is_refused(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    async with client_for(bridge, sleeps) as client:
        await client.info()
        fixed = client._token_params(None)  # one set of parameters, sent twice
        client._token_params = lambda _mode: fixed  # type: ignore[method-assign]
        await client.info()
        with pytest.raises(BridgeRefusedError) as caught:
            await client.info()
    assert caught.value.status == 401


async def test_auto_picks_encrypted_when_the_bridge_takes_it(
    bridge: FakeNukiBridge, sleeps: Sleeps
) -> None:
    async with client_for(bridge, sleeps, auth=None) as client:
        await client.info()
        assert client.auth is AuthMode.ENCRYPTED


async def test_auto_falls_back_to_hashed_on_older_firmware(sleeps: Sleeps) -> None:
    older = FakeNukiBridge(
        token=TOKEN,
        devices=[FakeDevice(NUKI_ID)],
        modes=frozenset({AuthMode.HASHED, AuthMode.PLAIN}),
    )
    async with older, client_for(older, sleeps, auth=None) as client:
        await client.info()
        assert client.auth is AuthMode.HASHED
        await client.info()  # pinned: no second probe
    assert older.requests == ["/info", "/info", "/info"]


async def test_auto_never_falls_back_to_plain(sleeps: Sleeps) -> None:
    plain_only = FakeNukiBridge(token=TOKEN, modes=frozenset({AuthMode.PLAIN}))
    async with plain_only, client_for(plain_only, sleeps, auth=None) as client:
        with pytest.raises(BridgeRefusedError, match="rejected the API token"):
            await client.info()
    assert client.auth is None


async def test_a_bad_token_is_refused_with_advice(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    async with client_for(bridge, sleeps, token="wrong") as client:  # noqa: S106 - a wrong token on purpose
        with pytest.raises(LockRefusedError) as caught:
            await client.devices()
    message = str(caught.value)
    assert "401" in message
    assert "pair" in message
    assert "clock" in message
    assert "wrong" not in message  # never the token


async def test_a_skewed_clock_is_refused(sleeps: Sleeps) -> None:
    late = FakeNukiBridge(token=TOKEN, now=lambda: now() + timedelta(seconds=90))
    async with late, client_for(late, sleeps) as client:
        with pytest.raises(BridgeRefusedError):
            await client.info()


async def test_no_token_is_refused_before_any_request(
    bridge: FakeNukiBridge, sleeps: Sleeps
) -> None:
    async with client_for(bridge, sleeps, token=None) as client:
        with pytest.raises(BridgeRefusedError, match="lockhub gateway pair"):
            await client.info()
    assert bridge.requests == []


async def test_503s_back_off_then_succeed(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.busy_next = BUSY_RETRIES
    async with client_for(bridge, sleeps) as client:
        await client.info()
    assert sleeps.asked == [0.25, 0.5, 1.0, 2.0]
    assert sleeps.asked[0] == BUSY_BACKOFF_INITIAL
    assert max(sleeps.asked) == BUSY_BACKOFF_MAX


async def test_a_503_storm_is_unreachable(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.busy_next = 100
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(BridgeUnreachableError, match="busy") as caught:
            await client.info()
    assert isinstance(caught.value, LockUnreachableError)
    assert bridge.busy_answers == BUSY_RETRIES + 1


async def test_a_slow_bridge_times_out(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.delay_next = 1.0
    async with client_for(bridge, sleeps, request_timeout=0.1) as client:
        with pytest.raises(BridgeUnreachableError, match="did not answer"):
            await client.info()


async def test_a_dropped_connection_is_unreachable(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.drop_next = "info"
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(BridgeUnreachableError, match="unreachable"):
            await client.info()


async def test_nobody_listening_is_unreachable(sleeps: Sleeps) -> None:
    closed = FakeNukiBridge()
    async with closed:
        port = closed.port
    client = BridgeClient(
        "127.0.0.1", port, token=TOKEN, auth=AuthMode.PLAIN, now=now, sleep=sleeps
    )
    async with client:
        with pytest.raises(BridgeUnreachableError):
            await client.info()


async def test_garbled_json_is_our_error(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.garble_next = 1
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(BridgeFormatError) as caught:
            await client.devices()
    assert isinstance(caught.value, LockUnreachableError)


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda c: c.lock_state(999, 0), 404),
        (lambda c: c.lock_action(NUKI_ID, 0, 99), 400),
    ],
)
async def test_refusals_carry_the_status(
    bridge: FakeNukiBridge, sleeps: Sleeps, call: object, status: int
) -> None:
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(BridgeRefusedError) as caught:
            await call(client)  # type: ignore[operator]
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (403, BridgeRefusedError, "disabled"),
        (405, BridgeRefusedError, "parameters"),
        (429, BridgeUnreachableError, "answered 429"),
        (500, BridgeUnreachableError, "answered 500"),
        (502, BridgeUnreachableError, "answered 502"),
    ],
)
async def test_statuses_map_to_what_the_caller_should_do(
    bridge: FakeNukiBridge, sleeps: Sleeps, status: int, error: type[Exception], words: str
) -> None:
    bridge.status_next = [status]
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(error, match=words):
            await client.info()
    assert sleeps.asked == []  # only 503 is retried here; the coordinator retries the rest


async def test_an_oversized_reply_is_refused(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.devices = [FakeDevice(n, name="x" * 2000) for n in range(200)]
    async with client_for(bridge, sleeps) as client:
        with pytest.raises(BridgeUnreachableError, match="larger than"):
            await client.devices()


async def test_clients_of_one_bridge_take_turns(bridge: FakeNukiBridge, sleeps: Sleeps) -> None:
    bridge.action_seconds = 0.05
    first, second = client_for(bridge, sleeps), client_for(bridge, sleeps)
    async with first, second:
        await asyncio.gather(
            first.lock_action(NUKI_ID, 0, 1),
            second.lock_state(NUKI_ID, 0),
            first.devices(),
            second.info(),
        )
    assert bridge.max_in_flight == 1
    assert bridge.busy_answers == 0  # our own requests never collide on the bridge


async def test_auth_returns_the_token_once_the_button_is_pressed(
    bridge: FakeNukiBridge, sleeps: Sleeps
) -> None:
    async with client_for(bridge, sleeps, token=None) as client:
        waiting = asyncio.ensure_future(client.auth_token())
        await asyncio.sleep(0.05)
        bridge.press_button()
        reply = await waiting
    assert (reply.success, reply.token) == (True, TOKEN)


async def test_auth_without_the_button_gives_nothing(
    bridge: FakeNukiBridge, sleeps: Sleeps
) -> None:
    bridge.auth_wait = 0.05
    async with client_for(bridge, sleeps, token=None) as client:
        reply = await client.auth_token()
    assert (reply.success, reply.token) == (False, None)
