"""Remote commands this hub sent, matched to their log entries so each is reported once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ...driver import EventKind

# A command's own log entry appears within seconds; after 10 min it is not coming.
COMMAND_LOG_WINDOW = timedelta(minutes=10)
# Whether the bolt ends locked after a command of each kind.
REMOTE_TARGET = {EventKind.UNLOCKED: False, EventKind.LOCKED: True}


@dataclass(slots=True)
class Command:
    """A remote lock/unlock this hub sent: matched to its log entry so it is reported once."""

    request_id: str
    kind: EventKind
    sent_at: datetime
    confirmed: bool = False  # its event was emitted
    logged: bool = False  # its log entry was seen


def claim(commands: dict[str, Command], kind: EventKind, now: datetime) -> Command | None:
    """The oldest command of ``kind`` whose log entry this is, if any; forget stale ones."""
    horizon = now - COMMAND_LOG_WINDOW
    for request_id, command in list(commands.items()):
        if command.sent_at < horizon:
            del commands[request_id]
    for command in commands.values():
        if command.kind is kind and not command.logged:
            command.logged = True
            return command
    return None
