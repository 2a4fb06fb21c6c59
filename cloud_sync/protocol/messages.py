"""Payload models for every command and record, and their strict decoding."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import jsoncodec
from .ids import new_ulid

PROTOCOL_VERSION = 1


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with millisecond precision and a Z."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_payload(
    *,
    type: str,  # noqa: A002 - the wire field is called "type"
    hub_id: str,
    seq: int,
    issued_at: datetime,
    body: Mapping[str, Any],
    record_id: str | None = None,
) -> bytes:
    """Build the exact payload bytes of a hub record (the bytes that are signed and hashed)."""
    return jsoncodec.dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": type,
            "id": record_id or new_ulid(),
            "hub_id": hub_id,
            "seq": seq,
            "issued_at": rfc3339(issued_at),
            "body": dict(body),
        }
    )
