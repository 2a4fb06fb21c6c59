"""From the lock's own events to records: proof of delivery, relocks, alerts.

A PoD rests on the lock's confirmation, attributed to the window that authorised it: the
hub's pending unlock (matched by the request id the lock echoes, or the oldest pending unlock
of that lock when the lock does not echo one), or the keypad code id of a lock-enforced window.
An unlock no window explains is recorded as ``unattributed`` and raises an alert. The PoD, its
outbox entry and the window's use count commit in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import structlog

from ..clock import Reading, TrustedClock
from ..locks.driver import BATTERY_LOW_PERCENT, EventKind, LockEvent, Trigger
from ..store import NewRecord, Store, WindowRow
from . import records
from .decide import Grant
from .provisioning import Provisioner
from .windows import (
    STATUS_OF,
    TERMINAL,
    WindowCache,
    WindowState,
    state_at,
    used_up,
    with_state,
)

log = structlog.get_logger(__name__)

# A confirmation later than this after the unlock command no longer counts as that unlock's:
# it would more likely be someone else opening the door.
PENDING_TTL_SECONDS = 60.0
# kv key prefix (+ lock_id): the PoD whose relock the lock has yet to report. Kept in the
# store, committed with the PoD, so that a relock reported after a restart still names it.
RELOCK_KEY_PREFIX = "access.awaiting_relock."


def relock_key(lock_id: str) -> str:
    """The kv key holding the pod_id a lock's next relock belongs to."""
    return RELOCK_KEY_PREFIX + lock_id


@dataclass(slots=True)
class Pending:
    """An unlock the hub asked for and whose confirmation it waits for."""

    request_id: str
    lock_id: str
    grant: Grant
    source: str
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    expires: float = 0.0


class EventRecorder:
    """Attributes lock events and writes their records."""

    def __init__(
        self,
        *,
        store: Store,
        cache: WindowCache,
        clock: TrustedClock,
        provisioner: Provisioner,
        grace: timedelta,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._provisioner = provisioner
        self._grace = grace
        self._monotonic = monotonic
        self._pending: dict[str, Pending] = {}
        # The PoD each lock's next relock belongs to, as committed under relock_key(); this
        # copy spares a read, the store's outlives a restart.
        self._awaiting_relock: dict[str, str | None] = {}
        self._battery_low: set[str] = set()

    # Pending unlocks.

    def expect(self, pending: Pending) -> Pending:
        """Register an unlock the hub is about to ask for."""
        self._expire()
        pending.expires = self._monotonic() + PENDING_TTL_SECONDS
        self._pending[pending.request_id] = pending
        return pending

    def forget(self, pending: Pending) -> None:
        """Drop a pending unlock (the command failed)."""
        self._pending.pop(pending.request_id, None)

    def in_flight(self) -> dict[str, int]:
        """Uses already granted but not yet confirmed, by window id."""
        self._expire()
        counts: dict[str, int] = {}
        for pending in self._pending.values():
            window_id = pending.grant.window.window_id
            counts[window_id] = counts.get(window_id, 0) + 1
        return counts

    def abandon(self) -> None:
        """Cancel every wait for a confirmation (shutdown)."""
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()

    def _expire(self) -> None:
        now = self._monotonic()
        for request_id in [r for r, p in self._pending.items() if p.expires <= now]:
            self._pending.pop(request_id).future.cancel()

    def _match(self, event: LockEvent) -> Pending | None:
        self._expire()
        if event.request_id is not None and event.request_id in self._pending:
            return self._pending.pop(event.request_id)
        if event.trigger in (Trigger.REMOTE, Trigger.UNKNOWN):
            for request_id, pending in self._pending.items():
                if pending.lock_id == event.lock_id:
                    return self._pending.pop(request_id)
        return None

    # Events.

    async def on_event(self, event: LockEvent) -> None:
        """Record what a lock reported."""
        if event.kind is EventKind.UNLOCKED:
            await self._unlocked(event)
        elif event.kind is EventKind.LOCKED:
            await self._relocked(event)
        elif event.kind is EventKind.JAMMED:
            await self._write_with_alert(event, "lock_jammed", "critical", "the lock is jammed")
        elif event.kind is EventKind.BATTERY:
            await self._battery(event)
        else:
            await self._write([records.lock_event(event, self._record_clock())])

    def _record_clock(self) -> dict[str, object]:
        return self._clock.status().as_record()

    async def _write(self, batch: list[NewRecord]) -> None:
        await self._store.append_records(batch)

    async def _relocked(self, event: LockEvent) -> None:
        """A relock names the PoD it ends (if any), and that PoD is then no longer awaited."""
        key = relock_key(event.lock_id)
        if event.lock_id in self._awaiting_relock:
            pod_id = self._awaiting_relock[event.lock_id]
        else:  # not seen since start: the store knows
            pod_id = await self._store.kv_get(key)
        record = records.lock_event(event, self._record_clock(), extra={"pod_id": pod_id})
        await self._store.append_records([record], kv={key: None} if pod_id else None)
        self._awaiting_relock[event.lock_id] = None

    async def _write_with_alert(
        self,
        event: LockEvent,
        kind: str,
        severity: str,
        message: str,
        *,
        unattributed: bool = False,
    ) -> None:
        clock = self._record_clock()
        details: records.Details = {
            "lock_id": event.lock_id,
            "vendor_event_id": event.vendor_event_id,
        }
        batch = [
            records.lock_event(event, clock, unattributed=unattributed),
            records.alert(kind, severity, message, clock, details),
        ]
        # After an unlock no window explains, the next relock ends that one, not an older PoD.
        kv = {relock_key(event.lock_id): None} if unattributed else None
        await self._store.append_records(batch, kv=kv)
        if unattributed:
            self._awaiting_relock[event.lock_id] = None
        log.warning("lock." + kind, lock_id=event.lock_id)

    async def _battery(self, event: LockEvent) -> None:
        low = event.battery_percent is not None and event.battery_percent < BATTERY_LOW_PERCENT
        if low and event.lock_id not in self._battery_low:
            self._battery_low.add(event.lock_id)
            await self._write_with_alert(event, "battery_low", "warning", "replace the battery")
            return
        if not low:
            self._battery_low.discard(event.lock_id)
        await self._write([records.lock_event(event, self._record_clock())])

    async def _unlocked(self, event: LockEvent) -> None:
        pending = self._match(event)
        if pending is not None:
            grant = pending.grant
            pod_id = await self._pod(grant.window, event, grant.method, grant.credential_ref)
            if not pending.future.done():
                pending.future.set_result(pod_id)
            return
        if event.trigger is Trigger.KEYPAD and event.keypad_code_id is not None:
            window = self._cache.by_keypad_id(event.lock_id, event.keypad_code_id)
            if window is not None:
                ref = f"keypad:{event.keypad_code_id}"
                await self._pod(window, event, "lock_keypad", ref)
                return
        await self._write_with_alert(
            event,
            "unattributed_unlock",
            "warning",
            "an unlock no window explains",
            unattributed=True,
        )

    async def _pod(self, window: WindowRow, event: LockEvent, method: str, ref: str) -> str:
        async with self._cache.write_lock:
            reading = self._clock.read()
            current = self._cache.get(window.window_id) or window
            row = replace(current, uses=current.uses + 1)
            row = with_state(row, self._state_after_use(row, reading), reading.now)
            clock = reading.status.as_record()
            pod_id, pod = records.pod(row, event, method, ref, clock)
            batch = [pod]
            # Used up by this PoD, or found closed by it (a late confirmation, on trusted time):
            # either way the state changes here, and the deadline heap will not report it again.
            status = STATUS_OF.get(WindowState(row.state))
            if status is not None and row.state != current.state:
                batch.append(records.window_status(row, status, clock))
            await self._store.append_records(
                batch, windows=[row], kv={relock_key(event.lock_id): pod_id}
            )
            self._cache.put(row)
            self._awaiting_relock[event.lock_id] = pod_id
        self._provisioner.consider(row)
        log.info("pod.recorded", pod_id=pod_id, window_id=row.window_id, method=method)
        return pod_id

    def _state_after_use(self, row: WindowRow, reading: Reading) -> WindowState:
        """The state a PoD leaves ``row`` (its use counted) in."""
        # Untrusted time decides nothing but the use: the window is used up, or stays as
        # committed and the deadline loop moves it on once time may. A confirmation that
        # untrusted time shows late must not expire the window for good.
        if reading.status.synced:
            return state_at(row, reading.now, self._grace)
        held = WindowState(row.state)
        return WindowState.USED if held not in TERMINAL and used_up(row) else held

    async def unlock_failed(self, pending: Pending, error: Exception) -> None:
        """Record an unlock the hub granted but could not get the lock to perform."""
        clock = self._record_clock()
        body_event = LockEvent(
            lock_id=pending.lock_id,
            kind=EventKind.UNLOCKED,
            at=self._clock.now(),
            vendor="lockhub",
            vendor_event_id=pending.request_id,
            trigger=Trigger.REMOTE,
            request_id=pending.request_id,
        )
        record = records.lock_event(
            body_event,
            clock,
            extra={
                "failed": True,
                "error": type(error).__name__,
                "window_id": pending.grant.window.window_id,
            },
        )
        record.body = {**record.body, "event": "unlock_failed"}
        await self._write([record])
