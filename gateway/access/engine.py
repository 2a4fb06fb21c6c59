"""The access engine: applies window commands, decides unlocks, turns lock events into PoD.

Everything here works with no network: windows live in the store and in memory, codes and
tokens are checked locally, time comes from the trusted clock, and every outcome becomes a
signed record in the outbox. Deadlines (a window opening or closing) are slept on exactly:
the engine wakes at the next one, or when something can move it (a window change, a change of
trust in the clock, a forward step of time); it never polls. On untrusted time it commits no
expiry, and under the deny policy no opening either: a committed state is permanent (an
expired window loses its keypad code for good), and time that may be days off must not decide
it. Decisions still follow the policy meanwhile; the transitions follow once time is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.messages import Command
from cloud_sync.protocol.replay import ReplayState
from cloud_sync.protocol.sealing import open_code

from ..clock import Reading, TrustedClock
from ..identity import HubKeys
from ..locks.coordinator import LockCoordinator
from ..locks.driver import LockError
from ..store import Store, StoreError, WindowRow
from . import records
from .apply import SYNC_MARK_KEY, Outcome, SyncMark, SyncPages, apply_command
from .codes import code_hash, well_formed
from .decide import Context, Grant, Refusal, decide_code, decide_token
from .events import EventRecorder, Pending
from .lockout import Lockouts
from .provisioning import Provisioner
from .windows import Change, WindowCache, WindowState, held_back, state_at

log = structlog.get_logger(__name__)

# BLE locks take 2-8 s to move the bolt and report it; 15 s covers a retry of the command.
UNLOCK_CONFIRM_TIMEOUT = 15.0
# Commands live at most 31 days (protocol); a completed task is remembered a day longer, so
# that no upsert overtaken by its task.complete can still arrive and revive a window.
COMPLETED_TASK_MEMORY = timedelta(days=32)
# After a failed commit of deadline changes (disk full), wait this long before trying again.
COMMIT_RETRY_SECONDS = 5.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Policy: grace at both ends of a window, and what to do while time is untrusted."""

    grace: timedelta
    deny_untrusted: bool = True
    confirm_timeout: float = UNLOCK_CONFIRM_TIMEOUT


@dataclass(frozen=True, slots=True)
class Unlocked:
    """The lock confirmed the unlock; a PoD was recorded."""

    window_id: str
    pod_id: str


@dataclass(frozen=True, slots=True)
class Denied:
    """Refused; ``reason`` is for logs and records, never for the courier."""

    reason: str


@dataclass(frozen=True, slots=True)
class LockedOut:
    """Too many wrong attempts: try again after ``retry_after`` seconds."""

    retry_after: float


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The lock could not be reached or did not confirm; the attempt is recorded."""

    reason: str


@dataclass(frozen=True, slots=True)
class UnknownLock:
    """No lock with that id on this hub."""


UnlockResult = Unlocked | Denied | LockedOut | Unavailable | UnknownLock


class AccessEngine:
    """Windows, decisions and proof of delivery for every lock of one hub."""

    def __init__(
        self,
        *,
        hub_id: str,
        store: Store,
        clock: TrustedClock,
        keys: HubKeys,
        command_keys: Mapping[str, Ed25519PublicKey],
        lockouts: Lockouts,
        settings: AccessSettings,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub_id = hub_id
        self.store = store
        self.clock = clock
        self.lockouts = lockouts
        self.settings = settings
        self.cache = WindowCache(settings.grace)
        self.coordinators: dict[str, LockCoordinator] = {}
        self._keys = keys
        self._command_keys = command_keys
        self._sleep = sleep
        self._pages = SyncPages()
        # Set by anything that can move the next deadline; the deadline loop waits on it.
        self._wake = asyncio.Event()
        # Windows whose deadline passed on untrusted time, their transition not committed.
        self._held: set[str] = set()
        # Passes of the deadline loop: each is a deadline reached or a wake (never a poll).
        self.iterations = 0
        clock.on_change(self._wake.set)
        self.provisioner = Provisioner(
            store=store,
            cache=self.cache,
            coordinators=self.coordinators,
            open_code=self._plain_code,
            clock=clock,
            grace=settings.grace,
            sleep=sleep,
            deny_untrusted=lambda: self.settings.deny_untrusted,
        )
        self.events = EventRecorder(
            store=store,
            cache=self.cache,
            clock=clock,
            provisioner=self.provisioner,
            grace=settings.grace,
            monotonic=monotonic,
        )
        self.attempts: dict[str, int] = {}
        # Refreshed by the metrics endpoint before each scrape.
        self.outbox_depth = 0
        self._advancing = False

    def attach(self, coordinators: Mapping[str, LockCoordinator]) -> None:
        """Give the engine the coordinators of this hub's locks."""
        self.coordinators.update(coordinators)

    async def start(self) -> None:
        """Load windows, completed tasks and lockouts; resume lock-side provisioning."""
        self.cache.load(await self.store.list_windows())
        await self.store.prune_completed_tasks(self.clock.now() - COMPLETED_TASK_MEMORY)
        for task_id, at in (await self.store.completed_tasks()).items():
            self.cache.complete_task(task_id, at)
        self._pages = SyncPages(mark=SyncMark.load(await self.store.kv_get(SYNC_MARK_KEY)))
        await self.lockouts.load()
        for row in self.cache:
            self.provisioner.consider(row)
        log.info("access.started", windows=len(self.cache))

    def _clock(self) -> dict[str, object]:
        return self.clock.status().as_record()

    def _plain_code(self, row: WindowRow) -> str:
        if row.code_sealed is None:
            raise ValueError("the sealed code is gone")
        return open_code(row.code_sealed, row.window_id, self._keys.sealing)

    def _open_hash(self, sealed: str, window_id: str, lock_id: str) -> bytes:
        code = open_code(sealed, window_id, self._keys.sealing)
        return code_hash(self._keys.code_secret, lock_id, code)

    # Commands.

    async def apply(self, command: Command, kid: str, replay: ReplayState) -> Outcome:
        """Apply a verified, accepted command; commit its effects, result and replay slot."""
        async with self.cache.write_lock:
            reading = self.clock.read()
            now = reading.now
            # Sync pages are adopted only once the commit succeeded.
            pages = replace(self._pages, bodies=dict(self._pages.bodies))
            outcome = apply_command(command, self.cache, pages, self._open_hash, now)
            if not reading.status.synced:
                outcome.changes = [self._untimed(c) for c in outcome.changes]
            clock = reading.status.as_record()
            batch = [records.command_result(command, kid, outcome.result, outcome.reason, clock)]
            batch += [
                records.window_status(c.row, c.status, clock, c.detail)
                for c in outcome.changes
                if c.status is not None
            ]
            rows = [change.row for change in outcome.changes]
            completed = {outcome.completed_task: now} if outcome.completed_task else None
            await self.store.append_records(
                batch,
                windows=rows,
                replay={kid: replay},
                completed_tasks=completed,
                kv=outcome.kv or None,
            )
            self._pages = pages
            if outcome.completed_task:
                self.cache.complete_task(outcome.completed_task, now)
            self._adopt(rows)
        log.info("command.applied", type=command.type, result=outcome.result, changes=len(rows))
        return outcome

    async def reject(self, command: Command, kid: str, reason: str) -> None:
        """Record that a verified command was refused (expired, wrong hub, replayed)."""
        record = records.command_result(command, kid, "rejected", reason, self._clock())
        await self.store.append_records([record])
        log.warning("command.rejected", type=command.type, kid=kid, reason=reason)

    def _untimed(self, change: Change) -> Change:
        """``change`` with a state that untrusted time decided put back to ``scheduled``.

        Only upserts compute a state from the time (revokes do not); the deadline loop moves
        the row on from ``scheduled`` as far as trusted time (or the allow policy) lets it.
        """
        return held_back(change) if self._hold(WindowState(change.row.state)) else change

    def _hold(self, state: WindowState) -> bool:
        """Whether untrusted time may not commit a move into ``state``."""
        if state is WindowState.EXPIRED:
            return True
        return state is WindowState.ACTIVE and self.settings.deny_untrusted

    def _adopt(self, rows: list[WindowRow]) -> None:
        for row in rows:
            self.cache.put(row)
            self.provisioner.consider(row)
        self._wake.set()

    # Unlocks.

    async def unlock(
        self, lock_id: str, *, source: str, code: str | None = None, token: str | None = None
    ) -> UnlockResult:
        """Decide and, if granted, open the lock and wait for its confirmation."""
        coordinator = self.coordinators.get(lock_id)
        if coordinator is None:
            return UnknownLock()
        retry = self.lockouts.retry_after(lock_id, source)
        if retry is not None:
            self._count("locked_out")
            return LockedOut(retry)
        credential = "code" if token is None else "token"
        reading = self.clock.read()
        if self.settings.deny_untrusted and not reading.status.synced:
            return await self._deny(lock_id, source, credential, Refusal("clock_untrusted", False))
        decision = self._decide(lock_id, code, token, reading)
        if isinstance(decision, Refusal):
            return await self._deny(lock_id, source, credential, decision)
        return await self._open(coordinator, decision, source)

    def _decide(
        self, lock_id: str, code: str | None, token: str | None, reading: Reading
    ) -> Grant | Refusal:
        ctx = Context(reading.now, self.settings.grace, self.events.in_flight())
        if token is not None:
            return decide_token(
                token,
                lock_id,
                hub_id=self.hub_id,
                keys=self._command_keys,
                held_for=self.cache.get,
                ctx=ctx,
                completed=self.cache.task_completed,
                sync_mark=self._pages.mark,
            )
        if code is None or not well_formed(code):
            # Checked before hashing: no odd input reaches the hash, and none needs a lookup.
            return Refusal("no_match")
        digest = code_hash(self._keys.code_secret, lock_id, code)
        return decide_code(code, lock_id, self._keys.code_secret, self.cache.by_code(digest), ctx)

    async def _deny(self, lock_id: str, source: str, credential: str, refusal: Refusal) -> Denied:
        clock = self._clock()
        record = records.denied(lock_id, source, credential, refusal.reason, clock)
        if refusal.counts_as_guess:
            # The denial, the counters and any lockout record commit together.
            await self.lockouts.failure(lock_id, source, clock, with_records=[record])
        else:
            await self.store.append_records([record])
        self._count("denied")
        log.info("access.denied", lock_id=lock_id, source=source, reason=refusal.reason)
        return Denied(refusal.reason)

    async def _open(self, coordinator: LockCoordinator, grant: Grant, source: str) -> UnlockResult:
        pending = self.events.expect(Pending(new_ulid(), coordinator.lock_id, grant, source))
        if self.cache.get(grant.window.window_id) is None:
            # A token's window is stored with its PoD (events.py), its deadline new to the
            # deadline loop: the loop wakes to schedule it once that PoD has committed.
            pending.future.add_done_callback(lambda _: self._wake.set())
        try:
            await coordinator.unlock(pending.request_id)
        except LockError as exc:
            self.events.forget(pending)
            await self.events.unlock_failed(pending, exc)
            self._count("unavailable")
            return Unavailable(type(exc).__name__)
        try:
            pod_id = await asyncio.wait_for(
                asyncio.shield(pending.future), self.settings.confirm_timeout
            )
        except TimeoutError:
            # The pending unlock stays registered for a while: a late confirmation still
            # becomes a PoD for this window.
            self._count("unconfirmed")
            return Unavailable("unconfirmed")
        await self.lockouts.success(coordinator.lock_id, source)
        self._count("unlocked")
        return Unlocked(grant.window.window_id, pod_id)

    def _count(self, result: str) -> None:
        self.attempts[result] = self.attempts.get(result, 0) + 1

    # Deadlines.

    def caught_up(self) -> bool:
        """True when no deadline has passed unhandled and no reconcile is running.

        Transitions held back on untrusted time count as handled until trust returns.
        """
        if self._advancing or self.provisioner.busy or self._wake.is_set():
            return False
        reading = self.clock.read()
        if reading.status.synced and (self._held or self.provisioner.awaiting_trust):
            return False
        deadline = self.cache.next_deadline()
        return deadline is None or deadline > reading.now

    async def run(self) -> None:
        """Move windows through their states at their deadlines, forever (cancel to stop)."""
        while True:
            await self._sleep_until_due()
            self.iterations += 1
            self._advancing = True
            try:
                await self._advance()
            finally:
                self._advancing = False

    async def _advance(self) -> None:
        while True:
            async with self.cache.write_lock:
                reading = self.clock.read()
                changes = self._due(reading)
                if not changes:
                    break
                clock = reading.status.as_record()
                batch = [records.window_status(c.row, c.status, clock) for c in changes if c.status]
                try:
                    await self.store.append_records(batch, windows=[c.row for c in changes])
                except StoreError as exc:
                    log.error("windows.commit_failed", error=str(exc), changes=len(changes))
                    for change in changes:  # keep the old rows and their deadlines; retry
                        self.cache.requeue(change.row.window_id)
                    failed = True
                else:
                    failed = False
                    self._adopt([c.row for c in changes])
            if failed:
                await self._sleep(COMMIT_RETRY_SECONDS)
                return
        if reading.status.synced:
            self.provisioner.trust_returned()

    def _due(self, reading: Reading) -> list[Change]:
        """The transitions to commit now; on untrusted time, hold back what it may not decide."""
        # Held windows are looked at again on every pass: trust may have returned, the policy
        # changed, or the window itself (a revoke leaves nothing to hold).
        for window_id in self._held:
            self.cache.requeue(window_id)
        self._held.clear()
        changes = self.cache.due(reading.now)
        if reading.status.synced:
            return changes
        kept = []
        for change in changes:
            if self._hold(WindowState(change.row.state)):
                self._held.add(change.row.window_id)
            else:
                kept.append(change)
        if self._held:
            log.info(
                "windows.held_untrusted", windows=len(self._held), source=reading.status.source
            )
        return kept

    async def _sleep_until_due(self) -> None:
        """Wait for the next deadline or a wake, whichever comes first; never a fixed period.

        With no deadline ahead (or only held ones) only a wake ends the wait. A wake comes from
        a window change, a config reload, and the clock's listeners: a change of trust, or a
        forward step of time (which makes a monotonic sleep aimed at a wall-clock deadline
        late). Nothing wakes the loop for a backward step: it wakes early and sleeps again.
        """
        self._wake.clear()
        deadline = self.cache.next_deadline()
        if deadline is None:
            await self._wake.wait()
            return
        delay = (deadline - self.clock.now()).total_seconds()
        if delay <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def reconciled_set_version(self) -> int | None:
        """The last ``windows.sync`` set reconciled since start, or None."""
        pages = self._pages
        return pages.set_version if pages.done and pages.set_version > 0 else None

    def window_state(self, row: WindowRow) -> str:
        """The state ``row`` is in now (time moves windows even between deadlines)."""
        return state_at(row, self.clock.now(), self.settings.grace).value

    async def stop(self) -> None:
        """Stop background work (provisioning); pending unlocks are abandoned."""
        await self.provisioner.stop()
        self.events.abandon()


__all__ = [
    "AccessEngine",
    "AccessSettings",
    "Denied",
    "LockedOut",
    "Unavailable",
    "UnknownLock",
    "UnlockResult",
    "Unlocked",
]
