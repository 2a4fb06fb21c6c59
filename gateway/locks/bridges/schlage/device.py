"""Blocking work on one pyschlage ``Lock`` (run inside ``SchlageAccount.call``), and its status."""

from __future__ import annotations

from pyschlage import Lock

from ...driver import DoorState, LockState, LockStatus


def move_bolt(device: Lock, *, locked: bool, retry: bool) -> None:
    """Lock or unlock, then read the state back; a retry first checks the bolt is not there."""
    if retry:  # the first attempt may have acted before its answer was lost
        device.refresh()
        if device.is_locked is locked and not device.is_jammed:
            return
    if locked:
        device.lock()  # type: ignore[no-untyped-call]  # pyschlage leaves it unannotated
    else:
        device.unlock()  # type: ignore[no-untyped-call]
    device.refresh()


def status_of(device: Lock) -> LockStatus:
    """Bolt, battery and door as the device last read them."""
    if not device.connected or device.is_locked is None:
        state = LockState.UNREACHABLE
    elif device.is_jammed:
        state = LockState.JAMMED
    else:
        state = LockState.LOCKED if device.is_locked else LockState.UNLOCKED
    door = {1: DoorState.OPEN, 2: DoorState.CLOSED}.get(
        int(device.door_state or 0), DoorState.UNKNOWN
    )
    return LockStatus(state, device.battery_level, door)
