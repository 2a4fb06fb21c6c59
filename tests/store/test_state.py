"""Round trips through the typed accessors of the state tables."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta

import pytest

from cloud_sync.protocol.replay import ReplayState
from gateway.store import (
    Courier,
    Lockout,
    LockRow,
    Store,
    StoreConstraintError,
    StoreCorruptError,
    WindowRow,
    state,
)

from .conftest import START


def window(window_id: str, lock_id: str = "front-door", **changes: object) -> WindowRow:
    base = WindowRow(
        window_id=window_id, tenant_id="t1", task_id="task-1", lock_id=lock_id,
        starts_at=START, ends_at=START + timedelta(hours=2), version=1, max_uses=2, uses=0,
        enforcement="hub", state="scheduled", code_hash=b"\x00\xff" * 16,
        code_sealed="c2VhbGVk", courier=Courier("c-7", "Ana"), carrier_job_id="job-9",
        updated_at=START,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_windows_round_trip_upsert_and_list(store: Store) -> None:
    bare = window("w2", starts_at=START - timedelta(hours=1), max_uses=None, code_sealed=None,
                  courier=None, carrier_job_id=None)  # fmt: skip
    await store.put_window(window("w1"))
    await store.put_window(bare)
    await store.put_window(window("w3", lock_id="back-door"))
    assert await store.get_window("w2") == bare
    assert await store.get_window("missing") is None
    assert [w.window_id for w in await store.list_windows()] == ["w2", "w1", "w3"]
    assert [w.window_id for w in await store.list_windows("back-door")] == ["w3"]
    newer = window("w1", version=2, uses=1, state="active")
    await store.put_window(newer)
    assert await store.get_window("w1") == newer


async def test_window_enums_are_enforced_by_the_schema(store: Store) -> None:
    with pytest.raises(StoreConstraintError):
        await store.put_window(window("w1", enforcement="door"))
    assert await store.list_windows() == []


async def test_locks_round_trip(store: Store) -> None:
    door = LockRow("front-door", "sim", "locked", 87, START)
    await store.put_lock(door)
    await store.put_lock(LockRow("a-gate", "nuki_ble", "unreachable", None, START))
    await store.put_lock(replace(door, state="unlocked", battery=86))
    assert await store.get_lock("front-door") == replace(door, state="unlocked", battery=86)
    assert await store.get_lock("missing") is None
    assert [lock.lock_id for lock in await store.list_locks()] == ["a-gate", "front-door"]


async def test_replay_bitmap_with_the_top_bit_set_round_trips(store: Store) -> None:
    state = ReplayState(highest=900, bitmap=(1 << 63) | 0b1011)
    await store.save_replay("cloud-2026", state)
    assert await store.load_replay() == {"cloud-2026": state}
    full = ReplayState(highest=901, bitmap=(1 << 64) - 1)
    await store.save_replay("cloud-2026", full)
    await store.save_replay("cloud-2027", ReplayState())
    assert await store.load_replay() == {"cloud-2026": full, "cloud-2027": ReplayState()}


async def test_impossible_replay_row_is_reported_as_corruption(store: Store) -> None:
    await store._db.write("INSERT INTO replay_state (kid, highest, bitmap) VALUES ('k', 3, 0)")
    with pytest.raises(StoreCorruptError, match="impossible window"):
        await store.load_replay()


async def test_lockouts_round_trip(store: Store) -> None:
    lockout = Lockout("front-door", "keypad", failures=5, level=1, locked_until=START)
    await store.put_lockout(lockout)
    await store.put_lockout(Lockout("front-door", "api", 1, 0, None))
    escalated = replace(lockout, failures=6, level=2, locked_until=START + timedelta(minutes=1))
    await store.put_lockout(escalated)
    assert await store.get_lockout("front-door", "keypad") == escalated
    assert await store.get_lockout("front-door", "nobody") is None
    assert [lo.source for lo in await store.list_lockouts()] == ["api", "keypad"]


async def test_kv_round_trip_and_reserved_keys(store: Store) -> None:
    assert await store.kv_get("clock.floor") is None
    await store.kv_set("clock.floor", "a")
    await store.kv_set("clock.floor", "b")
    assert await store.kv_get("clock.floor") == "b"
    with pytest.raises(ValueError, match="reserved"):
        await store.kv_set("store.chain_head", "{}")


def test_window_select_follows_the_dataclass_field_order() -> None:
    columns = state._WINDOW_SELECT.removeprefix("SELECT ").split(" FROM")[0]
    assert [c.strip() for c in columns.split(",")] == [f.name for f in fields(WindowRow)]
