"""The record hash chain: each record names the SHA-256 of the previous record's payload."""

from __future__ import annotations

import hashlib

GENESIS_HASH = "0" * 64


def payload_hash(payload: bytes) -> str:
    """Hex SHA-256 of a record's exact payload bytes."""
    return hashlib.sha256(payload).hexdigest()
