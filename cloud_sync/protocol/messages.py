"""Payload models for every command and record, and their strict decoding."""

from __future__ import annotations

from .commands import (
    COMMAND_ADAPTER,
    COMMAND_TYPES,
    Command,
    CommandPayload,
    CommandType,
    Courier,
    TaskComplete,
    TaskCompleteBody,
    WindowRevoke,
    WindowRevokeBody,
    WindowsSync,
    WindowsSyncBody,
    WindowUpsert,
    WindowUpsertBody,
    command_payload,
)
from .control import (
    ACK_ADAPTER,
    HELLO_ADAPTER,
    STATUS_ADAPTER,
    AckBody,
    HelloBody,
    HubHello,
    HubStatus,
    RecordsAck,
    ack_payload,
    ack_ranges,
    hello_payload,
    status_payload,
    window_set_digest,
)
from .fields import PROTOCOL_VERSION, rfc3339
from .payload import decode
from .records import (
    RECORD_ADAPTER,
    RECORD_TYPES,
    AccessDenied,
    AccessDeniedBody,
    AccessLockout,
    AccessLockoutBody,
    Clock,
    ClockStatus,
    ClockStatusBody,
    CommandResult,
    CommandResultBody,
    HubAlert,
    HubAlertBody,
    LockEvent,
    LockEventBody,
    LockEventRef,
    PodBody,
    PodRecorded,
    Record,
    RecordBody,
    RecordPayload,
    RecordType,
    WindowStatus,
    WindowStatusBody,
    build_record,
)

__all__ = [
    "COMMAND_TYPES",
    "PROTOCOL_VERSION",
    "RECORD_TYPES",
    "AccessDenied",
    "AccessDeniedBody",
    "AccessLockout",
    "AccessLockoutBody",
    "AckBody",
    "Clock",
    "ClockStatus",
    "ClockStatusBody",
    "Command",
    "CommandPayload",
    "CommandResult",
    "CommandResultBody",
    "CommandType",
    "Courier",
    "HelloBody",
    "HubAlert",
    "HubAlertBody",
    "HubHello",
    "HubStatus",
    "LockEvent",
    "LockEventBody",
    "LockEventRef",
    "PodBody",
    "PodRecorded",
    "Record",
    "RecordBody",
    "RecordPayload",
    "RecordType",
    "RecordsAck",
    "TaskComplete",
    "TaskCompleteBody",
    "WindowRevoke",
    "WindowRevokeBody",
    "WindowStatus",
    "WindowStatusBody",
    "WindowUpsert",
    "WindowUpsertBody",
    "WindowsSync",
    "WindowsSyncBody",
    "ack_payload",
    "ack_ranges",
    "build_record",
    "command_payload",
    "decode_ack",
    "decode_command",
    "decode_hello",
    "decode_record",
    "decode_status",
    "hello_payload",
    "rfc3339",
    "status_payload",
    "window_set_digest",
]


def decode_command(payload: bytes) -> Command:
    """Parse a command payload into its typed model; raise only MalformedError."""
    return decode(COMMAND_ADAPTER, payload)


def decode_record(payload: bytes) -> Record:
    """Parse a record payload into its typed model; raise only MalformedError."""
    return decode(RECORD_ADAPTER, payload)


def decode_ack(payload: bytes) -> RecordsAck:
    """Parse a ``records.ack`` payload; raise only MalformedError."""
    return decode(ACK_ADAPTER, payload)


def decode_hello(payload: bytes) -> HubHello:
    """Parse a ``hub.hello`` payload; raise only MalformedError."""
    return decode(HELLO_ADAPTER, payload)


def decode_status(payload: bytes) -> HubStatus:
    """Parse the plain ``up/status`` JSON; raise only MalformedError."""
    return decode(STATUS_ADAPTER, payload)
