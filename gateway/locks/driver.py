"""The seam every lock driver implements: commands out, the lock's own events in.

A driver owns one lock's I/O (BLE, a bridge, a cloud API, or the simulator). It never decides
who may open the door: the access engine does that and then asks the driver to act. What a
driver reports as an event is the lock's own confirmation; proof of delivery rests on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ..errors import GatewayError


class LockState(StrEnum):
    """What the hub knows about a lock's bolt and reachability."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    JAMMED = "jammed"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


class DoorState(StrEnum):
    """A door sensor's reading, when the lock has one."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


class EventKind(StrEnum):
    """Kinds of events a lock reports."""

    UNLOCKED = "unlocked"
    LOCKED = "locked"
    JAMMED = "jammed"
    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    KEYPAD_DENIED = "keypad_denied"
    BATTERY = "battery"


class Trigger(StrEnum):
    """What made the lock act, as the lock reports it."""

    REMOTE = "remote"  # a command from this hub (or the vendor app/bridge)
    KEYPAD = "keypad"  # a code typed on the lock's own keypad
    MANUAL = "manual"  # a key or the thumb turn
    AUTO = "auto"  # auto-lock / auto-relock timer
    UNKNOWN = "unknown"


# Below this charge a battery is reported as low (vendors use 15-25 %).
BATTERY_LOW_PERCENT = 20


@dataclass(frozen=True, slots=True)
class LockStatus:
    """A snapshot of one lock."""

    state: LockState
    battery_percent: int | None = None
    door: DoorState = DoorState.UNKNOWN

    @property
    def battery_low(self) -> bool:
        """True when the battery is known and below BATTERY_LOW_PERCENT."""
        return self.battery_percent is not None and self.battery_percent < BATTERY_LOW_PERCENT


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One event reported by a lock: the raw material of proof of delivery."""

    lock_id: str
    kind: EventKind
    at: datetime
    vendor: str
    vendor_event_id: str
    trigger: Trigger = Trigger.UNKNOWN
    # The lock's own id for the keypad code that was used (Nuki code id, Yale slot, ...).
    keypad_code_id: int | None = None
    # The hub's request id when the lock echoes it (a remote unlock this hub asked for).
    request_id: str | None = None
    battery_percent: int | None = None
    details: dict[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeypadCode:
    """A code to program into a lock's keypad, valid from ``valid_from`` until ``valid_until``."""

    code: str
    name: str
    valid_from: datetime
    valid_until: datetime


class LockError(GatewayError):
    """Base of errors raised by lock drivers."""


class LockUnreachableError(LockError):
    """The lock did not answer (out of range, bridge down, timeout): retry later."""


class LockJammedError(LockError):
    """The bolt did not move: the lock needs a person; do not retry blindly."""


class LockRefusedError(LockError):
    """The lock refused the command (bad credentials, wrong state): do not retry."""


class KeypadFullError(LockRefusedError):
    """No free keypad slot: the code was not set."""


class DuplicateCodeError(LockRefusedError):
    """The keypad already holds this code: the code was not set."""


class KeypadUnsupportedError(LockRefusedError):
    """This lock has no keypad (or its driver cannot program one)."""


@runtime_checkable
class LockDriver(Protocol):
    """One lock's I/O. Calls on one driver are serialised by its coordinator."""

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""

    @property
    def vendor(self) -> str:
        """A short vendor word for records: ``sim``, ``nuki``, ``yale``, ``schlage``."""

    @property
    def has_keypad(self) -> bool:
        """True when keypad codes can be programmed (lock-enforced windows)."""

    async def start(self) -> None:
        """Prepare the driver (connect, subscribe); raise LockError if impossible now."""

    async def stop(self) -> None:
        """Release everything; the events iterator ends."""

    async def status(self) -> LockStatus:
        """Read the lock's current state; raise LockUnreachableError if it does not answer."""

    async def unlock(self, request_id: str) -> None:
        """Ask the lock to unlock; return once the lock accepted the command.

        The confirmation arrives as an UNLOCKED event (with ``request_id`` when the lock
        echoes it). Raise LockUnreachableError, LockJammedError or LockRefusedError.
        """

    async def lock(self, request_id: str) -> None:
        """Ask the lock to lock; the confirmation arrives as a LOCKED event."""

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Program a keypad code; return the lock's id for it (code id or slot)."""

    async def remove_keypad_code(self, code_id: int) -> None:
        """Remove a keypad code by the id ``add_keypad_code`` returned; absent is not an error."""

    def events(self) -> AsyncIterator[LockEvent]:
        """Every event the lock reports, in order, until ``stop()``."""


class EventQueue:
    """A driver's events in order: ``put`` while running, ``close`` on stop; readers then end."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LockEvent | None] = asyncio.Queue()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called; later events are dropped."""
        return self._closed

    @property
    def pending(self) -> int:
        """Events queued and not read yet."""
        return self._queue.qsize() - (1 if self._closed else 0)

    def put(self, event: LockEvent) -> None:
        """Queue ``event`` for readers, unless closed (nobody reads past the end)."""
        if not self._closed:
            self._queue.put_nowait(event)

    def close(self) -> None:
        """End every reader once it has read the events queued before."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    def __aiter__(self) -> EventQueue:
        return self

    async def __anext__(self) -> LockEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # leave the end mark for any other reader
            raise StopAsyncIteration
        return event
