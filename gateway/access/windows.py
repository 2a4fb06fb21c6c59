"""The window cache: every window in memory, indexed by code and deadline, mirrored in SQLite.

Changes follow DESIGN.md section 3: a change applies only when its ``version`` is higher than
the one held, so order and duplicates do not matter. A revoke for a window the hub never saw
leaves a tombstone, so a late upsert or a courier token for that window cannot revive it.
The cache only computes; callers persist the rows and records it returns in one transaction.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from cloud_sync.protocol.commands import WindowUpsertBody

from ..store import Courier, WindowRow


class WindowState(StrEnum):
    """A window's life: scheduled -> active -> used | expired | revoked."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


TERMINAL = frozenset({WindowState.USED, WindowState.EXPIRED, WindowState.REVOKED})
LOCK_ENFORCED = frozenset({"lock", "both"})
HUB_ENFORCED = frozenset({"hub", "both"})
# Tombstones need values for the NOT NULL columns of a window they never saw.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
K = TypeVar("K", bytes, str)


def opens_at(window: WindowRow, grace: timedelta) -> datetime:
    """When the window starts admitting couriers (``starts_at`` minus grace)."""
    return window.starts_at - grace


def closes_at(window: WindowRow, grace: timedelta) -> datetime:
    """When the window stops admitting couriers (``ends_at`` plus grace)."""
    return window.ends_at + grace


def used_up(window: WindowRow) -> bool:
    """True when ``max_uses`` is set and reached."""
    return window.max_uses is not None and window.uses >= window.max_uses


def with_state(row: WindowRow, state: WindowState, now: datetime) -> WindowRow:
    """``row`` in ``state`` as of ``now``; a terminal state drops the sealed code for good."""
    sealed = None if state in TERMINAL else row.code_sealed
    return replace(row, state=state, code_sealed=sealed, updated_at=now)


# The window.status each state reports when a window reaches it. ``scheduled`` and ``active``
# have no status of their own in the protocol: ``applied`` says the hub holds the version.
STATUS_OF = {
    WindowState.USED: "used",
    WindowState.EXPIRED: "expired",
    WindowState.REVOKED: "revoked",
}


def state_at(window: WindowRow, now: datetime, grace: timedelta) -> WindowState:
    """The state ``window`` is in at ``now``, terminal states being sticky."""
    held = WindowState(window.state)
    if held in TERMINAL:
        return held
    if used_up(window):
        return WindowState.USED
    if now >= closes_at(window, grace):
        return WindowState.EXPIRED
    if now >= opens_at(window, grace):
        return WindowState.ACTIVE
    return WindowState.SCHEDULED


@dataclass(frozen=True, slots=True)
class Change:
    """One window's new row and the ``window.status`` it reports (None: nothing to report)."""

    row: WindowRow
    status: str | None
    detail: str | None = None
    # An upsert's row before the time moved it on (``row`` is that row settled at ``now``).
    unsettled: WindowRow | None = None


def held_back(change: Change) -> Change:
    """``change`` as it commits when the time may not move the window on (untrusted clock):
    still ``scheduled``, its sealed code kept, reported as ``applied``."""
    row = change.unsettled or change.row
    return Change(replace(row, state=WindowState.SCHEDULED), "applied", change.detail)


def row_from_upsert(
    body: WindowUpsertBody, code_hash: bytes, held: WindowRow | None, now: datetime
) -> WindowRow:
    """The row an accepted ``window.upsert`` produces (uses and lock-side state carry over)."""
    lock_enforced = body.enforcement in LOCK_ENFORCED
    courier = Courier(body.courier.id, body.courier.name) if body.courier else None
    keep = held is not None and held.origin != "tombstone"
    return WindowRow(
        window_id=body.window_id,
        tenant_id=body.tenant_id,
        task_id=body.task_id,
        lock_id=body.lock_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        version=body.version,
        max_uses=body.max_uses,
        uses=held.uses if keep and held else 0,
        enforcement=body.enforcement,
        state=WindowState.SCHEDULED,
        code_hash=code_hash,
        # The sealed code is kept only while the lock's keypad still has to be programmed.
        code_sealed=body.code_sealed if lock_enforced else None,
        courier=courier,
        carrier_job_id=body.carrier_job_id,
        updated_at=now,
        keypad_code_id=held.keypad_code_id if keep and held else None,
        lock_side="pending" if lock_enforced else "none",
        origin="push",
    )


def tombstone(window_id: str, version: int, now: datetime) -> WindowRow:
    """A revoked placeholder for a window this hub never received."""
    return WindowRow(
        window_id=window_id,
        tenant_id="",
        task_id="",
        lock_id="",
        starts_at=_EPOCH,
        ends_at=_EPOCH,
        version=version,
        max_uses=None,
        uses=0,
        enforcement="hub",
        state=WindowState.REVOKED,
        code_hash=b"",
        code_sealed=None,
        courier=None,
        carrier_job_id=None,
        updated_at=now,
        origin="tombstone",
    )


def _discard(index: dict[K, set[str]], key: K, window_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(window_id)
        if not ids:
            del index[key]


@dataclass
class WindowCache:
    """All windows in memory: by id, by keyed code hash, by task, and a heap of deadlines."""

    grace: timedelta
    _by_id: dict[str, WindowRow] = field(default_factory=dict)
    _by_code: dict[bytes, set[str]] = field(default_factory=dict)
    _by_task: dict[str, set[str]] = field(default_factory=dict)
    _by_keypad: dict[tuple[str, int], str] = field(default_factory=dict)
    _deadlines: list[tuple[datetime, str, int]] = field(default_factory=list)
    # Completed tasks by completion time: a late upsert of their windows revives nothing.
    _completed: dict[str, datetime] = field(default_factory=dict)
    # Windows by stored state, kept as rows come and go: metrics and admin views read it
    # without walking 100,000 rows.
    _counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WindowState, 0))
    # Held from reading rows to putting their committed successors, by every writer (commands,
    # deadlines, PoD, provisioning), so that no write is lost to another one in flight.
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[WindowRow]:
        return iter(self._by_id.values())

    def task_completed(self, task_id: str) -> bool:
        """True when ``task.complete`` arrived for this task."""
        return task_id in self._completed

    def complete_task(self, task_id: str, at: datetime) -> None:
        """Remember a completed task."""
        self._completed[task_id] = at

    def get(self, window_id: str) -> WindowRow | None:
        """The window with this id, tombstones included."""
        return self._by_id.get(window_id)

    def by_code(self, code_hash: bytes) -> list[WindowRow]:
        """Windows whose keyed code hash is ``code_hash`` (the hash already binds the lock)."""
        return [self._by_id[w] for w in self._by_code.get(code_hash, ())]

    def by_task(self, task_id: str) -> list[WindowRow]:
        """Every window of a task."""
        return [self._by_id[w] for w in self._by_task.get(task_id, ())]

    def by_keypad_id(self, lock_id: str, code_id: int) -> WindowRow | None:
        """The window whose code sits in ``lock_id``'s keypad under ``code_id``."""
        window_id = self._by_keypad.get((lock_id, code_id))
        return None if window_id is None else self._by_id.get(window_id)

    def load(self, rows: Iterable[WindowRow]) -> None:
        """Fill the cache from the store at start."""
        for row in rows:
            self.put(row)

    def put(self, row: WindowRow) -> None:
        """Insert or replace a window and re-index it."""
        old = self._by_id.get(row.window_id)
        if old is not None:
            self._unindex(old)
            self._counts[old.state] -= 1
        self._by_id[row.window_id] = row
        self._counts[row.state] += 1
        if row.code_hash:
            self._by_code.setdefault(row.code_hash, set()).add(row.window_id)
        if row.task_id:
            self._by_task.setdefault(row.task_id, set()).add(row.window_id)
        if row.keypad_code_id is not None:
            self._by_keypad[row.lock_id, row.keypad_code_id] = row.window_id
        if WindowState(row.state) in TERMINAL:
            return
        deadline = self._deadline(row)
        unchanged = (
            old is not None
            and old.version == row.version
            and WindowState(old.state) not in TERMINAL
            and self._deadline(old) == deadline
        )
        # A use or a lock-side change leaves the deadline where it was: its heap entry stands.
        if not unchanged:
            heapq.heappush(self._deadlines, (deadline, row.window_id, row.version))

    def requeue(self, window_id: str) -> None:
        """Schedule a window's deadline again (after ``due`` took it but its commit failed)."""
        row = self._by_id.get(window_id)
        if row is not None and WindowState(row.state) not in TERMINAL:
            heapq.heappush(self._deadlines, (self._deadline(row), row.window_id, row.version))

    def _unindex(self, row: WindowRow) -> None:
        _discard(self._by_code, row.code_hash, row.window_id)
        _discard(self._by_task, row.task_id, row.window_id)
        if row.keypad_code_id is not None:
            slot = (row.lock_id, row.keypad_code_id)
            # A slot freed by this window may already hold another window's code.
            if self._by_keypad.get(slot) == row.window_id:
                del self._by_keypad[slot]

    def _deadline(self, row: WindowRow) -> datetime:
        if WindowState(row.state) is WindowState.SCHEDULED:
            return opens_at(row, self.grace)
        return closes_at(row, self.grace)

    def next_deadline(self) -> datetime | None:
        """The earliest moment a window opens or closes, skipping stale heap entries."""
        while self._deadlines:
            moment, window_id, version = self._deadlines[0]
            row = self._by_id.get(window_id)
            if (
                row is not None
                and row.version == version
                and WindowState(row.state) not in TERMINAL
                and self._deadline(row) == moment
            ):
                return moment
            heapq.heappop(self._deadlines)
        return None

    def due(self, now: datetime) -> list[Change]:
        """Take every window whose deadline passed and return its state at ``now``.

        The cache keeps the old rows: the caller commits the changes, then ``put``s them (or
        ``requeue``s them to retry after a failed commit).
        """
        changes: list[Change] = []
        seen: set[str] = set()
        while (moment := self.next_deadline()) is not None and moment <= now:
            _, window_id, _ = heapq.heappop(self._deadlines)
            if window_id in seen:  # a window re-put (a use) leaves duplicate heap entries
                continue
            seen.add(window_id)
            row = self._by_id[window_id]
            new_state = state_at(row, now, self.grace)
            status = STATUS_OF.get(new_state) if new_state != row.state else None
            changes.append(Change(with_state(row, new_state, now), status))
        return changes

    def counts(self) -> dict[str, int]:
        """How many windows are in each state (tombstones count as revoked)."""
        return {WindowState(state).value: n for state, n in self._counts.items()}
