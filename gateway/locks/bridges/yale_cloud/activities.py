"""Pure pieces of the cloud driver: activities to events, the seen-activity cursor, token expiry.

The August activity feed is the lock's own log as the cloud knows it. The driver polls the
newest page of it; the cursor remembers which activities were already turned into events so
none is emitted twice, across polls and across restarts (it is persisted).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# yalexs ships no type hints (no py.typed); its activity objects are read here only.
from yalexs.activity import (  # type: ignore[import-untyped]
    ACTION_LOCK_FINGER_LOCK,
    ACTION_LOCK_FINGER_UNLOCK,
    ACTIVITY_ACTION_STATES,
    DoorOperationActivity,
    LockOperationActivity,
)
from yalexs.lock import LockDoorStatus, LockStatus  # type: ignore[import-untyped]
from yalexs.util import as_utc_from_local  # type: ignore[import-untyped]

from ...driver import EventKind, LockEvent, Trigger

VENDOR = "yale"
# Keys of activities already emitted that the cursor keeps. A poll reads at most the newest
# CATCH_UP_LIMIT activities, so anything that can show up again is among the newest this many.
SEEN_KEPT = 200

# yalexs counts a fingerprint as "keypad"; it is no entry code, so no slot is attributed.
_FINGERPRINT = frozenset({ACTION_LOCK_FINGER_LOCK, ACTION_LOCK_FINGER_UNLOCK})
_KINDS = {
    LockStatus.LOCKED: EventKind.LOCKED,
    LockStatus.UNLOCKED: EventKind.UNLOCKED,
    LockStatus.UNLATCHED: EventKind.UNLOCKED,
    LockStatus.JAMMED: EventKind.JAMMED,
    LockDoorStatus.OPEN: EventKind.DOOR_OPENED,
    LockDoorStatus.CLOSED: EventKind.DOOR_CLOSED,
}


class CursorError(ValueError):
    """A persisted cursor is not in the expected shape."""


@dataclass(frozen=True, slots=True)
class CloudActivity:
    """One bolt or door activity of a lock, as the cloud logged it."""

    key: str
    lock_id: str
    action: str
    at_ms: int
    kind: EventKind
    trigger: Trigger
    user_id: str | None


def activity_from_yalexs(activity: Any) -> CloudActivity | None:
    """The bolt/door activity in a yalexs activity object; None for moving states and others."""
    if not isinstance(activity, LockOperationActivity | DoorOperationActivity):
        return None
    kind = _KINDS.get(ACTIVITY_ACTION_STATES.get(activity.action))
    if kind is None:
        return None  # "locking"/"unlocking": the completed state follows as its own activity
    at_ms = round(as_utc_from_local(activity.activity_start_time).timestamp() * 1000)
    trigger = Trigger.UNKNOWN
    user_id: str | None = None
    if isinstance(activity, LockOperationActivity):
        trigger = _trigger(activity)
        user_id = None if activity.user_id is None else str(activity.user_id)
    lock_id = str(activity.device_id)
    # yalexs exposes the feed's id only for the v3 shape (entities.activity); v4 entries are
    # identified by what they say: the lock, the moment (ms), the action and who did it.
    key = activity.activity_id or f"{lock_id}:{at_ms}:{activity.action}:{user_id or '-'}"
    return CloudActivity(str(key), lock_id, str(activity.action), at_ms, kind, trigger, user_id)


def _trigger(activity: Any) -> Trigger:
    if activity.action in _FINGERPRINT:
        return Trigger.UNKNOWN
    if activity.operated_autorelock:
        return Trigger.AUTO
    if activity.operated_keypad:
        return Trigger.KEYPAD
    if activity.operated_remote:
        return Trigger.REMOTE
    if activity.operated_manual:
        return Trigger.MANUAL
    return Trigger.UNKNOWN


@dataclass(frozen=True, slots=True)
class Cursor:
    """Activities already emitted (key -> time), and the time before which nothing is new."""

    floor_ms: int
    seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def baseline(cls, activities: list[CloudActivity], now_ms: int) -> Cursor:
        """Start here: everything already in the feed counts as seen (history is not replayed)."""
        floor = max((a.at_ms for a in activities), default=now_ms)
        return cls(floor, {a.key: a.at_ms for a in activities})

    def fresh(self, activities: list[CloudActivity]) -> list[CloudActivity]:
        """The activities not emitted yet, oldest first (each key once)."""
        new: dict[str, CloudActivity] = {}
        for activity in activities:
            if activity.key not in self.seen and activity.at_ms >= self.floor_ms:
                new.setdefault(activity.key, activity)
        return sorted(new.values(), key=lambda a: (a.at_ms, a.key))

    def after(self, emitted: list[CloudActivity]) -> Cursor:
        """This cursor once ``emitted`` were delivered; the oldest keys beyond SEEN_KEPT go."""
        seen = dict(self.seen)
        seen.update((a.key, a.at_ms) for a in emitted)
        if len(seen) <= SEEN_KEPT:
            return Cursor(self.floor_ms, seen)
        kept = sorted(seen.items(), key=lambda item: (item[1], item[0]))[-SEEN_KEPT:]
        return Cursor(max(self.floor_ms, kept[0][1]), dict(kept))

    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON for the credential store."""
        return {"floor_ms": self.floor_ms, "seen": self.seen}

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        """Parse ``to_json``'s output; CursorError for anything else."""
        if not isinstance(data, dict):
            raise CursorError("cursor is not an object")
        floor, seen = data.get("floor_ms"), data.get("seen")
        if type(floor) is not int or not isinstance(seen, dict):
            raise CursorError("cursor needs an integer floor_ms and a seen object")
        if not all(type(at) is int for at in seen.values()):
            raise CursorError("cursor times must be integers")
        return cls(floor, {str(key): at for key, at in seen.items()})


def to_event(
    activity: CloudActivity,
    lock_id: str,
    *,
    keypad_slot: int | None = None,
    request_id: str | None = None,
) -> LockEvent:
    """The LockEvent for ``activity`` of the hub's lock ``lock_id``."""
    details: dict[str, str | int | bool] = {"action": activity.action, "source": "cloud"}
    if activity.user_id is not None:
        details["vendor_user_id"] = activity.user_id
    return LockEvent(
        lock_id=lock_id,
        kind=activity.kind,
        at=datetime.fromtimestamp(activity.at_ms / 1000, UTC),
        vendor=VENDOR,
        vendor_event_id=activity.key,
        trigger=activity.trigger,
        keypad_code_id=keypad_slot,
        request_id=request_id,
        details=details,
    )


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT access token (unverified: only to know when to refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
