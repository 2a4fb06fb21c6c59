"""From what the lock reports (Keyturner States, log entries) to the hub's LockEvents. Pure."""

from __future__ import annotations

from datetime import datetime

from ...driver import DoorState, EventKind, LockEvent, LockState, LockStatus, Trigger
from .keyturner import KeyturnerStates, LogEntry
from .messages import (
    ActionTrigger,
    CompletionStatus,
    DoorSensorState,
    LockAction,
    LogEntryType,
)
from .messages import LockState as NukiLockState

VENDOR = "nuki"
_BOLT: dict[int, LockState] = {
    NukiLockState.LOCKED: LockState.LOCKED,
    NukiLockState.UNLOCKED: LockState.UNLOCKED,
    NukiLockState.UNLATCHED: LockState.UNLOCKED,
    NukiLockState.UNLATCHING: LockState.UNLOCKED,
    NukiLockState.UNLOCKED_LOCK_N_GO: LockState.UNLOCKED,
    NukiLockState.MOTOR_BLOCKED: LockState.JAMMED,
}
_DOOR: dict[int, DoorState] = {
    DoorSensorState.DOOR_OPENED: DoorState.OPEN,
    DoorSensorState.DOOR_CLOSED: DoorState.CLOSED,
}
_TRIGGER: dict[int, Trigger] = {
    ActionTrigger.SYSTEM: Trigger.REMOTE,
    ActionTrigger.MANUAL: Trigger.MANUAL,
    ActionTrigger.BUTTON: Trigger.MANUAL,
    ActionTrigger.AUTOMATIC: Trigger.AUTO,
    ActionTrigger.AUTO_LOCK: Trigger.AUTO,
}
_OPENING = {LockAction.UNLOCK, LockAction.UNLATCH}
_CLOSING = {LockAction.LOCK, LockAction.FULL_LOCK, LockAction.LOCK_N_GO}
_JAMS = {CompletionStatus.MOTOR_BLOCKED, CompletionStatus.CLUTCH_FAILURE}


def status_of(states: KeyturnerStates) -> LockStatus:
    """The hub's LockStatus for ``states``."""
    bolt = _BOLT.get(states.lock_state, LockState.UNKNOWN)
    door = _DOOR.get(states.door_sensor_state, DoorState.UNKNOWN)
    return LockStatus(bolt, states.battery_percent, door)


def bolt_kind(action: int) -> EventKind | None:
    """UNLOCKED / LOCKED for a lock action code, None for others."""
    if action in _OPENING:
        return EventKind.UNLOCKED
    if action in _CLOSING:
        return EventKind.LOCKED
    return None


def trigger_of(trigger: int) -> Trigger:
    return _TRIGGER.get(trigger, Trigger.UNKNOWN)


def from_log(entry: LogEntry, lock_id: str, own_auth_id: int, now: datetime) -> LockEvent | None:
    """The event a log entry stands for; None for our own actions and bookkeeping entries."""
    if entry.type == LogEntryType.KEYPAD_ACTION:
        return _keypad_event(entry, lock_id, now)
    if entry.type == LogEntryType.LOCK_ACTION and entry.auth_id != own_auth_id:
        return _action_event(entry, lock_id, now)
    return None


def _event(
    entry: LogEntry,
    lock_id: str,
    now: datetime,
    *,
    kind: EventKind,
    trigger: Trigger,
    code: int | None,
) -> LockEvent:
    event_id = f"{VENDOR}:{lock_id}:log:{entry.index}"
    at = entry.timestamp or now
    return LockEvent(lock_id, kind, at, VENDOR, event_id, trigger, keypad_code_id=code)


def _keypad_event(entry: LogEntry, lock_id: str, now: datetime) -> LockEvent | None:
    action, _, completion, code_id = entry.keypad_action()
    if completion == CompletionStatus.INVALID_CODE:
        return _event(
            entry,
            lock_id,
            now,
            kind=EventKind.KEYPAD_DENIED,
            trigger=Trigger.KEYPAD,
            code=code_id or None,
        )
    kind = bolt_kind(action)
    if completion != CompletionStatus.SUCCESS or kind is None:
        return None
    return _event(entry, lock_id, now, kind=kind, trigger=Trigger.KEYPAD, code=code_id)


def _action_event(entry: LogEntry, lock_id: str, now: datetime) -> LockEvent | None:
    action, trigger, _, completion = entry.lock_action()
    if completion in _JAMS:
        return _event(
            entry, lock_id, now, kind=EventKind.JAMMED, trigger=trigger_of(trigger), code=None
        )
    kind = bolt_kind(action)
    if completion != CompletionStatus.SUCCESS or kind is None:
        return None
    return _event(entry, lock_id, now, kind=kind, trigger=trigger_of(trigger), code=None)


def from_states(
    before: KeyturnerStates, after: KeyturnerStates, lock_id: str, now: datetime, *, bolt: bool
) -> list[LockEvent]:
    """Door, battery and (when the log is not read) bolt changes between two readings."""
    events: list[LockEvent] = []
    stamp = (after.current_time or now).isoformat()

    def add(
        kind: EventKind, trigger: Trigger = Trigger.UNKNOWN, battery: int | None = None
    ) -> None:
        event_id = f"{VENDOR}:{lock_id}:state:{stamp}:{kind.value}"
        at = after.current_time or now
        events.append(
            LockEvent(lock_id, kind, at, VENDOR, event_id, trigger, battery_percent=battery)
        )

    old, new = status_of(before), status_of(after)
    if bolt and new.state != old.state and new.state in _BOLT_EVENTS:
        add(_BOLT_EVENTS[new.state], trigger_of(after.trigger))
    if new.door != old.door and new.door is not DoorState.UNKNOWN:
        add(EventKind.DOOR_OPENED if new.door is DoorState.OPEN else EventKind.DOOR_CLOSED)
    if after.battery_percent != before.battery_percent:
        add(EventKind.BATTERY, battery=after.battery_percent)
    return events


_BOLT_EVENTS = {
    LockState.LOCKED: EventKind.LOCKED,
    LockState.UNLOCKED: EventKind.UNLOCKED,
    LockState.JAMMED: EventKind.JAMMED,
}
