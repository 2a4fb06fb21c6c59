"""The pure part: parsing Schlage's log, deciding what each entry means, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.locks import EventKind, Trigger
from gateway.locks.bridges.schlage import (
    LOG_OVERLAP,
    LogCursor,
    LogEntry,
    SchlageUnreachableError,
    classify,
    parse_logs,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
entry_like = st.fixed_dictionaries(
    {
        "logId": st.text(max_size=4),
        "createdAt": st.sampled_from(["2026-03-01T12:00:00.000Z", "x", "2026-03-01T12:00:00"]),
    },
    optional={
        "message": json_values
        | st.fixed_dictionaries(
            {"eventCode": json_values, "accessorUuid": json_values, "keypadUuid": json_values}
        )
    },
)


@settings(max_examples=150)
@given(st.one_of(json_values, st.lists(entry_like, max_size=3)))
def test_parse_returns_entries_or_raises_our_error(raw: object) -> None:
    try:
        entries = parse_logs(raw)
    except SchlageUnreachableError:
        return
    assert all(isinstance(e, LogEntry) and e.created_at.tzinfo is not None for e in entries)


def test_a_keypad_entry() -> None:
    raw = {
        "createdAt": "2026-03-01T12:00:00.123Z",
        "logId": "log-1",
        "message": {
            "eventCode": 2,
            "keypadUuid": "code-9",
            "accessorUuid": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        },
    }
    assert parse_logs([raw]) == [LogEntry("log-1", T0 + timedelta(milliseconds=123), 2, "code-9")]
    cleared = {"createdAt": "2026-03-01T12:00:00", "logId": "log-2", "message": "RESET_LOGS"}
    assert parse_logs([cleared])[0].created_at == T0


def test_meanings() -> None:
    assert classify(2) == (EventKind.UNLOCKED, Trigger.KEYPAD)
    assert classify(7) == (EventKind.UNLOCKED, Trigger.REMOTE)
    assert classify(8) == (EventKind.LOCKED, Trigger.AUTO)
    assert classify(54) == (EventKind.JAMMED, Trigger.UNKNOWN)
    assert classify(14) is None  # "access code user added" is not a lock event


def entry(log_id: str, seconds: float) -> LogEntry:
    return LogEntry(log_id, T0 + timedelta(seconds=seconds), 4)


def test_cursor_reports_each_entry_once_in_order() -> None:
    cursor = LogCursor()
    assert not cursor.started
    assert cursor.advance([entry("a", 0)]) == []  # history
    assert cursor.started
    fresh = cursor.advance([entry("c", 2), entry("b", 1), entry("a", 0)])
    assert [e.log_id for e in fresh] == ["b", "c"]
    assert cursor.advance([entry("c", 2), entry("b", 1)]) == []
    late = entry("late", 2 - LOG_OVERLAP.total_seconds() + 1)  # stored late, still near
    stale = entry("stale", 2 - LOG_OVERLAP.total_seconds() - 1)
    assert cursor.advance([late, stale]) == [late]


def test_cursor_survives_a_round_trip() -> None:
    cursor = LogCursor()
    cursor.advance([entry("a", 0)])
    cursor.advance([entry("b", 1)])
    again = LogCursor.from_json(cursor.to_json())
    assert again == cursor
    assert again.advance([entry("b", 1)]) == []
    assert LogCursor.from_json(None) == LogCursor()
    assert LogCursor.from_json({"newest": "bad", "seen": {}}) == LogCursor()
    assert LogCursor.from_json({"newest": T0.isoformat(), "seen": 5}) == LogCursor()
    empty = LogCursor()
    assert empty.advance([]) == []
    assert empty.started
