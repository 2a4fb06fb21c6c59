"""Acceptance checks for verified messages, beyond the signature (replay is in replay.py)."""

from __future__ import annotations

from datetime import datetime

from .envelope import Verified
from .errors import ExpiredError, WrongHubError
from .messages import (
    Command,
    HubHello,
    Record,
    RecordsAck,
    decode_ack,
    decode_command,
    decode_hello,
    decode_record,
)


def check_command(verified: Verified, command: Command, *, hub_id: str, now: datetime) -> None:
    """Raise WrongHubError or ExpiredError unless ``hub_id`` may apply ``command`` at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if verified.kid == command.hub_id:
        # Hubs sign with kid = hub_id; a hub's key must never pass for a command key.
        raise WrongHubError(f"command signed by hub key {verified.kid!r}")
    if command.hub_id != hub_id:
        raise WrongHubError(f"command is for hub {command.hub_id!r}, not {hub_id!r}")
    if now >= command.expires_at:
        raise ExpiredError(f"command {command.id} expired at {command.expires_at.isoformat()}")


def accept_command(verified: Verified, *, hub_id: str, now: datetime) -> Command:
    """Decode a verified command payload and run ``check_command`` on it."""
    command = decode_command(verified.payload)
    check_command(verified, command, hub_id=hub_id, now=now)
    return command


def check_from_hub(verified: Verified, message: Record | HubHello, *, hub_id: str) -> None:
    """Raise WrongHubError unless a record or hello was signed by ``hub_id`` about itself."""
    if verified.kid != hub_id or message.hub_id != hub_id:
        raise WrongHubError(
            f"message from {hub_id!r} signed by {verified.kid!r} for {message.hub_id!r}"
        )


def accept_record(verified: Verified, *, hub_id: str) -> Record:
    """Decode a verified record payload from ``hub_id`` and check who signed it."""
    record = decode_record(verified.payload)
    check_from_hub(verified, record, hub_id=hub_id)
    return record


def accept_hello(verified: Verified, *, hub_id: str) -> HubHello:
    """Decode a verified ``hub.hello`` from ``hub_id`` and check who signed it."""
    hello = decode_hello(verified.payload)
    check_from_hub(verified, hello, hub_id=hub_id)
    return hello


def accept_ack(verified: Verified, *, hub_id: str) -> RecordsAck:
    """Decode a verified ``records.ack`` and check that it is for ``hub_id``."""
    ack = decode_ack(verified.payload)
    if verified.kid == hub_id:
        raise WrongHubError("an ack must be signed by a cloud key, not the hub's")
    if ack.hub_id != hub_id:
        raise WrongHubError(f"ack is for hub {ack.hub_id!r}, not {hub_id!r}")
    return ack
