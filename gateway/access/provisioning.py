"""Lock-side codes for lock-enforced windows: set on the keypad when the window opens, removed
when it closes, is used up or is revoked; progress reported as ``window.status`` records.

States (``lock_side``): pending -> set_on_lock | failed_on_lock -> removed_from_lock. The
sealed code is opened only to program the lock and is dropped from the store once the lock
holds it, once the lock refused it for good, or once the window ended without it. Each window
has at most one reconcile task at a time; a change while it runs makes it run once more.

Untrusted time: under the deny policy no code is set (a code on a keypad admits couriers on
the lock's own terms, and untrusted time may have opened the window days early); the window
waits and is reconciled again when trust returns. Removals go ahead whatever the clock says
when they do not depend on it (a revoke, a used-up window, a code replaced by a newer
version): taking a code off early only refuses. Expiry does depend on it: the engine commits
no expiry on untrusted time, so no code is removed for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import timedelta

import structlog

from ..clock import TrustedClock
from ..locks.coordinator import LockCoordinator
from ..locks.driver import KeypadCode, LockError, LockRefusedError
from ..store import Store, StoreError, WindowRow
from . import records
from .windows import (
    LOCK_ENFORCED,
    TERMINAL,
    WindowCache,
    WindowState,
    closes_at,
    opens_at,
    state_at,
)

log = structlog.get_logger(__name__)

# A BLE lock that failed once usually answers on the next try; four tries with doubling waits
# (1, 2, 4 s) ride out a busy adapter without holding a window's code back for long.
PROVISION_ATTEMPTS = 4
PROVISION_BACKOFF_SECONDS = 1.0
# After those tries fail on an unreachable lock, the hub keeps trying in the background while
# the window lasts (a code must reach the lock) or until a stale code is gone (a code left on a
# keypad past its window is a way in): first after a minute, doubling to every 15 minutes.
RECHECK_INITIAL_SECONDS = 60.0
RECHECK_MAX_SECONDS = 900.0
# Keypad code names are short on every lock we know (Nuki: 20 characters).
KEYPAD_NAME_LENGTH = 20

Sleep = Callable[[float], Awaitable[None]]


class Provisioner:
    """Keeps each lock's keypad in step with the lock-enforced windows of that lock."""

    def __init__(
        self,
        *,
        store: Store,
        cache: WindowCache,
        coordinators: Mapping[str, LockCoordinator],
        open_code: Callable[[WindowRow], str],
        clock: TrustedClock,
        grace: timedelta,
        sleep: Sleep = asyncio.sleep,
        deny_untrusted: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._cache = cache
        self._coordinators = coordinators
        self._open_code = open_code
        self._clock = clock
        self._grace = grace
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        # Windows whose lock-side step failed on an unreachable lock, with the next wait.
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._recheck_delay: dict[str, float] = {}
        self._retryable: set[str] = set()
        # The policy for untrusted time (a callable: a config reload may change it), and the
        # windows whose code waits for trusted time.
        self._deny_untrusted = deny_untrusted
        self._awaiting_trust: set[str] = set()

    def consider(self, row: WindowRow) -> None:
        """Reconcile ``row``'s lock-side state soon (no-op for hub-enforced windows)."""
        if row.enforcement not in LOCK_ENFORCED and row.keypad_code_id is None:
            return
        if row.window_id in self._tasks:
            self._again.add(row.window_id)
            return
        task = asyncio.create_task(self._run(row.window_id), name=f"provision {row.window_id}")
        self._tasks[row.window_id] = task

    @property
    def busy(self) -> bool:
        """True while a reconcile task runs."""
        return bool(self._tasks)

    @property
    def awaiting_trust(self) -> bool:
        """True while a window's code waits for trusted time to be set."""
        return bool(self._awaiting_trust)

    def trust_returned(self) -> None:
        """The clock is trusted: reconcile every window that waited for it."""
        waiting, self._awaiting_trust = self._awaiting_trust, set()
        for window_id in waiting:
            row = self._cache.get(window_id)
            if row is not None:
                self.consider(row)

    async def idle(self) -> None:
        """Wait until no reconcile task is running."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel running reconciles (they resume from the store on the next start)."""
        tasks = [*self._tasks.values(), *self._rechecks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _recheck_later(self, window_id: str) -> None:
        """Reconcile ``window_id`` again after a growing wait (the lock was unreachable)."""
        if window_id in self._rechecks:
            return
        delay = self._recheck_delay.get(window_id, RECHECK_INITIAL_SECONDS)
        self._recheck_delay[window_id] = min(delay * 2, RECHECK_MAX_SECONDS)

        async def wait_then_reconsider() -> None:
            await self._sleep(delay)
            self._rechecks.pop(window_id, None)
            row = self._cache.get(window_id)
            if row is not None:
                self.consider(row)

        task = asyncio.create_task(wait_then_reconsider(), name=f"recheck {window_id}")
        self._rechecks[window_id] = task
        log.info("provision.recheck", window_id=window_id, in_seconds=delay)

    def _settled(self, window_id: str) -> None:
        """The lock-side step succeeded: forget the window's recheck state."""
        self._retryable.discard(window_id)
        self._recheck_delay.pop(window_id, None)

    async def _run(self, window_id: str) -> None:
        try:
            while True:
                self._again.discard(window_id)
                await self._reconcile(window_id)
                if window_id not in self._again:
                    return
        except (StoreError, LockError) as exc:
            log.error("provision.failed", window_id=window_id, error=str(exc))
        finally:
            self._tasks.pop(window_id, None)

    async def _reconcile(self, window_id: str) -> None:
        row = self._cache.get(window_id)
        if row is None:
            return
        coordinator = self._coordinators.get(row.lock_id)
        if coordinator is None:
            return
        if row.keypad_code_id is not None and row.lock_side == "pending":
            # The lock holds an older version's code: off with it now, whatever the time.
            await self._remove(row, coordinator)
            row = self._current(row)
            if row.keypad_code_id is not None:
                return  # not removed (alerted): the recheck tries again before anything else
        reading = self._clock.read()
        state = state_at(row, reading.now, self._grace)
        if state is not WindowState(row.state):
            # A deadline passed and the engine has not committed the new state yet (or holds
            # it on untrusted time); it reconsiders the row once it has (acting now would race
            # its write of the row).
            return
        if state in TERMINAL:
            await self._retire(row, coordinator)
        elif state is WindowState.ACTIVE and row.code_sealed and self._wants_code(row):
            if not reading.status.synced and self._deny_untrusted():
                self._awaiting_trust.add(window_id)
                log.info("provision.awaiting_trusted_time", window_id=window_id)
                return
            await self._set(row, coordinator)

    async def _retire(self, row: WindowRow, coordinator: LockCoordinator) -> None:
        """A window ended: its code comes off the lock and its sealed copy out of the store."""
        if row.keypad_code_id is not None:
            await self._remove(row, coordinator)  # drops the sealed copy in the same write
            return
        if row.code_sealed is None:
            return
        async with self._cache.write_lock:
            current = self._current(row)
            if current.code_sealed is None or WindowState(current.state) not in TERMINAL:
                return
            # No record: the window's end was reported; only the now useless seal goes.
            forgotten = replace(current, code_sealed=None, updated_at=self._clock.now())
            await self._store.put_window(forgotten)
            self._cache.put(forgotten)
        log.info("provision.seal_dropped", window_id=row.window_id, lock_id=row.lock_id)

    def _wants_code(self, row: WindowRow) -> bool:
        if row.lock_side == "pending":
            return True
        # A code refused by the lock (full keypad, duplicate) is not retried; one that failed
        # on an unreachable lock is, while the window lasts.
        return row.lock_side == "failed_on_lock" and row.window_id in self._retryable

    async def _retrying(self, action: Callable[[], Awaitable[int | None]]) -> int | None:
        delay = PROVISION_BACKOFF_SECONDS
        for attempt in range(1, PROVISION_ATTEMPTS + 1):
            try:
                return await action()
            except LockRefusedError:
                raise
            except LockError:
                if attempt == PROVISION_ATTEMPTS:
                    raise
                await self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _set(self, row: WindowRow, coordinator: LockCoordinator) -> None:
        if row.keypad_code_id is not None:
            # A newer version of the window replaces the code the lock holds.
            await self._remove(row, coordinator)
            row = self._cache.get(row.window_id) or row
            if row.keypad_code_id is not None:
                return  # not removed (alerted); the recheck removes it, then sets the new one
        code = KeypadCode(
            code=self._open_code(row),
            name=f"lh {row.window_id}"[:KEYPAD_NAME_LENGTH],
            valid_from=opens_at(row, self._grace),
            valid_until=closes_at(row, self._grace),
        )
        try:
            code_id = await self._retrying(lambda: coordinator.add_keypad_code(code))
        except LockError as exc:
            await self._set_failed(row, exc)
            return
        async with self._cache.write_lock:
            current = self._current(row)
            same_code = current.code_sealed == row.code_sealed
            done = replace(
                current,
                keypad_code_id=code_id,
                lock_side="set_on_lock" if same_code else current.lock_side,
                code_sealed=None if same_code else current.code_sealed,
                updated_at=self._clock.now(),
            )
            await self._commit(done, "set_on_lock", None, reported=row)
        self._settled(row.window_id)

    async def _set_failed(self, row: WindowRow, exc: LockError) -> None:
        """Report a code the lock did not take; drop its seal when the refusal is final."""
        refused = isinstance(exc, LockRefusedError)
        if refused:
            self._retryable.discard(row.window_id)
        else:
            self._retryable.add(row.window_id)
            self._recheck_later(row.window_id)
            if row.lock_side == "failed_on_lock":
                return  # already reported; the recheck goes on quietly
        async with self._cache.write_lock:
            current = self._current(row)
            # A newer code that arrived meanwhile is still to be tried (the run goes again).
            same_code = current.code_sealed == row.code_sealed
            failed = replace(
                current,
                lock_side="failed_on_lock" if same_code else "pending",
                # A refused code is never tried again (full keypad, duplicate, bad format):
                # its sealed copy has no more use, and a copy kept is a copy to protect.
                code_sealed=None if refused and same_code else current.code_sealed,
                updated_at=self._clock.now(),
            )
            await self._commit(failed, "failed_on_lock", type(exc).__name__, reported=row)

    async def _remove(self, row: WindowRow, coordinator: LockCoordinator) -> None:
        code_id = row.keypad_code_id
        if code_id is None:
            return

        async def remove() -> None:
            await coordinator.remove_keypad_code(code_id)

        try:
            await self._retrying(remove)
        except LockError as exc:
            first = row.window_id not in self._recheck_delay
            self._recheck_later(row.window_id)
            if not first:
                return  # alerted once; the recheck goes on quietly
            clock = self._clock.status().as_record()
            await self._store.append_records(
                [
                    records.alert(
                        "keypad_code_not_removed",
                        "critical",
                        "a window's code could not be removed from the lock's keypad",
                        clock,
                        {"window_id": row.window_id, "lock_id": row.lock_id, "error": str(exc)},
                    )
                ]
            )
            return
        async with self._cache.write_lock:
            now = self._clock.now()
            current = self._current(row)
            # A window that still has a code to program (a newer version) stays pending, so
            # that a restart between removing the old code and setting the new one sets it.
            # The committed state, not the time: the engine commits an ended window (and
            # only on trusted time); the end it commits reconsiders the row, seal and all.
            live = WindowState(current.state) not in TERMINAL
            waiting = current.code_sealed is not None and live
            removed = replace(
                current,
                keypad_code_id=None,
                lock_side="pending" if waiting else "removed_from_lock",
                # An ended window's seal (a newer version never set) has no more use.
                code_sealed=current.code_sealed if live else None,
                updated_at=now,
            )
            await self._commit(removed, "removed_from_lock", None, reported=row)
        self._settled(row.window_id)

    def _current(self, row: WindowRow) -> WindowRow:
        """The window as the cache holds it now (only its lock-side fields are ours to write)."""
        # Commands, uses and deadlines may have changed the row while the lock was busy.
        return self._cache.get(row.window_id) or row

    async def _commit(
        self, row: WindowRow, status: str, detail: str | None, *, reported: WindowRow
    ) -> None:
        """Commit a lock-side change (the caller holds the cache's write lock)."""
        clock = self._clock.status().as_record()
        # The status names the version whose code the lock acted on.
        record = records.window_status(reported, status, clock, detail)
        await self._store.append_records([record], windows=[row])
        self._cache.put(row)
        log.info("provision." + status, window_id=row.window_id, lock_id=row.lock_id)
