"""Schlage's activity log: pure parsing and bookkeeping of its entries, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyschlage.log import LockLog

from ...driver import EventKind, Trigger
from .errors import SchlageUnreachableError

# Entries up to 10 min older than the newest one seen are still compared by id, in case the
# cloud stores an entry late; older ones are taken as already handled.
LOG_OVERLAP = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_U, _L = EventKind.UNLOCKED, EventKind.LOCKED
# Schlage event codes (pyschlage.log.LOG_EVENT_TYPES) that mean something to the hub.
_LOG_GROUPS: tuple[tuple[tuple[int, ...], EventKind, Trigger], ...] = (
    ((2,), _U, Trigger.KEYPAD),
    ((1, 64), _L, Trigger.KEYPAD),
    ((4, 48, 68, 70, 76), _U, Trigger.MANUAL),  # thumb turn, inside button/lever, key
    ((3, 5, 49, 69), _L, Trigger.MANUAL),  # thumb turn, 1-touch, inside button
    ((7, 26), _U, Trigger.REMOTE),  # mobile device (app or this hub), remote
    ((6, 25, 65), _L, Trigger.REMOTE),
    ((9,), _U, Trigger.AUTO),
    ((8, 47), _L, Trigger.AUTO),  # auto-lock timer, scheduled locking
    ((52, 60, 75, 82), _U, Trigger.UNKNOWN),  # Apple key, UWB, key fob, linked lock
    ((53, 59, 74, 81, 83), _L, Trigger.UNKNOWN),
    ((10, 54, 55, 56), EventKind.JAMMED, Trigger.UNKNOWN),
    ((11,), EventKind.KEYPAD_DENIED, Trigger.KEYPAD),  # keypad disabled after wrong codes
    ((21, 29), EventKind.BATTERY, Trigger.UNKNOWN),  # low, critical
    ((71,), EventKind.DOOR_OPENED, Trigger.UNKNOWN),
    ((72,), EventKind.DOOR_CLOSED, Trigger.UNKNOWN),
)
_LOG_MEANINGS = {code: (kind, why) for codes, kind, why in _LOG_GROUPS for code in codes}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One activity-log entry: what happened, when, and by which access code."""

    log_id: str
    created_at: datetime
    event_code: int
    access_code_id: str | None = None


def classify(event_code: int) -> tuple[EventKind, Trigger] | None:
    """The event kind and trigger of a Schlage event code; None for codes the hub ignores."""
    return _LOG_MEANINGS.get(event_code)


def parse_logs(raw: object) -> list[LogEntry]:
    """Parse ``GET devices/{id}/logs``; SchlageUnreachableError for anything malformed."""
    if not isinstance(raw, list):
        raise SchlageUnreachableError("Schlage log answer is not a list")
    return [_parse_entry(item) for item in raw]


def _parse_entry(item: object) -> LogEntry:
    # pyschlage's Lock.logs() drops logId, the entry's identity; parse its model from the raw
    # JSON and keep the id alongside.
    if not isinstance(item, dict) or not isinstance(item.get("logId"), str):
        raise SchlageUnreachableError("Schlage log entry without a logId")
    try:
        entry = LockLog.from_json(item)
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        raise SchlageUnreachableError(f"malformed Schlage log entry: {exc!r}") from None
    code, keypad = entry.event_code, entry.access_code_id
    if isinstance(code, bool) or not isinstance(code, int):
        raise SchlageUnreachableError(f"malformed Schlage log entry: event code {code!r}")
    if keypad is not None and not isinstance(keypad, str):
        raise SchlageUnreachableError("malformed Schlage log entry: keypadUuid is not text")
    created = entry.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return LogEntry(item["logId"], created, code, keypad)


@dataclass(slots=True)
class LogCursor:
    """Which log entries were already handled: a newest-seen mark and the ids near it."""

    newest: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        """False until the first read (which only marks the history as handled)."""
        return self.newest is not None

    def advance(self, entries: list[LogEntry]) -> list[LogEntry]:
        """The entries not handled before, oldest first; marks them handled."""
        fresh = [e for e in sorted(entries, key=lambda e: e.created_at) if self._is_new(e)]
        first = not self.started
        for entry in entries:
            self.seen[entry.log_id] = entry.created_at
        self.newest = max([self.newest or _EPOCH, *(e.created_at for e in entries)])
        horizon = self.newest - LOG_OVERLAP
        self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
        return [] if first else fresh

    def _is_new(self, entry: LogEntry) -> bool:
        if entry.log_id in self.seen:
            return False
        return self.newest is None or entry.created_at >= self.newest - LOG_OVERLAP

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the state file."""
        newest = self.newest.isoformat() if self.newest else None
        return {"newest": newest, "seen": {k: v.isoformat() for k, v in self.seen.items()}}

    @classmethod
    def from_json(cls, data: object) -> LogCursor:
        """Read ``to_json``'s form back; a damaged or missing one starts afresh."""
        if not isinstance(data, dict) or not isinstance(data.get("newest"), str):
            return cls()
        try:
            seen = {str(k): datetime.fromisoformat(v) for k, v in dict(data["seen"]).items()}
            return cls(datetime.fromisoformat(data["newest"]), seen)
        except (TypeError, ValueError, KeyError):
            return cls()
