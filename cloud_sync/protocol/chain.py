"""The record hash chain: each record names the SHA-256 of the previous record's payload."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .errors import ChainError
from .messages import decode_record

GENESIS_HASH = "0" * 64


def payload_hash(payload: bytes) -> str:
    """Hex SHA-256 of a record's exact payload bytes."""
    return hashlib.sha256(payload).hexdigest()


def verify_chain(
    payloads: Iterable[bytes], *, prev_hash: str = GENESIS_HASH, next_seq: int | None = None
) -> str:
    """Check record payloads in seq order link up; return the hash to continue from.

    ``prev_hash`` is the hash of the record before the first one (GENESIS_HASH before seq 1),
    ``next_seq`` the seq the first one must have (None: any). Raise MalformedError for a
    payload that is not a record and ChainError naming the first gap or broken link.
    """
    expected = next_seq
    for payload in payloads:
        record = decode_record(payload)
        if expected is not None and record.seq != expected:
            raise ChainError(record.seq, f"expected seq {expected}")
        if record.body.prev_hash != prev_hash:
            raise ChainError(record.seq, "prev_hash does not match the previous record")
        prev_hash = payload_hash(payload)
        expected = record.seq + 1
    return prev_hash
