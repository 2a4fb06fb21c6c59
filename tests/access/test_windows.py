"""The window cache: states at exact instants, rows from upserts, indexes and the deadline heap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud_sync.protocol.b64 import b64url_encode
from cloud_sync.protocol.commands import WindowUpsertBody
from gateway.access.windows import (
    TERMINAL,
    WindowCache,
    WindowState,
    closes_at,
    opens_at,
    row_from_upsert,
    state_at,
    tombstone,
    used_up,
    with_state,
)
from gateway.store import Courier, WindowRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=1)
END = NOW + timedelta(hours=2)
GRACE = timedelta(minutes=5)
NO_GRACE = timedelta(0)
TICK = timedelta(microseconds=1)
SEALED = b64url_encode(bytes(54))


def window(window_id: str = "w1", **fields: Any) -> WindowRow:
    """A scheduled hub-enforced window from START to END."""
    row = WindowRow(
        window_id=window_id,
        tenant_id="tenant-a",
        task_id="task-1",
        lock_id="front-door",
        starts_at=START,
        ends_at=END,
        version=1,
        max_uses=None,
        uses=0,
        enforcement="hub",
        state=WindowState.SCHEDULED,
        code_hash=b"code-1",
        code_sealed=None,
        courier=None,
        carrier_job_id=None,
        updated_at=NOW,
    )
    return replace(row, **fields)


def body(**fields: Any) -> WindowUpsertBody:
    """A window.upsert body for w1."""
    members: dict[str, Any] = {
        "window_id": "w1",
        "tenant_id": "tenant-a",
        "task_id": "task-1",
        "lock_id": "front-door",
        "starts_at": START,
        "ends_at": END,
        "version": 2,
        "max_uses": 2,
        "enforcement": "hub",
        "code_sealed": SEALED,
    }
    return WindowUpsertBody.model_validate({**members, **fields})


# States at the exact instants.


@pytest.mark.parametrize(
    ("moment", "grace", "expected"),
    [
        (START - GRACE - TICK, GRACE, WindowState.SCHEDULED),
        (START - GRACE, GRACE, WindowState.ACTIVE),
        (START - TICK, NO_GRACE, WindowState.SCHEDULED),
        (START, NO_GRACE, WindowState.ACTIVE),
        (END - TICK, NO_GRACE, WindowState.ACTIVE),
        (END, NO_GRACE, WindowState.EXPIRED),
        (END, GRACE, WindowState.ACTIVE),
        (END + GRACE - TICK, GRACE, WindowState.ACTIVE),
        (END + GRACE, GRACE, WindowState.EXPIRED),
    ],
)
def test_a_window_opens_at_start_minus_grace_and_closes_at_end_plus_grace(
    moment: datetime, grace: timedelta, expected: WindowState
) -> None:
    assert opens_at(window(), grace) == START - grace
    assert closes_at(window(), grace) == END + grace
    assert state_at(window(), moment, grace) is expected


@pytest.mark.parametrize("held", [WindowState.USED, WindowState.EXPIRED, WindowState.REVOKED])
def test_terminal_states_are_sticky_whatever_the_time(held: WindowState) -> None:
    assert state_at(window(state=held), START, GRACE) is held


def test_a_window_is_used_once_its_uses_reach_max_uses_even_before_it_closes() -> None:
    assert not used_up(window(max_uses=None, uses=99))
    assert not used_up(window(max_uses=2, uses=1))
    assert used_up(window(max_uses=2, uses=2))
    assert state_at(window(max_uses=2, uses=2), START, GRACE) is WindowState.USED
    # Used wins over expired: the uses are the fact, the time only a bound.
    assert state_at(window(max_uses=1, uses=1), END + GRACE, GRACE) is WindowState.USED


# Rows from upserts and tombstones.


def test_an_upsert_for_a_new_window_starts_with_no_uses_and_no_sealed_code_for_hub_windows() -> (
    None
):
    row = row_from_upsert(body(), b"hash", None, NOW)
    assert (row.version, row.uses, row.code_hash, row.code_sealed) == (2, 0, b"hash", None)
    assert (row.state, row.lock_side, row.origin, row.courier) == (
        "scheduled",
        "none",
        "push",
        None,
    )


@pytest.mark.parametrize("enforcement", ["lock", "both"])
def test_a_lock_enforced_upsert_keeps_the_sealed_code_to_program_the_keypad(
    enforcement: str,
) -> None:
    row = row_from_upsert(body(enforcement=enforcement), b"hash", None, NOW)
    assert (row.code_sealed, row.lock_side) == (SEALED, "pending")


def test_an_upsert_carries_over_uses_and_the_keypad_slot_of_the_window_it_replaces() -> None:
    held = window(uses=1, keypad_code_id=7, state=WindowState.ACTIVE)
    courier = {"id": "c-7", "name": "Ada"}
    row = row_from_upsert(body(courier=courier, carrier_job_id="job-9"), b"h", held, NOW)
    assert (row.uses, row.keypad_code_id) == (1, 7)
    assert (row.courier, row.carrier_job_id) == (Courier("c-7", "Ada"), "job-9")


def test_an_upsert_over_a_tombstone_carries_nothing_over() -> None:
    dead = replace(tombstone("w1", 1, NOW), uses=3, keypad_code_id=4)
    row = row_from_upsert(body(), b"h", dead, NOW)
    assert (row.uses, row.keypad_code_id, row.origin) == (0, None, "push")


def test_a_tombstone_is_revoked_and_indexed_nowhere_until_a_newer_window_replaces_it() -> None:
    cache = WindowCache(GRACE)
    cache.put(tombstone("ghost", 3, NOW))
    row = cache.get("ghost")
    assert row is not None
    assert (row.state, row.version, row.origin) == ("revoked", 3, "tombstone")
    assert cache.by_code(b"") == []
    assert cache.by_task("") == []
    assert cache.next_deadline() is None
    assert cache.counts()["revoked"] == 1
    cache.put(window("ghost", version=4))
    assert [w.window_id for w in cache.by_code(b"code-1")] == ["ghost"]
    assert cache.next_deadline() == START - GRACE


# Indexes.


def test_indexes_follow_a_window_that_changes_code_and_task() -> None:
    cache = WindowCache(GRACE)
    cache.load([window("w1"), window("w2")])
    assert {w.window_id for w in cache.by_code(b"code-1")} == {"w1", "w2"}
    cache.put(window("w1", code_hash=b"code-2", task_id="task-2", version=2))
    assert [w.window_id for w in cache.by_code(b"code-1")] == ["w2"]
    assert [w.window_id for w in cache.by_code(b"code-2")] == ["w1"]
    assert [w.window_id for w in cache.by_task("task-1")] == ["w2"]
    assert [w.window_id for w in cache.by_task("task-2")] == ["w1"]
    cache.put(window("w2", code_hash=b"code-2", version=2))
    assert cache.by_code(b"code-1") == []
    assert len(cache) == 2
    assert sorted(w.window_id for w in cache) == ["w1", "w2"]
    assert cache.get("nope") is None


def test_a_keypad_code_id_finds_its_window_only_on_its_own_lock() -> None:
    cache = WindowCache(GRACE)
    cache.load([window("w1", keypad_code_id=3), window("w2", lock_id="back-door")])
    found = cache.by_keypad_id("front-door", 3)
    assert found is not None
    assert found.window_id == "w1"
    assert cache.by_keypad_id("back-door", 3) is None
    assert cache.by_keypad_id("front-door", 4) is None


def test_counts_cover_every_state_and_add_up_to_the_cache() -> None:
    cache = WindowCache(GRACE)
    cache.load(
        [
            window("w1"),
            window("w2", state=WindowState.ACTIVE),
            window("w3", state=WindowState.USED),
            tombstone("w4", 1, NOW),
        ]
    )
    counts = cache.counts()
    assert counts == {"scheduled": 1, "active": 1, "used": 1, "expired": 0, "revoked": 1}
    assert sum(counts.values()) == len(cache)


# The deadline heap.


def test_next_deadline_is_the_opening_of_a_scheduled_window_and_the_closing_of_an_active_one() -> (
    None
):
    cache = WindowCache(GRACE)
    assert cache.next_deadline() is None
    cache.put(window("w1"))
    assert cache.next_deadline() == START - GRACE
    cache.put(window("w1", state=WindowState.ACTIVE))
    assert cache.next_deadline() == END + GRACE
    cache.put(window("w1", state=WindowState.EXPIRED))
    assert cache.next_deadline() is None


def test_next_deadline_skips_entries_left_by_an_older_version() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1"))
    later = START + timedelta(hours=3)
    cache.put(window("w1", version=2, starts_at=later, ends_at=later + timedelta(hours=1)))
    assert cache.next_deadline() == later - GRACE


def test_due_moves_scheduled_to_active_then_active_to_expired_and_reports_the_expiry() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1"))
    assert cache.due(START - GRACE - TICK) == []
    [opened] = cache.due(START - GRACE)
    assert (opened.row.state, opened.status) == (WindowState.ACTIVE, None)
    # The cache keeps the old row until the caller commits and puts the change.
    assert cache.get("w1") == window("w1")
    cache.put(opened.row)
    [closed] = cache.due(END + GRACE)
    assert (closed.row.state, closed.status, closed.row.updated_at) == (
        WindowState.EXPIRED,
        "expired",
        END + GRACE,
    )
    cache.put(closed.row)
    assert cache.due(END + timedelta(days=1)) == []


def test_due_jumps_a_scheduled_window_straight_to_expired_when_both_deadlines_passed() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1"))
    [change] = cache.due(END + GRACE)
    assert (change.row.state, change.status) == (WindowState.EXPIRED, "expired")


def test_due_reports_a_window_once_though_a_use_left_a_second_heap_entry() -> None:
    cache = WindowCache(GRACE)
    active = window("w1", state=WindowState.ACTIVE, max_uses=3)
    cache.put(active)
    cache.put(replace(active, uses=1))
    changes = cache.due(END + GRACE)
    assert [(c.row.window_id, c.row.uses) for c in changes] == [("w1", 1)]


def test_due_after_a_failed_commit_finds_the_window_again_once_requeued() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1"))
    [change] = cache.due(START)
    assert cache.due(START) == []  # taken: not handed out twice
    cache.requeue("w1")
    cache.requeue("nowhere")  # an unknown window is ignored
    [again] = cache.due(START)
    assert again == change


def test_a_use_does_not_grow_the_deadline_heap() -> None:
    cache = WindowCache(GRACE)
    row = window("w1")
    cache.put(row)
    for uses in range(1, 50):
        cache.put(replace(row, uses=uses))
    assert len(cache._deadlines) == 1


def test_a_reused_keypad_slot_points_at_the_window_holding_it_now() -> None:
    cache = WindowCache(GRACE)
    first = replace(window("w1"), keypad_code_id=3)
    cache.put(first)
    cache.put(replace(window("w2"), keypad_code_id=3))  # the lock gave slot 3 to w2
    cache.put(replace(first, keypad_code_id=None))  # w1's removal is committed later
    found = cache.by_keypad_id(first.lock_id, 3)
    assert found is not None
    assert found.window_id == "w2"


def test_due_keeps_the_sealed_code_of_a_window_that_opens_and_drops_it_when_it_closes() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1", enforcement="lock", code_sealed=SEALED, lock_side="failed_on_lock"))
    [opened] = cache.due(START)
    assert (opened.row.state, opened.row.code_sealed) == (WindowState.ACTIVE, SEALED)
    cache.put(opened.row)
    [closed] = cache.due(END + GRACE)
    assert (closed.row.state, closed.status, closed.row.code_sealed) == (
        WindowState.EXPIRED,
        "expired",
        None,
    )


@pytest.mark.parametrize("state", list(WindowState))
def test_with_state_drops_the_sealed_code_exactly_for_the_terminal_states(
    state: WindowState,
) -> None:
    row = with_state(window(code_sealed=SEALED), state, END)
    assert (row.state, row.updated_at) == (state, END)
    assert (row.code_sealed is None) is (state in TERMINAL)


def test_counts_follow_rows_as_they_are_replaced() -> None:
    cache = WindowCache(GRACE)
    cache.put(window("w1"))
    cache.put(window("w2"))
    cache.put(window("w1", state=WindowState.ACTIVE))
    cache.put(window("w2", state=WindowState.REVOKED))
    cache.put(window("w2", state=WindowState.REVOKED))  # the same state again
    assert cache.counts() == {"scheduled": 0, "active": 1, "used": 0, "expired": 0, "revoked": 1}
