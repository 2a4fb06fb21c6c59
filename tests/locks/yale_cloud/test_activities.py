"""The pure parts: yalexs activities to events, the cursor, token expiry, stored credentials."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yalexs.activity import (  # type: ignore[import-untyped]
    SOURCE_LOG,
    DoorbellDingActivity,
    DoorOperationActivity,
    LockOperationActivity,
)

from gateway.locks.bridges.yale_cloud import YaleCloudAuthError
from gateway.locks.bridges.yale_cloud.activities import (
    SEEN_KEPT,
    CloudActivity,
    Cursor,
    CursorError,
    activity_from_yalexs,
    to_event,
    token_expiry,
)
from gateway.locks.bridges.yale_cloud.credentials import CloudCredentials
from gateway.locks.driver import EventKind, Trigger

# The v3 shape (yalexs's get_house_activities fixture): the feed's id is in entities.activity.
V3_KEYPAD_UNLOCK = {
    "action": "unlock",
    "callingUser": {"FirstName": "A", "LastName": "B", "UserID": "user-1"},
    "dateTime": 1_767_268_800_000,
    "deviceID": "lock-1",
    "deviceType": "lock",
    "entities": {"activity": "activity-9", "device": "lock-1", "house": "house-1"},
    "info": {"keypad": True},
}


def activity(key: str, at_ms: int) -> CloudActivity:
    return CloudActivity(
        key, "lock-1", "manual_unlock", at_ms, EventKind.UNLOCKED, Trigger.MANUAL, None
    )


def test_v3_activity_keeps_the_feed_id_and_the_keypad_flag() -> None:
    parsed = activity_from_yalexs(LockOperationActivity(SOURCE_LOG, V3_KEYPAD_UNLOCK))
    assert parsed == CloudActivity(
        "activity-9",
        "lock-1",
        "unlock",
        1_767_268_800_000,
        EventKind.UNLOCKED,
        Trigger.KEYPAD,
        "user-1",
    )
    event = to_event(parsed, "front-door", keypad_slot=4)
    assert event.at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert (event.vendor, event.vendor_event_id, event.keypad_code_id) == ("yale", "activity-9", 4)


def test_v4_activity_is_keyed_by_what_it_says() -> None:
    data = {
        "id": "x",
        "timestamp": 1_767_268_800_123,
        "action": "remote_lock",
        "deviceID": "lock-1",
        "user": {"UserID": "user-2", "FirstName": "C", "LastName": "D"},
    }
    parsed = activity_from_yalexs(LockOperationActivity(SOURCE_LOG, data))
    assert parsed is not None
    assert parsed.key == "lock-1:1767268800123:remote_lock:user-2"
    assert (parsed.kind, parsed.trigger) == (EventKind.LOCKED, Trigger.REMOTE)


@pytest.mark.parametrize(
    ("action", "kind", "trigger"),
    [
        ("finger_unlock", EventKind.UNLOCKED, Trigger.UNKNOWN),
        ("ble_unlock", EventKind.UNLOCKED, Trigger.UNKNOWN),
        ("pin_lock", EventKind.LOCKED, Trigger.KEYPAD),
        ("unlatch", EventKind.UNLOCKED, Trigger.UNKNOWN),
        ("jammed", EventKind.JAMMED, Trigger.UNKNOWN),
    ],
)
def test_lock_operation_kinds_and_triggers(action: str, kind: EventKind, trigger: Trigger) -> None:
    data = {"timestamp": 1, "action": action, "deviceID": "lock-1", "user": {"UserID": "u"}}
    parsed = activity_from_yalexs(LockOperationActivity(SOURCE_LOG, data))
    assert parsed is not None
    assert (parsed.kind, parsed.trigger) == (kind, trigger)


def test_door_and_other_activities() -> None:
    door = activity_from_yalexs(
        DoorOperationActivity(SOURCE_LOG, {"timestamp": 5, "action": "doorclosed", "deviceID": "l"})
    )
    assert door is not None
    assert (door.kind, door.user_id, door.key) == (EventKind.DOOR_CLOSED, None, "l:5:doorclosed:-")
    ding = DoorbellDingActivity(SOURCE_LOG, {"timestamp": 5, "action": "doorbell_call_missed"})
    assert activity_from_yalexs(ding) is None
    moving = LockOperationActivity(
        SOURCE_LOG, {"timestamp": 5, "action": "locking", "deviceID": "l"}
    )
    assert activity_from_yalexs(moving) is None


def test_cursor_emits_each_activity_once_even_with_equal_times() -> None:
    cursor = Cursor.baseline([activity("a", 100)], now_ms=50)
    assert cursor.floor_ms == 100
    page = [activity("b", 100), activity("a", 100), activity("c", 99), activity("b", 100)]
    fresh = cursor.fresh(page)
    assert [a.key for a in fresh] == ["b"]  # "c" is older than where we started
    cursor = cursor.after(fresh)
    assert cursor.fresh(page) == []
    late = activity("d", 101)
    assert cursor.fresh([late, *page]) == [late]


def test_an_empty_feed_starts_from_now() -> None:
    cursor = Cursor.baseline([], now_ms=777)
    assert cursor == Cursor(777, {})
    assert cursor.fresh([activity("x", 776)]) == []


def test_the_cursor_forgets_the_oldest_keys_and_raises_its_floor() -> None:
    cursor = Cursor(0)
    for n in range(SEEN_KEPT + 5):
        cursor = cursor.after([activity(f"k{n}", n)])
    assert len(cursor.seen) == SEEN_KEPT
    assert cursor.floor_ms == 5
    assert cursor.fresh([activity("k0", 0), activity("k3", 3)]) == []


def test_the_cursor_round_trips_through_json() -> None:
    cursor = Cursor(5, {"a": 5, "b": 6})
    assert Cursor.from_json(json.loads(json.dumps(cursor.to_json()))) == cursor


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_any_json_is_a_cursor_or_our_error(data: Any) -> None:
    with contextlib.suppress(CursorError):
        assert isinstance(Cursor.from_json(data), Cursor)


@given(
    st.dictionaries(
        st.sampled_from(["floor_ms", "seen", "x"]),
        st.none()
        | st.integers()
        | st.text()
        | st.dictionaries(st.text(), st.integers() | st.text()),
    )
)
def test_cursor_shaped_json_is_a_cursor_or_our_error(data: Any) -> None:
    with contextlib.suppress(CursorError):
        assert isinstance(Cursor.from_json(data), Cursor)


def jwt_with(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"e30.{body}.sig"


def test_token_expiry_reads_the_exp_claim() -> None:
    assert token_expiry(jwt_with({"exp": 1337})) == datetime.fromtimestamp(1337, UTC)
    for bad in (
        "",
        "a.b",
        "a.!!!.c",
        jwt_with([1]),
        jwt_with({"exp": "soon"}),
        jwt_with({"exp": True}),
        jwt_with({"exp": 1e300}),
    ):
        assert token_expiry(bad) is None


@given(st.text())
def test_any_token_text_has_an_expiry_or_none(token: str) -> None:
    assert token_expiry(token) is None or token_expiry(token).tzinfo is UTC  # type: ignore[union-attr]


@given(st.lists(st.integers() | st.floats(allow_nan=True) | st.text() | st.none(), max_size=1))
def test_any_exp_claim_gives_an_expiry_or_none(values: list[Any]) -> None:
    claims = {"exp": values[0]} if values else {}
    result = token_expiry(jwt_with(claims))
    assert result is None or result.tzinfo is UTC


GOOD = {
    "brand": "august",
    "install_id": "i",
    "access_token": "eyJsecret-token",
    "expires_at": "2026-05-01T00:00:00+00:00",
    "user_id": "u",
    "august_lock_id": "l",
    "house_id": "h",
}


def test_credentials_round_trip() -> None:
    creds = CloudCredentials.from_json(GOOD)
    assert CloudCredentials.from_json(creds.to_json()) == creds
    assert "eyJsecret-token" not in repr(creds)


@pytest.mark.parametrize(
    "change",
    [
        {"brand": 1},
        {"expires_at": 5},
        {"expires_at": "never"},
        {"expires_at": "2026-05-01T00:00:00"},
        {"house_id": None},
    ],
)
def test_damaged_credentials_ask_for_pairing(change: dict[str, Any]) -> None:
    with pytest.raises(YaleCloudAuthError, match="pair the lock again"):
        CloudCredentials.from_json({**GOOD, **change})
