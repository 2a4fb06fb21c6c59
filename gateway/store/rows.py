"""Typed rows of the store's tables, and how timestamps are written to SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud_sync.protocol.messages import rfc3339
from cloud_sync.protocol.records import RecordType


def to_db_time(moment: datetime) -> str:
    """Store an aware datetime as RFC 3339 UTC with milliseconds (sorts as text)."""
    return rfc3339(moment)


def from_db_time(text: str) -> datetime:
    """Read a timestamp written by ``to_db_time``."""
    return datetime.fromisoformat(text).astimezone(UTC)


def optional_time(text: str | None) -> datetime | None:
    """Read a nullable timestamp column."""
    return None if text is None else from_db_time(text)


@dataclass(slots=True)
class Courier:
    """Who a window is for, as the cloud named them."""

    id: str
    name: str


@dataclass(slots=True)
class WindowRow:
    """A delivery access window as the hub holds it."""

    window_id: str
    tenant_id: str
    task_id: str
    lock_id: str
    starts_at: datetime
    ends_at: datetime
    version: int
    max_uses: int | None
    uses: int
    enforcement: str
    state: str
    code_hash: bytes
    code_sealed: str | None
    courier: Courier | None
    carrier_job_id: str | None
    updated_at: datetime
    keypad_code_id: int | None = None
    lock_side: str = "none"
    origin: str = "push"


@dataclass(slots=True)
class LockRow:
    """The last known state of one lock."""

    lock_id: str
    driver: str
    state: str
    battery: int | None
    updated_at: datetime


@dataclass(slots=True)
class Lockout:
    """Wrong-code escalation for one (lock, source) pair."""

    lock_id: str
    source: str
    failures: int
    level: int
    locked_until: datetime | None


@dataclass(slots=True)
class NewRecord:
    """A record to append: its type and body (``prev_hash`` is filled in by the store)."""

    type: RecordType
    body: Mapping[str, Any]


@dataclass(slots=True)
class StoredRecord:
    """A signed record in the outbox: ``payload`` holds the exact signed bytes."""

    seq: int
    record_id: str
    type: str
    payload: bytes
    envelope: dict[str, str]
    payload_hash: str
    created_at: datetime
    acked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last appended record: its seq and payload hash (0 and genesis when empty)."""

    seq: int
    hash: str
