"""Records (hub -> cloud): body models, payload models and the checked record builder."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter, model_validator

from .commands import CommandType
from .fields import (
    MAX_SEQ,
    Details,
    Hex64,
    Ident,
    Seq,
    Text,
    Timestamp,
    Token,
    Ulid,
    Version,
    WireModel,
)
from .ids import new_ulid
from .payload import Payload, encode, frame, validate

# Lockouts double their time per level; past 64 levels the wait exceeds any real clock.
MAX_LOCKOUT_LEVEL = 64


class Clock(WireModel):
    """Whether the hub trusted its wall clock when it made the record, and why."""

    synced: bool
    source: Token


class LockEventRef(WireModel):
    """The lock's own confirmation that a PoD rests on."""

    vendor: Token
    type: Token
    vendor_event_id: Text | None = None


class RecordBody(WireModel):
    """Members every record body carries: the hash chain link and the clock state."""

    prev_hash: Hex64
    clock: Clock


class PodBody(RecordBody):
    """A proof of delivery: an unlock the lock confirmed, attributed to a window."""

    pod_id: Ulid
    window_id: Ident
    task_id: Ident
    tenant_id: Ident
    lock_id: Ident
    method: Literal["hub_code", "lock_keypad", "courier_token", "bridge", "manual"]
    credential_ref: Text
    unlocked_at: Timestamp
    relocked_at: Timestamp | None = None
    lock_event: LockEventRef


class LockEventBody(RecordBody):
    """Something a lock reported; ``unattributed`` marks an unlock no window explains."""

    lock_id: Ident
    event: Token
    unattributed: bool
    details: Details


AccessDeniedReason = Literal[
    "no_match", "not_active", "used_up", "revoked", "bad_token", "clock_untrusted", "locked_out"
]


class AccessDeniedBody(RecordBody):
    """A refused unlock attempt (the courier is never told which part was wrong)."""

    lock_id: Ident
    source: Text
    credential: Literal["code", "token"]
    reason: AccessDeniedReason


class AccessLockoutBody(RecordBody):
    """Repeated failures locked a source out of a lock until ``locked_until``."""

    lock_id: Ident
    source: Text
    failures: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    locked_until: Timestamp
    level: Annotated[int, Field(ge=1, le=MAX_LOCKOUT_LEVEL)]


class WindowStatusBody(RecordBody):
    """Progress of one window on the hub and on its lock."""

    window_id: Ident
    version: Version
    status: Literal[
        "applied",
        "set_on_lock",
        "failed_on_lock",
        "removed_from_lock",
        "expired",
        "revoked",
        "used",
    ]
    detail: Text | None = None


class CommandResultBody(RecordBody):
    """The hub's answer to one command; ``reason`` is required when rejected."""

    command_id: Ulid
    command_type: CommandType
    kid: Ident
    seq: Seq
    result: Literal["applied", "rejected"]
    reason: Token | None = None

    @model_validator(mode="after")
    def _check(self) -> CommandResultBody:
        if self.result == "rejected" and self.reason is None:
            raise ValueError("a rejected command needs a reason")
        return self


class ClockStatusBody(RecordBody):
    """The hub's trust in its clock changed; ``step_ms`` is the jump when it was corrected."""

    step_ms: Annotated[int, Field(ge=-MAX_SEQ, le=MAX_SEQ)] | None = None
    detail: Text | None = None


class HubAlertBody(RecordBody):
    """Something an operator should look at (unattributed unlock, jammed lock, low disk)."""

    kind: Token
    severity: Literal["info", "warning", "critical"]
    message: Text
    details: Details


class RecordPayload(Payload):
    """Members common to records: a gap-free seq per hub."""

    seq: Seq


class PodRecorded(RecordPayload):
    """``pod.recorded`` record."""

    type: Literal["pod.recorded"]
    body: PodBody


class LockEvent(RecordPayload):
    """``lock.event`` record."""

    type: Literal["lock.event"]
    body: LockEventBody


class AccessDenied(RecordPayload):
    """``access.denied`` record."""

    type: Literal["access.denied"]
    body: AccessDeniedBody


class AccessLockout(RecordPayload):
    """``access.lockout`` record."""

    type: Literal["access.lockout"]
    body: AccessLockoutBody


class WindowStatus(RecordPayload):
    """``window.status`` record."""

    type: Literal["window.status"]
    body: WindowStatusBody


class CommandResult(RecordPayload):
    """``command.result`` record."""

    type: Literal["command.result"]
    body: CommandResultBody


class ClockStatus(RecordPayload):
    """``clock.status`` record."""

    type: Literal["clock.status"]
    body: ClockStatusBody


class HubAlert(RecordPayload):
    """``hub.alert`` record."""

    type: Literal["hub.alert"]
    body: HubAlertBody


Record = Annotated[
    PodRecorded
    | LockEvent
    | AccessDenied
    | AccessLockout
    | WindowStatus
    | CommandResult
    | ClockStatus
    | HubAlert,
    Field(discriminator="type"),
]
RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)
RecordType = Literal[
    "pod.recorded",
    "lock.event",
    "access.denied",
    "access.lockout",
    "window.status",
    "command.result",
    "clock.status",
    "hub.alert",
]
RECORD_TYPES: frozenset[str] = frozenset(get_args(RecordType))


def build_record(
    *,
    type: RecordType,  # noqa: A002 - the wire field is called "type"
    hub_id: str,
    seq: int,
    issued_at: datetime,
    body: RecordBody | Mapping[str, Any],
    record_id: str | None = None,
) -> bytes:
    """Build and validate a record's payload bytes; raise MalformedError on a bad field."""
    members = frame(
        type_=type,
        hub_id=hub_id,
        seq=seq,
        issued_at=issued_at,
        body=body,
        message_id=record_id or new_ulid(),
    )
    return encode(validate(RECORD_ADAPTER, members))
