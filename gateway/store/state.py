"""Typed accessors for the hub's state tables: windows, locks, replay, lockouts, kv."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime

from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.replay import ReplayState, from_sqlite, to_sqlite

from .database import Database
from .errors import StoreCorruptError
from .rows import (
    Courier,
    Lockout,
    LockRow,
    WindowRow,
    from_db_time,
    optional_time,
    to_db_time,
)

# Keys under this prefix belong to the store itself (the chain head); callers may read them.
RESERVED_KV_PREFIX = "store."

_WINDOW_FIELDS = tuple(field.name for field in fields(WindowRow))
_WINDOW_TIMES = ("starts_at", "ends_at", "updated_at")
# Column lists are spelled out, not generated, so each statement reads as plain SQL; the
# windows columns follow WindowRow's field order (a test checks that).
_WINDOW_SELECT = (
    "SELECT window_id, tenant_id, task_id, lock_id, starts_at, ends_at, version, max_uses,"
    " uses, enforcement, state, code_hash, code_sealed, courier, carrier_job_id, updated_at,"
    " keypad_code_id, lock_side, origin FROM windows"
)
_WINDOW_UPSERT = """
INSERT INTO windows (window_id, tenant_id, task_id, lock_id, starts_at, ends_at, version,
    max_uses, uses, enforcement, state, code_hash, code_sealed, courier, carrier_job_id,
    updated_at, keypad_code_id, lock_side, origin)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (window_id) DO UPDATE SET tenant_id = excluded.tenant_id,
    task_id = excluded.task_id, lock_id = excluded.lock_id, starts_at = excluded.starts_at,
    ends_at = excluded.ends_at, version = excluded.version, max_uses = excluded.max_uses,
    uses = excluded.uses, enforcement = excluded.enforcement, state = excluded.state,
    code_hash = excluded.code_hash, code_sealed = excluded.code_sealed,
    courier = excluded.courier, carrier_job_id = excluded.carrier_job_id,
    updated_at = excluded.updated_at, keypad_code_id = excluded.keypad_code_id,
    lock_side = excluded.lock_side, origin = excluded.origin
"""
_LOCK_SELECT = "SELECT lock_id, driver, state, battery, updated_at FROM locks"
_LOCK_UPSERT = """
INSERT INTO locks (lock_id, driver, state, battery, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (lock_id) DO UPDATE SET driver = excluded.driver, state = excluded.state,
    battery = excluded.battery, updated_at = excluded.updated_at
"""
_REPLAY_UPSERT = """
INSERT INTO replay_state (kid, highest, bitmap) VALUES (?, ?, ?)
ON CONFLICT (kid) DO UPDATE SET highest = excluded.highest, bitmap = excluded.bitmap
"""
_LOCKOUT_SELECT = "SELECT lock_id, source, failures, level, locked_until FROM lockouts"
_LOCKOUT_UPSERT = """
INSERT INTO lockouts (lock_id, source, failures, level, locked_until) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (lock_id, source) DO UPDATE SET failures = excluded.failures,
    level = excluded.level, locked_until = excluded.locked_until
"""
# Window ids per IN (...) query: well under SQLite's host-parameter limit (32766 since 3.32).
_IDS_PER_QUERY = 500
_KV_UPSERT = """
INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""


# A window in one of these states never programs a lock again: its sealed code is not kept.
_TERMINAL_STATES = frozenset({"used", "expired", "revoked"})


def _window_to_row(window: WindowRow) -> tuple[object, ...]:
    values = {name: getattr(window, name) for name in _WINDOW_FIELDS}
    if window.state in _TERMINAL_STATES:
        values["code_sealed"] = None
    for name in _WINDOW_TIMES:
        values[name] = to_db_time(values[name])
    if window.courier is not None:
        values["courier"] = json.dumps({"id": window.courier.id, "name": window.courier.name})
    return tuple(values.values())


# Columns with few distinct values: each row read from SQLite would hold its own copy of
# "active" or "front-door"; interned, 100,000 cached windows share them.
_INTERNED = ("tenant_id", "lock_id", "enforcement", "state", "lock_side", "origin")


def _window_from_row(row: sqlite3.Row) -> WindowRow:
    values = dict(zip(_WINDOW_FIELDS, row, strict=True))
    for name in _INTERNED:
        values[name] = sys.intern(values[name])
    for name in _WINDOW_TIMES:
        values[name] = from_db_time(values[name])
    values["code_hash"] = bytes(values["code_hash"])
    if values["courier"] is not None:
        courier = json.loads(values["courier"])
        values["courier"] = Courier(id=courier["id"], name=courier["name"])
    return WindowRow(**values)


def _lockout_to_row(lockout: Lockout) -> tuple[object, ...]:
    until = None if lockout.locked_until is None else to_db_time(lockout.locked_until)
    return (lockout.lock_id, lockout.source, lockout.failures, lockout.level, until)


def window_batch(windows: Sequence[WindowRow]) -> tuple[str, list[tuple[object, ...]]]:
    """The upsert of ``windows``, to run inside another write's transaction."""
    return _WINDOW_UPSERT, [_window_to_row(window) for window in windows]


def lockout_batch(lockouts: Sequence[Lockout]) -> tuple[str, list[tuple[object, ...]]]:
    """The upsert of ``lockouts``, to run inside another write's transaction."""
    return _LOCKOUT_UPSERT, [_lockout_to_row(lockout) for lockout in lockouts]


_COMPLETED_UPSERT = """
INSERT INTO completed_tasks (task_id, completed_at) VALUES (?, ?)
ON CONFLICT (task_id) DO NOTHING
"""


def completed_batch(tasks: Mapping[str, datetime]) -> tuple[str, list[tuple[object, ...]]]:
    """The insert of completed tasks, to run inside another write's transaction."""
    return _COMPLETED_UPSERT, [(task_id, to_db_time(at)) for task_id, at in tasks.items()]


_KV_DELETE = "DELETE FROM kv WHERE key = ?"


def check_kv_key(key: str) -> None:
    """Raise ValueError for a key that belongs to the store itself."""
    if key.startswith(RESERVED_KV_PREFIX):
        raise ValueError(f"kv keys starting with {RESERVED_KV_PREFIX!r} are reserved")


def kv_batches(entries: Mapping[str, str | None]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Upserts (and deletes, for None) of kv entries, to run inside another write's transaction."""
    for key in entries:
        check_kv_key(key)
    upserts: list[tuple[object, ...]] = [(k, v) for k, v in entries.items() if v is not None]
    deletes: list[tuple[object, ...]] = [(k,) for k, v in entries.items() if v is None]
    return [(sql, rows) for sql, rows in ((_KV_UPSERT, upserts), (_KV_DELETE, deletes)) if rows]


def replay_batch(states: Mapping[str, ReplayState]) -> tuple[str, list[tuple[object, ...]]]:
    """The upsert of replay windows by kid, to run inside another write's transaction."""
    return _REPLAY_UPSERT, [(kid, s.highest, to_sqlite(s.bitmap)) for kid, s in states.items()]


class StateTables:
    """Reads and writes the hub's state rows; each write commits on its own."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put_window(self, window: WindowRow) -> None:
        """Insert or replace the window with this ``window_id``."""
        await self._db.write(_WINDOW_UPSERT, _window_to_row(window))

    async def get_window(self, window_id: str) -> WindowRow | None:
        """Return the window, or None if unknown."""
        rows = await self._db.fetch(f"{_WINDOW_SELECT} WHERE window_id = ?", (window_id,))
        return _window_from_row(rows[0]) if rows else None

    async def known_windows(self, window_ids: Sequence[str]) -> set[str]:
        """Return which of ``window_ids`` the table holds."""
        known: set[str] = set()
        for start in range(0, len(window_ids), _IDS_PER_QUERY):
            chunk = window_ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT window_id FROM windows WHERE window_id IN ({marks})"  # noqa: S608 - only placeholders are interpolated
            known.update(str(row[0]) for row in await self._db.fetch(sql, chunk))
        return known

    async def list_windows(self, lock_id: str | None = None) -> list[WindowRow]:
        """Return all windows (or one lock's), ordered by start then id."""
        if lock_id is None:
            rows = await self._db.fetch(f"{_WINDOW_SELECT} ORDER BY starts_at, window_id")
        else:
            rows = await self._db.fetch(
                f"{_WINDOW_SELECT} WHERE lock_id = ? ORDER BY starts_at, window_id", (lock_id,)
            )
        return [_window_from_row(row) for row in rows]

    async def page_windows(
        self,
        after: str | None,
        limit: int,
        *,
        lock_id: str | None = None,
        states: frozenset[str] | None = None,
    ) -> list[WindowRow]:
        """Up to ``limit`` windows (no tombstones) with ids above ``after``, in id order.

        ``lock_id`` and ``states`` (stored states) narrow them; the primary key's order makes
        each page one index range, however many windows there are.
        """
        where = ["origin != 'tombstone'", "window_id > ?"]
        params: list[object] = [after or ""]
        if lock_id is not None:
            where.append("lock_id = ?")
            params.append(lock_id)
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(sorted(states))
        sql = f"{_WINDOW_SELECT} WHERE {' AND '.join(where)} ORDER BY window_id LIMIT ?"
        rows = await self._db.fetch(sql, [*params, limit])
        return [_window_from_row(row) for row in rows]

    async def put_lock(self, lock: LockRow) -> None:
        """Insert or replace the lock with this ``lock_id``."""
        await self._db.write(
            _LOCK_UPSERT,
            (lock.lock_id, lock.driver, lock.state, lock.battery, to_db_time(lock.updated_at)),
        )

    async def get_lock(self, lock_id: str) -> LockRow | None:
        """Return the lock, or None if unknown."""
        rows = await self._db.fetch(f"{_LOCK_SELECT} WHERE lock_id = ?", (lock_id,))
        return _lock_from_row(rows[0]) if rows else None

    async def list_locks(self) -> list[LockRow]:
        """Return every lock ordered by id."""
        rows = await self._db.fetch(f"{_LOCK_SELECT} ORDER BY lock_id")
        return [_lock_from_row(row) for row in rows]

    async def completed_tasks(self) -> dict[str, datetime]:
        """Every remembered completed task with its completion time."""
        rows = await self._db.fetch("SELECT task_id, completed_at FROM completed_tasks")
        return {task_id: from_db_time(at) for task_id, at in rows}

    async def prune_completed_tasks(self, before: datetime) -> int:
        """Forget tasks completed before ``before``; return how many."""
        sql = "DELETE FROM completed_tasks WHERE completed_at < ?"
        return await self._db.write(sql, (to_db_time(before),))

    async def load_replay(self) -> dict[str, ReplayState]:
        """Return the persisted replay window of every command-signing key, by kid."""
        rows = await self._db.fetch("SELECT kid, highest, bitmap FROM replay_state ORDER BY kid")
        try:
            return {kid: ReplayState(highest, from_sqlite(bitmap)) for kid, highest, bitmap in rows}
        except ProtocolError as exc:
            raise StoreCorruptError(f"replay_state holds an impossible window: {exc}") from exc

    async def save_replay(self, kid: str, state: ReplayState) -> None:
        """Persist the replay window of ``kid``."""
        await self._db.write(_REPLAY_UPSERT, (kid, state.highest, to_sqlite(state.bitmap)))

    async def get_lockout(self, lock_id: str, source: str) -> Lockout | None:
        """Return the lockout of (lock, source), or None if it has no failures recorded."""
        rows = await self._db.fetch(
            f"{_LOCKOUT_SELECT} WHERE lock_id = ? AND source = ?",
            (lock_id, source),
        )
        return _lockout_from_row(rows[0]) if rows else None

    async def put_lockout(self, lockout: Lockout) -> None:
        """Insert or replace the lockout of (lock, source)."""
        await self._db.write(_LOCKOUT_UPSERT, _lockout_to_row(lockout))

    async def list_lockouts(self) -> list[Lockout]:
        """Return every lockout ordered by lock and source."""
        rows = await self._db.fetch(f"{_LOCKOUT_SELECT} ORDER BY lock_id, source")
        return [_lockout_from_row(row) for row in rows]

    async def kv_get(self, key: str) -> str | None:
        """Return the value stored under ``key``, or None."""
        rows = await self._db.fetch("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def kv_set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; keys starting with ``store.`` are the store's own."""
        check_kv_key(key)
        await self._db.write(_KV_UPSERT, (key, value))


def _lock_from_row(row: sqlite3.Row) -> LockRow:
    lock_id, driver, state, battery, updated_at = row
    return LockRow(lock_id, driver, state, battery, from_db_time(updated_at))


def _lockout_from_row(row: sqlite3.Row) -> Lockout:
    lock_id, source, failures, level, locked_until = row
    return Lockout(lock_id, source, failures, level, optional_time(locked_until))
