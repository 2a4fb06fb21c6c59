"""A simulated lock that behaves like a real one: radio latency, bolt, keypad, door, faults.

Physical actions (``press``, ``turn_thumb``, ``open_door``...) happen at the lock and never fail
on the radio; the lock keeps their events and the hub reads them in order, as a Nuki reads its
log after a reconnect. Driver calls go over the simulated radio and can be made to fail: by a
test (``fail_next``, ``set_reachable``, ``jam``) or by the lock's options, so that an installer
can watch the hub's failure paths from a config file (``fail_rate``: a share of radio calls
fail as unreachable; ``jam_every``: every Nth bolt movement jams).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from datetime import datetime

import structlog

from .driver import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadFullError,
    KeypadUnsupportedError,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    Trigger,
)

log = structlog.get_logger(__name__)

VENDOR = "sim"
# Lock keypads take 4-8 (Yale) or 6 (Nuki) digits and courier codes have 6-10: accept 4-12.
MIN_CODE_DIGITS = 4
MAX_CODE_DIGITS = 12
_BOLT_EVENTS = {LockState.UNLOCKED: EventKind.UNLOCKED, LockState.LOCKED: EventKind.LOCKED}


class SimLock:
    """A simulated lock implementing LockDriver; the stand-in for hardware in tests and demo."""

    def __init__(
        self,
        lock_id: str,
        *,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        latency: float = 0.0,
        battery_percent: int = 100,
        has_keypad: bool = True,
        keypad_slots: int = 20,
        auto_relock_after: float | None = 5.0,
        door_sensor: bool = True,
        fail_rate: float = 0.0,
        jam_every: int = 0,
        seed: int | None = None,
    ) -> None:
        if latency < 0 or keypad_slots < 1 or not 0 <= battery_percent <= 100:
            raise ValueError("latency >= 0, keypad_slots >= 1 and battery 0-100 are required")
        if auto_relock_after is not None and auto_relock_after <= 0:
            raise ValueError("auto_relock_after must be positive or None")
        if not 0 <= fail_rate <= 1 or jam_every < 0:
            raise ValueError("fail_rate must be 0-1 and jam_every >= 0 (0: never)")
        self._lock_id = lock_id
        self._now = now
        self._sleep = sleep
        self._latency = latency
        self._battery = battery_percent
        self._has_keypad = has_keypad
        self._slots = keypad_slots
        self._relock_after = auto_relock_after
        self._door_sensor = door_sensor
        self._bolt = LockState.LOCKED
        self._door_open = False
        self._codes: dict[int, KeypadCode] = {}
        self._events = EventQueue()
        self._serial = itertools.count(1)
        self._failures: deque[type[LockError]] = deque()
        self._reachable = True
        self._jam_next = False
        self._relock: asyncio.Task[None] | None = None
        self._relock_on_close = False
        self._fail_rate = fail_rate
        self._jam_every = jam_every
        self._moves = 0
        # A simulation's dice, not a secret: a seed makes a run's failures repeatable.
        self._dice = random.Random(seed)  # noqa: S311 - not used for anything secret

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._lock_id

    @property
    def vendor(self) -> str:
        """Always ``sim``."""
        return VENDOR

    @property
    def has_keypad(self) -> bool:
        """Whether this lock model has a keypad."""
        return self._has_keypad

    async def start(self) -> None:
        """Nothing to connect: like a BLE driver, the simulator connects per call."""

    async def stop(self) -> None:
        """Stop the relock timer and end the events iterator (after events already queued)."""
        self._events.close()
        self._cancel_relock()

    async def status(self) -> LockStatus:
        """Read the bolt, battery and door sensor over the radio."""
        await self._radio()
        return self.snapshot()

    async def unlock(self, request_id: str) -> None:
        """Unlock; the UNLOCKED event carries trigger REMOTE and ``request_id``."""
        await self._radio()
        self._move(LockState.UNLOCKED, Trigger.REMOTE, request_id=request_id)

    async def lock(self, request_id: str) -> None:
        """Lock; the LOCKED event carries trigger REMOTE and ``request_id``."""
        await self._radio()
        self._move(LockState.LOCKED, Trigger.REMOTE, request_id=request_id)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Program ``code`` into the lowest free slot (1..keypad_slots) and return the slot."""
        self._require_keypad()
        await self._radio()
        _check_code(code)
        typed = code.code.encode()
        # Compare against every slot, without stopping at a match.
        matches = [hmac.compare_digest(typed, c.code.encode()) for c in self._codes.values()]
        if any(matches):
            raise DuplicateCodeError(f"lock {self._lock_id}: this code is already programmed")
        free = next((n for n in range(1, self._slots + 1) if n not in self._codes), None)
        if free is None:
            raise KeypadFullError(f"lock {self._lock_id}: all {self._slots} keypad slots are used")
        self._codes[free] = code
        return free

    async def remove_keypad_code(self, code_id: int) -> None:
        """Clear keypad slot ``code_id``; an empty slot is not an error."""
        self._require_keypad()
        await self._radio()
        self._codes.pop(code_id, None)

    def events(self) -> AsyncIterator[LockEvent]:
        """Every event in order until ``stop()``."""
        return self._events

    def snapshot(self) -> LockStatus:
        """The lock's true status, read without the radio."""
        door = DoorState.UNKNOWN
        if self._door_sensor:
            door = DoorState.OPEN if self._door_open else DoorState.CLOSED
        return LockStatus(self._bolt, self._battery, door)

    def keypad_codes(self) -> dict[int, KeypadCode]:
        """A copy of the programmed codes by slot."""
        return dict(self._codes)

    def fail_next(self, count: int, error: type[LockError] = LockUnreachableError) -> None:
        """Make the next ``count`` driver calls raise ``error`` (after the latency)."""
        self._failures.extend([error] * count)

    def set_reachable(self, reachable: bool) -> None:
        """While unreachable, every driver call raises LockUnreachableError after the latency."""
        self._reachable = reachable

    def jam(self) -> None:
        """Make the next bolt move fail: state JAMMED, a JAMMED event, LockJammedError."""
        self._jam_next = True

    def set_battery(self, percent: int) -> None:
        """Set the battery charge and report it with a BATTERY event."""
        if not 0 <= percent <= 100:
            raise ValueError("battery percent must be 0-100")
        self._battery = percent
        self._emit(EventKind.BATTERY, battery_percent=percent)

    def press(self, code: str) -> bool:
        """Type ``code`` on the keypad; True when a programmed code valid now unlocked the door."""
        self._require_keypad()
        typed = code.encode()
        slot = None
        for code_id, programmed in self._codes.items():  # every slot, no early exit
            if hmac.compare_digest(typed, programmed.code.encode()):
                slot = code_id
        if slot is None:
            return self._deny("unknown_code", None)
        programmed = self._codes[slot]
        if not programmed.valid_from <= self._now() < programmed.valid_until:
            return self._deny("outside_validity", slot)
        return self._physical_move(Trigger.KEYPAD, keypad_code_id=slot)

    def turn_thumb(self) -> bool:
        """Unlock by hand (thumb turn or key): trigger MANUAL; False when the bolt jammed."""
        return self._physical_move(Trigger.MANUAL)

    def open_door(self) -> bool:
        """Open the door; False (nothing happens) while the bolt is thrown."""
        if self._bolt is LockState.LOCKED:
            return False
        if not self._door_open:
            self._door_open = True
            if self._door_sensor:
                self._emit(EventKind.DOOR_OPENED)
        return True

    def close_door(self) -> None:
        """Close the door; a relock that waited for it starts its timer now."""
        if not self._door_open:
            return
        self._door_open = False
        if self._door_sensor:
            self._emit(EventKind.DOOR_CLOSED)
        if self._relock_on_close:
            self._relock_on_close = False
            self._schedule_relock()

    async def _radio(self) -> None:
        await self._sleep(self._latency)
        if self._events.closed or not self._reachable:
            raise LockUnreachableError(f"lock {self._lock_id} does not answer")
        if self._failures:
            raise self._failures.popleft()(f"lock {self._lock_id}: injected failure")
        if self._fail_rate and self._dice.random() < self._fail_rate:
            raise LockUnreachableError(f"lock {self._lock_id}: simulated radio failure")

    def _require_keypad(self) -> None:
        if not self._has_keypad:
            raise KeypadUnsupportedError(f"lock {self._lock_id} has no keypad")

    def _move(
        self,
        target: LockState,
        trigger: Trigger,
        *,
        request_id: str | None = None,
        keypad_code_id: int | None = None,
    ) -> None:
        kind = _BOLT_EVENTS[target]
        self._moves += 1
        if self._jam_next or (self._jam_every and self._moves % self._jam_every == 0):
            self._jam_next = False
            kind, target = EventKind.JAMMED, LockState.JAMMED
        self._bolt = target
        self._emit(kind, trigger=trigger, request_id=request_id, keypad_code_id=keypad_code_id)
        if target is LockState.JAMMED:
            self._cancel_relock()
            raise LockJammedError(f"lock {self._lock_id}: the bolt did not move")
        if target is LockState.UNLOCKED:
            self._schedule_relock()
        else:
            self._cancel_relock()

    def _physical_move(self, trigger: Trigger, keypad_code_id: int | None = None) -> bool:
        try:
            self._move(LockState.UNLOCKED, trigger, keypad_code_id=keypad_code_id)
        except LockJammedError:
            return False
        return True

    def _deny(self, reason: str, slot: int | None) -> bool:
        log.info("lock.keypad_denied", lock_id=self._lock_id, reason=reason)
        self._emit(EventKind.KEYPAD_DENIED, keypad_code_id=slot, details={"reason": reason})
        return False

    def _schedule_relock(self) -> None:
        self._cancel_relock()
        if self._relock_after is not None and not self._events.closed:
            relock = self._relock_later(self._relock_after)
            self._relock = asyncio.get_running_loop().create_task(relock)

    def _cancel_relock(self) -> None:
        self._relock_on_close = False
        if self._relock is not None:
            self._relock.cancel()
            self._relock = None

    async def _relock_later(self, delay: float) -> None:
        await self._sleep(delay)
        self._relock = None
        # With a door sensor the lock waits for the door to close, as Nuki and Yale do.
        if self._door_sensor and self._door_open:
            self._relock_on_close = True
            return
        with suppress(LockJammedError):
            self._move(LockState.LOCKED, Trigger.AUTO)

    def _emit(
        self,
        kind: EventKind,
        *,
        trigger: Trigger = Trigger.UNKNOWN,
        request_id: str | None = None,
        keypad_code_id: int | None = None,
        battery_percent: int | None = None,
        details: dict[str, str | int | bool] | None = None,
    ) -> None:
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=self._now(),
                vendor=VENDOR,
                vendor_event_id=f"{VENDOR}-{next(self._serial)}",
                trigger=trigger,
                keypad_code_id=keypad_code_id,
                request_id=request_id,
                battery_percent=battery_percent,
                details=details or {},
            )
        )


def _check_code(code: KeypadCode) -> None:
    if not (code.code.isascii() and code.code.isdigit()):
        raise LockRefusedError("a keypad code must be digits only")
    if not MIN_CODE_DIGITS <= len(code.code) <= MAX_CODE_DIGITS:
        raise LockRefusedError(f"a keypad code needs {MIN_CODE_DIGITS}-{MAX_CODE_DIGITS} digits")
    if code.valid_from >= code.valid_until:
        raise LockRefusedError("a keypad code must end after it starts")
