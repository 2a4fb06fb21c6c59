"""The Bridge HTTP API codec: the documented token examples, replies, and parse-or-raise."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.locks.bridges import nuki_bridge_api as api
from gateway.locks.bridges.nuki_bridge_api import AuthMode, BridgeFormatError, NukiBridgeError
from gateway.locks.driver import DoorState, LockState, LockUnreachableError

# The examples in the API document (token 123456, 2019-03-05T01:06:53Z, rnr 4711).
DOC_TS = datetime(2019, 3, 5, 1, 6, 53, tzinfo=UTC)
DOC_HASH = "f52eb5ce382e356c4239f8fb4d0a87402bb95b7b3124f0762b806ad7d0d01cb6"
DOC_CTOKEN = "a7f6b4df6758b92445bd5470b755b43ba41cf50af8b3f6e19368348ddfb1686291555dfd90b31f9333"
DOC_NONCE = "119c38fb6d7d707b8a45f14e688b74b8c4c1acf33643c71a"


def test_plain_token_is_sent_as_is() -> None:
    assert api.token_params(AuthMode.PLAIN, "123456", now=DOC_TS, rnr=0, nonce=b"") == {
        "token": "123456"
    }


def test_hashed_token_matches_the_documented_example() -> None:
    params = api.token_params(AuthMode.HASHED, "123456", now=DOC_TS, rnr=4711, nonce=bytes(24))
    assert params == {"ts": "2019-03-05T01:06:53Z", "rnr": "4711", "hash": DOC_HASH}
    assert api.check_hashed("123456", "2019-03-05T01:06:53Z", "4711", DOC_HASH) == (DOC_TS, 4711)


def test_encrypted_token_matches_the_documented_example() -> None:
    nonce = bytes.fromhex(DOC_NONCE)
    params = api.token_params(AuthMode.ENCRYPTED, "123456", now=DOC_TS, rnr=4711, nonce=nonce)
    assert params == {"ctoken": DOC_CTOKEN, "nonce": DOC_NONCE}
    assert api.check_encrypted("123456", DOC_CTOKEN, DOC_NONCE) == (DOC_TS, 4711)


@pytest.mark.parametrize(
    ("token", "ctoken", "nonce"),
    [
        ("654321", DOC_CTOKEN, DOC_NONCE),  # wrong token: the box does not open
        ("123456", DOC_CTOKEN[:-2] + "00", DOC_NONCE),  # tampered
        ("123456", "zz", DOC_NONCE),  # not hex
        ("123456", DOC_CTOKEN, "00"),  # short nonce
    ],
)
def test_bad_encrypted_tokens_are_our_error(token: str, ctoken: str, nonce: str) -> None:
    with pytest.raises(BridgeFormatError):
        api.check_encrypted(token, ctoken, nonce)


@pytest.mark.parametrize(
    ("ts", "rnr", "digest"),
    [
        ("2019-03-05T01:06:53Z", "4712", DOC_HASH),  # another rnr
        ("2019-03-05T01:06:53Z", "4711", "00" * 32),
    ],
)
def test_bad_hashed_tokens_are_our_error(ts: str, rnr: str, digest: str) -> None:
    with pytest.raises(BridgeFormatError):
        api.check_hashed("123456", ts, rnr, digest)


@pytest.mark.parametrize(
    "text", ["yesterday,1", "2019-03-05T01:06:53Z,-1", "2019-03-05T01:06:53Z,70000"]
)
def test_token_timestamps_and_rnr_are_checked(text: str) -> None:
    ts, _, rnr = text.partition(",")
    digest = api.hashlib.sha256(f"{ts},{rnr},t".encode()).hexdigest()
    with pytest.raises(BridgeFormatError):
        api.check_hashed("t", ts, rnr, digest)


def test_token_params_refuse_a_bad_rnr_or_nonce() -> None:
    with pytest.raises(ValueError, match="uint16"):
        api.token_params(AuthMode.HASHED, "t", now=DOC_TS, rnr=70000, nonce=bytes(24))
    with pytest.raises(ValueError, match="24 bytes"):
        api.token_params(AuthMode.ENCRYPTED, "t", now=DOC_TS, rnr=1, nonce=bytes(8))


def test_list_with_states() -> None:
    raw = json.dumps(
        [
            {
                "deviceType": 4,
                "nukiId": 375738769,
                "name": "Haustür",
                "firmwareVersion": "3.4.2",
                "lastKnownState": {
                    "mode": 2,
                    "state": 1,
                    "stateName": "locked",
                    "batteryCritical": False,
                    "batteryChargeState": 64,
                    "doorsensorState": 3,
                    "timestamp": "2019-10-08T13:31:10+00:00",
                },
            },
            {"deviceType": 2, "nukiId": 7, "name": "Opener"},
        ]
    ).encode()
    lock, opener = api.parse_list(raw)
    assert (lock.nuki_id, lock.device_type, lock.name) == (375738769, 4, "Haustür")
    assert lock.last_known is not None
    assert lock.last_known.bolt is LockState.LOCKED
    assert lock.last_known.door is DoorState.OPEN
    assert lock.last_known.battery_charge == 64
    assert opener.last_known is None


@pytest.mark.parametrize(
    ("state", "bolt", "moving"),
    [
        (0, LockState.UNKNOWN, False),
        (1, LockState.LOCKED, False),
        (2, LockState.UNKNOWN, True),
        (3, LockState.UNLOCKED, False),
        (4, LockState.UNKNOWN, True),
        (5, LockState.UNLOCKED, False),
        (6, LockState.UNLOCKED, False),
        (7, LockState.UNLOCKED, False),
        (254, LockState.JAMMED, False),
        (255, LockState.UNKNOWN, False),
    ],
)
def test_lock_states_map_to_the_bolt(state: int, bolt: LockState, moving: bool) -> None:
    parsed = api.parse_lock_state(json.dumps({"state": state, "success": True}).encode())
    assert (parsed.bolt, parsed.moving) == (bolt, moving)


@pytest.mark.parametrize(
    ("sensor", "door"),
    [
        (None, DoorState.UNKNOWN),
        (1, DoorState.UNKNOWN),
        (2, DoorState.CLOSED),
        (3, DoorState.OPEN),
        (4, DoorState.UNKNOWN),
        (5, DoorState.UNKNOWN),
        (240, DoorState.UNKNOWN),
    ],
)
def test_door_sensor_states(sensor: int | None, door: DoorState) -> None:
    body = {"state": 1, "doorsensorState": sensor}
    assert api.parse_lock_state(json.dumps(body).encode()).door is door


def test_lock_state_failure_is_unreachable() -> None:
    with pytest.raises(api.BridgeFailedError) as caught:
        api.parse_lock_state(b'{"success": false}')
    assert isinstance(caught.value, LockUnreachableError)


def test_outcomes_callbacks_info_and_auth() -> None:
    assert api.parse_outcome(b'{"success": true, "batteryCritical": false}') == api.Outcome(
        True, False
    )
    assert api.parse_outcome(b'{"success": false, "message": "too many callbacks registered"}') == (
        api.Outcome(False, None, "too many callbacks registered")
    )
    raw = b'{"callbacks": [{"id": 0, "url": "http://192.168.0.20:8000/nuki"}]}'
    assert api.parse_callback_list(raw) == [
        api.RegisteredCallback(0, "http://192.168.0.20:8000/nuki")
    ]
    info = api.parse_info(
        b'{"bridgeType": 1, "versions": {"firmwareVersion": "2.14.0"}, '
        b'"currentTime": "2022-03-14T20:43:24+00:00", "uptime": 5}'
    )
    assert info == api.BridgeInfo(1, "2.14.0", "2022-03-14T20:43:24+00:00")
    assert api.parse_auth(b'{"token": "token123", "success": true}') == api.AuthReply(
        True, "token123"
    )
    assert api.parse_auth(b'{"success": false}') == api.AuthReply(False, None)


def test_callback_body_as_documented() -> None:
    body = {
        "nukiId": 11,
        "deviceType": 0,
        "mode": 2,
        "state": 3,
        "stateName": "unlocked",
        "batteryCritical": True,
        "batteryCharging": False,
        "batteryChargeState": 12,
        "keypadBatteryCritical": False,
        "doorsensorState": 2,
        "doorsensorStateName": "door closed",
        "someFutureField": [1, 2],
    }
    report = api.parse_callback(json.dumps(body).encode())
    assert (report.nuki_id, report.device_type) == (11, 0)
    assert report.state.bolt is LockState.UNLOCKED
    assert report.state.battery_low
    assert report.state.state_name == "unlocked"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff",
        b"[]",
        b'{"nukiId": "11", "deviceType": 0, "state": 1}',
        b'{"nukiId": true, "deviceType": 0, "state": 1}',
        b'{"nukiId": 11, "deviceType": 0}',
        b'{"nukiId": 11, "deviceType": 0, "state": 256}',
        b'{"nukiId": 11, "deviceType": 0, "state": 1, "batteryChargeState": 101}',
        b'{"nukiId": 11, "deviceType": 0, "state": 1, "doorsensorState": -1}',
        b'{"nukiId": 11, "nukiId": 12, "deviceType": 0, "state": 1}',
    ],
)
def test_malformed_callbacks_are_our_error(raw: bytes) -> None:
    with pytest.raises(BridgeFormatError):
        api.parse_callback(raw)


def test_malformed_replies_are_our_error() -> None:
    for parse, raw in [
        (api.parse_list, b'{"nukiId": 1}'),
        (api.parse_list, b'[{"nukiId": 1, "deviceType": 0, "lastKnownState": []}]'),
        (api.parse_callback_list, b'{"callbacks": [{"id": "0", "url": "x"}]}'),
        (api.parse_callback_list, b'{"callbacks": {}}'),
        (api.parse_info, b'{"versions": {}}'),
        (api.parse_auth, b'{"success": true}'),
        (api.parse_outcome, b'{"ok": true}'),
    ]:
        with pytest.raises(BridgeFormatError):
            parse(raw)


PARSERS = [
    api.parse_list,
    api.parse_lock_state,
    api.parse_outcome,
    api.parse_callback_list,
    api.parse_info,
    api.parse_auth,
    api.parse_callback,
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=6),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "nukiId",
        "deviceType",
        "state",
        "success",
        "callbacks",
        "id",
        "url",
        "token",
        "bridgeType",
        "batteryChargeState",
        "doorsensorState",
        "lastKnownState",
        "versions",
        "message",
    ]
)
SHAPED = st.dictionaries(FIELDS, JSON, max_size=8) | st.lists(
    st.dictionaries(FIELDS, JSON), max_size=3
)


@given(raw=st.binary(max_size=200))
def test_any_bytes_parse_or_raise_our_error(raw: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(NukiBridgeError):  # the package's own errors, nothing else
            parse(raw)


@given(value=SHAPED)
def test_any_json_of_the_right_words_parses_or_raises_our_error(value: object) -> None:
    raw = json.dumps(value).encode()
    for parse in PARSERS:
        with contextlib.suppress(NukiBridgeError):  # the package's own errors, nothing else
            parse(raw)
