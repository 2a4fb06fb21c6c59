"""The ``schlage`` LockDriver: one Schlage lock through the cloud, its log polled for events.

Unlocks are attributed from the cloud's activity log, polled; our own commands are confirmed
by reading the state back, and matched to their log entries so each is reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import structlog
from pyschlage import Lock
from pyschlage.log import LockLog

from ...credentials import CredentialStore
from ...driver import (
    EventKind,
    EventQueue,
    KeypadCode,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockStatus,
    LockUnreachableError,
    Trigger,
)
from .account import SchlageAccount
from .codes import add_access_code, check_code, remove_access_code
from .commands import REMOTE_TARGET, Command, claim
from .device import move_bolt, status_of
from .errors import REPAIR, SchlageAuthError
from .logs import LogCursor, LogEntry, classify, parse_logs

T = TypeVar("T")
log = structlog.get_logger(__name__)

VENDOR = "schlage"
STATE_KIND = "schlage-state"  # {"codes": {schlage id: int}, "next_code": int, "log": cursor}
# Home Assistant's Schlage integration reads every lock's state and log each 30 s for its whole
# user base without being throttled; polling the log at that rate adds no unusual load.
LOG_POLL_INTERVAL = 30.0
# After failed polls (429, 5xx) wait longer, doubling up to 5 min, so a struggling cloud recovers.
LOG_POLL_MAX_BACKOFF = 300.0
# Newest entries read per poll: a lock does not log 50 entries in 30 s; more would be lost.
LOG_PAGE = 50


class SchlageLock:
    """One Schlage lock through the cloud; implements LockDriver."""

    def __init__(
        self,
        lock_id: str,
        *,
        account: SchlageAccount,
        device_id: str | None,
        device_name: str | None,
        store: CredentialStore,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._lock_id = lock_id
        self._account = account
        self._wanted_id = device_id
        self._wanted_name = device_name
        self._store = store
        self._now = now
        self._sleep = sleep
        self._device: Lock | None = None
        self._events = EventQueue()
        self._commands: dict[str, Command] = {}
        self._code_ids: dict[str, int] = {}
        self._next_code = 1
        self._cursor = LogCursor()
        self._poller: asyncio.Task[None] | None = None

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._lock_id

    @property
    def vendor(self) -> str:
        """Always ``schlage``."""
        return VENDOR

    @property
    def has_keypad(self) -> bool:
        """Schlage WiFi locks (Encode family) all have a keypad."""
        return True

    async def start(self) -> None:
        """Find the device, load the code map and log cursor, then poll the log."""
        saved = self._store.load(self._lock_id, STATE_KIND) or {}
        self._code_ids = {str(k): int(v) for k, v in saved.get("codes", {}).items()}
        self._next_code = int(saved.get("next_code", 1))
        self._cursor = LogCursor.from_json(saved.get("log"))
        self._device = await self._run(self._find_device)
        if not self._cursor.started:
            await self.poll_logs()  # history before pairing is not replayed
        self._poller = asyncio.create_task(
            self._poll_forever(), name=f"schlage-log:{self._lock_id}"
        )

    async def stop(self) -> None:
        """Stop polling and end the events iterator."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._events.close()

    async def status(self) -> LockStatus:
        """Refresh the device from the cloud: bolt, battery, door."""
        device = self._require_device()
        await self._run(device.refresh)
        return status_of(device)

    async def unlock(self, request_id: str) -> None:
        """Unlock (PUT lockState 0), then read the state back; UNLOCKED carries ``request_id``."""
        await self._move(request_id, EventKind.UNLOCKED)

    async def lock(self, request_id: str) -> None:
        """Lock (PUT lockState 1), then read the state back; LOCKED carries ``request_id``."""
        await self._move(request_id, EventKind.LOCKED)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Add ``code`` with a temporary schedule (the lock enforces it); return our int id."""
        device = self._require_device()
        check_code(code)
        schlage_id = await self._run(lambda: add_access_code(device, code, self._lock_id))
        code_id = self._int_id(schlage_id)
        self._save_state()
        log.info("schlage.code_added", lock_id=self._lock_id, code_id=code_id)
        return code_id

    async def remove_keypad_code(self, code_id: int) -> None:
        """Delete the access code we numbered ``code_id``; absent is not an error."""
        device = self._require_device()
        schlage_id = next((s for s, n in self._code_ids.items() if n == code_id), None)
        if schlage_id is None:
            return
        removed = await self._run(lambda: remove_access_code(device, schlage_id))
        log.info("schlage.code_removed", lock_id=self._lock_id, code_id=code_id, found=removed)

    def events(self) -> AsyncIterator[LockEvent]:
        """Every event in order until ``stop()``."""
        return self._events

    async def poll_logs(self) -> int:
        """Read the newest log entries once; emit each new one (never twice); return how many."""
        device = self._require_device()

        def work() -> list[LogEntry]:
            params = {"limit": LOG_PAGE, "sort": "desc"}
            path = LockLog.request_path(device.device_id)
            newest_first = parse_logs(self._account.get_json(path, params))
            return newest_first[::-1]  # same-millisecond entries keep the cloud's order

        entries = await self._run(work)
        fresh = self._cursor.advance(entries)
        self._save_state()  # before emitting: an entry is reported at most once, even on a crash
        emitted = 0
        for entry in fresh:
            emitted += self._emit_log(entry)
        return emitted

    async def _poll_forever(self) -> None:
        delay = LOG_POLL_INTERVAL
        while True:
            await self._sleep(delay)
            try:
                await self.poll_logs()
            except LockError as exc:
                delay = min(delay * 2, LOG_POLL_MAX_BACKOFF)
                log.warning(
                    "schlage.poll_failed", lock_id=self._lock_id, error=str(exc), next=delay
                )
            else:
                delay = LOG_POLL_INTERVAL

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(self._account.call, work)
        except SchlageAuthError as exc:
            advice = REPAIR.format(lock_id=self._lock_id)
            raise SchlageAuthError(f"lock {self._lock_id}: {exc}; {advice}") from None

    def _find_device(self) -> Lock:
        for device in self._account.api.locks():
            if device.device_id == self._wanted_id or (
                self._wanted_id is None and device.name == self._wanted_name
            ):
                return device
        wanted = self._wanted_id or self._wanted_name
        raise LockRefusedError(f"lock {self._lock_id}: no Schlage lock {wanted!r} on this account")

    def _require_device(self) -> Lock:
        if self._device is None:
            raise LockUnreachableError(f"lock {self._lock_id}: driver not started")
        return self._device

    async def _move(self, request_id: str, kind: EventKind) -> None:
        device = self._require_device()
        locked = REMOTE_TARGET[kind]
        command = self._commands.get(request_id)
        if command is not None and command.confirmed:
            return
        retry = command is not None
        if command is None:
            command = self._commands[request_id] = Command(request_id, kind, self._now())

        try:
            await self._run(lambda: move_bolt(device, locked=locked, retry=retry))
        except LockRefusedError:
            self._commands.pop(request_id, None)
            raise
        self._settle(command, device)

    def _settle(self, command: Command, device: Lock) -> None:
        """Emit the command's event when the read-back state confirms it; else the log will."""
        if device.is_jammed:
            self._commands.pop(command.request_id, None)
            self._emit(EventKind.JAMMED, Trigger.REMOTE, f"cmd-{command.request_id}-jam")
            raise LockJammedError(f"lock {self._lock_id}: the bolt did not move")
        if device.is_locked is REMOTE_TARGET[command.kind] and not command.confirmed:
            command.confirmed = True
            event_id = f"cmd-{command.request_id}"
            self._emit(command.kind, Trigger.REMOTE, event_id, request_id=command.request_id)

    def _emit_log(self, entry: LogEntry) -> int:
        meaning = classify(entry.event_code)
        if meaning is None:
            return 0
        kind, trigger = meaning
        request_id = None
        if trigger is Trigger.REMOTE and kind in REMOTE_TARGET:
            command = claim(self._commands, kind, self._now())
            if command is not None and command.confirmed:
                return 0  # already reported when the read-back state confirmed it
            if command is not None:
                command.confirmed = True
                request_id = command.request_id
        code_id = None
        if entry.access_code_id is not None:
            code_id = self._int_id(entry.access_code_id)
            self._save_state()
        details: dict[str, str | int | bool] = {"schlage_event": entry.event_code}
        self._emit(
            kind,
            trigger,
            f"log-{entry.log_id}",
            request_id=request_id,
            code_id=code_id,
            details=details,
            at=entry.created_at,
        )
        return 1

    def _emit(
        self,
        kind: EventKind,
        trigger: Trigger,
        event_id: str,
        *,
        request_id: str | None = None,
        code_id: int | None = None,
        details: dict[str, str | int | bool] | None = None,
        at: datetime | None = None,
    ) -> None:
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=at or self._now(),
                vendor=VENDOR,
                vendor_event_id=f"{VENDOR}-{event_id}",
                trigger=trigger,
                keypad_code_id=code_id,
                request_id=request_id,
                details=details or {},
            )
        )

    def _int_id(self, schlage_id: str) -> int:
        if schlage_id not in self._code_ids:
            self._code_ids[schlage_id] = self._next_code
            self._next_code += 1
        return self._code_ids[schlage_id]

    def _save_state(self) -> None:
        state = {
            "codes": self._code_ids,
            "next_code": self._next_code,
            "log": self._cursor.to_json(),
        }
        self._store.save(self._lock_id, STATE_KIND, state)
