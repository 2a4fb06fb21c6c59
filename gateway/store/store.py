"""The hub's durable state in one SQLite file: the ``Store`` facade."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

import aiosqlite
import structlog

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.replay import ReplayState

from .connection import BUSY_TIMEOUT_S, Quarantine, apply_pragmas, open_checked
from .database import Database
from .errors import StoreFullError, StoreLowSpaceError, translate
from .migrations import migrate
from .records import Outbox
from .rows import (
    ChainHead,
    Lockout,
    LockRow,
    NewRecord,
    StoredRecord,
    WindowRow,
)
from .space import RESERVE_BYTES, SpaceGuard, SpaceReserve
from .state import (
    StateTables,
    completed_batch,
    kv_batches,
    lockout_batch,
    replay_batch,
    window_batch,
)

log = structlog.get_logger(__name__)

ALERT_RECORD_TYPE: Final = "hub.alert"
# The record type whose appends may still create windows in low-space mode: a courier's
# token can bring a window the cloud never pushed, and its PoD must not be refused.
_POD_RECORD_TYPE: Final = "pod.recorded"
# The store cannot see the hub's trusted clock; its own alerts say so.
_STORE_CLOCK: Final = {"synced": False, "source": "store"}

T = TypeVar("T")


async def _prepare(conn: aiosqlite.Connection) -> int:
    """Set pragmas and migrate; close the connection and raise StoreError on failure."""
    try:
        await apply_pragmas(conn)
        return await migrate(conn)
    except BaseException as exc:
        await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise translate(exc) from exc
        raise


class Store:
    """The hub's durable state: windows, locks, the record outbox, replay and lockout state."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        path: Path,
        quarantined: Quarantine | None,
        reserve_bytes: int = 0,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._state = StateTables(db)
        self._space = SpaceGuard(SpaceReserve(path, reserve_bytes), self._alert)
        self.path = path
        self.quarantined = quarantined

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        signer: Signer,
        hub_id: str,
        now: Callable[[], datetime],
        busy_timeout: float = BUSY_TIMEOUT_S,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> Self:
        """Open (creating, migrating or quarantining as needed) the store at ``path``.

        ``reserve_bytes`` of disk are held beside it while it is open and given back when the
        disk fills (0: no reserve); see ``gateway.store.space``.
        """
        if signer.kid != hub_id:
            raise ValueError("records are signed with kid = hub_id; the signer's kid differs")
        conn, quarantined = await open_checked(Path(path), now, busy_timeout)
        schema = await _prepare(conn)
        db = Database(conn)
        outbox = Outbox(db, signer, hub_id, now)
        store = cls(db, outbox, Path(path), quarantined, reserve_bytes)
        if quarantined is not None:
            await store._alert_quarantined(quarantined)
        try:
            await store._space.claim()
        except BaseException:
            await db.close()
            raise
        log.info("store.opened", path=str(path), schema=schema)
        return store

    async def _alert_quarantined(self, quarantined: Quarantine) -> None:
        body = {
            "kind": "store.quarantined",
            "severity": "critical",
            "message": "the database was corrupt; it was moved aside and a new one started",
            "details": {"quarantined_path": str(quarantined.path), "reason": quarantined.reason},
            # Trust in the clock is settled after the store opens; until then, say so.
            "clock": {"synced": False, "source": "store-open"},
        }
        await self.append_records([NewRecord(ALERT_RECORD_TYPE, body)])

    async def _alert(
        self, kind: str, severity: str, message: str, details: dict[str, str | int | bool]
    ) -> bool:
        """Append a hub.alert of the store's own; False (and a log line) if the disk is full."""
        body = {
            "kind": kind,
            "severity": severity,
            "message": message,
            "details": details,
            "clock": dict(_STORE_CLOCK),
        }
        try:
            await self._outbox.append([NewRecord(ALERT_RECORD_TYPE, body)])
        except StoreFullError as exc:
            log.critical("store.alert_failed", kind=kind, error=str(exc))
            return False
        return True

    @property
    def low_space(self) -> bool:
        """True while the reserve is released: new windows are refused, PoD still lands."""
        return self._space.low

    async def _write(self, op: Callable[[], Awaitable[T]]) -> T:
        return await self._space.write(op)

    async def _refuse_new_windows(self, windows: Sequence[WindowRow]) -> None:
        known = await self._state.known_windows([w.window_id for w in windows])
        new = [w.window_id for w in windows if w.window_id not in known]
        if new:
            log.warning("store.windows_refused", windows=len(new), reason="low_space")
            raise StoreLowSpaceError(
                f"low on disk space: {len(new)} new window(s) refused until space returns"
            )

    async def close(self) -> None:
        """Wait for pending operations and close the database; closing twice is harmless."""
        await self._db.close()
        await self._space.drop()
        log.info("store.closed", path=str(self.path))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # The outbox.

    async def append_records(
        self,
        items: Sequence[NewRecord],
        *,
        windows: Sequence[WindowRow] = (),
        lockouts: Sequence[Lockout] = (),
        replay: Mapping[str, ReplayState] | None = None,
        completed_tasks: Mapping[str, datetime] | None = None,
        kv: Mapping[str, str | None] | None = None,
    ) -> list[StoredRecord]:
        """Sign, chain and store ``items`` with the window and lockout rows in ONE transaction.

        ``kv`` entries commit in the same transaction (None deletes the key; ``store.`` keys
        raise ValueError before anything is written).

        A proof of delivery, its outbox entry and the window's use count land together or not
        at all (``synchronous=FULL``): no crash can leave a used window without its record.
        In low-space mode, a write that would create a window and records no PoD raises
        ``StoreFullError`` and writes nothing.
        """
        also = []
        if windows:
            also.append(window_batch(windows))
        if lockouts:
            also.append(lockout_batch(lockouts))
        if replay:
            # A command's replay slot commits with its effects: redelivered after a crash
            # it is either applied once or refused as a replay, never half-done.
            also.append(replay_batch(replay))
        if completed_tasks:
            also.append(completed_batch(completed_tasks))
        if kv:
            also.extend(kv_batches(kv))
        guarded = bool(windows) and not any(i.type == _POD_RECORD_TYPE for i in items)

        async def append() -> list[StoredRecord]:
            if guarded and self._space.low:
                await self._refuse_new_windows(windows)
            return await self._outbox.append(items, also)

        return await self._write(append)

    async def chain_head(self) -> ChainHead:
        """Return the last committed record's seq and payload hash."""
        return await self._outbox.head()

    async def unacked(self, limit: int) -> list[StoredRecord]:
        """Return up to ``limit`` unacknowledged records, oldest first."""
        return await self._outbox.unacked(limit)

    async def outbox_depth(self) -> int:
        """Return how many records wait for an ack."""
        return await self._outbox.depth()

    async def ack(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Mark records in the inclusive seq ranges acked; return how many were newly acked."""
        return await self._write(lambda: self._outbox.ack(ranges))

    async def purge_acked(self, before: datetime) -> int:
        """Delete records acked before ``before``; return how many. Unacked ones stay."""
        return await self._write(lambda: self._outbox.purge_acked(before))

    # State tables.

    async def put_window(self, window: WindowRow) -> None:
        """Insert or replace the window with this ``window_id`` (refused as a new window in
        low-space mode)."""

        async def put() -> None:
            if self._space.low:
                await self._refuse_new_windows([window])
            await self._state.put_window(window)

        await self._write(put)

    async def get_window(self, window_id: str) -> WindowRow | None:
        """Return the window, or None if unknown."""
        return await self._state.get_window(window_id)

    async def list_windows(self, lock_id: str | None = None) -> list[WindowRow]:
        """Return all windows (or one lock's), ordered by start then id."""
        return await self._state.list_windows(lock_id)

    async def page_windows(
        self,
        after: str | None,
        limit: int,
        *,
        lock_id: str | None = None,
        states: frozenset[str] | None = None,
    ) -> list[WindowRow]:
        """Up to ``limit`` windows (no tombstones) with ids above ``after``, by id; ``lock_id``
        and stored ``states`` narrow them."""
        return await self._state.page_windows(after, limit, lock_id=lock_id, states=states)

    async def put_lock(self, lock: LockRow) -> None:
        """Insert or replace the lock with this ``lock_id``."""
        await self._write(lambda: self._state.put_lock(lock))

    async def get_lock(self, lock_id: str) -> LockRow | None:
        """Return the lock, or None if unknown."""
        return await self._state.get_lock(lock_id)

    async def list_locks(self) -> list[LockRow]:
        """Return every lock ordered by id."""
        return await self._state.list_locks()

    async def completed_tasks(self) -> dict[str, datetime]:
        """Every remembered completed task with its completion time."""
        return await self._state.completed_tasks()

    async def prune_completed_tasks(self, before: datetime) -> int:
        """Forget tasks completed before ``before``; return how many."""
        return await self._write(lambda: self._state.prune_completed_tasks(before))

    async def load_replay(self) -> dict[str, ReplayState]:
        """Return the persisted replay window of every command-signing key, by kid."""
        return await self._state.load_replay()

    async def save_replay(self, kid: str, state: ReplayState) -> None:
        """Persist the replay window of ``kid`` (commit it before applying the command)."""
        await self._write(lambda: self._state.save_replay(kid, state))

    async def get_lockout(self, lock_id: str, source: str) -> Lockout | None:
        """Return the lockout of (lock, source), or None."""
        return await self._state.get_lockout(lock_id, source)

    async def put_lockout(self, lockout: Lockout) -> None:
        """Insert or replace the lockout of (lock, source)."""
        await self._write(lambda: self._state.put_lockout(lockout))

    async def list_lockouts(self) -> list[Lockout]:
        """Return every lockout ordered by lock and source."""
        return await self._state.list_lockouts()

    async def kv_get(self, key: str) -> str | None:
        """Return the value stored under ``key``, or None."""
        return await self._state.kv_get(key)

    async def kv_set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; keys starting with ``store.`` are reserved."""
        await self._write(lambda: self._state.kv_set(key, value))
