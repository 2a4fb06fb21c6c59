"""What a Yale lock reports, as LockEvents: state changes, explained by its activity records.

A bolt change the lock reports waits (``ATTRIBUTION_WAIT``) for the activity record that says
who moved it (keypad slot, thumb turn, auto-lock); without one it is reported as unknown.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from yalexs_ble import (
    KEYPAD_MASTER_CODE_SLOT,
    DoorActivity,
    DoorStatus,
    LockActivity,
    LockOperationSource,
    PushLock,
)
from yalexs_ble import LockState as YaleState
from yalexs_ble import LockStatus as YaleBolt
from yalexs_ble.const import ConnectionInfo, LockInfo

from ...driver import (
    DoorState,
    EventKind,
    EventQueue,
    LockEvent,
    LockState,
    LockStatus,
    Trigger,
)

log = structlog.get_logger(__name__)

VENDOR = "yale"
# yalexs-ble drains the activity log in the update that saw a change, one paced read per record
# (at most 32, 0.25 s apart): a change waits this long for the record that explains it.
ATTRIBUTION_WAIT = 10.0

_BOLT = {
    YaleBolt.LOCKED: LockState.LOCKED,
    YaleBolt.SECUREMODE: LockState.LOCKED,
    YaleBolt.UNLOCKED: LockState.UNLOCKED,
    YaleBolt.UNLATCHED: LockState.UNLOCKED,
    YaleBolt.JAMMED: LockState.JAMMED,
}
_DOOR = {
    DoorStatus.CLOSED: DoorState.CLOSED,
    DoorStatus.OPENED: DoorState.OPEN,
    DoorStatus.AJAR: DoorState.OPEN,
}
BOLT_EVENT = {LockState.LOCKED: EventKind.LOCKED, LockState.UNLOCKED: EventKind.UNLOCKED}
_TRIGGER = {
    LockOperationSource.PIN: Trigger.KEYPAD,
    LockOperationSource.MANUAL: Trigger.MANUAL,
    LockOperationSource.AUTO_LOCK: Trigger.AUTO,
}


@dataclass(slots=True)
class Change:
    """A bolt change the lock reported that waits for the activity record explaining it."""

    kind: EventKind
    at: datetime
    timer: asyncio.TimerHandle | None = None


class LockReports:
    """The driver's half that takes the lock's reports (a mixin: it shares the driver's state)."""

    _lock_id: str
    _now: Callable[[], datetime]
    _attribution_wait: float
    _events: EventQueue
    _serial: itertools.count[int]
    _push: PushLock | None
    _bolt: LockState
    _door: DoorState
    _battery: int | None
    _in_flight: bool
    _changes: list[Change]
    _unexplained: dict[EventKind, int]
    _tasks: set[asyncio.Task[None]]

    def _snapshot(self, state: YaleState | None) -> LockStatus:
        if state is not None:
            self._absorb(state)
        return LockStatus(self._bolt, self._battery, self._door)

    def _on_state(self, state: YaleState, _info: LockInfo, _conn: ConnectionInfo) -> None:
        bolt, door, battery = self._bolt, self._door, self._battery
        self._absorb(state)
        if door is not DoorState.UNKNOWN and self._door is not door:
            opened = self._door is DoorState.OPEN
            self._emit(EventKind.DOOR_OPENED if opened else EventKind.DOOR_CLOSED, Trigger.UNKNOWN)
            self._read_log_soon()  # a door opened after a keypad unlock: read who it was
        if battery is not None and self._battery != battery:
            self._emit(EventKind.BATTERY, Trigger.UNKNOWN, battery_percent=self._battery)
        if self._in_flight or bolt is LockState.UNKNOWN or self._bolt is bolt:
            return  # our own command reports it, or this is the first reading
        if self._bolt is LockState.JAMMED:
            self._emit(EventKind.JAMMED, Trigger.UNKNOWN)
        elif self._bolt in BOLT_EVENT:
            self._await_record(BOLT_EVENT[self._bolt])

    def _absorb(self, state: YaleState) -> None:
        self._bolt = _BOLT.get(state.lock, self._bolt)
        self._door = _DOOR.get(state.door, self._door)
        if state.battery is not None:
            self._battery = state.battery.percentage

    def _await_record(self, kind: EventKind) -> None:
        change = Change(kind, self._now())
        loop = asyncio.get_running_loop()
        change.timer = loop.call_later(
            self._attribution_wait, self._explain, change, Trigger.UNKNOWN, None
        )
        self._changes.append(change)
        self._read_log_soon()

    def _read_log_soon(self) -> None:
        """Ask yalexs-ble for an update: it drains the activity log after a change it saw."""
        push = self._push
        if push is None:
            return
        task = asyncio.get_running_loop().create_task(push.update())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_activity(self, activity: LockActivity | DoorActivity) -> None:
        if not isinstance(activity, LockActivity) or activity.source not in _TRIGGER:
            return  # door records repeat the door sensor; remote ones are commands we report
        kind = BOLT_EVENT.get(_BOLT.get(activity.status, LockState.UNKNOWN))
        if kind is None:
            return
        trigger = _TRIGGER[activity.source]
        slot = activity.slot if trigger is Trigger.KEYPAD else None
        change = next((c for c in self._changes if c.kind is kind), None)
        if change is not None:
            self._explain(change, trigger, slot)
        elif self._unexplained.get(kind):
            self._unexplained[kind] -= 1  # a late record for a change already reported
        elif trigger is Trigger.KEYPAD:
            # A keypad unlock the bolt readings missed (relocked in between): still a delivery.
            self._emit(kind, trigger, keypad_code_id=_code_id(slot))

    def _explain(self, change: Change, trigger: Trigger, slot: int | None) -> None:
        self._drop_change(change)
        if trigger is Trigger.UNKNOWN:
            self._unexplained[change.kind] = self._unexplained.get(change.kind, 0) + 1
        details: dict[str, str | int | bool] = {}
        if slot == KEYPAD_MASTER_CODE_SLOT:
            details["master_code"] = True
        self._emit(
            change.kind, trigger, at=change.at, keypad_code_id=_code_id(slot), details=details
        )

    def _drop_change(self, change: Change) -> None:
        self._changes.remove(change)
        if change.timer is not None:
            change.timer.cancel()

    def _emit(
        self,
        kind: EventKind,
        trigger: Trigger,
        *,
        at: datetime | None = None,
        request_id: str | None = None,
        keypad_code_id: int | None = None,
        battery_percent: int | None = None,
        details: dict[str, str | int | bool] | None = None,
    ) -> None:
        moment = at or self._now()
        log.info("yale.event", lock_id=self._lock_id, kind=str(kind), trigger=str(trigger))
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=moment,
                vendor=VENDOR,
                vendor_event_id=f"{VENDOR}-{int(moment.timestamp() * 1000)}-{next(self._serial)}",
                trigger=trigger,
                keypad_code_id=keypad_code_id,
                request_id=request_id,
                battery_percent=battery_percent,
                details=details or {},
            )
        )


def _code_id(slot: int | None) -> int | None:
    return None if slot is None or slot == KEYPAD_MASTER_CODE_SLOT else slot
