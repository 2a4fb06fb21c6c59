"""Retries that stay single: was an attempt a dropped link hid done, is a code already set.

The coordinator retries an action whose answer a dropped link lost; the lock may have done it.
These checks decide from the lock's log (or, without the PIN, its state) and its code list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import events
from .keypad import KeypadCodeSpec, KeypadEntry
from .keyturner import KeyturnerStates, LogEntry
from .logbook import LOG_BATCH
from .messages import ActionTrigger, CompletionStatus, LockAction, LogEntryType
from .messages import LockState as NukiLockState
from .session import NukiSession

# An attempt whose outcome a dropped link hid is remembered this long: the coordinator retries
# within seconds, and later an old request id must not suppress a new action.
ATTEMPT_MEMORY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A lock action sent for a request id: what, the lock's clock then, and when we sent it."""

    action: int
    lock_time: datetime | None
    started: datetime


def forget_old(pending: dict[str, Attempt], now: datetime) -> None:
    """Drop attempts older than ``ATTEMPT_MEMORY``."""
    cutoff = now - ATTEMPT_MEMORY
    for request_id in [r for r, a in pending.items() if a.started < cutoff]:
        del pending[request_id]


async def went_through(
    session: NukiSession,
    attempt: Attempt,
    states: KeyturnerStates,
    *,
    auth_id: int,
    pin: int | None,
) -> bool:
    """Did the attempt a dropped link interrupted reach the motor? The log says for sure."""
    if pin is not None:
        entries = await session.log_entries(pin, count=LOG_BATCH)
        return any(_ours(e, auth_id, attempt) for e in entries)
    reached = events.status_of(states).state == events.status_of(_target(attempt)).state
    return (
        reached
        and states.last_lock_action == attempt.action
        and states.last_lock_action_trigger == ActionTrigger.SYSTEM
        and states.last_lock_action_completion_status == CompletionStatus.SUCCESS
    )


def _target(attempt: Attempt) -> KeyturnerStates:
    state = NukiLockState.LOCKED if attempt.action == LockAction.LOCK else NukiLockState.UNLOCKED
    return KeyturnerStates(0, state, 0, None, 0, 0)


def _ours(entry: LogEntry, auth_id: int, attempt: Attempt) -> bool:
    if entry.type != LogEntryType.LOCK_ACTION or entry.auth_id != auth_id:
        return False
    action, _, _, completion = entry.lock_action()
    recent = (
        attempt.lock_time is None
        or entry.timestamp is None
        or entry.timestamp >= attempt.lock_time.replace(microsecond=0)
    )
    return action == attempt.action and completion == CompletionStatus.SUCCESS and recent


def find_code(
    entries: list[KeypadEntry], spec: KeypadCodeSpec, *, same_window: bool
) -> KeypadEntry | None:
    """The listed code like ``spec`` (digits, name and, with ``same_window``, its window)."""
    for entry in entries:
        if entry.spec.code != spec.code or entry.spec.name != spec.name[:20]:
            continue
        if not same_window or (
            _seconds(entry.spec.allowed_from) == _seconds(spec.allowed_from)
            and _seconds(entry.spec.allowed_until) == _seconds(spec.allowed_until)
        ):
            return entry
    return None


def _seconds(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(microsecond=0)
